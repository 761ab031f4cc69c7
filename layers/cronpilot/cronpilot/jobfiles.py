"""Job files (YAML or JSON) -> validated jobs, with errors that name the file, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cronpilot.models.job import Job


class JobFileError(ValueError):
    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """'endpoints[1].url' rather than pydantic's tuple; endpoint indexes also show the endpoint's id."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if (
                isinstance(node, list)
                and item < len(node)
                and isinstance(node[item], dict)
                and "id" in node[item]
            ):
                label = f"[{item}:{node[item]['id']}]"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            if item in ("function-after", "function-before", "function-plain") or "[" in str(item):
                continue
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(job)"


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling"
        elif error["type"] == "missing":
            message = "required field is missing: add it"
        elif error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "id":
            message = (
                "id must be lower-case letters, digits and '-' (at most 63 characters, "
                "starting and ending with a letter or digit)"
                if error["loc"] == ("id",)
                else "endpoint id must be lower-case letters, digits, '-' or '_' (at most 63 characters)"
            )
        problems.append(f"{_location(tuple(error['loc']), data)}: {message}")
    return problems


def parse_job_data(data: Any, source: Path | str) -> Job:
    if not isinstance(data, dict):
        raise JobFileError(source, ["a job file holds one job: a mapping with id, schedule and endpoints"])
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        raise JobFileError(source, format_validation_error(exc, data)) from None


def load_job_file(path: Path | str) -> Job:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobFileError(path, [f"cannot read the file: {exc.strerror}"]) from None
    import yaml

    is_json = path.suffix.lower() == ".json"
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        raise JobFileError(path, [f"not valid {'JSON' if is_json else 'YAML'}: {exc}"]) from None
    return parse_job_data(data, path)
