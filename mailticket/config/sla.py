"""The desk's timing settings: the SLA on the business calendar, and the scheduled status reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

from mailticket.config import values as v
from mailticket.config.calendar import BusinessCalendar
from mailticket.config.declare import Scope, items, named, options, setting
from mailticket.config.durations import BusinessDuration, CalendarError


@dataclass(frozen=True)
class Sla:
    """Business-hours targets: the first response (first agent reply) within ``first_response``
    of business time on ``calendar``; the ticket's group is warned ``warn_before`` it is due."""

    first_response: BusinessDuration = setting(
        v.business_duration, BusinessDuration(days=1),
        help="business time from opening to the first agent reply")
    calendar: BusinessCalendar = options(
        BusinessCalendar.from_config, BusinessCalendar(), error=CalendarError,
        help="when the desk works: timezone, days, hours, holidays")
    warn_before: timedelta = setting(v.plain_duration, timedelta(hours=2),
                                     help="the group is warned this long before it is due")
    verify_close_after: BusinessDuration = setting(
        v.business_duration, BusinessDuration(days=3),
        help="a resolved ticket the user does not answer is closed after this")


def _title(scope: Scope) -> str:
    return scope["name"].replace("_", " ").title()


def _calendar_zone(scope: Scope) -> str:
    return scope["sla"].calendar.timezone


def _zone(value: object) -> str:
    return v.calendar_part("timezone")(v.string(value))


@dataclass(frozen=True)
class ReportSchedule:
    """One status report: when (local time ``at`` on ``days`` in ``timezone``), to whom."""

    name: str
    at: time = setting(v.clock_time, help="local time of day, 'HH:MM'")
    days: frozenset[int] = setting(v.calendar_part("days"), BusinessCalendar().days,
                                   in_code=False,
                                   help="the days it goes out, like mon-fri; default: the calendar's")
    to: tuple[str, ...] = items(v.address, what="addresses", in_code=False,
                                required="missing (a list of addresses is required)",
                                help="who gets it")
    title: str = setting(v.string, default_from=_title, help="the mail's title")
    timezone: str = setting(_zone, default_from=_calendar_zone,
                            help='the time zone of "at"; default: sla.calendar.timezone')
    agency: str | None = setting(v.string, None, help="only this agency's tickets")


@dataclass(frozen=True)
class Reports:
    schedules: tuple[ReportSchedule, ...] = named(
        ReportSchedule, what="report", hint="at, days, to, title", inline=True,
        help="each key other than grace and old_ticket_days names a report, "
                                            "including one called schedules")
    grace: timedelta = setting(v.plain_duration, timedelta(hours=2), first=True,
                               help="a slot missed by less is sent late; more: skipped")
    old_ticket_days: int = setting(v.integer(1, 3650), 7, first=True,
                                   help="the report lists tickets open longer than this")

    def get(self, name: str) -> ReportSchedule | None:
        return next((s for s in self.schedules if s.name == name), None)
