"""The desk's timed jobs: SLA warnings and breach alerts, and closing resolved tickets nobody
answered. Each job is a function of the moment it runs "as at", so the scheduler, the command
line (``jobs run NAME --at ...``) and the tests run the same code with no sleeping; the table of
jobs is ``mailticket.jobs``.

Each job is safe to run twice, or from two daemons at once: a ticket is locked (PostgreSQL) and
its state decides (``sla_warned_at``, ``sla_breached_at``, status ``resolved``) before anything
is sent, inside one transaction per ticket.
"""

from __future__ import annotations

import logging
from datetime import datetime

import peewee

from mailticket.db import transaction
from mailticket.desk.core import ticket_context
from mailticket.desk.queries import awaiting_first_response
from mailticket.desk.tickets import Desk
from mailticket.mail.compose import Recipient
from mailticket.models import Ticket
from mailticket.vocabulary import SYSTEM_ACTOR, TicketStatus

log = logging.getLogger(__name__)


def sla_check(desk: Desk, db: peewee.Database, now: datetime) -> str:
    """Warn a ticket's group when its first response is nearly due (sla.warn_before, in business
    time); alert the service lead (the level 3 groups, else desk.alerts_to) once it is overdue."""
    sla = desk.settings.sla
    # Only tickets that need something now, so a quiet minute takes no write lock: overdue,
    # or not yet warned and due within warn_before of business time. A due time inside the
    # closed hours after that point still has only warn_before left, hence next_open.
    warn_until = sla.calendar.next_open(sla.calendar.add(now, sla.warn_before))
    waiting = (Ticket.select(Ticket.number)
               .where(awaiting_first_response(), Ticket.sla_breached_at.is_null(),
                      (Ticket.response_due_at <= now)
                      | (Ticket.sla_warned_at.is_null()
                         & (Ticket.response_due_at <= warn_until)))
               .order_by(Ticket.response_due_at))
    warned = breached = 0
    for (number,) in list(waiting.tuples()):
        with transaction(db):
            ticket = desk.get(number)
            if (ticket.first_response_at is not None or ticket.status not in TicketStatus.awaiting_response()
                    or ticket.sla_breached_at is not None):
                continue
            due = ticket.response_due_at
            if now >= due:
                _breach(desk, ticket, now)
                breached += 1
            elif (ticket.sla_warned_at is None
                  and sla.calendar.between(now, due) <= sla.warn_before):
                _warn(desk, ticket, now)
                warned += 1
    return f"{warned} warned, {breached} overdue"


def _warn(desk: Desk, ticket: Ticket, now: datetime) -> None:
    ticket.sla_warned_at = now
    ticket.save()
    group = desk.settings.process.group(ticket.group or "")
    to = group.recipients if group else desk.settings.desk.alerts_to
    desk._event(ticket, SYSTEM_ACTOR, "sla_warning",
                f"first response due {ticket.response_due_at:%Y-%m-%d %H:%M} UTC")
    if to:
        desk.mailer.queue("sla_warning", ticket, to=[Recipient("", a) for a in to],
                          context={"ticket": ticket_context(ticket)})


def _breach(desk: Desk, ticket: Ticket, now: datetime) -> None:
    ticket.sla_breached_at = now
    ticket.sla_warned_at = ticket.sla_warned_at or now
    ticket.save()
    process = desk.settings.process
    lead = [a for g in process.groups if g.level == 3 for a in g.recipients]
    to = lead or list(desk.settings.desk.alerts_to)
    desk._event(ticket, SYSTEM_ACTOR, "sla_breach",
                f"no first response by {ticket.response_due_at:%Y-%m-%d %H:%M} UTC")
    log.warning("ticket #%d: first response overdue (due %s)", ticket.number,
                ticket.response_due_at)
    if to:
        desk.mailer.queue("sla_breach", ticket, to=[Recipient("", a) for a in dict.fromkeys(to)],
                          context={"ticket": ticket_context(ticket)})


def auto_close(desk: Desk, db: peewee.Database, now: datetime) -> str:
    """Close resolved tickets whose requester did not answer within sla.verify_close_after
    (business time); the user gets "Ticket #N has been closed"."""
    sla = desk.settings.sla
    wait = sla.calendar.business_time(sla.verify_close_after)
    closed = 0
    candidates = (Ticket.select(Ticket.number, Ticket.resolved_at)
                  .where(Ticket.status == TicketStatus.RESOLVED, Ticket.resolved_at.is_null(False))
                  .order_by(Ticket.resolved_at))
    for number, resolved_at in list(candidates.tuples()):
        if sla.calendar.between(resolved_at, now) < wait:
            continue
        with transaction(db):
            ticket = desk.get(number)
            if ticket.status != TicketStatus.RESOLVED:
                continue
            desk.close(number, SYSTEM_ACTOR, ticket.resolution or "resolved; no reply from the user")
            closed += 1
    return f"{closed} closed"
