"""The desk's read-only queries: those the command line shows, and the "awaiting first response"
condition that the CLI, the SLA job and the status report all narrow.

Nothing here writes or opens a transaction: the caller reads inside its own, or in none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from mailticket.models import Attachment, Event, Message, Outbox, Quarantine, ReportRun, Ticket
from mailticket.vocabulary import OutboxStatus, QuarantineStatus, TicketStatus

__all__ = ["History", "TicketFilter", "awaiting_first_response", "history", "last_report_run",
           "outbox_rows", "quarantined", "tickets"]


def awaiting_first_response() -> peewee.Expression:
    """Tickets the desk still owes a first response: none given yet, new or open, and with a
    first-response target. The SLA job, ``ticket list --overdue/--due-within`` and the status
    report's SLA table all narrow this further."""
    return (Ticket.first_response_at.is_null()
            & Ticket.status.in_(TicketStatus.awaiting_response())
            & Ticket.response_due_at.is_null(False))


# --- tickets ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TicketFilter:
    """What a ticket list is narrowed by (``ticket list``); a field left empty does not narrow.

    ``agents`` are agent addresses; ``agency`` matches in any case; ``overdue`` and
    ``due_within`` take only tickets awaiting their first response.
    """

    status: str | None = None
    group: str | None = None
    agents: Sequence[str] = ()
    agency: str | None = None
    channel: str | None = None
    overdue: bool = False
    due_within: timedelta | None = None
    older_than_days: int | None = None
    limit: int = 100

    @property
    def narrowed(self) -> bool:
        """Whether anything besides the status narrows the list."""
        return bool(self.group or self.agents or self.agency or self.channel or self.overdue
                    or self.due_within is not None or self.older_than_days is not None)


def tickets(wanted: TicketFilter, now: datetime) -> list[Ticket]:
    """The tickets ``wanted`` picks as at ``now``, newest first, at most ``wanted.limit``
    (and at least one)."""
    query = Ticket.select().order_by(Ticket.number.desc()).limit(max(1, wanted.limit))
    for condition in _conditions(wanted, now):
        query = query.where(condition)
    return list(query)


def _conditions(wanted: TicketFilter, now: datetime) -> Iterator[peewee.Expression]:
    if wanted.status:
        yield Ticket.status == wanted.status
    if wanted.group:
        yield Ticket.group == wanted.group
    if wanted.agents:
        yield Ticket.agent.in_(list(wanted.agents))
    if wanted.agency:
        yield peewee.fn.LOWER(Ticket.agency) == wanted.agency.lower()
    if wanted.channel:
        yield Ticket.channel == wanted.channel
    if wanted.overdue:
        yield awaiting_first_response() & (Ticket.response_due_at <= now)
    if wanted.due_within is not None:
        yield (awaiting_first_response() & (Ticket.response_due_at > now)
               & (Ticket.response_due_at <= now + wanted.due_within))
    if wanted.older_than_days is not None:
        yield Ticket.created_at < now - timedelta(days=wanted.older_than_days)


@dataclass(frozen=True)
class History:
    """A ticket's messages (in, out and notes) and events, each in the order it was recorded,
    with each message's attachments."""

    messages: list[Message]
    events: list[Event]
    attachments: dict[int, list[Attachment]]

    def attachments_of(self, message: Message) -> list[Attachment]:
        return self.attachments.get(message.id, [])

    def timeline(self) -> list[Message | Event]:
        """Messages and events in the order they happened; at the same moment, messages first."""
        entries: list[tuple[datetime, int, Message | Event]] = [
            (m.created_at, 0, m) for m in self.messages]
        entries += [(e.at, 1, e) for e in self.events]
        entries.sort(key=lambda entry: (entry[0] or datetime.min, entry[1]))
        return [item for _, _, item in entries]


def history(ticket: Ticket) -> History:
    """The messages, attachments and events of ``ticket`` (``ticket show``)."""
    messages = list(Message.select().where(Message.ticket == ticket).order_by(Message.id))
    attachments: dict[int, list[Attachment]] = {}
    for a in Attachment.select().where(Attachment.message.in_([m.id for m in messages])):
        attachments.setdefault(a.message_id, []).append(a)
    events = list(Event.select().where(Event.ticket == ticket).order_by(Event.id))
    return History(messages, events, attachments)


# --- quarantine, outbox, report runs ----------------------------------------------------------

def quarantined(include_released: bool = False) -> list[Quarantine]:
    """Quarantined messages, oldest first, without their raw bytes: the held ones, or all."""
    query = Quarantine.select(Quarantine.id, Quarantine.source, Quarantine.source_key,
                              Quarantine.error, Quarantine.status, Quarantine.created_at,
                              Quarantine.message_id, Quarantine.ticket).order_by(Quarantine.id)
    if not include_released:
        query = query.where(Quarantine.status == QuarantineStatus.HELD)
    return list(query)


def outbox_rows(statuses: Sequence[OutboxStatus]) -> list[Outbox]:
    """Outgoing mail in one of ``statuses``, oldest first, without its rendered bytes."""
    return list(Outbox.select(Outbox.id, Outbox.kind, Outbox.ticket, Outbox.recipients,
                              Outbox.status, Outbox.attempts, Outbox.next_attempt_at,
                              Outbox.last_error, Outbox.subject, Outbox.bounced)
                .where(Outbox.status.in_(list(statuses))).order_by(Outbox.id))


def last_report_run(report: str) -> ReportRun | None:
    """The latest recorded run of the status report named ``report``, whatever its outcome."""
    return (ReportRun.select().where(ReportRun.report == report)
            .order_by(ReportRun.slot.desc()).first())
