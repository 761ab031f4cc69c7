"""Cron parsing, Vixie day semantics and next-run search (DST rules are in test_dst.py)."""

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from cronpilot import cron
from cronpilot.cron import CronError, CronExpression, parse_timezone

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
KOLKATA = ZoneInfo("Asia/Kolkata")
UTC_ZONE = ZoneInfo("UTC")

ALL_MINUTES = frozenset(range(60))
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
ALL_WEEKDAYS = frozenset(range(7))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def take(expression: str, after: datetime, count: int, tz: ZoneInfo = UTC_ZONE) -> list[datetime]:
    return list(itertools.islice(CronExpression.parse(expression).iter_after(after, tz), count))


# --- parsing -----------------------------------------------------------------------------------


def test_all_stars_is_every_minute_and_unrestricted() -> None:
    # When
    expr = CronExpression.parse("* * * * *")

    # Then
    assert expr.minutes == ALL_MINUTES
    assert expr.hours == ALL_HOURS
    assert expr.days_of_month == ALL_DAYS
    assert expr.months == ALL_MONTHS
    assert expr.days_of_week == ALL_WEEKDAYS
    assert not expr.dom_restricted
    assert not expr.dow_restricted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", {7}),
        ("1,5", {1, 5}),
        ("1-5", {1, 2, 3, 4, 5}),
        ("*/15", {0, 15, 30, 45}),
        ("10-50/10", {10, 20, 30, 40, 50}),
        ("5/15", {5, 20, 35, 50}),
        ("58/5", {58}),
        ("1-5,10,20-30/5", {1, 2, 3, 4, 5, 10, 20, 25, 30}),
        ("0-59/61", {0}),
        ("07", {7}),
        ("*,5", set(range(60))),
        ("59", {59}),
    ],
)
def test_minute_field_forms(text: str, expected: set[int]) -> None:
    assert CronExpression.parse(f"{text} * * * *").minutes == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*/6", {0, 6, 12, 18}),
        ("9-17", set(range(9, 18))),
        ("9-17/4", {9, 13, 17}),
        ("22/1", {22, 23}),
        ("0,12", {0, 12}),
    ],
)
def test_hour_field_forms(text: str, expected: set[int]) -> None:
    assert CronExpression.parse(f"0 {text} * * *").hours == frozenset(expected)


def test_day_of_month_step_starts_at_one() -> None:
    assert CronExpression.parse("0 0 */10 * *").days_of_month == frozenset({1, 11, 21, 31})
    assert CronExpression.parse("0 0 */2 * *").days_of_month == frozenset(range(1, 32, 2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("JAN", {1}),
        ("jan,Mar,DEC", {1, 3, 12}),
        ("jan-mar", {1, 2, 3}),
        ("JUL-dec/2", {7, 9, 11}),
        ("*/3", {1, 4, 7, 10}),
        ("2,AUG", {2, 8}),
    ],
)
def test_month_names_and_numbers(text: str, expected: set[int]) -> None:
    assert CronExpression.parse(f"0 0 1 {text} *").months == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MON-FRI", {1, 2, 3, 4, 5}),
        ("mon,Wed,fri", {1, 3, 5}),
        ("0", {0}),
        ("7", {0}),
        ("SUN", {0}),
        ("5-7", {5, 6, 0}),
        ("FRI-SUN", {5, 6, 0}),
        ("sat-sun", {6, 0}),
        ("*/2", {0, 2, 4, 6}),
        ("1/2", {1, 3, 5}),
        ("7/2", {0}),
        ("1-7", {0, 1, 2, 3, 4, 5, 6}),
    ],
)
def test_day_of_week_names_numbers_and_sunday_as_seven(text: str, expected: set[int]) -> None:
    assert CronExpression.parse(f"0 0 * * {text}").days_of_week == frozenset(expected)


def test_question_mark_means_star_in_day_fields() -> None:
    # When
    expr = CronExpression.parse("0 12 ? * ?")

    # Then
    assert expr.days_of_month == ALL_DAYS
    assert expr.days_of_week == ALL_WEEKDAYS
    assert not expr.dom_restricted
    assert not expr.dow_restricted


@pytest.mark.parametrize(
    ("expression", "dom_restricted", "dow_restricted"),
    [
        ("0 0 * * *", False, False),
        ("0 0 1 * *", True, False),
        ("0 0 * * MON", False, True),
        ("0 0 1 * MON", True, True),
        ("0 0 */1 * *", False, False),
        ("0 0 1-31 * 0-7", False, False),
        ("0 0 * * 0-6", False, False),
        ("0 0 */2 * *", True, False),
        ("0 0 ? * MON", False, True),
    ],
)
def test_restriction_means_not_covering_the_whole_range(
    expression: str, dom_restricted: bool, dow_restricted: bool
) -> None:
    expr = CronExpression.parse(expression)
    assert (expr.dom_restricted, expr.dow_restricted) == (dom_restricted, dow_restricted)


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros_expand_to_their_five_field_form(macro: str, equivalent: str) -> None:
    # Given
    expr = CronExpression.parse(macro)
    expanded = CronExpression.parse(equivalent)

    # Then: same schedule; the text is kept as written
    assert expr._replace(expression=equivalent) == expanded
    assert expr.expression == macro


def test_whitespace_is_normalised() -> None:
    expr = CronExpression.parse("  0\t9  *  * MON-FRI \n")
    assert expr.expression == "0 9 * * MON-FRI"
    assert str(expr) == "0 9 * * MON-FRI"


def test_parse_is_cached_and_result_is_immutable() -> None:
    # Given
    first = CronExpression.parse("*/5 * * * *")

    # When
    second = CronExpression.parse("*/5 * * * *")

    # Then
    assert first is second
    assert hash(first) == hash(second)
    with pytest.raises(AttributeError):
        first.expression = "0 0 * * *"  # type: ignore[misc]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "field", "fragments"),
    [
        ("60 * * * *", "minute", ["value 60", "out of range 0-59", "use 0-59"]),
        ("0 24 * * *", "hour", ["cron field 'hour' value 24 is out of range 0-23: use 0-23"]),
        ("0 0 0 * *", "day-of-month", ["value 0", "1-31"]),
        ("0 0 32 * *", "day-of-month", ["value 32", "1-31"]),
        ("0 0 * 0 *", "month", ["value 0", "use 1-12 or JAN-DEC"]),
        ("0 0 * 13 *", "month", ["value 13", "use 1-12 or JAN-DEC"]),
        ("0 0 * * 8", "day-of-week", ["value 8", "0-7", "SUN-SAT"]),
        ("0 0 * FOO *", "month", ["'FOO'", "not a number or name", "JAN-DEC"]),
        ("0 0 * * FUNDAY", "day-of-week", ["'FUNDAY'", "not a number or name", "SUN-SAT"]),
        ("x * * * *", "minute", ["'x'", "not a number", "use 0-59"]),
        ("0 MON * * *", "hour", ["'MON'", "not a number", "use 0-23"]),
        ("0 0 1-x * *", "day-of-month", ["'x'", "'1-x'"]),
        ("*/0 * * * *", "minute", ["'*/0'", "at least 1", "'*/5'"]),
        ("*/x * * * *", "minute", ["'*/x'", "whole number"]),
        ("0 */ * * *", "hour", ["'*/'", "whole number"]),
        ("5-1 * * * *", "minute", ["'5-1'", "backwards", "'5-59,0-1'"]),
        ("0 22-2 * * *", "hour", ["'22-2'", "backwards", "'22-23,0-2'"]),
        ("0 0 * * FRI-MON", "day-of-week", ["'FRI-MON'", "backwards"]),
        ("1,,2 * * * *", "minute", ["'1,,2'", "empty list item", "remove the extra comma"]),
        ("0 0 * * 1,", "day-of-week", ["empty list item"]),
        ("? * * * *", "minute", ["'?'", "only allowed in day-of-month and day-of-week", "use '*'"]),
        ("0 0 * ? *", "month", ["'?'", "use '*'"]),
        ("0 0 ?/2 * *", "day-of-month", ["'?/2'", "'*/2'"]),
        ("0 0 1-2-3 * *", "day-of-month", ["'1-2-3'"]),
        ("0 0 -1 * *", "day-of-month", ["'-1'"]),
        ("\u0665 * * * *", "minute", ["not a number"]),  # ARABIC-INDIC DIGIT FIVE
    ],
)
def test_field_errors_name_the_field_token_and_fix(expression: str, field: str, fragments: list[str]) -> None:
    # When
    with pytest.raises(CronError) as excinfo:
        CronExpression.parse(expression)

    # Then
    message = str(excinfo.value)
    assert excinfo.value.field == field
    assert f"cron field '{field}'" in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("expression", "field", "token"),
    [
        ("0 0 L * *", "day-of-month", "'L'"),
        ("0 0 LW * *", "day-of-month", "'LW'"),
        ("0 0 L-3 * *", "day-of-month", "'L-3'"),
        ("0 0 15W * *", "day-of-month", "'15W'"),
        ("0 0 * * 5L", "day-of-week", "'5L'"),
        ("0 0 * * FRIL", "day-of-week", "'FRIL'"),
        ("0 0 * * MON#2", "day-of-week", "'MON#2'"),
        ("0 0 * * 1#3", "day-of-week", "'1#3'"),
    ],
)
def test_quartz_extensions_are_rejected_by_name(expression: str, field: str, token: str) -> None:
    # When
    with pytest.raises(CronError) as excinfo:
        CronExpression.parse(expression)

    # Then
    message = str(excinfo.value)
    assert excinfo.value.field == field
    assert f"cron field '{field}' value {token} is not supported" in message
    assert "Quartz/EventBridge extension" in message


def test_month_names_containing_l_and_w_are_not_mistaken_for_extensions() -> None:
    assert CronExpression.parse("0 0 1 JUL,APR *").months == frozenset({4, 7})
    assert CronExpression.parse("0 0 * * WED,TUE").days_of_week == frozenset({2, 3})


@pytest.mark.parametrize("expression", ["0 0 12 * * ?", "0 0 12 * * MON-FRI", "0 0 12 ? * * 2026"])
def test_seconds_or_year_field_is_rejected(expression: str) -> None:
    # When
    with pytest.raises(CronError) as excinfo:
        CronExpression.parse(expression)

    # Then
    message = str(excinfo.value)
    assert excinfo.value.field is None
    assert (
        "cron has 5 fields (minute hour day-of-month month day-of-week); seconds are not supported" in message
    )


@pytest.mark.parametrize("expression", ["0 9 * *", "*", "0 9"])
def test_too_few_fields_is_rejected(expression: str) -> None:
    with pytest.raises(CronError, match=r"cron has 5 fields \(minute hour day-of-month month day-of-week\)"):
        CronExpression.parse(expression)


@pytest.mark.parametrize("expression", ["", "   "])
def test_empty_expression_is_rejected(expression: str) -> None:
    with pytest.raises(CronError, match="empty"):
        CronExpression.parse(expression)


@pytest.mark.parametrize("macro", ["@reboot", "@every", "@ daily"])
def test_unknown_macro_lists_the_known_ones(macro: str) -> None:
    # When
    with pytest.raises(CronError) as excinfo:
        CronExpression.parse(macro)

    # Then
    assert excinfo.value.field is None
    assert "@hourly" in str(excinfo.value)


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30,31 FEB *"])
def test_expression_that_never_fires_is_rejected_at_parse_time(expression: str) -> None:
    # When
    with pytest.raises(CronError) as excinfo:
        CronExpression.parse(expression)

    # Then
    assert excinfo.value.field == "day-of-month"
    assert "never fires" in str(excinfo.value)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "0 0 31 * *", "0 0 30 2 MON", "0 0 31 4,5 *"])
def test_rare_but_possible_expressions_are_accepted(expression: str) -> None:
    CronExpression.parse(expression)


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)
    assert CronError("x").field is None
    assert CronError("x", "hour").field == "hour"


# --- matches -----------------------------------------------------------------------------------


def test_matches_reads_naive_wall_time_and_ignores_seconds() -> None:
    expr = CronExpression.parse("30 9 * * MON-FRI")
    assert expr.matches(datetime(2026, 1, 5, 9, 30, 59))  # Monday
    assert not expr.matches(datetime(2026, 1, 5, 9, 31))
    assert not expr.matches(datetime(2026, 1, 4, 9, 30))  # Sunday


def test_matches_rejects_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        CronExpression.parse("* * * * *").matches(datetime(2026, 1, 1, tzinfo=UTC))


def test_vixie_or_when_both_day_fields_are_restricted() -> None:
    # Given: the 13th OR any Friday
    expr = CronExpression.parse("0 0 13 * FRI")

    # Then
    assert expr.matches(datetime(2026, 2, 13))  # Friday the 13th
    assert expr.matches(datetime(2026, 1, 13))  # Tuesday, matched by day-of-month
    assert expr.matches(datetime(2026, 1, 2))  # Friday, matched by day-of-week
    assert not expr.matches(datetime(2026, 1, 5))  # Monday the 5th


def test_restricted_day_field_decides_alone() -> None:
    dom_only = CronExpression.parse("0 0 13 * *")
    dow_only = CronExpression.parse("0 0 * * FRI")
    dom_with_question_mark = CronExpression.parse("0 0 13 * ?")
    assert dom_only.matches(datetime(2026, 1, 13))
    assert not dom_only.matches(datetime(2026, 1, 2))
    assert dow_only.matches(datetime(2026, 1, 2))
    assert not dow_only.matches(datetime(2026, 1, 13))
    assert dom_with_question_mark.matches(datetime(2026, 1, 13))
    assert not dom_with_question_mark.matches(datetime(2026, 1, 2))


def test_full_range_day_of_month_counts_as_unrestricted() -> None:
    # Given: 1-31 covers every day, so day-of-week alone decides (Mondays only)
    expr = CronExpression.parse("0 0 1-31 * MON")

    # Then
    assert expr.matches(datetime(2026, 1, 5))
    assert not expr.matches(datetime(2026, 1, 6))


# --- next_after: exact UTC examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", utc(2026, 1, 15, 12, 3, 10), utc(2026, 1, 15, 12, 5)),
        ("*/5 * * * *", utc(2026, 1, 15, 12, 5), utc(2026, 1, 15, 12, 10)),
        ("*/5 * * * *", utc(2026, 1, 15, 12, 4, 59), utc(2026, 1, 15, 12, 5)),
        ("*/5 * * * *", utc(2026, 12, 31, 23, 55), utc(2027, 1, 1, 0, 0)),
        ("* * * * *", utc(2026, 1, 1, 12, 0, 0) + timedelta(microseconds=1), utc(2026, 1, 1, 12, 1)),
        ("5/15 * * * *", utc(2026, 1, 1, 12, 50), utc(2026, 1, 1, 13, 5)),
        ("10-50/10 * * * *", utc(2026, 1, 1, 12, 50), utc(2026, 1, 1, 13, 10)),
        ("0 */6 * * *", utc(2026, 1, 1, 5, 0), utc(2026, 1, 1, 6, 0)),
        ("0 */6 * * *", utc(2026, 1, 1, 18, 0), utc(2026, 1, 2, 0, 0)),
        ("0 9 * * MON-FRI", utc(2026, 1, 9, 9, 0), utc(2026, 1, 12, 9, 0)),  # Fri 09:00 -> Mon
        ("0 9 * * MON-FRI", utc(2026, 1, 10, 8, 0), utc(2026, 1, 12, 9, 0)),  # Saturday
        ("0 9 * * MON-FRI", utc(2026, 1, 12, 8, 59, 59), utc(2026, 1, 12, 9, 0)),
        ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),
        ("0 0 29 2 *", utc(2028, 2, 29), utc(2032, 2, 29)),
        ("0 0 29 2 *", utc(2096, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
        ("0 0 31 * *", utc(2026, 1, 31), utc(2026, 3, 31)),
        ("0 0 30 * *", utc(2026, 1, 30), utc(2026, 3, 30)),
        ("0 0 1 * *", utc(2026, 12, 15), utc(2027, 1, 1)),
        ("0 12 * 2 *", utc(2026, 1, 15), utc(2026, 2, 1, 12)),
        ("59 23 31 12 *", utc(2026, 12, 31, 23, 59), utc(2027, 12, 31, 23, 59)),
        ("0 0 1 1 *", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("@yearly", utc(2026, 6, 1), utc(2027, 1, 1)),
        ("@weekly", utc(2026, 1, 1), utc(2026, 1, 4)),  # Thursday -> Sunday
        ("@hourly", utc(2026, 1, 1, 10, 59, 59), utc(2026, 1, 1, 11)),
        ("@monthly", utc(2026, 2, 1), utc(2026, 3, 1)),
        ("30 4 1,15 * *", utc(2026, 2, 15, 4, 30), utc(2026, 3, 1, 4, 30)),
        ("0 0 * * 7", utc(2026, 1, 1), utc(2026, 1, 4)),
        ("0 0 13 * FRI", utc(2026, 1, 9), utc(2026, 1, 13)),  # Tuesday 13th, via day-of-month
    ],
)
def test_next_after_in_utc(expression: str, after: datetime, expected: datetime) -> None:
    # When
    result = CronExpression.parse(expression).next_after(after, UTC_ZONE)

    # Then
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        ("0 9 * * MON-FRI", BERLIN, utc(2026, 7, 1), utc(2026, 7, 1, 7)),  # CEST, UTC+2
        ("0 9 * * MON-FRI", BERLIN, utc(2026, 1, 5), utc(2026, 1, 5, 8)),  # CET, UTC+1
        ("0 9 * * MON-FRI", NEW_YORK, utc(2026, 1, 9, 14), utc(2026, 1, 12, 14)),  # EST, UTC-5
        ("0 0 * * *", TOKYO, utc(2026, 1, 1), utc(2026, 1, 1, 15)),
        ("30 9 * * *", KOLKATA, utc(2026, 3, 2, 3), utc(2026, 3, 2, 4)),  # UTC+5:30
        ("0 0 1 1 *", TOKYO, utc(2026, 12, 31, 14, 59), utc(2026, 12, 31, 15)),
        ("0 23 31 12 *", NEW_YORK, utc(2027, 1, 1, 3, 59), utc(2027, 1, 1, 4)),
    ],
)
def test_next_after_in_other_zones(
    expression: str, tz: ZoneInfo, after: datetime, expected: datetime
) -> None:
    assert CronExpression.parse(expression).next_after(after, tz) == expected


def test_after_may_be_given_in_any_zone() -> None:
    # Given: the same instant, 2026-06-01 00:00 UTC, written in three zones
    expr = CronExpression.parse("0 3 * * *")
    instants = [
        utc(2026, 6, 1),
        datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO),
        datetime(2026, 5, 31, 20, 0, tzinfo=NEW_YORK),
        datetime(2026, 5, 31, 21, 0, tzinfo=timezone(timedelta(hours=-3))),
    ]

    # When
    results = {expr.next_after(after, BERLIN) for after in instants}

    # Then: 03:00 CEST is 01:00 UTC
    assert results == {utc(2026, 6, 1, 1)}


def test_after_exactly_on_a_fire_time_in_the_job_zone_returns_the_next_one() -> None:
    # Given: 09:00 Berlin on a Monday, written as a Berlin-aware datetime
    expr = CronExpression.parse("0 9 * * MON-FRI")

    # When
    result = expr.next_after(datetime(2026, 1, 9, 9, 0, tzinfo=BERLIN), BERLIN)

    # Then: Friday 09:00 is not repeated; next is Monday 09:00 CET
    assert result == utc(2026, 1, 12, 8)


def test_next_after_requires_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronExpression.parse("* * * * *").next_after(datetime(2026, 1, 1), UTC_ZONE)


def test_vixie_or_sequence() -> None:
    # Given: the 13th or any Friday, from the first of January 2026
    runs = take("0 0 13 * FRI", utc(2026, 1, 1), 9)

    # Then
    assert runs == [
        utc(2026, 1, 2),
        utc(2026, 1, 9),
        utc(2026, 1, 13),
        utc(2026, 1, 16),
        utc(2026, 1, 23),
        utc(2026, 1, 30),
        utc(2026, 2, 6),
        utc(2026, 2, 13),  # Friday the 13th fires once
        utc(2026, 2, 20),
    ]


def test_star_step_day_of_month_with_weekday_uses_or_not_vixies_and_quirk() -> None:
    # Given: odd days OR Mondays (Vixie cron would AND these because the field starts with '*')
    runs = take("0 0 */2 * MON", utc(2026, 1, 31), 11)

    # Then
    assert runs == [
        utc(2026, 2, 1),
        utc(2026, 2, 2),  # Monday
        utc(2026, 2, 3),
        utc(2026, 2, 5),
        utc(2026, 2, 7),
        utc(2026, 2, 9),  # odd and Monday, once
        utc(2026, 2, 11),
        utc(2026, 2, 13),
        utc(2026, 2, 15),
        utc(2026, 2, 16),  # Monday
        utc(2026, 2, 17),
    ]


def test_day_31_skips_short_months() -> None:
    assert take("0 0 31 * *", utc(2026, 1, 1), 7) == [
        utc(2026, 1, 31),
        utc(2026, 3, 31),
        utc(2026, 5, 31),
        utc(2026, 7, 31),
        utc(2026, 8, 31),
        utc(2026, 10, 31),
        utc(2026, 12, 31),
    ]


def test_leap_day_runs_only_in_leap_years() -> None:
    assert take("0 0 29 2 *", utc(2026, 1, 1), 3) == [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]


def test_weekday_schedule_over_a_week_in_berlin() -> None:
    assert take("0 9 * * MON-FRI", utc(2026, 1, 1), 6, BERLIN) == [
        utc(2026, 1, 1, 8),  # Thursday
        utc(2026, 1, 2, 8),
        utc(2026, 1, 5, 8),
        utc(2026, 1, 6, 8),
        utc(2026, 1, 7, 8),
        utc(2026, 1, 8, 8),
    ]


def test_every_five_minutes_crosses_midnight() -> None:
    assert take("*/5 * * * *", utc(2026, 1, 1, 23, 50), 4) == [
        utc(2026, 1, 1, 23, 55),
        utc(2026, 1, 2, 0, 0),
        utc(2026, 1, 2, 0, 5),
        utc(2026, 1, 2, 0, 10),
    ]


def test_iter_after_is_strictly_increasing_and_every_run_matches() -> None:
    # Given
    expr = CronExpression.parse("*/7 3-5 * JAN,JUL MON")

    # When
    runs = take("*/7 3-5 * JAN,JUL MON", utc(2026, 1, 1), 500, BERLIN)

    # Then
    assert all(a < b for a, b in itertools.pairwise(runs))
    assert all(expr.matches(run.astimezone(BERLIN).replace(tzinfo=None)) for run in runs)


def test_nothing_within_the_search_horizon_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: a 1-year horizon, and the next 29 February more than a year away
    monkeypatch.setattr(cron, "SEARCH_YEARS", 1)
    expr = CronExpression.parse("0 0 29 2 *")

    # When / Then
    with pytest.raises(CronError, match="no run within 1 years"):
        expr.next_after(utc(2026, 3, 1), UTC_ZONE)


# --- time zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata", "US/Eastern"])
def test_parse_timezone_accepts_iana_names(name: str) -> None:
    zone = parse_timezone(name)
    assert zone.key == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "Europe", "localtime", "../etc/passwd", "/etc/localtime", "Europe/Berlin "]
)
def test_parse_timezone_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_timezone(name)
    assert str(excinfo.value).startswith(
        f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'"
    )


def test_parse_timezone_suggests_the_right_case() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'America/New_York'\?"):
        parse_timezone("america/new_york")


def test_non_string_inputs_are_rejected_with_the_type() -> None:
    with pytest.raises(CronError, match="must be a string, got int"):
        CronExpression.parse(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown time zone None"):
        parse_timezone(None)  # type: ignore[arg-type]
