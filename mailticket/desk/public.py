"""What a user may see of the desk (the portal's reads): the tickets an address is on, a
ticket's public timeline, and the outages everyone may see (the banner and the status page).
Never internal notes, notes from the comment address, unverified outsiders' mail, automated
mail, staff notifications, agent-only events, agents' addresses, or an outage's internal log
or tickets.

Read-only; the caller owns the transaction. Every read takes the viewer's address and answers
None for a ticket the address is not on, exactly as for one that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee

from mailticket.db import Prepared
from mailticket.desk.core import view
from mailticket.models import Attachment, Event, Message, Outage, Ticket
from mailticket.vocabulary import Direction, OutageState, TicketStatus

_LIST_LIMIT = 500
RESOLVED_SHOWN = timedelta(hours=24)  # a resolved outage stays on the portal this long


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


_TICKET = Prepared(lambda n: Ticket.select(*Ticket._meta.sorted_fields).where(
    Ticket.number == n), 1)


def visible_ticket(number: int, address: str) -> Ticket | None:
    """The ticket, when ``address`` is its requester or one of its Cc's; else None."""
    if not 0 < number < 2 ** 31:
        return None
    row = _TICKET.first(Ticket._meta.database, number)
    if row is None:
        return None
    fields = Ticket._meta.sorted_fields
    ticket = Ticket(**{f.name: f.python_value(value) for f, value in zip(fields, row)})
    ticket._dirty.clear()
    return ticket if view(ticket).involves(address) else None


def tickets_of(address: str, only: frozenset[int] | None = None) -> list[Ticket]:
    """The tickets ``address`` is on, newest first (``only``: of these numbers)."""
    address = address.lower()
    query = Ticket.select().where(
        (peewee.fn.LOWER(Ticket.requester) == address) | _cc_holds(address))
    if only is not None:
        query = query.where(Ticket.number.in_(sorted(only)))
    found = query.order_by(Ticket.number.desc()).limit(_LIST_LIMIT)
    return [t for t in found if view(t).involves(address)]


# The timeline's three reads, prepared once (db.Prepared): a ticket page is the portal's
# busiest request, and building the SQL cost more than running it.
_MESSAGES = Prepared(lambda t, a, b: Message.select(
    Message.id, Message.direction, Message.sender, Message.sender_name, Message.body,
    Message.created_at, Message.verdict).where(
        (Message.ticket == t) & Message.direction.in_([a, b])).order_by(Message.id), 3)
_FILES = Prepared(lambda t: Attachment.select(
    Attachment.id, Attachment.message, Attachment.filename, Attachment.content_type,
    Attachment.size).join(Message).where(Message.ticket == t).order_by(Attachment.id), 1)
_STATUS_EVENTS = Prepared(lambda t, k: Event.select(Event.at, Event.detail).where(
    (Event.ticket == t) & (Event.kind == k)).order_by(Event.id), 2)


def timeline(ticket: Ticket, viewer: str, desk_name: str) -> PublicTicket:
    viewer = viewer.lower()
    db = Ticket._meta.database
    on_ticket = view(ticket).involves
    when = Message.created_at.python_value
    public: dict[int, tuple] = {}
    for row in _MESSAGES.execute(db, ticket.number, Direction.IN, Direction.OUT):
        direction, sender, verdict = row[1], row[2], row[6]
        if direction == Direction.OUT or (verdict == "human" and on_ticket(sender)):
            public[row[0]] = row
    files: dict[int, list[PublicFile]] = {}
    for file_id, message_id, filename, content_type, size in _FILES.execute(db, ticket.number):
        if message_id in public:
            files.setdefault(message_id, []).append(
                PublicFile(file_id, filename, content_type, size))
    entries: list[Entry] = []
    for message_id, direction, sender, sender_name, body, created_at, _verdict in public.values():
        attached = tuple(files.get(message_id, ()))
        if direction == Direction.OUT:
            entries.append(Entry("out", when(created_at), desk_name, body, files=attached))
        else:
            mine = sender.lower() == viewer
            entries.append(Entry("in", when(created_at), "You" if mine else (sender_name or sender),
                                 body, mine=mine, files=attached))
    for at, detail in _STATUS_EVENTS.execute(db, ticket.number, "status"):
        new = _new_status(detail)
        if new is not None:
            entries.append(Entry("status", Event.at.python_value(at), desk_name, new))
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


def _cc_holds(address: str) -> peewee.Expression:
    """Tickets whose Cc's (a JSON list, stored as text) name ``address``: a LIKE for the string
    as the list stores it, with its own wildcards escaped. (``Field.contains`` would put an
    address with no "_" or "%" through the JSON field's converter, which quotes the pattern
    itself: no Cc was ever found.) Callers still check membership exactly."""
    needle = json.dumps(address, ensure_ascii=False)  # as models.JSONField writes each item
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return peewee.Expression(Ticket.cc, peewee.OP.ILIKE, peewee.NodeList((
        peewee.Value(pattern, converter=False), peewee.SQL("ESCAPE"),
        peewee.Value("\\", converter=False))))


@dataclass(frozen=True)
class PublicOutage:
    """An outage as everyone may see it: what is down, for which applications, what the desk
    tells users (the resolution, once it is fixed), and when. Never its internal log, its
    tickets, its scope's users or who worked on it."""

    number: int
    title: str
    applications: tuple[str, ...]
    text: str
    state: str       # vocabulary.OutageState
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    @property
    def fixed(self) -> bool:
        return self.state != OutageState.OPEN


_OUTAGES = Prepared(lambda none, a, b, c, since, most: Outage.select(
    Outage.number, Outage.title, Outage.applications, Outage.public_text, Outage.resolution,
    Outage.state, Outage.opened_at, Outage.updated_at, Outage.resolved_at).where(
        (Outage.public_text != none)
        & (Outage.state.in_([a, b]) | ((Outage.state == c) & (Outage.resolved_at >= since))))
    .order_by(Outage.opened_at.desc(), Outage.number.desc()).limit(most), 6)


def outages(now: datetime) -> list[PublicOutage]:
    """The outages the portal shows at ``now`` (the desk's clock): those open or being resolved,
    then those resolved within ``RESOLVED_SHOWN``; the newest first in each.

    Only those with a public text: that text is the desk telling users, and until it does,
    nothing of the outage is public (its title may be a user's subject: one opened from a
    ticket takes it). Resolving or resolved, the text shown is the resolution."""
    found = []
    columns = (Outage.number, Outage.title, Outage.applications, Outage.public_text,
               Outage.resolution, Outage.state, Outage.opened_at, Outage.updated_at,
               Outage.resolved_at)
    for row in _OUTAGES.execute(Outage._meta.database, "", OutageState.OPEN,
                                OutageState.RESOLVING, OutageState.RESOLVED,
                                now - RESOLVED_SHOWN, 50):
        (number, title, applications, public_text, resolution, state, opened_at, updated_at,
         resolved_at) = (f.python_value(v) for f, v in zip(columns, row))
        text = public_text if state == OutageState.OPEN else (resolution or public_text)
        found.append(PublicOutage(number, title, tuple(applications or ()), text, state,
                                  opened_at, updated_at, resolved_at))
    found.sort(key=lambda o: o.state == OutageState.RESOLVED)  # stable: newest first in each
    return found
