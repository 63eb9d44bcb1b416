"""Business-time arithmetic: when is a person (or team) working, and how far is N working minutes.

Pure Python: no Flask, no database. ``app.sla.calendars`` builds ``Calendar`` values from the
database; SLA targets, escalation, reminders and assignment rules ask the four functions below.

Decisions (the rules every caller can rely on):

- All datetimes in and out are aware; results are in UTC. A naive datetime raises ``ValueError``
  (a silent guess at the zone is how due dates end up an hour off).
- ``weekly`` maps a weekday (0 = Monday) to shifts ``(start, end)`` in the calendar's wall-clock
  time. ``end <= start`` is an overnight shift ending on the next day (``22:00–06:00``);
  ``start == end`` (``00:00–00:00``) is a 24-hour shift. Shifts of one day may overlap; the
  overlap counts once.
- A shift belongs to the day it starts on: a holiday or closure day cancels the shifts that
  *start* on it, so a 22:00–06:00 shift starting on 24 December runs into Christmas Day, and
  the one starting on 25 December does not happen. Holidays count whatever the weekday: a
  holiday on a Saturday cancels Saturday's shifts if there are any, and moves nothing (German
  law has no "observed" Monday; countries whose ``holidays`` data list an observed day get it
  as a holiday of its own).
- ``holidays`` is either a ``frozenset`` of local dates or a callable ``date -> bool``
  (``holiday_checker`` gives a cached one for a country and region of the ``holidays`` library).
- Absences are aware intervals ``[start, end)``; they are cut out of the working time.
- Daylight saving: shifts are wall-clock times, so a 09:00–17:00 day is 8 hours on the days
  the clocks change, and a 22:00–06:00 night is 7 or 9 hours. A shift boundary inside the hour
  the clocks skip is read the way Python's ``zoneinfo`` reads it (``fold=0``: the offset before
  the change), e.g. 02:30 on the last Sunday of March in Berlin is 03:30 CEST; inside the hour
  that repeats in October it is the first 02:30.
- Working time is half-open: at 17:00 sharp a 09:00–17:00 worker is no longer working, and
  adding business minutes that end exactly at 17:00 gives 17:00 (not the next morning).
- ``add_business_minutes(cal, t, 0)`` is ``t`` itself (a zero target is due at once); negative
  minutes raise ``ValueError``. ``business_minutes_between`` counts whole minutes (floor) and is
  negative when ``end`` is before ``start`` (handy for "overdue by").
- A calendar with no working time at all, or none within ``MAX_GAP_DAYS`` (e.g. an absence of
  more than three years), makes ``add_business_minutes`` and ``next_working_moment`` raise
  ``NoWorkingTime`` instead of looping forever; ``is_working`` then says False and
  ``business_minutes_between`` 0. Callers that must always get an instant (a notice that has to
  go out some time) catch it and fall back to ``ALWAYS``.
- Efficiency: the functions walk working intervals day by day (never minute by minute), and the
  ``holidays`` library is asked once per country, region and year per process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

#: Longest stretch without any working time before the search gives up.
MAX_GAP_DAYS = 3 * 366

_DAY = timedelta(days=1)

Holidays = Callable[[date], bool] | frozenset[date]


class NoWorkingTime(ValueError):
    """The calendar has no working time (at all, or within ``MAX_GAP_DAYS`` of the instant)."""


@dataclass(frozen=True, eq=False)
class Calendar:
    """One person's or team's working time; see the module docstring for the rules."""

    zone: ZoneInfo
    weekly: Mapping[int, Sequence[tuple[time, time]]]
    holidays: Holidays = frozenset()
    closures: frozenset[date] = frozenset()
    absences: Sequence[tuple[datetime, datetime]] = ()
    name: str = field(default="", compare=False)

    def is_day_off(self, day: date) -> bool:
        """True when shifts starting on this local date do not happen (holiday or closure)."""
        if day in self.closures:
            return True
        if isinstance(self.holidays, frozenset):
            return day in self.holidays
        return bool(self.holidays(day))

    def with_absences(self, absences: Sequence[tuple[datetime, datetime]]) -> Calendar:
        """The same calendar with other absences (a team calendar made personal)."""
        return Calendar(
            self.zone, self.weekly, self.holidays, self.closures, tuple(absences), self.name
        )


_ALL_DAY = ((time(0), time(0)),)

#: Round the clock, every day: for "notify at once" and desks with no calendar set.
ALWAYS = Calendar(
    zone=ZoneInfo("UTC"),
    weekly={day: _ALL_DAY for day in range(7)},
    name="always",
)


# --- holidays --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _holidays_of_year(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    return dict(holidays_lib.country_holidays(country, subdiv=subdivision or None, years=year))


def holiday_checker(country: str | None, subdivision: str | None = None) -> Callable[[date], bool]:
    """A cached ``date -> bool`` for public holidays of a country (ISO code) and region.

    An empty country means "no public holidays". An unknown code raises ``NotImplementedError``
    from the ``holidays`` library at once, so a bad admin entry is caught when it is saved.
    """
    if not country:
        return lambda day: False
    _holidays_of_year(country, subdivision, date.today().year)  # fail early on unknown codes

    def is_holiday(day: date) -> bool:
        return day in _holidays_of_year(country, subdivision, day.year)

    return is_holiday


def upcoming_holidays(
    country: str | None,
    subdivision: str | None,
    after: date,
    count: int = 8,
    language: str | None = None,
) -> list[tuple[date, str]]:
    """The next ``count`` public holidays on or after ``after``, with their names (for previews)."""
    if not country:
        return []
    found: list[tuple[date, str]] = []
    for year in (after.year, after.year + 1, after.year + 2):
        names = holidays_lib.country_holidays(
            country, subdiv=subdivision or None, years=year, language=language
        )
        found.extend((day, name) for day, name in sorted(names.items()) if day >= after)
        if len(found) >= count:
            break
    return found[:count]


def supported_countries() -> dict[str, list[str]]:
    """Country codes the ``holidays`` library knows, each with its region codes."""
    return {
        code: list(subdivs) for code, subdivs in holidays_lib.list_supported_countries().items()
    }


# --- intervals ---------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given; business time takes aware datetimes only")
    return value.astimezone(UTC)


def _local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return _local_to_utc(day, time(0), zone)


def _day_shifts(cal: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """UTC intervals of the shifts that start on this local date."""
    shifts = cal.weekly.get(day.weekday()) or ()
    if not shifts or cal.is_day_off(day):
        return []
    out = []
    for start, end in shifts:
        begin = _local_to_utc(day, start, cal.zone)
        finish = _local_to_utc(day + _DAY if end <= start else day, end, cal.zone)
        if finish > begin:
            out.append((begin, finish))
    return out


def _merged_absences(cal: Calendar) -> list[tuple[datetime, datetime]]:
    spans = sorted((_utc(a), _utc(b)) for a, b in cal.absences if _utc(b) > _utc(a))
    merged: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _minus_absences(
    piece: tuple[datetime, datetime], absences: list[tuple[datetime, datetime]], index: int
) -> tuple[list[tuple[datetime, datetime]], int]:
    """Cut the (sorted, merged) absences out of one piece; ``index`` skips absences already past."""
    start, end = piece
    while index < len(absences) and absences[index][1] <= start:
        index += 1
    out = []
    i = index
    while i < len(absences) and absences[i][0] < end and start < end:
        a, b = absences[i]
        if a > start:
            out.append((start, a))
        start = max(start, b)
        i += 1
    if start < end:
        out.append((start, end))
    return out, index


def working_intervals(
    cal: Calendar, start: datetime, until: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """Disjoint, sorted UTC working intervals ``[a, b)`` that end after ``start``.

    Adjacent intervals are not merged (a 24/7 calendar yields one per day). Without ``until``
    the iterator is endless and raises ``NoWorkingTime`` after ``MAX_GAP_DAYS`` without work;
    with it, it stops once no interval can start before ``until``.
    """
    start = _utc(start)
    until = None if until is None else _utc(until)
    if not any(cal.weekly.get(d) for d in range(7)):
        if until is None:
            raise NoWorkingTime(f"calendar {cal.name or '(unnamed)'} has no working hours")
        return
    absences = _merged_absences(cal)
    absence_index = 0
    # Shifts last at most a day (plus a DST hour), so yesterday's night shift is the earliest
    # one that can still be running at ``start``.
    day = start.astimezone(cal.zone).date() - _DAY
    pending: list[tuple[datetime, datetime]] = []
    covered = start
    last_work_day = day
    while True:
        pending.extend(_day_shifts(cal, day))
        pending.sort()
        boundary = _midnight(day + _DAY, cal.zone)  # no later day's shift starts before this
        ready = [p for p in pending if p[0] < boundary]
        pending = [p for p in pending if p[0] >= boundary]
        for a, b in ready:
            a = max(a, covered)
            if a >= b:
                continue
            covered = b
            pieces, absence_index = _minus_absences((a, b), absences, absence_index)
            for piece in pieces:
                if until is not None and piece[0] >= until:
                    return
                last_work_day = day
                yield piece
        if until is not None and boundary >= until:
            return  # what is still pending starts at or after ``boundary``
        if until is None and (day - last_work_day).days > MAX_GAP_DAYS:
            raise NoWorkingTime(
                f"calendar {cal.name or '(unnamed)'} has no working time within {MAX_GAP_DAYS} days"
            )
        day += _DAY


# --- the four questions ---------------------------------------------------------------------


def is_working(cal: Calendar, at: datetime) -> bool:
    """Is the person working at this instant? (Working time is half-open: 17:00 is off.)"""
    at = _utc(at)
    for a, _b in working_intervals(cal, at, until=at + timedelta(microseconds=1)):
        return a <= at
    return False


def next_working_moment(cal: Calendar, after: datetime) -> datetime:
    """``after`` itself if working then, else the start of the next working interval (UTC)."""
    after = _utc(after)
    for a, _b in working_intervals(cal, after):
        return max(a, after)
    raise NoWorkingTime("unreachable")  # pragma: no cover - the iterator raises first


def add_business_minutes(cal: Calendar, start: datetime, minutes: int) -> datetime:
    """The instant at which ``minutes`` of working time have passed since ``start`` (UTC)."""
    if minutes < 0:
        raise ValueError("business minutes to add must not be negative")
    start = _utc(start)
    if minutes == 0:
        return start
    left = timedelta(minutes=minutes)
    for a, b in working_intervals(cal, start):
        a = max(a, start)
        if b - a >= left:
            return a + left
        left -= b - a
    raise NoWorkingTime("unreachable")  # pragma: no cover - the iterator raises first


def business_seconds_between(cal: Calendar, start: datetime, end: datetime) -> float:
    """Working seconds in ``[start, end)``; negative when ``end`` is before ``start``."""
    start, end = _utc(start), _utc(end)
    if end < start:
        return -business_seconds_between(cal, end, start)
    total = timedelta()
    for a, b in working_intervals(cal, start, until=end):
        total += min(b, end) - max(a, start)
    return total.total_seconds()


def business_minutes_between(cal: Calendar, start: datetime, end: datetime) -> int:
    """Whole working minutes between two instants; negative when ``end`` is before ``start``."""
    seconds = business_seconds_between(cal, start, end)
    minutes = int(abs(seconds) // 60)
    return minutes if seconds >= 0 else -minutes
