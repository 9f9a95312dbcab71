"""The figures of a status report for one period, gathered from the database as plain values.

Every count is one SQL aggregate (GROUP BY / COUNT) over the rows of the period, so a report over
a large database reads a few hundred rows, not its tickets: the benchmark in bench/report.py
holds it to that. Times in and out are naive UTC; only the mail-volume slots are cut at the
calendar's local hours. Periods are half-open: a row stamped exactly at ``start`` counts, one
stamped exactly at ``end`` belongs to the next report.

Where the figures come from:

* mail received: messages with direction ``in`` created in the period, by ``source`` (the intake
  mailbox); requests an agent logged from another channel (source ``phone``, ``walk-in``,
  ``voicemail``) are not mail and show under new tickets by channel instead;
* new tickets: tickets created in the period, by channel (every channel shown, zeros too);
* follow-ups, resolved, closed, reopened, escalations: the ticket events of the period
  (``follow_up``; ``status`` whose detail reads ``old -> resolved`` or ``old -> closed``;
  ``reopened``; ``escalated``, whose detail ``from -> to (level N): ...`` names the group);
  each counts events, so a ticket resolved twice in one period counts twice;
* first responses: tickets whose ``first_response_at`` falls in the period, within the SLA when
  it is no later than ``response_due_at`` (or the ticket has no target);
* tickets open more than N days and tickets near or past their first-response target: as at
  ``now``, whatever the period.

With ``agency`` every figure counts only that agency's tickets (and the mail on them).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import peewee
from peewee import SQL, Case, fn

from mailticket.config import Sla
from mailticket.db import is_sqlite
from mailticket.desk.queries import awaiting_first_response
from mailticket.models import Event, Message, Ticket
from mailticket.vocabulary import Channel, Direction, TicketStatus

__all__ = ["Count", "IncidentLine", "NoteLine", "Period", "ReportData", "SlaLine", "TicketLine",
           "VolumeBar", "gather"]

# Longer periods (after a long weekend, or a report run by hand over weeks) are charted by day.
HOURLY_UP_TO = timedelta(hours=72)
_QUARTER = timedelta(minutes=15)
_UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in naive UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("period: expected naive UTC datetimes")
        if self.end <= self.start:
            raise ValueError(f"period: end {self.end} is not after start {self.start}")

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Count:
    name: str
    count: int


@dataclass(frozen=True)
class IncidentLine:
    """An outage not yet resolved (an incident affecting users), with its figures as the
    caller found them (desk.outages.impact)."""

    number: int            # the outage's number
    subject: str           # its title
    users_affected: int
    since: datetime        # naive UTC: when it was opened
    tickets: int = 0       # linked tickets, and those not closed
    open_tickets: int = 0
    channels: tuple[Count, ...] = ()   # linked tickets by channel, those with any
    agencies: tuple[Count, ...] = ()   # linked tickets by agency
    reach: str = ""                    # all users, subset, beyond its scope
    applications: tuple[str, ...] = ()
    state: str = "open"


@dataclass(frozen=True)
class NoteLine:
    """A note from application support (mail to the notes address), as the caller found it."""

    sender: str
    at: datetime  # naive UTC
    subject: str
    text: str


@dataclass(frozen=True)
class VolumeBar:
    """Mail received in one slot of the period: a local hour (or a local day)."""

    start: datetime  # naive UTC: where the slot begins (the first: where the period begins)
    label: str       # its local time, e.g. "Fri 16:00" (or "Fri 27 Nov" for a day)
    count: int


@dataclass(frozen=True)
class _TicketFields:
    """What both ticket lists show of a ticket."""

    number: int
    subject: str
    status: str
    requester: str
    requester_name: str
    agency: str | None
    group: str | None
    agent: str | None
    created_at: datetime


@dataclass(frozen=True)
class TicketLine(_TicketFields):
    """A ticket open more than the report's number of days."""

    last_activity: datetime  # the ticket's updated_at
    age_days: int            # whole days since created_at, as at the report's ``now``


@dataclass(frozen=True)
class SlaLine(_TicketFields):
    """A ticket with no first response yet whose target is near (warned, or due within
    ``sla.warn_before`` of business time) or past."""

    due_at: datetime
    overdue: bool


@dataclass(frozen=True)
class ReportData:
    """Everything the report templates show, as plain values (times naive UTC)."""

    period: Period
    now: datetime
    timezone: str                       # the calendar's: local times and volume slots
    agency: str | None
    mail_by_mailbox: tuple[Count, ...]  # sorted by mailbox
    new_by_channel: tuple[Count, ...]   # email, phone, walk-in, voicemail (then any other)
    follow_ups: int
    resolved: int
    closed: int
    reopened: int
    escalations: tuple[Count, ...]      # by the group escalated to, sorted by name
    first_response_within: int
    first_response_outside: int
    volume_unit: str                    # "hour" or "day"
    volume: tuple[VolumeBar, ...]       # every slot of the period, zeros too
    old_ticket_days: int
    old_tickets: tuple[TicketLine, ...]  # oldest first, at most ``list_limit``
    old_tickets_total: int
    sla_tickets: tuple[SlaLine, ...]     # soonest due first, at most ``list_limit``
    sla_tickets_total: int
    incidents: tuple[IncidentLine, ...]
    notes: tuple[NoteLine, ...]

    @property
    def mail_total(self) -> int:
        return sum(c.count for c in self.mail_by_mailbox)

    @property
    def new_total(self) -> int:
        return sum(c.count for c in self.new_by_channel)

    @property
    def escalations_total(self) -> int:
        return sum(c.count for c in self.escalations)

    @property
    def first_responses(self) -> int:
        return self.first_response_within + self.first_response_outside


def gather(db: peewee.Database, period: Period, now: datetime, *, sla: Sla, old_ticket_days: int = 7,
           incidents: Sequence[IncidentLine] = (), notes: Sequence[NoteLine] = (),
           agency: str | None = None, list_limit: int = 40) -> ReportData:
    """The report's figures for ``period``, with the ticket lists as at ``now`` (naive UTC).

    ``incidents`` and ``notes`` are the caller's, passed through in order. The two ticket lists
    hold at most ``list_limit`` rows each (oldest, and soonest due, first); their totals are
    always exact. 40 keeps the HTML part under Gmail's 102 KB, beyond which it shows the
    message clipped (tests/reports/test_render.py checks a report at the limit).

    It only reads, in a few statements; called inside the caller's transaction, all the figures
    come from one snapshot of the database.
    """
    if now.tzinfo is not None:
        raise ValueError("now: expected a naive UTC datetime")
    if old_ticket_days < 0:
        raise ValueError(f"old_ticket_days: expected 0 or more, got {old_ticket_days}")
    sqlite = is_sqlite(db)
    zone_name = sla.calendar.timezone
    zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)

    mailboxes, unit, volume = _mail(period, zone, agency, sqlite)
    events, escalations = _events(period, agency, sqlite)
    within, outside = _first_responses(period, agency)
    old, old_total = _old_tickets(now, old_ticket_days, agency, list_limit)
    near, near_total = _sla_tickets(now, sla, agency, list_limit)
    return ReportData(
        period=period, now=now, timezone=zone_name, agency=agency,
        mail_by_mailbox=mailboxes,
        new_by_channel=_new_by_channel(period, agency),
        follow_ups=events.get("follow_up", 0), resolved=events.get(TicketStatus.RESOLVED, 0),
        closed=events.get(TicketStatus.CLOSED, 0), reopened=events.get("reopened", 0),
        escalations=escalations,
        first_response_within=within, first_response_outside=outside,
        volume_unit=unit, volume=volume,
        old_ticket_days=old_ticket_days, old_tickets=old, old_tickets_total=old_total,
        sla_tickets=near, sla_tickets_total=near_total,
        incidents=tuple(incidents), notes=tuple(notes),
    )


# --- the queries ---------------------------------------------------------------------------------

def _in(column: peewee.Field, period: Period) -> peewee.Expression:
    return (column >= period.start) & (column < period.end)


def _for_agency(query: peewee.ModelSelect, agency: str | None,
                joined: type[peewee.Model] | None = None) -> peewee.ModelSelect:
    """Only ``agency``'s tickets: rows of another model are joined to their ticket (an inner
    join, so mail on no ticket is left out)."""
    if agency is None:
        return query
    if joined is not None:
        query = query.join(Ticket, on=(joined.ticket == Ticket.number))
    return query.where(Ticket.agency == agency)


def _mail(period: Period, zone, agency: str | None,
          sqlite: bool) -> tuple[tuple[Count, ...], str, tuple[VolumeBar, ...]]:
    """Mail received by mailbox and by slot, in one pass: counted per mailbox and UTC quarter
    hour in SQL, the quarters then summed into local slots (every zone in use today is offset
    from UTC by a multiple of 15 minutes, so a quarter never straddles a local hour)."""
    created = Message.created_at
    # coerce(False): the hour is text, not a value for the created_at field to convert.
    if sqlite:
        hour = fn.strftime("%Y-%m-%d %H", created).coerce(False)
        quarter = fn.strftime("%M", created).coerce(False).cast("INTEGER") / 15
    else:
        hour = fn.to_char(created, "YYYY-MM-DD HH24").coerce(False)
        quarter = fn.floor(fn.date_part("minute", created).coerce(False) / 15).coerce(False)
    query = (Message.select(Message.source, hour, quarter, fn.COUNT(SQL("*")))
             .where(Message.direction == Direction.IN, _in(created, period),
                    Message.source.not_in(list(Channel.logged_by_agents())))
             .group_by(SQL("1"), SQL("2"), SQL("3")))
    query = _for_agency(query, agency, joined=Message)
    by_source: dict[str, int] = {}
    by_quarter: dict[datetime, int] = {}
    for source, hour_text, quarter_index, count in query.tuples():
        name = source or _UNKNOWN
        by_source[name] = by_source.get(name, 0) + count
        at = datetime.strptime(hour_text, "%Y-%m-%d %H") + int(quarter_index) * _QUARTER
        by_quarter[at] = by_quarter.get(at, 0) + count
    unit = "hour" if period.length <= HOURLY_UP_TO else "day"
    starts = _slot_starts(period, zone, unit)
    counts = [0] * len(starts)
    for at, count in by_quarter.items():
        counts[max(0, bisect_right(starts, at) - 1)] += count
    fmt = "%a %H:%M" if unit == "hour" else "%a %d %b"
    # The first slot is cut at the period's start, and labelled so: "07:30", not "07:00".
    starts[0] = period.start
    bars = tuple(VolumeBar(start, _local(start, zone).strftime(fmt), count)
                 for start, count in zip(starts, counts))
    mailboxes = tuple(Count(name, by_source[name]) for name in sorted(by_source))
    return mailboxes, unit, bars


def _slot_starts(period: Period, zone, unit: str) -> list[datetime]:
    """The UTC instants at which a local hour (or day) begins, from the one the period starts
    in up to its end. Found by walking quarter hours, so a skipped hour (spring forward) makes
    no empty slot and a repeated one (fall back) makes two."""
    def key(at: datetime):
        local = _local(at, zone)
        return (local.date(), local.hour, local.utcoffset()) if unit == "hour" else local.date()

    at = period.start.replace(minute=period.start.minute - period.start.minute % 15,
                              second=0, microsecond=0)
    while key(at) == key(at - _QUARTER):
        at -= _QUARTER
    starts = [at]
    previous = key(at)
    at += _QUARTER
    while at < period.end:
        current = key(at)
        if current != previous:
            starts.append(at)
            previous = current
        at += _QUARTER
    return starts


def _local(at: datetime, zone) -> datetime:
    return at.replace(tzinfo=UTC).astimezone(zone)


def _new_by_channel(period: Period, agency: str | None) -> tuple[Count, ...]:
    query = (Ticket.select(Ticket.channel, fn.COUNT(SQL("*")))
             .where(_in(Ticket.created_at, period))
             .group_by(Ticket.channel))
    found = dict(_for_agency(query, agency).tuples())
    others = sorted(name for name in found if name not in list(Channel))
    return tuple(Count(name or _UNKNOWN, found.get(name, 0)) for name in (*Channel, *others))


def _events(period: Period, agency: str | None,
            sqlite: bool) -> tuple[dict[str, int], tuple[Count, ...]]:
    """Counts of the period's events in one pass: ``follow_up`` and ``reopened`` by kind,
    ``status`` by the new status and ``escalated`` by the target group, both cut out of the
    detail in SQL (``old -> new: text``, ``from -> to (level N): text``). Status and group names
    hold no spaces, colons or parentheses (config.py checks group names), so the first
    ``" -> "`` ends the old one and the first ``":"`` or ``" ("`` ends the new one."""
    find = fn.INSTR if sqlite else fn.STRPOS
    detail = Event.detail
    arrow = find(detail, " -> ")
    rest = fn.SUBSTR(detail, arrow + 4)

    def up_to(mark: str) -> peewee.Node:
        cut = find(rest, mark)
        return Case(None, [(cut > 0, fn.SUBSTR(rest, 1, cut - 1))], rest)

    what = Case(None, [
        (arrow == 0, ""),
        (Event.kind == "status", up_to(":")),
        (Event.kind == "escalated", up_to(" (")),
    ], "")
    query = (Event.select(Event.kind, what, fn.COUNT(SQL("*")))
             .where(_in(Event.at, period),
                    Event.kind.in_(("follow_up", "reopened", "status", "escalated")))
             .group_by(SQL("1"), SQL("2")))
    counts: dict[str, int] = {}
    groups: dict[str, int] = {}
    for kind, target, count in _for_agency(query, agency, joined=Event).tuples():
        if kind == "status":
            counts[target] = counts.get(target, 0) + count
        elif kind == "escalated":
            name = target or _UNKNOWN
            groups[name] = groups.get(name, 0) + count
        else:
            counts[kind] = counts.get(kind, 0) + count
    return counts, tuple(Count(name, groups[name]) for name in sorted(groups))


def _first_responses(period: Period, agency: str | None) -> tuple[int, int]:
    """(within, outside) the SLA; answered at the very moment it was due is within, as
    ``calendar.add`` makes work that fills the time up to the target due at the target."""
    late = Case(None, [((Ticket.response_due_at.is_null(False))
                        & (Ticket.first_response_at > Ticket.response_due_at), 1)], 0)
    query = (Ticket.select(fn.COUNT(SQL("*")), fn.SUM(late))
             .where(_in(Ticket.first_response_at, period)))
    total, outside = _for_agency(query, agency).tuples().get()
    outside = int(outside or 0)
    return int(total) - outside, outside


_TICKET_COLUMNS = (Ticket.number, Ticket.subject, Ticket.status, Ticket.requester,
                   Ticket.requester_name, Ticket.agency, Ticket.group, Ticket.agent,
                   Ticket.created_at)


def _old_tickets(now: datetime, days: int, agency: str | None,
                 limit: int) -> tuple[tuple[TicketLine, ...], int]:
    """Tickets not closed and created more than ``days`` days before ``now``: one created
    exactly ``days`` days before is not yet old. The statuses are named rather than ``!=
    closed`` so that the status index finds the few open tickets among the many closed."""
    query = _for_agency(Ticket.select(*_TICKET_COLUMNS, Ticket.updated_at)
                        .where(Ticket.status.in_(list(TicketStatus.not_closed())),
                               Ticket.created_at < now - timedelta(days=days)), agency)
    total = query.count()
    rows = query.order_by(Ticket.created_at, Ticket.number).limit(limit).tuples()
    return tuple(TicketLine(number, subject, status, requester, name, ticket_agency, group,
                            agent, created, updated, (now - created).days)
                 for number, subject, status, requester, name, ticket_agency, group, agent,
                 created, updated in rows), total


def _sla_tickets(now: datetime, sla: Sla, agency: str | None,
                 limit: int) -> tuple[tuple[SlaLine, ...], int]:
    """Tickets waiting for a first response that the SLA job has warned about, or that it would:
    due within ``sla.warn_before`` of business time from ``now`` (the job's own test,
    ``calendar.between(now, due) <= warn_before``), or overdue.

    That test holds exactly for due times up to ``horizon``: the moment ``warn_before`` of
    business time has passed, carried over any closed hours that follow it (a target at
    Monday's opening is as near, in business time, as one at Friday's closing)."""
    horizon = sla.calendar.next_open(sla.calendar.add(now, sla.warn_before))
    due = Ticket.response_due_at
    query = _for_agency(Ticket.select(*_TICKET_COLUMNS, due)
                        .where(awaiting_first_response(),
                               (due <= horizon) | Ticket.sla_warned_at.is_null(False)
                               | Ticket.sla_breached_at.is_null(False)), agency)
    total = query.count()
    rows = query.order_by(due, Ticket.number).limit(limit).tuples()
    return tuple(SlaLine(number, subject, status, requester, name, ticket_agency, group, agent,
                         created, due_at, due_at <= now)
                 for number, subject, status, requester, name, ticket_agency, group, agent,
                 created, due_at in rows), total
