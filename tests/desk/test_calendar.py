"""Business calendar: parsing, due dates across weekends, holidays and clock changes, and the
properties that tie ``add``, ``between``, ``is_open`` and ``next_open`` together.

All times are fixed; local times are written as the UTC they stand for, with the local reading in
a comment, because the API speaks naive UTC.
"""

from __future__ import annotations

import time as wallclock
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailticket.config.calendar import (
    BusinessCalendar,
    BusinessDuration,
    CalendarError,
    parse_plain_duration,
)

EVERY_DAY = frozenset(range(7))
ONE_DAY = BusinessDuration(days=1)
UTC_DESK = BusinessCalendar()
NEW_YORK = BusinessCalendar.from_config(timezone="America/New_York", days="mon-fri",
                                        hours="07:00-17:00", holidays=["2026-12-25"])
BERLIN_EVERY_DAY = BusinessCalendar(timezone="Europe/Berlin", days=EVERY_DAY)
NEW_YORK_EVERY_DAY = BusinessCalendar(timezone="America/New_York", days=EVERY_DAY)


def utc(*args: int) -> datetime:
    return datetime(*args)


def in_zone(zone: str, *args: int, fold: int = 0) -> datetime:
    """The naive UTC instant of a local wall time that exists."""
    local = datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# --- from_config ---------------------------------------------------------------------------------

def test_from_config_defaults_are_the_desk_procedure():
    calendar = BusinessCalendar.from_config()
    assert calendar == BusinessCalendar()
    assert calendar.days == frozenset({0, 1, 2, 3, 4})
    assert (calendar.opens, calendar.closes) == (time(7), time(17))
    assert calendar.day_length == hours(10)


@pytest.mark.parametrize("days, expected", [
    ("mon-fri", {0, 1, 2, 3, 4}),
    ("mon-sat", {0, 1, 2, 3, 4, 5}),
    ("mon,wed,fri", {0, 2, 4}),
    ("sun-thu", {6, 0, 1, 2, 3}),          # ranges wrap past Sunday
    ("fri-mon", {4, 5, 6, 0}),
    (["mon", "tue"], {0, 1}),
    (["mon-wed", "fri"], {0, 1, 2, 4}),
    (" Monday - Friday ", {0, 1, 2, 3, 4}),
    ("sat", {5}),
    ("mon-mon", {0}),
    ("mon-sun", set(range(7))),
])
def test_days(days, expected):
    assert BusinessCalendar.from_config(days=days).days == frozenset(expected)


@pytest.mark.parametrize("days, message", [
    ("mon-xyz", "days: expected day names like 'mon-fri', 'mon,wed,fri' or a list of them "
                "(mon, tue, wed, thu, fri, sat, sun), got 'mon-xyz'"),
    ("", "got ''"),
    ("mon,,fri", "got ''"),
    ([], "days: no working days"),
    (5, "got 5"),
    (["mon", 3], "got 3"),
    ({"mon": True}, "got a mapping"),
])
def test_bad_days_name_the_part(days, message):
    with pytest.raises(CalendarError) as error:
        BusinessCalendar.from_config(days=days)
    assert str(error.value).startswith("days: ")
    assert message in str(error.value)


@pytest.mark.parametrize("text, opens, closes", [
    ("07:00-17:00", time(7), time(17)),
    ("7:30 - 16:45", time(7, 30), time(16, 45)),
    ("00:00-23:59", time(0), time(23, 59)),
])
def test_hours(text, opens, closes):
    calendar = BusinessCalendar.from_config(hours=text)
    assert (calendar.opens, calendar.closes) == (opens, closes)


@pytest.mark.parametrize("text, message", [
    ("7-17", "hours: expected HH:MM-HH:MM, got '7-17'"),
    ("07:00", "hours: expected HH:MM-HH:MM, got '07:00'"),
    (700, "hours: expected HH:MM-HH:MM, got 700"),
    ("25:00-26:00", "hours: expected times from 00:00 to 23:59, got '25:00-26:00'"),
    ("07:60-17:00", "hours: expected times from 00:00 to 23:59, got '07:60-17:00'"),
    ("17:00-07:00", "hours: closing must be after opening (no overnight shifts), "
                    "got '17:00-07:00'"),
    ("09:00-09:00", "hours: closing must be after opening (no overnight shifts), "
                    "got '09:00-09:00'"),
])
def test_bad_hours(text, message):
    with pytest.raises(CalendarError) as error:
        BusinessCalendar.from_config(hours=text)
    assert str(error.value) == message


def test_holidays_are_dates_or_iso_strings():
    calendar = BusinessCalendar.from_config(
        holidays=["2026-12-25", date(2027, 1, 1), " 2026-07-03 "])
    assert calendar.holidays == {date(2026, 12, 25), date(2027, 1, 1), date(2026, 7, 3)}
    assert BusinessCalendar.from_config(holidays=None).holidays == frozenset()


@pytest.mark.parametrize("holidays, message", [
    ("2026-12-25", "holidays: expected a list of dates like 2026-12-25, got '2026-12-25'"),
    (["2026-12-25", "12/25/2026"],
     "holidays[1]: expected a date like 2026-12-25, got '12/25/2026'"),
    (["2026-02-30"], "holidays[0]: expected a date like 2026-12-25, got '2026-02-30'"),
    ([datetime(2026, 12, 25, 9)], "holidays[0]: expected a date like 2026-12-25, "
                                  "got '2026-12-25 09:00:00'"),
    ([20261225], "holidays[0]: expected a date like 2026-12-25, got 20261225"),
])
def test_bad_holidays(holidays, message):
    with pytest.raises(CalendarError) as error:
        BusinessCalendar.from_config(holidays=holidays)
    assert str(error.value) == message


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", None, "../../etc/passwd",
                                  "america/new york"])
def test_bad_timezone(zone):
    with pytest.raises(CalendarError) as error:
        BusinessCalendar.from_config(timezone=zone)
    assert str(error.value).startswith("timezone: expected an IANA time zone name")


def test_every_problem_is_reported_at_once():
    with pytest.raises(CalendarError) as error:
        BusinessCalendar.from_config(timezone="Nowhere", days="xyz", hours="7-17",
                                     holidays=["soon"])
    keys = [problem.split(":")[0] for problem in error.value.problems]
    assert keys == ["timezone", "days", "hours", "holidays[0]"]
    assert isinstance(error.value, ValueError)


# --- the constructor -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"days": frozenset()}, "days: no working days"),
    ({"days": frozenset({7})}, "days: expected weekday numbers 0 (Monday) to 6 (Sunday)"),
    ({"days": "mon-fri"}, "days: expected weekday numbers"),
    ({"opens": time(17), "closes": time(7)}, "closes: must be after opens (no overnight shifts), "
                                             "got 17:00-07:00"),
    ({"opens": time(9), "closes": time(9)}, "closes: must be after opens"),
    ({"opens": "07:00"}, "opens: expected a local time of day, got '07:00'"),
    ({"holidays": frozenset({datetime(2026, 12, 25)})}, "holidays: expected dates"),
    ({"timezone": "Nowhere/Special"}, "timezone: expected an IANA time zone name"),
])
def test_constructor_refuses_a_calendar_that_cannot_work(kwargs, message):
    with pytest.raises(CalendarError) as error:
        BusinessCalendar(**kwargs)
    assert message in str(error.value)


def test_constructor_takes_any_collection_and_stays_hashable():
    calendar = BusinessCalendar(days=[0, 1], holidays={date(2026, 1, 1)})  # type: ignore[arg-type]
    assert calendar.days == frozenset({0, 1}) and isinstance(calendar.holidays, frozenset)
    assert calendar == BusinessCalendar(days=frozenset({1, 0}),
                                        holidays=frozenset({date(2026, 1, 1)}))
    assert len({calendar, BusinessCalendar(days=frozenset({0, 1}),
                                           holidays=frozenset({date(2026, 1, 1)}))}) == 1


# --- durations -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, days, seconds", [
    ("1 business day", 1, 0),
    ("3 business days", 3, 0),
    ("2 hours", 0, 7200),
    ("90 minutes", 0, 5400),
    ("1 business day 4 hours", 1, 14400),
    ("1 business day, 4 hours and 30 minutes", 1, 16200),
    ("4h", 0, 14400),
    ("30m", 0, 1800),
    ("4h30m", 0, 16200),
    ("2 business hours", 0, 7200),
    ("2 BD", 2, 0),
    ("  1 Business Day  ", 1, 0),
    ("0 hours", 0, 0),
    ("45 s", 0, 45),
])
def test_parse_business_duration(text, days, seconds):
    assert BusinessDuration.parse(text) == BusinessDuration(days=days, seconds=seconds)


@pytest.mark.parametrize("text", [
    "", "soon", "1", "hours", "1.5 hours", "-1 hours", "2 hours 3 hours", "1 business",
    "1 business week", "4 hours and", "and 4 hours", "1 fortnight", "٣ hours", None, 4,
])
def test_bad_business_duration(text):
    with pytest.raises(CalendarError) as error:
        BusinessDuration.parse(text)
    assert "expected a business duration like '1 business day'" in str(error.value)


def test_a_bare_day_is_not_a_business_day():
    with pytest.raises(CalendarError) as error:
        BusinessDuration.parse("2 days")
    assert "say 'business day'" in str(error.value)
    assert str(error.value).endswith("got '2 days'")


@pytest.mark.parametrize("duration, text", [
    (BusinessDuration(days=1), "1 business day"),
    (BusinessDuration(days=3), "3 business days"),
    (BusinessDuration(seconds=7200), "2 hours"),
    (BusinessDuration(seconds=5400), "1 hour 30 minutes"),
    (BusinessDuration(days=1, seconds=14400), "1 business day 4 hours"),
    (BusinessDuration(seconds=61), "1 minute 1 second"),
    (BusinessDuration(), "0 hours"),
])
def test_business_duration_str(duration, text):
    assert str(duration) == text
    assert BusinessDuration.parse(text) == duration


@given(st.builds(BusinessDuration, days=st.integers(0, 10_000), seconds=st.integers(0, 10**7)))
def test_business_duration_str_parses_back(duration):
    assert BusinessDuration.parse(str(duration)) == duration


@pytest.mark.parametrize("kwargs", [{"days": -1}, {"seconds": -5}, {"days": 1.5}, {"days": True}])
def test_business_duration_refuses_negative_or_fractional(kwargs):
    with pytest.raises(CalendarError):
        BusinessDuration(**kwargs)


@pytest.mark.parametrize("text, expected", [
    ("2 hours", timedelta(hours=2)),
    ("30 minutes", timedelta(minutes=30)),
    ("1 day", timedelta(days=1)),
    ("7 days", timedelta(days=7)),
    ("2 weeks", timedelta(weeks=2)),
    ("1h 30m", timedelta(hours=1, minutes=30)),
    ("1 day and 12 hours", timedelta(days=1, hours=12)),
    ("90s", timedelta(seconds=90)),
])
def test_parse_plain_duration(text, expected):
    assert parse_plain_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "2", "1 month", "-2 hours", "2.5 hours", None])
def test_bad_plain_duration(text):
    with pytest.raises(CalendarError) as error:
        parse_plain_duration(text)
    assert "expected a duration like '2 hours', '30 minutes' or '1 day'" in str(error.value)


def test_plain_duration_refuses_business_time_and_overflow():
    with pytest.raises(CalendarError, match="business time is not allowed here"):
        parse_plain_duration("1 business day")
    with pytest.raises(CalendarError, match="duration too long"):
        parse_plain_duration("99999999999 weeks")


# --- add: the desk's rule, "answered within 1 business day" ---------------------------------------

def test_friday_afternoon_is_due_monday_afternoon():
    # Fri 2026-01-09 16:00 EST -> Mon 2026-01-12 16:00 EST
    assert NEW_YORK.add(utc(2026, 1, 9, 21), ONE_DAY) == utc(2026, 1, 12, 21)
    assert UTC_DESK.add(utc(2026, 1, 9, 16), ONE_DAY) == utc(2026, 1, 12, 16)


@pytest.mark.parametrize("arrival", [
    utc(2026, 1, 10, 15),       # Sat 10:00 EST
    utc(2026, 1, 10, 5),        # Sat 00:00 EST
    utc(2026, 1, 9, 22),        # Fri 17:00 EST, closing exactly
    utc(2026, 1, 9, 23, 30),    # Fri 18:30 EST
    utc(2026, 1, 12, 11, 59),   # Mon 06:59 EST
    utc(2026, 1, 12, 12),       # Mon 07:00 EST, opening exactly
])
def test_outside_hours_counts_from_the_next_opening(arrival):
    # All of these count from Mon 2026-01-12 07:00 EST: due at 17:00 EST.
    assert NEW_YORK.add(arrival, ONE_DAY) == utc(2026, 1, 12, 22)


def test_arriving_at_closing_counts_from_the_next_morning():
    assert UTC_DESK.add(utc(2026, 1, 12, 17), BusinessDuration(seconds=3600)) == utc(2026, 1, 13, 8)
    assert not UTC_DESK.is_open(utc(2026, 1, 12, 17))
    assert UTC_DESK.is_open(utc(2026, 1, 12, 16, 59, 59, 999999))


def test_work_that_fills_the_day_is_due_at_closing_not_next_morning():
    assert UTC_DESK.add(utc(2026, 1, 12, 7), ONE_DAY) == utc(2026, 1, 12, 17)
    an_hour = BusinessDuration(seconds=3600)
    assert UTC_DESK.add(utc(2026, 1, 12, 16), an_hour) == utc(2026, 1, 12, 17)


def test_a_week_of_work_from_the_weekend_is_due_friday_at_closing():
    assert UTC_DESK.add(utc(2026, 1, 10, 12), BusinessDuration(days=5)) == utc(2026, 1, 16, 17)
    assert UTC_DESK.add(utc(2026, 1, 10, 12), BusinessDuration(days=10)) == utc(2026, 1, 23, 17)
    assert NEW_YORK.add(utc(2026, 12, 19), BusinessDuration(days=4)) == utc(2026, 12, 24, 22)


def test_zero_is_the_start_itself():
    assert UTC_DESK.add(utc(2026, 1, 10, 3), BusinessDuration()) == utc(2026, 1, 10, 3)


def test_hours_and_days_mix():
    # Mon 15:00 + 1 business day 4 hours: 2 h Monday, 10 h Tuesday, 2 h Wednesday.
    due = UTC_DESK.add(utc(2026, 1, 12, 15), BusinessDuration.parse("1 business day 4 hours"))
    assert due == utc(2026, 1, 14, 9)


def test_a_business_day_is_one_working_day_of_hours():
    short = BusinessCalendar.from_config(hours="09:00-12:30")
    assert short.business_time(BusinessDuration(days=2)) == hours(7)
    assert short.add(utc(2026, 1, 12, 9), BusinessDuration(days=2)) == utc(2026, 1, 13, 12, 30)
    assert short.add(utc(2026, 1, 12, 11), BusinessDuration(days=1)) == utc(2026, 1, 13, 11)


def test_wrapping_week_sun_thu():
    gulf = BusinessCalendar.from_config(timezone="Asia/Dubai", days="sun-thu", hours="08:00-16:00")
    # Thu 2026-01-15 15:00 GST (11:00 UTC) -> Sun 2026-01-18 15:00 GST
    assert gulf.add(utc(2026, 1, 15, 11), ONE_DAY) == utc(2026, 1, 18, 11)


def test_holidays_are_skipped():
    # Christmas 2026 is a Friday. Thu 2026-12-24 16:00 EST -> Mon 2026-12-28 16:00 EST.
    assert NEW_YORK.add(utc(2026, 12, 24, 21), ONE_DAY) == utc(2026, 12, 28, 21)
    assert not NEW_YORK.is_open(utc(2026, 12, 25, 15))
    assert NEW_YORK.next_open(utc(2026, 12, 24, 23)) == utc(2026, 12, 28, 12)
    assert NEW_YORK.between(utc(2026, 12, 21), utc(2026, 12, 28)) == hours(40)


def test_a_run_of_holidays_is_skipped():
    closed = {date(2026, 12, 21) + timedelta(days=i) for i in range(12)}  # to Fri 2027-01-01
    calendar = BusinessCalendar(holidays=frozenset(closed))
    assert calendar.add(utc(2026, 12, 18, 16), ONE_DAY) == utc(2027, 1, 4, 16)
    assert calendar.next_open(utc(2026, 12, 19)) == utc(2027, 1, 4, 7)


def test_add_takes_a_timedelta_of_business_time():
    assert UTC_DESK.add(utc(2026, 1, 9, 16), hours(3)) == utc(2026, 1, 12, 9)
    with pytest.raises(CalendarError, match="amount: expected no less than 0"):
        UTC_DESK.add(utc(2026, 1, 9, 16), -hours(3))


def test_naive_utc_only():
    aware = datetime(2026, 1, 9, 16, tzinfo=timezone.utc)
    for call in (lambda: UTC_DESK.add(aware, ONE_DAY), lambda: UTC_DESK.is_open(aware),
                 lambda: UTC_DESK.next_open(aware), lambda: UTC_DESK.between(aware, aware)):
        with pytest.raises(CalendarError, match="expected a naive UTC datetime"):
            call()
    with pytest.raises(TypeError):
        UTC_DESK.is_open(date(2026, 1, 9))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        UTC_DESK.add(utc(2026, 1, 9), 3)  # type: ignore[arg-type]


def test_beyond_year_9999_is_a_calendar_error():
    with pytest.raises(CalendarError, match="after year 9999"):
        UTC_DESK.add(utc(9999, 6, 1), BusinessDuration(days=1000))


# --- daylight saving -----------------------------------------------------------------------------

def test_new_york_spring_forward_over_a_weekend():
    # Clocks go forward Sun 2026-03-08 02:00. Fri 16:00 EST -> Mon 16:00 EDT.
    assert NEW_YORK.add(utc(2026, 3, 6, 21), ONE_DAY) == utc(2026, 3, 9, 20)
    assert NEW_YORK.next_open(utc(2026, 3, 7, 12)) == in_zone("America/New_York", 2026, 3, 9, 7)
    assert NEW_YORK.between(utc(2026, 3, 2), utc(2026, 3, 16)) == hours(100)


def test_new_york_fall_back_over_a_weekend():
    # Clocks go back Sun 2026-11-01 02:00. Fri 16:00 EDT -> Mon 16:00 EST.
    assert NEW_YORK.add(utc(2026, 10, 30, 20), ONE_DAY) == utc(2026, 11, 2, 21)
    assert NEW_YORK.between(utc(2026, 10, 26), utc(2026, 11, 9)) == hours(100)


@pytest.mark.parametrize("calendar, zone, day", [
    (NEW_YORK_EVERY_DAY, "America/New_York", date(2026, 3, 8)),
    (NEW_YORK_EVERY_DAY, "America/New_York", date(2026, 11, 1)),
    (BERLIN_EVERY_DAY, "Europe/Berlin", date(2026, 3, 29)),
    (BERLIN_EVERY_DAY, "Europe/Berlin", date(2026, 10, 25)),
])
def test_the_day_the_clocks_change_at_night_still_has_ten_hours(calendar, zone, day):
    opens = in_zone(zone, day.year, day.month, day.day, 7)
    closes = in_zone(zone, day.year, day.month, day.day, 17)
    assert closes - opens == hours(10)
    before = day - timedelta(days=1)
    late_evening = in_zone(zone, before.year, before.month, before.day, 23)
    assert calendar.between(late_evening, late_evening + hours(26)) == hours(10)
    assert calendar.next_open(late_evening) == opens
    assert calendar.add(late_evening, ONE_DAY) == closes
    # The day before at 16:00 local + 1 business day: 16:00 local on the day of the change.
    assert (calendar.add(in_zone(zone, before.year, before.month, before.day, 16), ONE_DAY)
            == in_zone(zone, day.year, day.month, day.day, 16))


def test_berlin_spring_forward_lands_on_the_right_local_time():
    # Sat 2026-03-28 16:00 CET (15:00 UTC) -> Sun 16:00 CEST (14:00 UTC), 10 business hours later
    # although 23 wall-clock hours have passed.
    assert BERLIN_EVERY_DAY.add(utc(2026, 3, 28, 15), ONE_DAY) == utc(2026, 3, 29, 14)
    # Sat 2026-10-24 16:00 CEST (14:00 UTC) -> Sun 16:00 CET (15:00 UTC)
    assert BERLIN_EVERY_DAY.add(utc(2026, 10, 24, 14), ONE_DAY) == utc(2026, 10, 25, 15)


NIGHT_SHIFT = BusinessCalendar(timezone="America/New_York", days=EVERY_DAY,
                               opens=time(1), closes=time(4))


def test_clock_change_inside_opening_hours_changes_that_day_only():
    # 01:00-04:00 on the spring-forward night is 2 real hours, on the fall-back night 4.
    assert NIGHT_SHIFT.between(utc(2026, 3, 8), utc(2026, 3, 9)) == hours(2)
    assert NIGHT_SHIFT.between(utc(2026, 3, 9), utc(2026, 3, 10)) == hours(3)
    assert NIGHT_SHIFT.between(utc(2026, 11, 1), utc(2026, 11, 2)) == hours(4)
    # 1 business day is still 3 hours: from 01:00 EST on the spring-forward night it runs past
    # closing (04:00 EDT, 2 hours) into the next night's first hour.
    due = NIGHT_SHIFT.add(utc(2026, 3, 8, 6), ONE_DAY)
    assert due == in_zone("America/New_York", 2026, 3, 9, 2)


def test_an_opening_in_the_spring_forward_gap_is_the_jump():
    # 02:30 does not exist on 2026-03-08 in New York: 02:00 EST is followed by 03:00 EDT
    # (07:00 UTC). The desk opens at the jump, the first instant the clock reads 02:30 or later.
    calendar = BusinessCalendar(timezone="America/New_York", days=EVERY_DAY, opens=time(2, 30))
    jump = utc(2026, 3, 8, 7)
    assert calendar.next_open(utc(2026, 3, 8, 5)) == jump
    assert not calendar.is_open(jump - timedelta(microseconds=1))
    assert calendar.is_open(jump)
    assert calendar.between(utc(2026, 3, 8), utc(2026, 3, 9)) == hours(14)  # 03:00-17:00 EDT
    # Other days open at 02:30 as usual.
    assert calendar.next_open(utc(2026, 3, 9, 5)) == in_zone("America/New_York", 2026, 3, 9, 2, 30)


def test_hours_wholly_inside_the_gap_make_an_empty_day():
    calendar = BusinessCalendar(timezone="America/New_York", days=frozenset({6}),  # Sundays
                                opens=time(2, 10), closes=time(2, 50))
    assert calendar.between(utc(2026, 3, 8), utc(2026, 3, 9)) == timedelta(0)
    assert calendar.next_open(utc(2026, 3, 8)) == in_zone("America/New_York", 2026, 3, 15, 2, 10)


def test_a_time_the_clock_shows_twice_happens_the_first_time_round():
    # On 2026-11-01 New York reads 01:30 at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    calendar = BusinessCalendar(timezone="America/New_York", days=EVERY_DAY,
                                opens=time(1, 30), closes=time(1, 45))
    first = in_zone("America/New_York", 2026, 11, 1, 1, 30, fold=0)
    assert first == utc(2026, 11, 1, 5, 30)
    assert calendar.next_open(utc(2026, 11, 1)) == first
    assert calendar.between(utc(2026, 11, 1), utc(2026, 11, 2)) == timedelta(minutes=15)
    assert not calendar.is_open(utc(2026, 11, 1, 6, 35))  # 01:35 again, after closing


def test_clocks_changing_at_midnight():
    # Havana jumps from 00:00 to 01:00 on 2026-03-08: a desk opening at midnight opens at 01:00.
    havana = BusinessCalendar(timezone="America/Havana", days=EVERY_DAY,
                              opens=time(0), closes=time(23))
    assert havana.next_open(utc(2026, 3, 8, 4)) == in_zone("America/Havana", 2026, 3, 8, 1)
    assert havana.between(utc(2026, 3, 8, 4), utc(2026, 3, 9, 4)) == hours(22)
    # Santiago goes back from 24:00 to 23:00 on 2026-04-04: 23:30 is read twice.
    santiago = BusinessCalendar(timezone="America/Santiago", days=EVERY_DAY,
                                opens=time(23), closes=time(23, 30))
    assert santiago.between(utc(2026, 4, 4), utc(2026, 4, 6)) == hours(1)


# --- the fast path agrees with day-by-day counting ------------------------------------------------

YEAR_CALENDARS = [
    NEW_YORK,
    NIGHT_SHIFT,
    BusinessCalendar(timezone="America/Havana", days=EVERY_DAY, opens=time(0), closes=time(23)),
    BusinessCalendar(timezone="America/Santiago", days=frozenset({5, 6}), opens=time(0, 30),
                     closes=time(23, 30), holidays=frozenset({date(2026, 9, 19)})),
    BusinessCalendar.from_config(timezone="Europe/Berlin", days="sun-thu", hours="08:30-16:15",
                                 holidays=["2026-10-25", "2026-12-24"]),
]


@pytest.mark.parametrize("calendar", YEAR_CALENDARS, ids=lambda c: c.timezone)
def test_a_year_in_one_step_equals_the_sum_of_its_days(calendar):
    start = utc(2026, 1, 1, 3, 17)
    days = [start + timedelta(days=i) for i in range(366)]
    by_day = sum((calendar.between(a, b) for a, b in zip(days, days[1:])), timedelta(0))
    assert calendar.between(days[0], days[-1]) == by_day
    assert calendar.between(days[0], calendar.add(days[0], by_day)) == by_day


def test_a_thousand_business_days_is_fast_and_exact():
    zone = ZoneInfo("America/New_York")
    start = utc(2026, 1, 9, 21)  # Fri 16:00 EST
    began = wallclock.perf_counter()
    due = NEW_YORK.add(start, BusinessDuration(days=1000))
    elapsed = wallclock.perf_counter() - began
    # Reference: walk the days one by one (no clock change falls inside 07:00-17:00 here).
    remaining, day = hours(10) * 1000, date(2026, 1, 9)
    expected = None
    while expected is None:
        if day.weekday() < 5 and day not in NEW_YORK.holidays:
            opens, closes = (datetime.combine(day, time(h), zone).astimezone(timezone.utc)
                             .replace(tzinfo=None) for h in (7, 17))
            begin = max(opens, start)
            if closes > begin:
                if remaining <= closes - begin:
                    expected = begin + remaining
                remaining -= closes - begin
        day += timedelta(days=1)
    assert due == expected
    assert NEW_YORK.between(start, due) == hours(10_000)
    assert elapsed < 0.1
    far = NEW_YORK.add(start, BusinessDuration(days=100_000))
    assert NEW_YORK.between(start, far) == hours(1_000_000)


# --- between, is_open, next_open -----------------------------------------------------------------

def test_between_basics():
    assert UTC_DESK.between(utc(2026, 1, 12, 8), utc(2026, 1, 12, 8)) == timedelta(0)
    assert UTC_DESK.between(utc(2026, 1, 12, 9), utc(2026, 1, 12, 8)) == timedelta(0)
    assert UTC_DESK.between(utc(2026, 1, 9, 16), utc(2026, 1, 12, 8)) == hours(2)
    assert UTC_DESK.between(utc(2026, 1, 10), utc(2026, 1, 11)) == timedelta(0)
    assert UTC_DESK.between(utc(2026, 1, 5), utc(2026, 2, 2)) == hours(200)


def test_is_open_uses_local_hours():
    # 07:00 EST is 12:00 UTC in January.
    assert not NEW_YORK.is_open(utc(2026, 1, 12, 11, 59))
    assert NEW_YORK.is_open(utc(2026, 1, 12, 12))
    assert NEW_YORK.is_open(utc(2026, 1, 12, 21, 59))
    assert not NEW_YORK.is_open(utc(2026, 1, 12, 22))
    assert not NEW_YORK.is_open(utc(2026, 1, 10, 15))  # Saturday


def test_next_open():
    assert UTC_DESK.next_open(utc(2026, 1, 12, 9, 15)) == utc(2026, 1, 12, 9, 15)
    assert UTC_DESK.next_open(utc(2026, 1, 12, 17)) == utc(2026, 1, 13, 7)
    assert UTC_DESK.next_open(utc(2026, 1, 12, 3)) == utc(2026, 1, 12, 7)
    assert UTC_DESK.next_open(utc(2026, 1, 9, 18)) == utc(2026, 1, 12, 7)


# --- properties ----------------------------------------------------------------------------------

CALENDARS = [UTC_DESK, NEW_YORK, BERLIN_EVERY_DAY, *YEAR_CALENDARS[1:]]
CHANGES = [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2026, 3, 29, 1), utc(2026, 10, 25, 1),
           utc(2026, 3, 8, 5), utc(2026, 4, 5, 3), utc(2026, 9, 6, 4), utc(2026, 12, 25, 12)]

calendars = st.sampled_from(CALENDARS)
# Anywhere in 2025-2028, or within two days of a clock change or a holiday.
moments = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    st.builds(lambda at, shift: at + timedelta(seconds=shift),
              st.sampled_from(CHANGES), st.integers(-2 * 86400, 2 * 86400)),
)
durations = st.one_of(
    st.builds(BusinessDuration, days=st.integers(0, 40), seconds=st.integers(0, 60 * 3600)),
    st.builds(BusinessDuration, days=st.integers(0, 40)),  # whole days end exactly at a closing
)
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(calendars, moments, durations)
def test_between_inverts_add(calendar, start, amount):
    due = calendar.add(start, amount)
    assert due >= start
    assert calendar.between(start, due) == calendar.business_time(amount)
    if calendar.business_time(amount):
        # ... and due is the first such moment.
        just_before = due - timedelta(microseconds=1)
        assert calendar.between(start, just_before) < calendar.business_time(amount)


@PROPERTY
@given(calendars, moments, moments, durations, durations)
def test_add_is_monotonic(calendar, start, other_start, amount, other_amount):
    early, late = sorted((start, other_start))
    small, big = sorted((amount, other_amount), key=calendar.business_time)
    assert calendar.add(start, small) <= calendar.add(start, big)
    assert calendar.add(early, amount) <= calendar.add(late, amount)


@PROPERTY
@given(calendars, moments, moments, moments)
def test_between_adds_up(calendar, a, b, c):
    a, b, c = sorted((a, b, c))
    assert calendar.between(a, c) == calendar.between(a, b) + calendar.between(b, c)
    assert calendar.between(c, a) == timedelta(0)


@PROPERTY
@given(calendars, moments)
def test_is_open_and_next_open_agree_with_between(calendar, at):
    tick = timedelta(microseconds=1)
    assert calendar.is_open(at) == (calendar.between(at, at + tick) == tick)
    opening = calendar.next_open(at)
    assert calendar.is_open(opening)
    assert calendar.between(at, opening) == timedelta(0)
    assert (opening == at) == calendar.is_open(at)
    assert calendar.add(at, tick) == opening + tick
