"""Local mode's state file: the whole table and the simulated time, kept between CLI commands."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cronpilot.clock import from_iso, to_iso


class StateFileError(Exception):
    """The state file cannot be read as cronpilot's."""


def _map_binary(value: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """An attribute value with `convert` applied to every Binary in it (maps and lists included)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": convert(inner)}
    if kind == "BS":
        return {"BS": [convert(b) for b in inner]}
    if kind == "M":
        return {"M": {k: _map_binary(v, convert) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_map_binary(v, convert) for v in inner]}
    return value


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as DynamoDB's JSON writes it: Binary as base64 (packed documents)."""
    return _map_binary(value, lambda raw: base64.b64encode(raw).decode())


def _from_json(value: dict[str, Any]) -> dict[str, Any]:
    return _map_binary(value, base64.b64decode)


def save_state(path: Path, client: Any, table: str, now: datetime) -> None:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items += [{name: _as_json(value) for name, value in item.items()} for item in page["Items"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"now": to_iso(now), "items": items}))
    temporary.replace(path)  # atomic: a crash never leaves half a state file


def load_state(path: Path, client: Any, table: str) -> datetime | None:
    """Restore the table; returns local mode's simulated time, which only moves forward."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError as exc:
        raise StateFileError(
            f"{path} is not a cronpilot state file ({exc}): move it away to start fresh"
        ) from exc
    items = [{name: _from_json(value) for name, value in item.items()} for item in state.get("items", [])]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    return from_iso(state["now"]) if state.get("now") else None
