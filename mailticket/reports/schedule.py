"""When a scheduled report is due: its slots, the local ``at`` time on its ``days`` in its time
zone, as naive UTC. Pure; the runner (``runner.py``) decides what to do about a slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from mailticket.config import ReportSchedule

__all__ = ["last_slot", "next_slot"]

_SEARCH_DAYS = 15  # two weeks and a day: every schedule has a slot in any such span


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def _slot_on(schedule: ReportSchedule, day) -> datetime | None:
    """The slot on local ``day`` as naive UTC, or None when the report does not run that day.
    A time the clock skips (spring forward) happens at the jump; one it shows twice, the first
    time (``fold=0``)."""
    if day.weekday() not in schedule.days:
        return None
    zone = _zone(schedule.timezone)
    wall = datetime.combine(day, schedule.at)
    utc = wall.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall:
        # In a gap: the first instant whose wall clock shows ``at`` or later is the jump.
        early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        step = timedelta(minutes=1)
        utc = min(early, utc)
        while utc.astimezone(zone).replace(tzinfo=None) < wall:
            utc += step
    return utc.replace(tzinfo=None)


def last_slot(schedule: ReportSchedule, now: datetime) -> datetime | None:
    """The latest slot at or before ``now`` (naive UTC) within the last two weeks."""
    today = now.replace(tzinfo=UTC).astimezone(_zone(schedule.timezone)).date()
    for back in range(_SEARCH_DAYS):
        slot = _slot_on(schedule, today - timedelta(days=back))
        if slot is not None and slot <= now:
            return slot
    return None


def next_slot(schedule: ReportSchedule, now: datetime) -> datetime | None:
    """The first slot after ``now`` (naive UTC)."""
    today = now.replace(tzinfo=UTC).astimezone(_zone(schedule.timezone)).date()
    for ahead in range(_SEARCH_DAYS):
        slot = _slot_on(schedule, today + timedelta(days=ahead))
        if slot is not None and slot > now:
            return slot
    return None
