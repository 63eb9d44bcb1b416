"""Business-time arithmetic: table-driven cases for the hard days, then properties."""

from __future__ import annotations

import time as wallclock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sla.business_time import (
    ALWAYS,
    Calendar,
    NoWorkingTime,
    add_business_minutes,
    business_minutes_between,
    holiday_checker,
    is_working,
    next_working_moment,
    upcoming_holidays,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")

NINE_TO_FIVE = {d: [(time(9), time(17))] for d in range(5)}
NIGHTS = {d: [(time(22), time(6))] for d in range(7)}

OFFICE_BERLIN = Calendar(BERLIN, NINE_TO_FIVE, holiday_checker("DE", "BE"), name="Berlin")
OFFICE_NY = Calendar(NEW_YORK, NINE_TO_FIVE, holiday_checker("US", "NY"), name="New York")
NIGHT_BERLIN = Calendar(BERLIN, NIGHTS, frozenset(), name="nights")
CLOSED_BETWEEN_YEARS = Calendar(
    BERLIN,
    NINE_TO_FIVE,
    holiday_checker("DE", "BE"),
    closures=frozenset({date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30)}),
)
ANNA_ON_LEAVE = Calendar(
    BERLIN,
    NINE_TO_FIVE,
    holiday_checker("DE", "BE"),
    # Tuesday noon to Thursday 10:00 (Berlin), entered as UTC.
    absences=(
        (
            datetime(2026, 11, 17, 12, tzinfo=BERLIN).astimezone(UTC),
            datetime(2026, 11, 19, 10, tzinfo=BERLIN).astimezone(UTC),
        ),
    ),
)
# A Saturday shift to see that a holiday on a weekend cancels it.
SATURDAYS = Calendar(BERLIN, {5: [(time(10), time(14))]}, holiday_checker("DE", "BE"))


def b(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


ADD_CASES = [
    # (id, calendar, start, minutes, expected)
    ("within the day", OFFICE_BERLIN, b(2026, 11, 16, 10), 60, b(2026, 11, 16, 11)),
    ("ends at 17:00 sharp", OFFICE_BERLIN, b(2026, 11, 16, 16), 60, b(2026, 11, 16, 17)),
    ("over the night", OFFICE_BERLIN, b(2026, 11, 16, 16), 120, b(2026, 11, 17, 10)),
    ("before opening", OFFICE_BERLIN, b(2026, 11, 16, 6), 30, b(2026, 11, 16, 9, 30)),
    ("over the weekend", OFFICE_BERLIN, b(2026, 11, 20, 16), 120, b(2026, 11, 23, 10)),
    ("from Saturday", OFFICE_BERLIN, b(2026, 11, 21, 13), 60, b(2026, 11, 23, 10)),
    ("three business days", OFFICE_BERLIN, b(2026, 11, 18, 12), 3 * 480, b(2026, 11, 23, 12)),
    ("Christmas", OFFICE_BERLIN, b(2026, 12, 24, 15), 480, b(2026, 12, 28, 15)),
    ("Good Friday, Easter Monday", OFFICE_BERLIN, b(2027, 3, 25, 16), 120, b(2027, 3, 30, 10)),
    # Berlin only: International Women's Day (8 March) is a holiday in BE, not in Bavaria.
    ("regional holiday", OFFICE_BERLIN, b(2027, 3, 5, 16), 120, b(2027, 3, 9, 10)),
    ("closure days", CLOSED_BETWEEN_YEARS, b(2026, 12, 24, 16), 120, b(2026, 12, 31, 10)),
    ("absence over days", ANNA_ON_LEAVE, b(2026, 11, 17, 11), 120, b(2026, 11, 19, 11)),
    # DST: the clocks go forward on 29 March 2026 (Berlin) and back on 25 October 2026.
    ("Berlin spring forward", OFFICE_BERLIN, b(2026, 3, 27, 16), 120, b(2026, 3, 30, 10)),
    ("Berlin fall back", OFFICE_BERLIN, b(2026, 10, 23, 16), 120, b(2026, 10, 26, 10)),
    # New York changes on other dates: 8 March and 1 November 2026.
    ("NY spring forward", OFFICE_NY, ny(2026, 3, 6, 16), 120, ny(2026, 3, 9, 10)),
    ("NY fall back", OFFICE_NY, ny(2026, 10, 30, 16), 120, ny(2026, 11, 2, 10)),
    ("NY Thanksgiving", OFFICE_NY, ny(2026, 11, 25, 16), 120, ny(2026, 11, 27, 10)),
    # Overnight shift 22:00-06:00.
    ("night shift", NIGHT_BERLIN, b(2026, 11, 16, 23), 120, b(2026, 11, 17, 1)),
    ("night shift over its end", NIGHT_BERLIN, b(2026, 11, 17, 5), 120, b(2026, 11, 17, 23)),
    ("night from afternoon", NIGHT_BERLIN, b(2026, 11, 17, 15), 60, b(2026, 11, 17, 23)),
    # The night of 24/25 October 2026 is nine hours long (02:00-03:00 happens twice).
    ("night longer by DST", NIGHT_BERLIN, b(2026, 10, 24, 22), 9 * 60, b(2026, 10, 25, 6)),
    ("night shorter by DST", NIGHT_BERLIN, b(2026, 3, 28, 22), 7 * 60, b(2026, 3, 29, 6)),
    ("always", ALWAYS, b(2026, 12, 25, 3), 60, b(2026, 12, 25, 4)),
    ("zero minutes", OFFICE_BERLIN, b(2026, 11, 21, 3), 0, b(2026, 11, 21, 3)),
]


@pytest.mark.parametrize(
    "cal, start, minutes, expected", [c[1:] for c in ADD_CASES], ids=[c[0] for c in ADD_CASES]
)
def test_add_business_minutes(cal, start, minutes, expected):
    due = add_business_minutes(cal, start.astimezone(UTC), minutes)
    assert due == expected
    assert due.tzinfo is UTC
    assert business_minutes_between(cal, start, due) == minutes


WORKING_CASES = [
    ("Monday morning", OFFICE_BERLIN, b(2026, 11, 16, 9), True),
    ("Monday 17:00 is off", OFFICE_BERLIN, b(2026, 11, 16, 17), False),
    ("Monday 16:59", OFFICE_BERLIN, b(2026, 11, 16, 16, 59), True),
    ("Sunday", OFFICE_BERLIN, b(2026, 11, 22, 12), False),
    ("Christmas Day, a Friday", OFFICE_BERLIN, b(2026, 12, 25, 12), False),
    ("New Year 2028 falls on a Saturday", SATURDAYS, b(2028, 1, 1, 11), False),
    ("a normal Saturday", SATURDAYS, b(2028, 1, 8, 11), True),
    ("closure day", CLOSED_BETWEEN_YEARS, b(2026, 12, 29, 11), False),
    ("day before closure", CLOSED_BETWEEN_YEARS, b(2026, 12, 23, 11), True),
    ("on leave", ANNA_ON_LEAVE, b(2026, 11, 18, 12), False),
    ("back from leave", ANNA_ON_LEAVE, b(2026, 11, 19, 10), True),
    ("before leave", ANNA_ON_LEAVE, b(2026, 11, 17, 11, 59), True),
    ("night shift after midnight", NIGHT_BERLIN, b(2026, 11, 17, 3), True),
    ("night shift midday", NIGHT_BERLIN, b(2026, 11, 17, 12), False),
    ("the repeated hour of October", NIGHT_BERLIN, datetime(2026, 10, 25, 1, 30, tzinfo=UTC), True),
    ("NY 9:30 is 15:30 in Berlin", OFFICE_NY, b(2026, 11, 16, 15, 30), True),
    ("NY not yet at 14:30 Berlin", OFFICE_NY, b(2026, 11, 16, 14, 30), False),
    # In the weeks between the American and the European change New York is 5 hours behind, not 6.
    ("NY in the March gap week", OFFICE_NY, b(2026, 3, 9, 14, 30), True),
    ("always", ALWAYS, b(2026, 12, 25, 3), True),
]


@pytest.mark.parametrize(
    "cal, at, expected", [c[1:] for c in WORKING_CASES], ids=[c[0] for c in WORKING_CASES]
)
def test_is_working(cal, at, expected):
    assert is_working(cal, at) is expected


NEXT_CASES = [
    ("already working", OFFICE_BERLIN, b(2026, 11, 16, 10, 7), b(2026, 11, 16, 10, 7)),
    ("Sunday 02:00 breach", OFFICE_BERLIN, b(2026, 11, 22, 2), b(2026, 11, 23, 9)),
    ("Friday evening", OFFICE_BERLIN, b(2026, 11, 20, 17), b(2026, 11, 23, 9)),
    ("Christmas Eve evening", OFFICE_BERLIN, b(2026, 12, 24, 18), b(2026, 12, 28, 9)),
    ("after closure", CLOSED_BETWEEN_YEARS, b(2026, 12, 24, 18), b(2026, 12, 31, 9)),
    ("during leave", ANNA_ON_LEAVE, b(2026, 11, 17, 15), b(2026, 11, 19, 10)),
    ("night shift", NIGHT_BERLIN, b(2026, 11, 17, 7), b(2026, 11, 17, 22)),
    # A New York supervisor learns of a Berlin Monday-morning breach at 09:00 New York time.
    ("another zone", OFFICE_NY, b(2026, 11, 16, 9), ny(2026, 11, 16, 9)),
]


@pytest.mark.parametrize(
    "cal, after, expected", [c[1:] for c in NEXT_CASES], ids=[c[0] for c in NEXT_CASES]
)
def test_next_working_moment(cal, after, expected):
    assert next_working_moment(cal, after) == expected


BETWEEN_CASES = [
    ("one day", OFFICE_BERLIN, b(2026, 11, 16, 0), b(2026, 11, 17, 0), 480),
    ("one week", OFFICE_BERLIN, b(2026, 11, 16, 0), b(2026, 11, 23, 0), 5 * 480),
    ("weekend only", OFFICE_BERLIN, b(2026, 11, 21, 0), b(2026, 11, 23, 0), 0),
    ("reversed is negative", OFFICE_BERLIN, b(2026, 11, 17, 0), b(2026, 11, 16, 0), -480),
    ("Christmas week", OFFICE_BERLIN, b(2026, 12, 21, 0), b(2026, 12, 28, 0), 4 * 480),
    (
        "leave",
        ANNA_ON_LEAVE,
        b(2026, 11, 16, 0),
        b(2026, 11, 23, 0),
        5 * 480 - 5 * 60 - 8 * 60 - 60,
    ),
    ("short October night", NIGHT_BERLIN, b(2026, 3, 28, 12), b(2026, 3, 29, 12), 7 * 60),
    ("long October night", NIGHT_BERLIN, b(2026, 10, 24, 12), b(2026, 10, 25, 12), 9 * 60),
    # 2027: 261 weekdays, six Berlin holidays on them (1 Jan, 8 Mar, Good Friday, Easter
    # Monday, Ascension, Whit Monday; 1 May, 3 Oct and Christmas fall on weekends).
    ("a year of Berlin office", OFFICE_BERLIN, b(2027, 1, 1), b(2028, 1, 1), 255 * 480),
    ("partial minutes floor", OFFICE_BERLIN, b(2026, 11, 16, 9), b(2026, 11, 16, 9, 1, 59), 1),
]


@pytest.mark.parametrize(
    "cal, start, end, expected", [c[1:] for c in BETWEEN_CASES], ids=[c[0] for c in BETWEEN_CASES]
)
def test_business_minutes_between(cal, start, end, expected):
    assert business_minutes_between(cal, start, end) == expected


def test_absences_are_cut_even_when_they_overlap_each_other():
    cal = OFFICE_BERLIN.with_absences(
        [
            (b(2026, 11, 16, 10), b(2026, 11, 16, 12)),
            (b(2026, 11, 16, 11), b(2026, 11, 16, 13)),
            (b(2026, 11, 16, 15), b(2026, 11, 16, 14)),  # ends before it starts: ignored
        ]
    )
    assert business_minutes_between(cal, b(2026, 11, 16), b(2026, 11, 17)) == 5 * 60
    assert next_working_moment(cal, b(2026, 11, 16, 10, 30)) == b(2026, 11, 16, 13)


def test_overlapping_shifts_count_once():
    cal = Calendar(
        BERLIN, {0: [(time(8), time(12)), (time(10), time(14))], 6: [(time(20), time(9))]}
    )
    # Sunday 20:00 to Monday 09:00 overlaps Monday's 08:00 shift; Monday ends 14:00.
    assert business_minutes_between(cal, b(2026, 11, 15, 12), b(2026, 11, 17)) == 18 * 60


def test_day_shift_of_24_hours():
    cal = Calendar(BERLIN, {2: [(time(0), time(0))]})
    assert business_minutes_between(cal, b(2026, 11, 16), b(2026, 11, 23)) == 24 * 60


def test_calendar_without_working_time_raises_instead_of_looping():
    empty = Calendar(BERLIN, {})
    with pytest.raises(NoWorkingTime):
        next_working_moment(empty, b(2026, 11, 16))
    with pytest.raises(NoWorkingTime):
        add_business_minutes(empty, b(2026, 11, 16), 5)
    assert is_working(empty, b(2026, 11, 16, 10)) is False
    assert business_minutes_between(empty, b(2026, 11, 16), b(2026, 12, 16)) == 0


def test_an_absence_of_many_years_raises_instead_of_looping():
    away = OFFICE_BERLIN.with_absences([(b(2026, 1, 1), b(2040, 1, 1))])
    started = wallclock.perf_counter()
    with pytest.raises(NoWorkingTime):
        add_business_minutes(away, b(2026, 11, 16), 5)
    assert wallclock.perf_counter() - started < 5


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        is_working(OFFICE_BERLIN, datetime(2026, 11, 16, 10))


def test_negative_minutes_are_refused():
    with pytest.raises(ValueError):
        add_business_minutes(OFFICE_BERLIN, b(2026, 11, 16, 10), -1)


def test_long_targets_are_fast():
    """Walking day by day: a month of business time takes milliseconds, not a minute-loop."""
    started = wallclock.perf_counter()
    for _ in range(200):
        add_business_minutes(OFFICE_BERLIN, b(2026, 11, 16, 10), 3 * 480)
    add_business_minutes(OFFICE_BERLIN, b(2026, 11, 16, 10), 250 * 480)
    assert wallclock.perf_counter() - started < 2


def test_upcoming_holidays_preview_in_german():
    days = upcoming_holidays("DE", "BE", date(2026, 12, 2), 3, language="de")
    assert days == [
        (date(2026, 12, 25), "Erster Weihnachtstag"),
        (date(2026, 12, 26), "Zweiter Weihnachtstag"),
        (date(2027, 1, 1), "Neujahr"),
    ]


def test_unknown_country_is_refused_early():
    with pytest.raises(NotImplementedError):
        holiday_checker("XX")


# --- properties -----------------------------------------------------------------------------

CALENDARS = st.sampled_from(
    [
        OFFICE_BERLIN,
        OFFICE_NY,
        NIGHT_BERLIN,
        CLOSED_BETWEEN_YEARS,
        ANNA_ON_LEAVE,
        SATURDAYS,
        ALWAYS,
        Calendar(TOKYO, NINE_TO_FIVE, holiday_checker("JP")),
    ]
)
# Whole minutes across two years with both DST changes in both zones.
INSTANTS = st.integers(min_value=0, max_value=2 * 366 * 24 * 60).map(
    lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m)
)
MINUTES = st.integers(min_value=1, max_value=10 * 480)


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, minutes=MINUTES)
def test_adding_then_measuring_gives_back_the_minutes(cal, start, minutes):
    due = add_business_minutes(cal, start, minutes)
    assert due > start
    assert business_minutes_between(cal, start, due) == minutes
    assert is_working(cal, due - timedelta(minutes=1))
    assert business_minutes_between(cal, start, due - timedelta(minutes=1)) == minutes - 1


@settings(max_examples=300, deadline=None)
@given(cal=CALENDARS, at=INSTANTS)
def test_next_working_moment_is_working_and_nothing_before_it(cal, at):
    moment = next_working_moment(cal, at)
    assert moment >= at
    assert is_working(cal, moment)
    assert business_minutes_between(cal, at, moment) == 0
    assert (moment == at) == is_working(cal, at)


@settings(max_examples=200, deadline=None)
@given(cal=CALENDARS, a=INSTANTS, b_=INSTANTS, c=INSTANTS)
def test_between_is_additive_and_antisymmetric(cal, a, b_, c):
    a, b_, c = sorted((a, b_, c))
    ab = business_minutes_between(cal, a, b_)
    bc = business_minutes_between(cal, b_, c)
    assert business_minutes_between(cal, a, c) == ab + bc  # whole minutes: boundaries agree
    assert business_minutes_between(cal, c, a) == -(ab + bc)
    assert 0 <= ab <= (b_ - a).total_seconds() // 60


@settings(max_examples=200, deadline=None)
@given(cal=CALENDARS, start=INSTANTS, m=MINUTES, n=MINUTES)
def test_adding_twice_is_adding_the_sum(cal, start, m, n):
    assert add_business_minutes(
        cal, add_business_minutes(cal, start, m), n
    ) == add_business_minutes(cal, start, m + n)
