"""Human durations in job files: "30s", "15m", "1h30m", "2d", or a number of seconds."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
# Far beyond any field's own range, and far below timedelta's overflow: a huge or infinite number is
# refused here with a message instead of an OverflowError from timedelta.
MAX_DURATION = timedelta(days=3650)
_EXPECTED = "use a form such as '30s', '15m', '1h30m', '2d' or a number of seconds"


def _bounded(seconds: float) -> timedelta:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds: {_EXPECTED}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration cannot exceed {format_duration(MAX_DURATION)}: {_EXPECTED}")
    return timedelta(seconds=seconds)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {'true' if value else 'false'}: {_EXPECTED}")
    if isinstance(value, int | float):
        return _bounded(value)
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip().lower()
        if text.isdigit():
            return _bounded(int(text))
        if _WHOLE.match(text):
            return _bounded(sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)))
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
        raise ValueError(f"{shown} is not a duration: {_EXPECTED}")
    kind = {list: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(type(value), "another type")
    raise ValueError(f"expected a duration, got {kind}: {_EXPECTED}")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


class DurationText:
    """`Annotated[timedelta, DurationText(parse, format)]`: read through `parse` before pydantic's own
    timedelta validation, written as `format`'s text. The schema BeforeValidator + PlainSerializer build,
    without importing pydantic.functional_serializers (~4 ms of dataclass building at every cold start)."""

    __slots__ = ("format", "parse")

    def __init__(self, parse: Callable[[Any], timedelta], format: Callable[[timedelta], str]) -> None:
        self.parse = parse
        self.format = format

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            self.parse,
            handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(
                self.format, info_arg=False, return_schema=core_schema.str_schema()
            ),
        )


Duration = Annotated[timedelta, DurationText(parse_duration, format_duration)]
