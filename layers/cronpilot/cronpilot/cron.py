"""Five-field cron expressions evaluated in an IANA time zone, with a documented DST rule.

Syntax: ``minute hour day-of-month month day-of-week``.

- ``*``, lists ``1,5``, ranges ``1-5``, steps ``*/15``, ``10-50/10`` and ``5/15`` (from 5 to the
  field's maximum, every 15).
- Month names ``JAN``-``DEC`` and weekday names ``SUN``-``SAT``, case-insensitive. Day-of-week
  ``7`` is Sunday, like ``0``; a weekday range may end on Sunday (``FRI-SUN``, ``5-7``).
- ``?`` is accepted in day-of-month and day-of-week and means ``*`` (an EventBridge habit).
- Macros: ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``.
- Not supported, each with an explicit error: a seconds field (or EventBridge's year field),
  and the Quartz/EventBridge extensions ``L``, ``W`` and ``#``.

Day rule (Vixie cron): when day-of-month *and* day-of-week are both restricted, a day matches
if *either* matches; otherwise the restricted one decides. A field is "restricted" when it does
not cover its whole range, so ``*``, ``?``, ``*/1`` and ``1-31`` are all unrestricted. (Vixie
cron itself calls any field that *starts* with ``*`` unrestricted, so ``*/2`` there silently
switches to AND semantics; cronpilot does not copy that quirk.)

DST rule (EventBridge Scheduler's documented behaviour): times are local wall-clock times in the
job's IANA zone.

- A local time that does not exist (spring-forward gap) is **skipped**: a daily 02:30 job in
  New York does not run on the spring-forward day.
- A local time that occurs twice (fall-back) runs **once**, at its first occurrence (``fold=0``).
- Results are always aware UTC datetimes.
"""

from __future__ import annotations

import calendar
import functools
import importlib.resources
import zoneinfo
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import NamedTuple, NoReturn
from zoneinfo import ZoneInfo

__all__ = ["CronError", "CronExpression", "parse_timezone"]

# The longest stretch without a 29 February is 8 years (2096-02-29 to 2104-02-29), so a search
# horizon of 8 calendar years after the start year finds every expression the parse-time
# "never fires" check lets through.
SEARCH_YEARS = 8

MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK = "minute", "hour", "day-of-month", "month", "day-of-week"

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DOW_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# Longest each month can be (February in a leap year), for the parse-time "never fires" check.
_MAX_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronError(ValueError):
    """An invalid cron expression. The message names the field, the bad token and the fix.

    ``field`` is the offending field's name (``minute``, ``hour``, ``day-of-month``, ``month``,
    ``day-of-week``), or ``None`` when the problem is the expression as a whole.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _FieldSpec(NamedTuple):
    """One cron field: its name, range, the hint its errors show and its named values."""

    name: str
    low: int
    high: int
    hint: str
    names: dict[str, int] | None = None
    question_mark: bool = False

    @property
    def full(self) -> frozenset[int]:
        return frozenset(range(self.low, self.high + 1))


_SPECS = (
    _FieldSpec(MINUTE, 0, 59, "use 0-59"),
    _FieldSpec(HOUR, 0, 23, "use 0-23"),
    _FieldSpec(DAY_OF_MONTH, 1, 31, "use 1-31", question_mark=True),
    _FieldSpec(MONTH, 1, 12, "use 1-12 or JAN-DEC", names=_MONTH_NAMES),
    # Parsed over 0-7 (7 = Sunday) and folded to 0-6 afterwards; `*` covers 0-6.
    _FieldSpec(DAY_OF_WEEK, 0, 7, "use 0-7 (0 and 7 are Sunday) or SUN-SAT", _DOW_NAMES, True),
)


class CronExpression(NamedTuple):
    """A parsed cron expression. Build it with :meth:`parse`; it is immutable and hashable."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    dom_restricted: bool
    dow_restricted: bool
    # Sorted copies of minutes, hours and days_of_month for the search (parse derives them).
    minute_list: tuple[int, ...]
    hour_list: tuple[int, ...]
    dom_list: tuple[int, ...]

    def __str__(self) -> str:
        return self.expression

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        """Parse a 5-field expression or macro; raise :class:`CronError` with the fix if invalid.

        Parsed expressions are cached, so parsing the same text for thousands of jobs is cheap.
        """
        return _parse_cached(expression)

    def matches(self, local: datetime) -> bool:
        """Whether the naive local wall time ``local`` (seconds ignored) is a fire time."""
        if local.tzinfo is not None:
            raise ValueError("CronExpression.matches takes a naive local wall time, got an aware datetime")
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.month in self.months
            and self._day_matches(local.day, (local.weekday() + 1) % 7)
        )

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first fire time strictly after ``after`` (aware, any zone), as an aware UTC datetime.

        Wall times are evaluated in ``tz``: nonexistent local times are skipped and ambiguous ones
        fire once, at their first occurrence. Raises :class:`CronError` if nothing fires within
        the search horizon (only possible in exotic zones that skip whole days).
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_after needs an aware datetime: attach a tzinfo, e.g. datetime.now(UTC)")
        after_utc = after.astimezone(UTC)
        local = after_utc.astimezone(tz)
        start = local.date()
        minutes, hours = self.minute_list, self.hour_list
        # Walking wall times in ascending order gives ascending UTC instants (fold=0 and gaps
        # skipped), and no wall time before `local`'s minute can be after `after`: the first
        # candidate whose UTC instant is > `after` is the answer.
        for day in self._days_from(start):
            year, month, dom = day.year, day.month, day.day
            first_day = day == start
            hour_index = bisect_left(hours, local.hour) if first_day else 0
            for hour in hours[hour_index:]:
                minute_index = bisect_left(minutes, local.minute) if first_day and hour == local.hour else 0
                for minute in minutes[minute_index:]:
                    candidate = datetime(year, month, dom, hour, minute, tzinfo=tz)
                    utc = candidate.astimezone(UTC)
                    if utc <= after_utc:
                        continue
                    back = utc.astimezone(tz)
                    if (back.day, back.hour, back.minute) != (dom, hour, minute):
                        continue  # nonexistent local time (spring-forward gap): skipped
                    return utc
        raise CronError(
            f"cron {self.expression!r} has no run within {SEARCH_YEARS} years after "
            f"{after_utc.isoformat()} in time zone {tz.key!r}: choose days that exist in that zone"
        )

    def iter_after(self, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Successive fire times strictly after ``after``, as aware UTC datetimes (endless)."""
        current = after
        while True:
            current = self.next_after(current, tz)
            yield current

    def _day_matches(self, dom: int, dow: int) -> bool:
        if self.dom_restricted and self.dow_restricted:
            return dom in self.days_of_month or dow in self.days_of_week
        # An unrestricted field holds its full range, so AND lets the restricted one decide.
        return dom in self.days_of_month and dow in self.days_of_week

    def _days_from(self, start: date) -> Iterator[date]:
        """Matching days on or after ``start``, ascending, up to the search horizon."""
        year, month, first = start.year, start.month, start.day
        last_year = start.year + SEARCH_YEARS
        months = self.months
        dom_only = not self.dow_restricted
        while year <= last_year:
            if month in months:
                first_weekday, days_in_month = calendar.monthrange(year, month)
                if dom_only:
                    for dom in self.dom_list[bisect_left(self.dom_list, first) :]:
                        if dom > days_in_month:
                            break
                        yield date(year, month, dom)
                else:
                    sunday_based = (first_weekday + 1) % 7  # weekday of the 1st, 0 = Sunday
                    for dom in range(first, days_in_month + 1):
                        if self._day_matches(dom, (sunday_based + dom - 1) % 7):
                            yield date(year, month, dom)
            first = 1
            month += 1
            if month > 12:
                month = 1
                year += 1


@functools.lru_cache(maxsize=4096)
def _parse_cached(expression: str) -> CronExpression:
    if not isinstance(expression, str):
        raise CronError(f"cron expression must be a string, got {type(expression).__name__}")
    text = " ".join(expression.split())
    if not text:
        raise CronError("cron expression is empty: write 5 fields, e.g. '0 9 * * MON-FRI'")
    if text.startswith("@"):
        expanded = MACROS.get(text.lower())
        if expanded is None:
            raise CronError(f"unknown cron macro {text!r}: use one of {', '.join(MACROS)}")
        fields = expanded.split()
    else:
        fields = text.split(" ")
    if len(fields) != 5:
        _raise_field_count(text, len(fields))

    minutes, hours, doms, months, dows = (
        _parse_field(field_text, spec) for field_text, spec in zip(fields, _SPECS, strict=True)
    )
    dows = frozenset(d % 7 for d in dows)
    dom_restricted = doms != _SPECS[2].full
    dow_restricted = dows != frozenset(range(7))
    _check_fires(text, doms, months, dom_restricted, dow_restricted)
    return CronExpression(
        expression=text,
        minutes=minutes,
        hours=hours,
        days_of_month=doms,
        months=months,
        days_of_week=dows,
        dom_restricted=dom_restricted,
        dow_restricted=dow_restricted,
        minute_list=tuple(sorted(minutes)),
        hour_list=tuple(sorted(hours)),
        dom_list=tuple(sorted(doms)),
    )


def _raise_field_count(text: str, count: int) -> NoReturn:
    layout = "cron has 5 fields (minute hour day-of-month month day-of-week)"
    if count in (6, 7):
        raise CronError(
            f"{layout}; seconds are not supported: {text!r} has {count} fields, "
            "drop the seconds field (or EventBridge's trailing year field)"
        )
    raise CronError(f"{layout}: {text!r} has {count}, write e.g. '0 9 * * MON-FRI'")


def _parse_field(text: str, spec: _FieldSpec) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(
                f"cron field '{spec.name}' has an empty list item in {text!r}: remove the extra comma",
                spec.name,
            )
        values.update(_parse_item(item, spec))
    return frozenset(values)


def _parse_item(item: str, spec: _FieldSpec) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise CronError(
                f"cron field '{spec.name}' step {item!r} needs a whole number of at least 1 after '/': "
                f"use e.g. '*/5'",
                spec.name,
            )
        step = int(step_text)
    star_high = 6 if spec.name == DAY_OF_WEEK else spec.high  # `*` in day-of-week is 0-6
    if base in ("*", "?"):
        if base == "?" and not spec.question_mark:
            raise CronError(
                f"cron field '{spec.name}' value '?' is only allowed in day-of-month and day-of-week: "
                "use '*'",
                spec.name,
            )
        if base == "?" and slash:
            raise CronError(
                f"cron field '{spec.name}' value {item!r} cannot take a step: use '*/{step}'", spec.name
            )
        return range(spec.low, star_high + 1, step)
    low_text, dash, high_text = base.partition("-")
    low = _parse_value(low_text, spec, item)
    if not dash:
        # `5/15` means from 5 to the field's maximum, every 15; a bare value is just itself.
        return range(low, max(low, star_high) + 1, step) if slash else range(low, low + 1)
    high = _parse_value(high_text, spec, item)
    if spec.name == DAY_OF_WEEK and high == 0 and low > 0:
        high = 7  # FRI-SUN: Sunday as the end of a weekday range is 7
    if low > high:
        raise CronError(
            f"cron field '{spec.name}' range {item!r} runs backwards: write it low-high, or split a "
            f"wrap-around range into a list such as '{low}-{spec.high},{spec.low}-{high}'",
            spec.name,
        )
    return range(low, high + 1, step)


def _parse_value(token: str, spec: _FieldSpec, item: str) -> int:
    upper = token.upper()
    if spec.names is not None and upper in spec.names:
        return spec.names[upper]
    if token.isascii() and token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise CronError(
                f"cron field '{spec.name}' value {value} is out of range {spec.low}-{spec.high}: {spec.hint}",
                spec.name,
            )
        return value
    _raise_unsupported_extension(upper, spec, item)
    kind = "a number or name" if spec.names else "a number"
    where = "" if token == item else f" in {item!r}"
    raise CronError(f"cron field '{spec.name}' value {token!r}{where} is not {kind}: {spec.hint}", spec.name)


def _raise_unsupported_extension(upper: str, spec: _FieldSpec, item: str) -> None:
    """Name the Quartz/EventBridge extensions (L, W, #) explicitly instead of 'not a number'."""
    if spec.name not in (DAY_OF_MONTH, DAY_OF_WEEK) or not upper:
        return
    if spec.name == DAY_OF_MONTH:
        fix = "use explicit days, e.g. '1' to run at the start of each month"
    else:
        fix = "schedule on the weekday (e.g. 'FRI') and let the job check the date"
    if "#" in item:
        what = "'#' (nth weekday of the month)"
    elif upper.startswith("L") or upper.endswith("L"):
        what = "'L' (last day or weekday of the month)"
    elif upper.endswith("W"):
        what = "'W' (nearest weekday)"
    else:
        return
    raise CronError(
        f"cron field '{spec.name}' value {item!r} is not supported: {what} is a Quartz/EventBridge "
        f"extension; {fix}",
        spec.name,
    )


def _check_fires(text: str, doms: frozenset[int], months: frozenset[int], dom_r: bool, dow_r: bool) -> None:
    """Reject expressions whose days never occur (``0 0 30 2 *``). A weekday always occurs."""
    if dow_r:
        return  # with OR semantics or dow alone, some day in every month matches
    if any(d <= _MAX_DAYS_IN_MONTH[m - 1] for m in months for d in doms):
        return
    month_names = ",".join(calendar.month_abbr[m].upper() for m in sorted(months))
    day_list = ",".join(str(d) for d in sorted(doms))
    raise CronError(
        f"cron {text!r} never fires: cron field 'day-of-month' value {day_list} never occurs in "
        f"{month_names}: use days that exist in those months (February has at most 29)",
        DAY_OF_MONTH,
    )


@functools.cache
def _known_zones() -> frozenset[str]:
    try:
        zones = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is a dependency
        zones = list(zoneinfo.available_timezones())
    # Host-dependent or placeholder keys are not zones a job should name.
    return frozenset(zones) - {"localtime", "posixrules", "Factory"}


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Europe/Berlin``); ``ValueError`` naming the fix if unknown."""
    known = _known_zones()
    if isinstance(name, str) and name in known:
        try:
            return ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # pragma: no cover - listed zone
            pass
    message = f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'"
    if isinstance(name, str):
        folded = name.strip().casefold()
        suggestion = next((zone for zone in sorted(known) if zone.casefold() == folded), None)
        if suggestion is not None:
            message += f" (did you mean {suggestion!r}?)"
    raise ValueError(message)
