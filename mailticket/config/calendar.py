"""Business hours: when the desk is open, and how much business time lies between two moments.

The rest of mailticket works in naive UTC ``datetime``s, so every method here takes and returns
naive UTC; the calendar converts to its own time zone inside. Opening hours are local wall-clock
times, so a daylight-saving change never moves them: a Mon-Fri 07:00-17:00 desk in New York opens
at 07:00 New York time in March as in January.

Business time is real elapsed time during which the desk is open. Two rules fix the corner cases:

* A wall-clock time (an opening or a closing) happens at the first instant the local clock shows
  that time or later. An opening at 02:30 on a spring-forward night, when the clocks jump from
  02:00 to 03:00, happens at the jump (03:00 new time); a time the clock shows twice on a
  fall-back night happens the first time round.
* ``N business days`` is N times the length of a working day (``closes - opens``). Only on the
  rare day whose opening hours contain a clock change does a working day hold an hour more or
  less of business time than that (a 07:00-17:00 desk never sees one: clocks change at night).

``add`` skips whole weeks at a time, so a due date 1000 business days away costs a few hundred
steps, not one per minute.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailticket.config import yamlfile
from mailticket.config.durations import BusinessDuration, CalendarError, parse_plain_duration

__all__ = ["DAY_NAMES", "BusinessCalendar", "BusinessDuration", "CalendarError",
           "parse_plain_duration"]

_ONE_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_MICROSECOND = timedelta(microseconds=1)
# How days are written in the config (and shown), Monday first: index = date.weekday().
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CACHE_LIMIT = 4096


_show = yamlfile.show


# --- the calendar ------------------------------------------------------------------------------

def _naive_utc(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a naive UTC datetime, got {value!r}")
    if value.tzinfo is not None:
        raise CalendarError(
            f"{name}: expected a naive UTC datetime, got an aware one, {_show(value)}")
    return value


@dataclass(frozen=True)
class BusinessCalendar:
    """When the desk is open: working days, daily hours in a time zone, and holidays.

    Build it from the config with ``from_config``; every problem is a ``CalendarError``.
    """

    timezone: str = "UTC"
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    opens: time = time(7, 0)
    closes: time = time(17, 0)
    holidays: frozenset[date] = frozenset()

    _zone: tzinfo = field(init=False, repr=False, compare=False)
    _holiday_ordinals: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _intervals: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        zone = _zone_or_none(self.timezone)
        if zone is None:
            problems.append("timezone: expected an IANA time zone name like 'America/New_York', "
                            f"got {_show(self.timezone)}")
        days = _frozen(self.days)
        if days is None or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6
                                   for d in days):
            problems.append(f"days: expected weekday numbers 0 (Monday) to 6 (Sunday), "
                            f"got {_show(self.days)}")
        elif not days:
            problems.append("days: no working days (the desk must open on at least one day)")
        times_ok = True
        for name in ("opens", "closes"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                problems.append(f"{name}: expected a local time of day, got {_show(value)}")
                times_ok = False
        if times_ok and self.closes <= self.opens:
            problems.append("closes: must be after opens (no overnight shifts), got "
                            f"{self.opens.isoformat('minutes')}-{self.closes.isoformat('minutes')}")
        holidays = _frozen(self.holidays)
        if holidays is None:
            problems.append(f"holidays: expected a set of dates, got {_show(self.holidays)}")
        else:
            for day in sorted(holidays, key=repr):
                if isinstance(day, datetime) or not isinstance(day, date):
                    problems.append(f"holidays: expected dates, got {_show(day)}")
        if problems:
            raise CalendarError(*problems)
        assert days is not None and holidays is not None
        object.__setattr__(self, "days", days)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "_zone", zone)
        # Holidays that fall on working days, as ordinals, so a week's count is two bisections.
        object.__setattr__(self, "_holiday_ordinals",
                           tuple(sorted(d.toordinal() for d in holidays if d.weekday() in days)))
        object.__setattr__(self, "_intervals", {})

    @classmethod
    def from_config(cls, *, timezone: Any = "UTC", days: Any = "mon-fri",
                    hours: Any = "07:00-17:00", holidays: Any = ()) -> BusinessCalendar:
        """A calendar from config values: ``days`` like ``"mon-fri"``, ``"mon,wed,fri"``,
        ``"sun-thu"`` (ranges wrap) or a list of names; ``hours`` like ``"07:00-17:00"``;
        ``holidays`` a list of dates or ``"2026-12-25"`` strings. Reports every problem at once.
        """
        problems: list[str] = []
        if _zone_or_none(timezone) is None:
            problems.append("timezone: expected an IANA time zone name like 'America/New_York', "
                            f"got {_show(timezone)}")
        day_set = _parse_days(days, problems)
        opens_closes = _parse_hours(hours, problems)
        holiday_set = _parse_holidays(holidays, problems)
        if problems:
            raise CalendarError(*problems)
        assert opens_closes is not None and day_set is not None and holiday_set is not None
        return cls(timezone=timezone, days=day_set, opens=opens_closes[0],
                   closes=opens_closes[1], holidays=holiday_set)

    # --- public queries ---

    @property
    def day_length(self) -> timedelta:
        """The business time in one business day: ``closes - opens``."""
        return (datetime.combine(date.min, self.closes)
                - datetime.combine(date.min, self.opens))

    def business_time(self, amount: BusinessDuration | timedelta) -> timedelta:
        """How much business time ``amount`` is on this calendar."""
        if isinstance(amount, timedelta):
            if amount < timedelta(0):
                raise CalendarError(f"amount: expected no less than 0, got {amount}")
            return amount
        if not isinstance(amount, BusinessDuration):
            raise TypeError(f"amount: expected a BusinessDuration or timedelta, got {amount!r}")
        try:
            return amount.days * self.day_length + timedelta(seconds=amount.seconds)
        except OverflowError:
            raise CalendarError(f"amount: too large, got {str(amount)!r}") from None

    def is_open(self, at: datetime) -> bool:
        """Whether the desk is open at ``at`` (naive UTC): from opening up to, not at, closing."""
        at = _naive_utc(at, "at")
        local = self._local_date(at)
        for day in (local - _ONE_DAY, local, local + _ONE_DAY):
            interval = self._interval(day)
            if interval and interval[0] <= at < interval[1]:
                return True
        return False

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself if the desk is open then, else the next opening (naive UTC)."""
        at = _naive_utc(at, "at")
        try:
            day = self._local_date(at) - _ONE_DAY
            while True:
                interval = self._interval(day)
                if interval and interval[1] > max(interval[0], at):
                    return max(interval[0], at)
                day += _ONE_DAY
        except OverflowError:
            raise CalendarError(f"no opening after {at.isoformat(sep=' ')} before year 10000") \
                from None

    def add(self, start: datetime, amount: BusinessDuration | timedelta) -> datetime:
        """The first moment by which ``amount`` of business time has passed since ``start``.

        Naive UTC in and out. A start outside opening hours counts from the next opening; a
        zero amount is ``start`` itself; work that fills a day to the end is due at closing.
        """
        start = _naive_utc(start, "start")
        remaining = self.business_time(amount)
        if not remaining:
            return start
        try:
            first = self._local_date(start) - _ONE_DAY
            # Days from here on lie wholly after start, whatever the clocks did.
            whole_days_from = first + 3 * _ONE_DAY
            day = first
            while True:
                if day >= whole_days_from:
                    week = self._week_time(day)
                    while remaining > week:
                        remaining -= week
                        day += _WEEK
                        week = self._week_time(day)
                interval = self._interval(day)
                if interval:
                    begin = max(interval[0], start)
                    available = interval[1] - begin
                    if available > timedelta(0):
                        if remaining <= available:
                            return begin + remaining
                        remaining -= available
                day += _ONE_DAY
        except OverflowError:
            raise CalendarError(f"amount: too large, the result is after year 9999, "
                                f"got {_show(str(amount))}") from None

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The business time from ``start`` to ``end`` (naive UTC); nothing if end <= start."""
        start = _naive_utc(start, "start")
        end = _naive_utc(end, "end")
        total = timedelta(0)
        if end <= start:
            return total
        day = self._local_date(start) - _ONE_DAY
        last = self._local_date(end) + _ONE_DAY
        # Whole weeks need days wholly inside (start, end); two days' margin covers any clock
        # change.
        whole_from, whole_to = day + 3 * _ONE_DAY, last - 3 * _ONE_DAY
        while day <= last:
            if whole_from <= day and day + 6 * _ONE_DAY <= whole_to:
                total += self._week_time(day)
                day += _WEEK
                continue
            interval = self._interval(day)
            if interval:
                overlap = min(interval[1], end) - max(interval[0], start)
                if overlap > timedelta(0):
                    total += overlap
            day += _ONE_DAY
        return total

    # --- inside ---

    def _local_date(self, at: datetime) -> date:
        return at.replace(tzinfo=UTC).astimezone(self._zone).date()

    def _local_wall(self, at: datetime) -> datetime:
        return at.replace(tzinfo=UTC).astimezone(self._zone).replace(tzinfo=None)

    def _wall_to_utc(self, wall: datetime) -> datetime:
        """The first instant (naive UTC) at which the local clock shows ``wall`` or later."""
        # fold=0 is the earlier of the two instants of a time the clock shows twice.
        first = wall.replace(tzinfo=self._zone).astimezone(UTC).replace(tzinfo=None)
        if self._local_wall(first) == wall:
            return first
        # In a gap (the clocks jumped over ``wall``): the answer is the jump itself, which lies
        # between the two readings of ``wall``, one with each offset. Bisect to the microsecond.
        other = (wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
                 .replace(tzinfo=None))
        low, high = sorted((first, other))
        before, after = 0, (high - low) // _MICROSECOND  # local(low) < wall <= local(high)
        while after - before > 1:
            middle = (before + after) // 2
            if self._local_wall(low + middle * _MICROSECOND) >= wall:
                after = middle
            else:
                before = middle
        return low + after * _MICROSECOND

    def _interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The opening and closing (naive UTC) of local ``day``, or None if the desk is closed."""
        if day.weekday() not in self.days or day in self.holidays:
            return None
        cache = self._intervals
        interval = cache.get(day)
        if interval is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            interval = (self._wall_to_utc(datetime.combine(day, self.opens)),
                        self._wall_to_utc(datetime.combine(day, self.closes)))
            cache[day] = interval
        return interval

    def _week_time(self, first: date) -> timedelta:
        """The business time in the seven local days from ``first``."""
        after = first + _WEEK
        midnight = time(0)
        if (datetime.combine(first, midnight, self._zone).utcoffset()
                == datetime.combine(after, midnight, self._zone).utcoffset()):
            # The same offset at both ends: no clock change this week (no zone changes twice in
            # a week), so each working day that is not a holiday is one full day_length.
            holidays = (bisect_left(self._holiday_ordinals, after.toordinal())
                        - bisect_left(self._holiday_ordinals, first.toordinal()))
            return (len(self.days) - holidays) * self.day_length
        total = timedelta(0)
        for offset in range(7):
            interval = self._interval(first + offset * _ONE_DAY)
            if interval:
                total += interval[1] - interval[0]
        return total


def _zone_or_none(name: Any) -> tzinfo | None:
    if not isinstance(name, str) or not name:
        return None
    if name == "UTC":
        return UTC  # needs no tz database
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _frozen(value: Any) -> frozenset | None:
    if isinstance(value, (str, bytes)):
        return None
    try:
        return frozenset(value)
    except TypeError:
        return None


def _day_number(name: str) -> int | None:
    name = name.strip().lower()
    for names in (DAY_NAMES, _FULL_DAY_NAMES):
        if name in names:
            return names.index(name)
    return None


def _parse_days(value: Any, problems: list[str]) -> frozenset[int] | None:
    expected = "expected day names like 'mon-fri', 'mon,wed,fri' or a list of them"
    if isinstance(value, str):
        parts: Iterable[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = value
    else:
        problems.append(f"days: {expected}, got {_show(value)}")
        return None
    found: set[int] = set()
    for part in parts:
        if not isinstance(part, str):
            problems.append(f"days: {expected}, got {_show(part)}")
            return None
        first, dash, last = part.partition("-")
        start = _day_number(first)
        end = _day_number(last) if dash else start
        if start is None or end is None:
            problems.append(f"days: {expected} (mon, tue, wed, thu, fri, sat, sun), "
                            f"got {_show(part.strip())}")
            return None
        day = start
        found.add(day)
        while day != end:  # a range may wrap past Sunday: sun-thu
            day = (day + 1) % 7
            found.add(day)
    if not found:
        problems.append("days: no working days (the desk must open on at least one day)")
        return None
    return frozenset(found)


_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", re.ASCII)


def _parse_hours(value: Any, problems: list[str]) -> tuple[time, time] | None:
    match = _HOURS.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        problems.append(f"hours: expected HH:MM-HH:MM, got {_show(value)}")
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        problems.append(f"hours: expected times from 00:00 to 23:59, got {_show(value)}")
        return None
    opens, closes = time(h1, m1), time(h2, m2)
    if closes <= opens:
        problems.append("hours: closing must be after opening (no overnight shifts), "
                        f"got {_show(value)}")
        return None
    return opens, closes


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _parse_holidays(value: Any, problems: list[str]) -> frozenset[date] | None:
    if value is None:
        return frozenset()
    if not isinstance(value, (list, tuple, set, frozenset)):
        problems.append(f"holidays: expected a list of dates like 2026-12-25, got {_show(value)}")
        return None
    found: set[date] = set()
    before = len(problems)
    for i, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            found.add(item)
            continue
        if isinstance(item, str) and _ISO_DATE.fullmatch(item.strip()):
            try:
                found.add(date.fromisoformat(item.strip()))
                continue
            except ValueError:
                pass
        problems.append(f"holidays[{i}]: expected a date like 2026-12-25, got {_show(item)}")
    return frozenset(found) if len(problems) == before else None
