"""The DST rule, checked against hand-computed UTC run times.

Rule (EventBridge Scheduler's documented behaviour): cron times are local wall-clock times in
the job's IANA zone; a local time that does not exist (spring-forward gap) is skipped; a local
time that occurs twice (fall-back) runs once, at its first occurrence; results are UTC.

2026 transitions used here:
- America/New_York: spring forward Sun 03-08 02:00 EST (07:00 UTC) -> 03:00 EDT;
  fall back Sun 11-01 02:00 EDT (06:00 UTC) -> 01:00 EST. EST = UTC-5, EDT = UTC-4.
- Europe/Berlin: spring forward Sun 03-29 02:00 CET (01:00 UTC) -> 03:00 CEST;
  fall back Sun 10-25 03:00 CEST (01:00 UTC) -> 02:00 CET. CET = UTC+1, CEST = UTC+2.

The expected lists below are written out by hand from those offsets, not recomputed.
"""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronpilot.cron import CronExpression

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
APIA = ZoneInfo("Pacific/Apia")


def utc(text: str) -> datetime:
    """'2026-03-08T07:30' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def utc_list(text: str) -> list[datetime]:
    return [utc(stamp) for stamp in text.split()]


def utc_hours(minute: int, hours_by_day: dict[str, str]) -> list[datetime]:
    """Explicit UTC runs written per UTC day: {"2026-03-08": "05 06 07"} at the given minute."""
    return [
        utc(f"{day}T{hour}:{minute:02d}") for day, hours in hours_by_day.items() for hour in hours.split()
    ]


def runs_between(expression: str, tz: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Every run in [first, last] (UTC instants), via iter_after."""
    runs = CronExpression.parse(expression).iter_after(first - timedelta(seconds=1), tz)
    return list(itertools.takewhile(lambda run: run <= last, runs))


# --- daily 02:30 (and 01:30, whose local time is the ambiguous one in New York) -----------------


@pytest.mark.parametrize(
    ("expression", "tz", "first", "last", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            NEW_YORK,
            "2026-03-07T05:00",  # Sat 00:00 EST
            "2026-03-10T03:59",  # Mon 23:59 EDT
            # Sat 02:30 EST; Sun 02:30 does not exist: skipped; Mon 02:30 EDT
            "2026-03-07T07:30 2026-03-09T06:30",
            id="new-york-spring-0230-skipped",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            "2026-03-07T05:00",
            "2026-03-10T03:59",
            # 01:30 exists every day: EST, EST, EDT
            "2026-03-07T06:30 2026-03-08T06:30 2026-03-09T05:30",
            id="new-york-spring-0130-unaffected",
        ),
        pytest.param(
            "30 2 * * *",
            NEW_YORK,
            "2026-10-31T04:00",  # Sat 00:00 EDT
            "2026-11-03T04:59",  # Mon 23:59 EST
            # 02:30 is not ambiguous in New York (01:00-01:59 is): EDT, EST, EST
            "2026-10-31T06:30 2026-11-01T07:30 2026-11-02T07:30",
            id="new-york-fall-0230-once",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            "2026-10-31T04:00",
            "2026-11-03T04:59",
            # Sun 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST): runs at the first only
            "2026-10-31T05:30 2026-11-01T05:30 2026-11-02T06:30",
            id="new-york-fall-0130-first-occurrence",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            "2026-03-27T23:00",  # Sat 00:00 CET
            "2026-03-30T21:59",  # Mon 23:59 CEST
            # Sat 02:30 CET; Sun 02:30 does not exist: skipped; Mon 02:30 CEST
            "2026-03-28T01:30 2026-03-30T00:30",
            id="berlin-spring-0230-skipped",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            "2026-10-23T22:00",  # Sat 00:00 CEST
            "2026-10-26T22:59",  # Mon 23:59 CET
            # Sun 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET): runs at the first only
            "2026-10-24T00:30 2026-10-25T00:30 2026-10-26T01:30",
            id="berlin-fall-0230-first-occurrence",
        ),
    ],
)
def test_daily_job_across_transition(
    expression: str, tz: ZoneInfo, first: str, last: str, expected: str
) -> None:
    # When
    runs = runs_between(expression, tz, utc(first), utc(last))

    # Then
    assert runs == utc_list(expected)


# --- hourly jobs: from 21:00 local the day before to 03:00 local the day after ------------------


def test_new_york_spring_forward_hourly_on_the_hour() -> None:
    # Given: Sat 21:00 EST (02:00 UTC) .. Mon 03:00 EDT (07:00 UTC)
    runs = runs_between("0 * * * *", NEW_YORK, utc("2026-03-08T02:00"), utc("2026-03-09T07:00"))

    # Then: 00:00 EST = 05, 01:00 EST = 06, 02:00 does not exist, 03:00 EDT = 07 -- no UTC hour lost
    assert runs == utc_hours(
        0,
        {
            "2026-03-08": "02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-03-09": "00 01 02 03 04 05 06 07",
        },
    )
    assert len(runs) == 30  # 3 (Sat) + 23 (Sun has no 02:00) + 4 (Mon 00-03)


def test_new_york_spring_forward_hourly_at_half_past() -> None:
    # Given: Sat 21:00 EST (02:00 UTC) .. Mon 03:00 EDT (07:00 UTC)
    runs = runs_between("30 * * * *", NEW_YORK, utc("2026-03-08T02:00"), utc("2026-03-09T07:00"))

    # Then: 01:30 EST = 06:30, 02:30 does not exist, 03:30 EDT = 07:30
    assert runs == utc_hours(
        30,
        {
            "2026-03-08": "02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-03-09": "00 01 02 03 04 05 06",
        },
    )
    assert len(runs) == 29


def test_new_york_fall_back_hourly_on_the_hour() -> None:
    # Given: Sat 21:00 EDT (01:00 UTC) .. Mon 03:00 EST (08:00 UTC)
    runs = runs_between("0 * * * *", NEW_YORK, utc("2026-11-01T01:00"), utc("2026-11-02T08:00"))

    # Then: 01:00 EDT = 05 runs; 01:00 EST = 06 is the repeat and is not run; 02:00 EST = 07
    assert runs == utc_hours(
        0,
        {
            "2026-11-01": "01 02 03 04 05 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-11-02": "00 01 02 03 04 05 06 07 08",
        },
    )
    assert len(runs) == 31  # 3 (Sat) + 24 (Sun, 01:00 once) + 4 (Mon 00-03)


def test_new_york_fall_back_hourly_at_half_past() -> None:
    # Given: Sat 21:00 EDT (01:00 UTC) .. Mon 03:00 EST (08:00 UTC)
    runs = runs_between("30 * * * *", NEW_YORK, utc("2026-11-01T01:00"), utc("2026-11-02T08:00"))

    # Then: 01:30 EDT = 05:30 runs; 01:30 EST = 06:30 is not run; 02:30 EST = 07:30
    assert runs == utc_hours(
        30,
        {
            "2026-11-01": "01 02 03 04 05 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-11-02": "00 01 02 03 04 05 06 07",
        },
    )
    assert len(runs) == 30


def test_berlin_spring_forward_hourly_on_the_hour() -> None:
    # Given: Sat 21:00 CET (20:00 UTC) .. Mon 03:00 CEST (01:00 UTC)
    runs = runs_between("0 * * * *", BERLIN, utc("2026-03-28T20:00"), utc("2026-03-30T01:00"))

    # Then: 01:00 CET = 00, 02:00 does not exist, 03:00 CEST = 01 -- no UTC hour lost
    assert runs == utc_hours(
        0,
        {
            "2026-03-28": "20 21 22 23",
            "2026-03-29": "00 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-03-30": "00 01",
        },
    )
    assert len(runs) == 30  # 3 (Sat) + 23 (Sun has no 02:00) + 4 (Mon 00-03)


def test_berlin_spring_forward_hourly_at_half_past() -> None:
    # Given: Sat 21:00 CET (20:00 UTC) .. Mon 03:00 CEST (01:00 UTC)
    runs = runs_between("30 * * * *", BERLIN, utc("2026-03-28T20:00"), utc("2026-03-30T01:00"))

    # Then: 01:30 CET = 00:30, 02:30 does not exist, 03:30 CEST = 01:30
    assert runs == utc_hours(
        30,
        {
            "2026-03-28": "20 21 22 23",
            "2026-03-29": "00 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-03-30": "00",
        },
    )
    assert len(runs) == 29


def test_berlin_fall_back_hourly_on_the_hour() -> None:
    # Given: Sat 21:00 CEST (19:00 UTC) .. Mon 03:00 CET (02:00 UTC)
    runs = runs_between("0 * * * *", BERLIN, utc("2026-10-24T19:00"), utc("2026-10-26T02:00"))

    # Then: 02:00 CEST = 00 runs; 02:00 CET = 01 is the repeat and is not run; 03:00 CET = 02
    assert runs == utc_hours(
        0,
        {
            "2026-10-24": "19 20 21 22 23",
            "2026-10-25": "00 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-10-26": "00 01 02",
        },
    )
    assert len(runs) == 31  # 3 (Sat) + 24 (Sun, 02:00 once) + 4 (Mon 00-03)


def test_berlin_fall_back_hourly_at_half_past() -> None:
    # Given: Sat 21:00 CEST (19:00 UTC) .. Mon 03:00 CET (02:00 UTC)
    runs = runs_between("30 * * * *", BERLIN, utc("2026-10-24T19:00"), utc("2026-10-26T02:00"))

    # Then: 02:30 CEST = 00:30 runs; 02:30 CET = 01:30 is not run; 03:30 CET = 02:30
    assert runs == utc_hours(
        30,
        {
            "2026-10-24": "19 20 21 22 23",
            "2026-10-25": "00 02 03 04 05 06 07 08 09 10 11 12 13 14 15 16 17 18 19 20 21 22 23",
            "2026-10-26": "00 01",
        },
    )
    assert len(runs) == 30


# --- inside the transition hour ------------------------------------------------------------------


def test_minutes_inside_the_ambiguous_hour_run_once() -> None:
    # Given: every 20 minutes during Berlin's 02:00 hour, which happens twice on 2026-10-25
    runs = runs_between("*/20 2 * * *", BERLIN, utc("2026-10-24T22:00"), utc("2026-10-25T22:00"))

    # Then: only the CEST pass (00:00-00:59 UTC), not the CET pass (01:00-01:59 UTC)
    assert runs == utc_list("2026-10-25T00:00 2026-10-25T00:20 2026-10-25T00:40")


def test_minutes_inside_the_gap_do_not_run() -> None:
    # Given: every 20 minutes during New York's 02:00 hour, which does not exist on 2026-03-08
    runs = runs_between("*/20 2 * * *", NEW_YORK, utc("2026-03-07T05:00"), utc("2026-03-10T03:59"))

    # Then: Saturday (EST) and Monday (EDT) only
    assert runs == utc_list(
        "2026-03-07T07:00 2026-03-07T07:20 2026-03-07T07:40"
        " 2026-03-09T06:00 2026-03-09T06:20 2026-03-09T06:40"
    )


def test_every_fifteen_minutes_runs_straight_through_spring_forward() -> None:
    # Given: 01:45 EST, the last quarter before the gap
    expr = CronExpression.parse("*/15 * * * *")

    # When
    result = expr.next_after(datetime(2026, 3, 8, 1, 45, tzinfo=NEW_YORK), NEW_YORK)

    # Then: 03:00 EDT, fifteen real minutes later
    assert result == utc("2026-03-08T07:00")


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # exactly at the first 01:30 (EDT): the repeat at 06:30 UTC is not a new run
        (utc("2026-11-01T05:30"), "2026-11-02T06:30"),
        # during the repeated hour, 01:15 EST (fold=1): 01:30 already ran at 05:30 UTC
        (datetime(2026, 11, 1, 1, 15, tzinfo=NEW_YORK, fold=1), "2026-11-02T06:30"),
        (utc("2026-11-01T06:15"), "2026-11-02T06:30"),
        # during the first pass, 01:15 EDT (fold=0): 01:30 EDT is still ahead
        (datetime(2026, 11, 1, 1, 15, tzinfo=NEW_YORK), "2026-11-01T05:30"),
    ],
)
def test_next_after_from_inside_the_repeated_hour(after: datetime, expected: str) -> None:
    assert CronExpression.parse("30 1 * * *").next_after(after, NEW_YORK) == utc(expected)


def test_hourly_from_inside_the_repeated_hour_goes_to_the_next_new_hour() -> None:
    # Given: 01:00 EDT (05:00 UTC) just ran
    expr = CronExpression.parse("0 * * * *")

    # When / Then: 01:00 EST (06:00 UTC) is the repeat; next is 02:00 EST
    assert expr.next_after(utc("2026-11-01T05:00"), NEW_YORK) == utc("2026-11-01T07:00")
    assert expr.next_after(utc("2026-11-01T06:00"), NEW_YORK) == utc("2026-11-01T07:00")


# --- unusual zones ---------------------------------------------------------------------------------


def test_half_hour_dst_shift_lord_howe() -> None:
    # Given: Lord Howe moves 02:00 -> 02:30 (+10:30 -> +11) on Sun 2026-10-04, so 02:00-02:29 is a gap
    first, last = utc("2026-10-02T13:30"), utc("2026-10-05T12:59")  # Sat 00:00 .. Mon 23:59 local

    # When
    quarter_past = runs_between("15 2 * * *", LORD_HOWE, first, last)
    half_past = runs_between("30 2 * * *", LORD_HOWE, first, last)

    # Then: 02:15 is skipped on Sunday; 02:30 exists and runs
    assert quarter_past == utc_list("2026-10-02T15:45 2026-10-04T15:15")
    assert half_past == utc_list("2026-10-02T16:00 2026-10-03T15:30 2026-10-04T15:30")


def test_half_hour_fall_back_lord_howe() -> None:
    # Given: Lord Howe moves 02:00 -> 01:30 (+11 -> +10:30) on Sun 2026-04-05: 01:30-01:59 twice
    runs = runs_between("45 1 * * *", LORD_HOWE, utc("2026-04-03T13:00"), utc("2026-04-06T13:29"))

    # Then: Sunday 01:45 runs once, at +11
    assert runs == utc_list("2026-04-03T14:45 2026-04-04T14:45 2026-04-05T15:15")


def test_skipped_calendar_day_samoa_2011() -> None:
    # Given: Samoa jumped from UTC-10 to UTC+14, so 2011-12-30 never happened in Pacific/Apia
    runs = runs_between("0 12 * * *", APIA, utc("2011-12-29T10:00"), utc("2012-01-01T10:59"))

    # Then: 29th at -10, no 30th, 31st and 1st at +14
    assert runs == utc_list("2011-12-29T22:00 2011-12-30T22:00 2011-12-31T22:00")


def test_skipped_calendar_day_only_job_waits_a_year() -> None:
    # Given: a job on 30 December only, asked on the 29th of the year the 30th was skipped
    expr = CronExpression.parse("0 12 30 12 *")

    # When
    result = expr.next_after(utc("2011-12-29T11:00"), APIA)

    # Then: 2012-12-30 12:00 at +14 (Samoa's DST)
    assert result == utc("2012-12-29T22:00")


# --- cross-check against a brute-force oracle -------------------------------------------------------


def _oracle(expression: str, tz: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Every UTC minute whose local wall time matches and is its first occurrence (fold=0).

    Independent of next_after: it walks real instants, so nonexistent wall times never appear
    and a repeated wall time is taken only on its first pass.
    """
    expr = CronExpression.parse(expression)
    found = []
    instant = first
    while instant <= last:
        local = instant.astimezone(tz)
        if local.fold == 0 and expr.matches(local.replace(tzinfo=None)):
            found.append(instant)
        instant += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    "expression", ["30 2 * * *", "0 * * * *", "30 * * * *", "*/20 1-3 * * *", "45 1 * * SUN", "*/7 * * * *"]
)
@pytest.mark.parametrize(
    ("tz", "first"),
    [
        (NEW_YORK, "2026-03-07T00:00"),
        (NEW_YORK, "2026-10-31T00:00"),
        (BERLIN, "2026-03-28T00:00"),
        (BERLIN, "2026-10-24T00:00"),
        (LORD_HOWE, "2026-04-03T00:00"),
        (LORD_HOWE, "2026-10-02T00:00"),
        (APIA, "2011-12-28T00:00"),
    ],
)
def test_matches_brute_force_oracle_around_transitions(expression: str, tz: ZoneInfo, first: str) -> None:
    # Given: three days of UTC minutes around a transition
    start = utc(first)
    end = start + timedelta(days=3)

    # Then
    assert runs_between(expression, tz, start, end) == _oracle(expression, tz, start, end)
