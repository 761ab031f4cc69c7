"""Human durations in job files: "30s", "15m", "1h30m", "2d", or a number of seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

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


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
