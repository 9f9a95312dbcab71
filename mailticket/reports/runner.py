"""Sending the status reports: each report once per slot, across restarts and with two daemons
on one database; a slot missed by less than ``reports.grace`` is sent late (and says so), one
missed by more is skipped (logged, and recorded so it is not reconsidered).

Once per slot comes from the ``report_run`` table's unique (report, slot) key: the row and the
report's mail in the outbox are written in one transaction, so a second daemon's insert of the
same slot fails (and it moves on), and a crash leaves either both or neither.

The period of a report is from the slot of its previous sent run to this slot (the first one
covers the day before its slot). Incidents are the outages not yet resolved, with their
figures (``desk.outages.impact``); notes are the mail to ``report_notes_address`` received in
the period.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import peewee

from mailticket.config import ReportSchedule, Settings
from mailticket.config.directory.entries import fold
from mailticket.db import savepoint, transaction
from mailticket.desk.outages import impact
from mailticket.desk.tickets import Desk
from mailticket.mail.compose import Recipient
from mailticket.models import Message, Outage, ReportRun
from mailticket.reports.figures import (
    Count,
    IncidentLine,
    NoteLine,
    Period,
    ReportData,
    gather,
)
from mailticket.reports.render import KIND, context_for
from mailticket.reports.schedule import last_slot
from mailticket.vocabulary import OutageState

log = logging.getLogger(__name__)

SENT, SKIPPED = "sent", "skipped"


def run_due(desk: Desk, db: peewee.Database, now: datetime) -> str:
    """Send every report whose latest slot has not been dealt with; the scheduled job."""
    done = []
    for schedule in desk.settings.reports.schedules:
        slot = last_slot(schedule, now)
        # Read to the end (list): an unfinished SQLite statement would hold its snapshot, and
        # the write below would then fail at once instead of waiting its turn.
        if slot is None or list(ReportRun.select(ReportRun.id).where(
                ReportRun.report == schedule.name, ReportRun.slot == slot).tuples()):
            continue
        late_by = now - slot
        if late_by > desk.settings.reports.grace:
            if _claim(db, schedule.name, slot, now, f"{SKIPPED}: missed by {_ago(late_by)}, "
                      f"more than reports.grace ({_ago(desk.settings.reports.grace)})"):
                log.warning("report %s for %s skipped: missed by %s (reports.grace is %s)",
                            schedule.name, slot, _ago(late_by), _ago(desk.settings.reports.grace))
                done.append(f"{schedule.name} skipped")
            continue
        late = late_by > timedelta(minutes=5)
        if send(desk, db, schedule, slot, now, late=late):
            done.append(f"{schedule.name} sent" + (" late" if late else ""))
    return ", ".join(done) or "nothing due"


def send(desk: Desk, db: peewee.Database, schedule: ReportSchedule, slot: datetime,
         now: datetime, *, late: bool = False) -> bool:
    """Record the slot and queue the report's mail in one transaction; False when another
    daemon (or an earlier run) has the slot already."""
    try:
        with transaction(db):
            with savepoint(db):
                run = ReportRun.create(report=schedule.name, slot=slot, started_at=now,
                                       sent_at=now, late=late,
                                       outcome=SENT + (" late" if late else ""))
            data = gather_for(db, desk.settings, schedule, slot, now)
            title = schedule.title + (" (sent late)" if late else "")
            desk.mailer.queue(KIND, None, to=[Recipient("", a) for a in schedule.to],
                              context=context_for(data, title=title,
                                                  desk_name=desk.settings.desk.name,
                                                  desk_address=desk.settings.desk.address))
    except peewee.IntegrityError:
        return False
    log.info("report %s for slot %s queued to %s%s (run #%d)", schedule.name, slot,
             ", ".join(schedule.to), " (late)" if late else "", run.id)
    return True


def gather_for(db: peewee.Database, settings: Settings, schedule: ReportSchedule,
               slot: datetime, now: datetime) -> ReportData:
    """The report's data for the period ending at ``slot``."""
    previous = (ReportRun.select(ReportRun.slot)
                .where(ReportRun.report == schedule.name, ReportRun.slot < slot,
                       ReportRun.outcome.startswith(SENT))
                .order_by(ReportRun.slot.desc()).first())
    start = previous.slot if previous is not None else slot - timedelta(days=1)
    period = Period(start, slot)
    return gather(db, period, now, sla=settings.sla,
                  old_ticket_days=settings.reports.old_ticket_days,
                  incidents=_incidents(settings, schedule.agency), notes=_notes(period),
                  agency=schedule.agency)


def _claim(db: peewee.Database, name: str, slot: datetime, now: datetime, outcome: str) -> bool:
    try:
        with transaction(db):
            with savepoint(db):
                ReportRun.create(report=name, slot=slot, started_at=now, outcome=outcome)
    except peewee.IntegrityError:
        return False
    return True


def _incidents(settings: Settings, agency: str | None) -> list[IncidentLine]:
    """The outages not yet resolved, oldest first, with their figures; a report for one agency
    lists those for all users, those whose scope names it and those with its tickets."""
    lines = []
    for outage in (Outage.select().where(Outage.state.in_(OutageState.current()))
                   .order_by(Outage.opened_at, Outage.number).limit(50)):
        figures = impact(outage, settings)
        if agency and outage.agencies and fold(agency) not in {
                fold(name) for name in [*outage.agencies, *(n for n, _ in figures.agencies)]}:
            continue
        lines.append(IncidentLine(
            outage.number, outage.title, figures.users, outage.opened_at,
            tickets=figures.tickets, open_tickets=figures.open_tickets,
            channels=tuple(Count(n, c) for n, c in figures.channels if c),
            agencies=tuple(Count(n, c) for n, c in figures.agencies), reach=figures.reach,
            applications=tuple(outage.applications or ()), state=outage.state))
    return lines


def _notes(period: Period) -> list[NoteLine]:
    query = (Message.select(Message.sender, Message.created_at, Message.subject, Message.body)
             .where(Message.decision == "report_note", Message.created_at >= period.start,
                    Message.created_at < period.end)
             .order_by(Message.created_at).limit(100))
    return [NoteLine(m.sender, m.created_at, m.subject, m.body[:4000]) for m in query]


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"
