"""What a user may see of the desk (the portal's reads): the tickets an address is on, and a
ticket's public timeline. Never internal notes, notes from the comment address, unverified
outsiders' mail, automated mail, staff notifications, agent-only events, or agents' addresses.

Read-only; the caller owns the transaction. Every read takes the viewer's address and answers
None for a ticket the address is not on, exactly as for one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import peewee

from mailticket.desk.core import view
from mailticket.models import Attachment, Event, Message, Ticket
from mailticket.vocabulary import Direction, TicketStatus

_LIST_LIMIT = 500


@dataclass(frozen=True)
class PublicFile:
    id: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One step of the public timeline: a message (``kind`` "in" from a user, "out" from the
    desk) or a status change ("status")."""

    kind: str
    at: datetime
    who: str
    text: str = ""
    mine: bool = False
    files: tuple[PublicFile, ...] = ()


@dataclass(frozen=True)
class PublicTicket:
    ticket: Ticket
    entries: tuple[Entry, ...] = field(default=())

    @property
    def number(self) -> int:
        return self.ticket.number


def visible_ticket(number: int, address: str) -> Ticket | None:
    """The ticket, when ``address`` is its requester or one of its Cc's; else None."""
    if not 0 < number < 2 ** 31:
        return None
    ticket = Ticket.get_or_none(Ticket.number == number)
    if ticket is None or not view(ticket).involves(address):
        return None
    return ticket


def tickets_of(address: str, only: frozenset[int] | None = None) -> list[Ticket]:
    """The tickets ``address`` is on, newest first (``only``: of these numbers)."""
    address = address.lower()
    # Cc's are a JSON list: LIKE finds candidates, the exact check keeps only real members.
    query = Ticket.select().where(
        (peewee.fn.LOWER(Ticket.requester) == address)
        | Ticket.cc.contains(f'"{_like_safe(address)}"'))
    if only is not None:
        query = query.where(Ticket.number.in_(sorted(only)))
    found = query.order_by(Ticket.number.desc()).limit(_LIST_LIMIT)
    return [t for t in found if view(t).involves(address)]


def timeline(ticket: Ticket, viewer: str, desk_name: str) -> PublicTicket:
    viewer = viewer.lower()
    on_ticket = view(ticket)
    messages = list(Message.select().where(Message.ticket == ticket,
                                           Message.direction.in_([Direction.IN, Direction.OUT]))
                    .order_by(Message.id))
    files: dict[int, list[PublicFile]] = {}
    entries: list[Entry] = []
    public_ids = [m.id for m in messages if _public(m, on_ticket.involves)]
    for row in (Attachment.select().where(Attachment.message.in_(public_ids))
                .order_by(Attachment.id) if public_ids else ()):
        files.setdefault(row.message_id, []).append(
            PublicFile(row.id, row.filename, row.content_type, row.size))
    for m in messages:
        if not _public(m, on_ticket.involves):
            continue
        at = m.created_at
        if m.direction == Direction.OUT:
            entries.append(Entry("out", at, desk_name, m.body, files=tuple(files.get(m.id, ()))))
        else:
            mine = m.sender.lower() == viewer
            entries.append(Entry("in", at, "You" if mine else (m.sender_name or m.sender),
                                 m.body, mine=mine, files=tuple(files.get(m.id, ()))))
    for event in Event.select().where(Event.ticket == ticket, Event.kind == "status"):
        new = _new_status(event.detail)
        if new is not None:
            entries.append(Entry("status", event.at, desk_name, new))
    entries.sort(key=lambda e: e.at)
    return PublicTicket(ticket, tuple(entries))


def public_file(ticket: Ticket, attachment_id: int) -> Attachment | None:
    """An attachment of a public message of ``ticket``; None for any other."""
    row = (Attachment.select(Attachment, Message).join(Message)
           .where(Attachment.id == attachment_id, Message.ticket == ticket).first())
    if row is None or not _public(row.message, view(ticket).involves):
        return None
    return row


def _public(message: Message, on_ticket) -> bool:
    """The desk's mail to the user, and human mail from people on the ticket."""
    if message.direction == Direction.OUT:
        return True
    return (message.direction == Direction.IN and message.verdict == "human"
            and on_ticket(message.sender))


def _new_status(detail: str) -> str | None:
    """"open -> resolved: ..." -> "resolved"; the detail's free text is the desk's own."""
    head = detail.split(":", 1)[0]
    _, arrow, new = head.partition(" -> ")
    new = new.strip()
    return new if arrow and new in set(TicketStatus) else None


def _like_safe(text: str) -> str:
    """Wildcards only widen the candidates ("_" matches itself too); the exact check follows."""
    return text.replace("%", "").replace('"', "")
