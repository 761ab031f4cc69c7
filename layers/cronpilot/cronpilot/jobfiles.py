"""Job files (YAML or JSON) -> validated jobs, with errors that name the file, the field and the fix.

A job file is untrusted input, so it is refused before it can cost anything: the size is checked before
anything is parsed, YAML is read event by event (no aliases or anchors, so no alias bombs; bounded
nesting, so no recursion limit), numbers are checked for range by the model, and the job is sized as
the item the store writes, against DynamoDB's 400 KB item limit. Every problem is one line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cronpilot.models.job import ENDPOINT_ID_PATTERN, Job, describe_value

# A job file larger than this is refused before it is parsed (CRONPILOT_MAX_JOB_FILE_BYTES overrides).
DEFAULT_MAX_JOB_FILE_BYTES = 1 << 20
MAX_JOB_FILE_BYTES_ENV = "CRONPILOT_MAX_JOB_FILE_BYTES"
# A job is about six levels deep; bodies get the rest. Deeper input is refused while it is read.
MAX_NESTING = 32
# Far beyond any field's range (the model gives each field's own); keeps int() away from huge strings.
MAX_NUMBER_DIGITS = 40
# A one-off run further ahead than this is a typo (and its arithmetic would overflow near year 9999).
MAX_ONE_OFF_AHEAD = timedelta(days=3653)

# DynamoDB's item limit counts attribute names and values. The store writes the job definition as one
# document (`job_doc`: its JSON, zlib-packed when that is smaller, so never more than the JSON) plus its
# scheduling state on the same item. The budget is on the JSON: what a job may hold does not depend on
# how well its text compresses, and the item fits whatever the content. STATE_RESERVE is the worst case of
# that state: keys and bookkeeping (~0.5 KB), next_run_reason (the AI's reason, at most 500 characters,
# so up to 2 KB of UTF-8), and the `inflight` map of up to 20 concurrent runs (~2 KB). Rounded up
# generously so fields added later to the job item fit too. tests/integration/test_job_item_size.py
# checks it against what the store really writes.
DYNAMODB_ITEM_LIMIT = 400 * 1024
STATE_RESERVE = 16 * 1024
MAX_JOB_DOC_BYTES = DYNAMODB_ITEM_LIMIT - STATE_RESERVE


class JobFileError(ValueError):
    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        # One line per problem, whatever a value or a library put in the text.
        self.problems = [" ".join(p.split()) for p in dict.fromkeys(problems)]
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def key_part(key: str) -> str:
    """A key as it reads in a field path: `url`, or `['odd key']` when it is empty, long or has spaces."""
    return key if _PLAIN_KEY.fullmatch(key) else f"[{key[:40]!r}]"


class _Refused(Exception):
    """A document refused while it was read; `where` is the field path or a line number."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def max_job_file_bytes() -> int:
    raw = os.environ.get(MAX_JOB_FILE_BYTES_ENV, "")
    if not raw:
        return DEFAULT_MAX_JOB_FILE_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise JobFileError(
            MAX_JOB_FILE_BYTES_ENV, [f"{raw!r} is not a size in bytes: set a whole number such as 1048576"]
        )
    return int(raw)


def _size(count: int) -> str:
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MiB"
    return f"{count / 1024:.1f} KiB" if count >= 1024 else f"{count} bytes"


# ------------------------------------------------------------------ reading


def _read_bounded(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes: a 50 MB file (or /dev/zero) costs one stat and one bounded read."""
    try:
        size = path.stat().st_size
        if path.is_file() and size > limit:
            raise JobFileError(path, [_too_big(size, limit)])
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except IsADirectoryError:
        raise JobFileError(path, ["is a directory: give the job file itself"]) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise JobFileError(
            path, [f"cannot read the file ({reason}): check the path and its permissions"]
        ) from None
    if len(raw) > limit:
        raise JobFileError(path, [_too_big(None, limit)])
    return raw


def _too_big(size: int | None, limit: int) -> str:
    actual = f"is {_size(size)}, " if size is not None else "is "
    return (
        f"{actual}larger than the {_size(limit)} a job file may be: move large bodies out of the job "
        f"(or raise {MAX_JOB_FILE_BYTES_ENV})"
    )


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark from an editor is harmless
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise JobFileError(
            path,
            [f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8: save the file as UTF-8 text"],
        ) from None


# ------------------------------------------------------------------ YAML, event by event


def _yaml_events(text: str) -> Any:
    """libyaml's event parser when present (fast, not recursive); PyYAML's pure-Python one otherwise.
    Never the composers: libyaml's composer recurses in C and crashes the process on deep nesting."""
    import yaml

    if getattr(yaml, "__with_libyaml__", False):
        from yaml._yaml import CParser

        return CParser(text)

    class _Events(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

    return _Events(text)


# The plain scalars a job file holds most (what YAML 1.1's resolver makes of them), read without it.
_PLAIN_BOOLS = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False}


def _plain_number_or_bool(value: str, typed: Any, event: Any) -> Any:
    """`true` or a decimal integer such as 42 directly; anything else (0-prefixed octal, 1_000, 0x1F,
    floats, dates, null, yes/no) through the resolver, as before."""
    if event.tag is None:
        if value in _PLAIN_BOOLS:
            return _PLAIN_BOOLS[value]
        decimal = value.isascii() and value.isdigit() and (value[0] != "0" or value == "0")
        if decimal and len(value) <= MAX_NUMBER_DIGITS:
            return int(value)
    return typed(event)


class _YamlBuilder:
    """Builds plain Python values from parser events, refusing what a job file never needs.

    One loop over the events with an explicit stack (nothing recurses); most scalars are text and take
    the fast path, so a dense 1 MiB file is read in well under a second."""

    SCALAR_TAGS = frozenset({"int", "float", "bool", "null", "timestamp"})

    def __init__(self) -> None:
        from yaml.constructor import SafeConstructor
        from yaml.resolver import Resolver

        self.resolver = Resolver()
        # Plain scalars whose first character starts no implicit type (bool, int, null, ...) are text.
        self.typed_starts = frozenset(self.resolver.yaml_implicit_resolvers) - {""}
        self.constructor = SafeConstructor()
        # Each open container: [container, its path part, the pending mapping key (None: a key is next)].
        self.stack: list[list[Any]] = []

    def path(self, extra: str | None = None) -> str:
        parts = [frame[1] for frame in self.stack if frame[1] is not None]
        if extra is not None:
            parts.append(extra)
        return "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip(".")

    def _child_part(self) -> str | None:
        if not self.stack:
            return None
        container, _path, key = self.stack[-1]
        if isinstance(container, list):
            return f"[{len(container)}]"
        return None if key is None else key_part(str(key))

    def _where(self, event: Any) -> str:
        field = self.path(self._child_part())
        line = f"line {event.start_mark.line + 1}" if event.start_mark else ""
        return f"{field} ({line})" if field and line else field or line

    def build(self, text: str) -> Any:
        import yaml

        try:
            return self._build(_yaml_events(text))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = exc.problem or exc.context or "syntax error"
            raise _Refused(where, f"not valid YAML ({problem}): fix the syntax there") from None
        except yaml.YAMLError as exc:
            raise _Refused(
                "", f"not valid YAML ({' '.join(str(exc).split())[:200]}): fix the syntax"
            ) from None

    def _build(self, events: Any) -> Any:
        import yaml

        stack = self.stack
        typed_starts = self.typed_starts
        documents = 0
        result: Any = None
        while events.check_event():
            event = events.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is not None:
                    self._anchor(event)
                value: Any = event.value
                # Quoted, or plain text that cannot be anything else: the common case, kept cheap.
                if event.tag is not None or (event.implicit[0] and value[:1] in typed_starts):
                    value = _plain_number_or_bool(value, self._typed_scalar, event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                self._open(event, kind is yaml.SequenceStartEvent)
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()[0]
            elif kind is yaml.AliasEvent:
                raise _Refused(
                    self._where(event),
                    f"YAML aliases (*{event.anchor}) are not allowed in a job file: write the value out",
                )
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    line = f"line {event.start_mark.line + 1}" if event.start_mark else ""
                    raise _Refused(line, "a job file holds one YAML document: remove the '---' separators")
                continue
            else:
                continue
            if not stack:
                result = value
                continue
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
            elif frame[2] is None:
                self._key(frame, value, event)
            else:
                container[frame[2]] = value
                frame[2] = None
        return result

    def _anchor(self, event: Any) -> None:
        raise _Refused(
            self._where(event),
            f"YAML anchors (&{event.anchor}) are not allowed in a job file: remove it and write values out",
        )

    def _open(self, event: Any, is_sequence: bool) -> None:
        if event.anchor is not None:
            self._anchor(event)
        kind = "seq" if is_sequence else "map"
        if event.tag not in (None, "!", f"tag:yaml.org,2002:{kind}"):
            raise _Refused(
                self._where(event), f"YAML tag {event.tag} is not supported in a job file: remove it"
            )
        if self.stack and type(self.stack[-1][0]) is dict and self.stack[-1][2] is None:
            raise _Refused(self._where(event), "a mapping key must be plain text: write it as text")
        if len(self.stack) >= MAX_NESTING:
            raise _Refused(
                self._where(event),
                f"nested more than {MAX_NESTING} levels deep: flatten the value (or send it as text)",
            )
        self.stack.append([[] if is_sequence else {}, self._child_part(), None])

    def _key(self, frame: list[Any], value: Any, event: Any) -> None:
        if not isinstance(value, str):
            shown = getattr(event, "value", "")
            raise _Refused(
                self._where(event),
                f"the key {shown[:40]!r} reads as {describe_value(value)}, not text: quote it",
            )
        if value in frame[0]:
            raise _Refused(self.path(key_part(value)), "this key appears twice in one mapping: keep one")
        frame[2] = value

    def _typed_scalar(self, event: Any) -> Any:
        from yaml.nodes import ScalarNode

        value = event.value
        if event.tag in (None, "!"):
            tag = self.resolver.resolve(ScalarNode, value, event.implicit)
        else:
            tag = event.tag
        name = tag.removeprefix("tag:yaml.org,2002:")
        if name == "str":
            return value
        if name == "merge":
            raise _Refused(
                self._where(event), "YAML merge keys (<<) are not allowed in a job file: write keys out"
            )
        if name not in self.SCALAR_TAGS:
            raise _Refused(self._where(event), f"YAML tag {tag} is not supported in a job file: remove it")
        # Counted on the text (0x digits too): a 5000-digit hex number would otherwise become an int
        # too large even to print.
        if name in ("int", "float") and len(value.replace("_", "")) > MAX_NUMBER_DIGITS + 2:
            raise _Refused(
                self._where(event),
                f"a number with more than {MAX_NUMBER_DIGITS} digits: use a number in the field's range",
            )
        try:
            return self.constructor.yaml_constructors[tag](self.constructor, ScalarNode(tag, value))
        except (ValueError, OverflowError, ArithmeticError) as exc:
            fix = (
                "use a date and time such as 2026-12-01T09:00:00Z"
                if name == "timestamp"
                else "quote it as text"
            )
            raise _Refused(
                self._where(event), f"{value[:40]!r} cannot be read as a {name} ({exc}): {fix}"
            ) from None


# ------------------------------------------------------------------ JSON


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused("", f"the key {key[:60]!r} appears twice in one object: keep one")
        result[key] = value
    return result


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _Refused(
            "", f"a number with more than {MAX_NUMBER_DIGITS} digits: use a number in the field's range"
        )
    return int(text)


def _deepest(data: Any) -> str | None:
    """The path of the first value nested deeper than MAX_NESTING (iterative: the input may be deep)."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_NESTING:
                return path or "(the document)"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                child = (
                    f"{path}[{key}]" if isinstance(value, list) else (f"{path}.{key}" if path else str(key))
                )
                pending.append((item, child, depth + 1))
    return None


def _parse_json(text: str) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise _Refused(
            f"line {exc.lineno}, column {exc.colno}", f"not valid JSON ({exc.msg}): fix the syntax there"
        ) from None
    except RecursionError:
        raise _Refused("", f"nested more than {MAX_NESTING} levels deep: flatten the value") from None
    deep = _deepest(data)
    if deep is not None:
        raise _Refused(
            deep, f"nested more than {MAX_NESTING} levels deep: flatten the value (or send it as text)"
        )
    return data


def parse_document(text: str, source: Path | str, *, is_json: bool) -> Any:
    """The document's plain value, or JobFileError with one line naming where and how to fix it."""
    try:
        return _parse_json(text) if is_json else _YamlBuilder().build(text)
    except _Refused as exc:
        raise JobFileError(source, [str(exc)]) from None


# ------------------------------------------------------------------ pydantic errors, in our words


_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# Names pydantic gives union members in a location (its own, and the tags of models/job.py's tagged
# unions): never a field of the document.
_TYPE_TAGS = frozenset(
    {"str", "int", "float", "bool", "list", "dict", "tuple", "none", "bytes", "text", "reference", "mapping"}
)


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """'endpoints[1:fetch].url' rather than pydantic's tuple. Parts that are not in the document (the
    member names pydantic adds for unions and validators) are left out; so is an id that is not one."""
    parts: list[str] = []
    node = data
    for position, item in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(item, int) and isinstance(node, list | tuple):
            label = f"[{item}]"
            child = node[item] if item < len(node) else None
            if isinstance(child, dict) and _is_endpoint_id(child.get("id")):
                label = f"[{item}:{child['id']}]"
            parts.append(label)
            node = child
        elif isinstance(node, dict) and item in node:
            part = key_part(str(item))
            parts.append(part if part.startswith("[") or not parts else f".{part}")
            node = node[item]
        elif last and isinstance(item, str) and _FIELD_NAME.fullmatch(item) and item not in _TYPE_TAGS:
            parts.append(("." if parts else "") + item)  # a missing field, or one of a shorthand's
    return "".join(parts) or "(the job)"


def _is_endpoint_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(ENDPOINT_ID_PATTERN, value) is not None


def _choices(expected: str) -> str:
    return expected.replace("'", "").replace(" or ", ", ")


def _message(error: Any) -> str:  # error: pydantic_core.ErrorDetails
    kind = error["type"]
    value = error.get("input")
    got = describe_value(value)
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field: remove it or check its spelling"
    if kind == "missing":
        return "required field is missing: add it"
    if kind in ("value_error", "assertion_error", "header_value", "body"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_pattern_mismatch" and error["loc"][-1] == "id":
        return (
            "id must be lower-case letters, digits and '-' (at most 63 characters, "
            "starting and ending with a letter or digit)"
            if tuple(error["loc"]) == ("id",)
            else "endpoint id must be lower-case letters, digits, '-' or '_' (at most 63 characters)"
        )
    if kind in ("string_type", "string_sub_type"):
        return f"expected text, got {got}: quote the value"
    if kind == "string_too_long":
        return f"is longer than {context.get('max_length')} characters: shorten it"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float", "finite_number"):
        return f"expected a whole number, got {got}"
    bounds = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most"}
    if kind in bounds or kind == "less_than":
        limit = next(iter(context.values()), "")
        return f"{got} is out of range: use a value {bounds.get(kind, 'less than')} {limit}"
    if kind in ("too_short", "too_long"):
        limit = context.get("min_length", context.get("max_length"))
        most = "at most" if kind == "too_long" else "at least"
        return f"has {context.get('actual_length')} items: give {most} {limit}"
    if kind in ("literal_error", "enum"):
        return f"{got} is not allowed: use one of {_choices(str(context.get('expected', '')))}"
    if kind.startswith("datetime") or kind.startswith("date_"):
        return f"expected a date and time, got {got}: use ISO 8601 such as 2026-12-01T09:00:00Z"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"expected a mapping (key: value lines), got {got}"
    if kind in ("tuple_type", "list_type", "iterable_type", "sequence_str"):
        return f"expected a list, got {got}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"{got} is not allowed here: see the job-file reference in README.md"
    return f"{got} is not valid here ({kind.replace('_', ' ')}): see the job-file reference in README.md"


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    return [f"{_location(tuple(e['loc']), data)}: {_message(e)}" for e in exc.errors()]


# ------------------------------------------------------------------ checks beyond the model


def _one_off_in_range(job: Job, now: datetime) -> list[str]:
    from cronpilot.cron import parse_timezone

    at = job.schedule.at
    if at is None:
        return []
    aware = at if at.tzinfo else at.replace(tzinfo=parse_timezone(job.schedule.timezone))
    shown = aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if aware <= now:
        return [f"schedule.at: {shown} is in the past: pick a future time, or use cron or rate to repeat"]
    if aware - now > MAX_ONE_OFF_AHEAD:
        return [f"schedule.at: {shown} is more than 10 years ahead: pick a nearer time"]
    return []


def _utf8_len(value: Any) -> int:
    # default=str: a document not validated yet may hold YAML dates; they are stored as text.
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def _field_sizes(job_doc: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """Every field of the stored job with its size; endpoint fields one by one and summed over endpoints."""
    totals: dict[str, int] = {}
    for key, value in job_doc.items():
        if key != "endpoints":
            yield key, _utf8_len(value)
    endpoints = job_doc.get("endpoints", [])
    endpoints = endpoints if isinstance(endpoints, list) else []
    for index, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, dict):
            yield f"endpoints[{index}]", _utf8_len(endpoint)
            continue
        label = f"{index}:{endpoint['id']}" if _is_endpoint_id(endpoint.get("id")) else str(index)
        for key, value in endpoint.items():
            size = _utf8_len(value)
            totals[key] = totals.get(key, 0) + size
            yield f"endpoints[{label}].{key_part(str(key))}", size
    for key, total in totals.items():
        yield f"endpoints[*].{key} (all {len(endpoints)} endpoints together)", total


def stored_size_problems(job: Job) -> list[str]:
    """The job as the store writes it (one JSON string beside the scheduling state) must fit a DynamoDB
    item; if not, name the field to shrink: the largest single field if shrinking it alone can make
    the job fit, else the field that adds up over all endpoints."""
    size = len(job.model_dump_json(exclude_defaults=False).encode())
    return _too_large(job.model_dump(mode="json"), size) if size > MAX_JOB_DOC_BYTES else []


def _too_large(job_doc: dict[str, Any], size: int, *, at_least: bool = False) -> list[str]:
    excess = size - MAX_JOB_DOC_BYTES
    sizes = list(_field_sizes(job_doc))
    single = [part for part in sizes if "[*]" not in part[0]]
    field, largest = max(single, key=lambda part: part[1])
    if largest <= excess:
        field, largest = max(sizes, key=lambda part: part[1])
    stored = ("at least " if at_least else "") + _size(size)
    return [
        f"{field}: the stored job would be {stored}, over the {_size(MAX_JOB_DOC_BYTES)} a job may take "
        f"in one DynamoDB item (400 KB, less its scheduling state); this field is {_size(largest)}: "
        "shorten it, or move the data out of the job"
    ]


def parse_job_data(data: Any, source: Path | str, *, now: datetime | None = None) -> Job:
    """A parsed document -> a Job that can be stored and scheduled from `now`."""
    if not isinstance(data, dict):
        raise JobFileError(
            source,
            [
                "a job file holds one job: a mapping with id, schedule and endpoints "
                f"(this one holds {describe_value(data)})"
            ],
        )
    # The stored job is about the document's compact JSON plus defaults: a document already too large is
    # refused before validation spends time on it. (Only whitespace the model strips from the ends of
    # text would shrink it; such padding counts here.)
    try:
        raw_size = _utf8_len(data)
        if raw_size > MAX_JOB_DOC_BYTES:
            raise JobFileError(source, _too_large(data, raw_size, at_least=True))
        job = Job.model_validate(data)
    except ValidationError as exc:
        raise JobFileError(source, format_validation_error(exc, data)) from None
    except RecursionError:  # a caller that skipped parse_document's depth bound (a JSON API body)
        raise JobFileError(
            source, [f"nested more than {MAX_NESTING} levels deep: flatten the value"]
        ) from None
    problems = _one_off_in_range(job, now or datetime.now(UTC)) + stored_size_problems(job)
    if problems:
        raise JobFileError(source, problems)
    return job


def load_job_file(path: Path | str, *, now: datetime | None = None, max_bytes: int | None = None) -> Job:
    path = Path(path)
    raw = _read_bounded(path, max_bytes or max_job_file_bytes())
    text = _decode(raw, path)
    data = parse_document(text, path, is_json=path.suffix.lower() == ".json")
    if data is None:
        raise JobFileError(
            path, ["the file is empty: a job file holds one job with id, schedule and endpoints"]
        )
    return parse_job_data(data, path, now=now)
