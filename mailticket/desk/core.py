"""What every desk operation stands on: the ticket row locked for the change, messages recorded
with their attachments, events in the history, status changes, and the values mail about a
ticket is addressed and threaded with.

Called inside the caller's transaction (the intake pipeline, a CLI command, a job); it never
commits.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import peewee

from mailticket.config import Settings
from mailticket.desk.views import TicketView
from mailticket.errors import InvalidRequest, UnknownTicket
from mailticket.mail.classify import Verdict
from mailticket.mail.compose import Recipient
from mailticket.mail.parse import ParsedMail
from mailticket.models import Attachment, Event, Message, Outage, Outbox, Ticket, utcnow
from mailticket.outbox import Mailer
from mailticket.storage import Store
from mailticket.vocabulary import SYSTEM_ACTOR, Channel, Direction, TicketStatus

log = logging.getLogger(__name__)

_D = TypeVar("_D", bound="DeskCore")


@dataclass(frozen=True)
class Arrival:
    """A mail from intake with what was decided about it, as the desk records it."""

    mail: ParsedMail
    verdict: Verdict
    decision: str          # the routing action, recorded on the message
    reason: str            # why, recorded in the ticket's history
    raw_sha256: str | None
    source: str

    @property
    def actor(self) -> str:
        return self.mail.sender.address if self.mail.sender else "(unknown sender)"


def view(ticket: Ticket) -> TicketView:
    return TicketView(number=ticket.number, status=ticket.status, requester=ticket.requester,
                      cc=frozenset(a.lower() for a in ticket.cc or ()), closed_at=ticket.closed_at)


class DeskCore:
    """The desk's state (settings, database, mailer, store, clock) and its shared steps."""

    def __init__(self, settings: Settings, db: peewee.Database, mailer: Mailer, store: Store,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.db = db
        self.mailer = mailer
        self.store = store
        self.clock = clock
        self.own_addresses = settings.desk.own_addresses

    def as_at(self: _D, now: datetime) -> _D:
        """This desk with its clock stopped at ``now``, for a job run "as at" another time:
        what it changes is dated ``now``. A copy, so the desk intake uses meanwhile keeps the
        real time; the mailer is shared (mail is due when it is queued)."""
        frozen = copy.copy(self)
        frozen.clock = lambda: now
        return frozen

    def get(self, number: int) -> Ticket:
        """The ticket, locked until the transaction ends (PostgreSQL: SELECT ... FOR UPDATE;
        SQLite's write transactions are serial already), so two agents closing it at once, or
        an agent and an incoming reply, act one after the other on what the other did."""
        found = self._locked(number)
        if found is None:
            raise UnknownTicket(number)
        return found

    def _locked(self, number: int) -> Ticket | None:
        return self._locked_row(Ticket.number, number)

    def _locked_row(self, key: peewee.Field, number: int) -> Any:
        """The row whose ``key`` is ``number``, locked until the transaction ends; None when
        there is none (or the number is out of range)."""
        if not 0 < number < 2 ** 31:  # PostgreSQL's serial; no desk gets near it
            return None
        query = key.model.select().where(key == number)
        if self.db.for_update:  # PostgreSQL; SQLite has no row locks (nor needs them)
            query = query.for_update()
        return query.first()

    def _new_ticket(self, subject: str, requester: str, requester_name: str, cc: list[str],
                    linked_to: Ticket | None = None, channel: Channel = Channel.EMAIL) -> Ticket:
        now = self.clock()
        sla = self.settings.sla
        directory = self.settings.directory
        agency = directory.agency_of(requester) if directory is not None else None
        return Ticket.create(subject=subject, status=TicketStatus.NEW, requester=requester,
                             requester_name=requester_name, cc=cc, linked_to=linked_to,
                             group=self.settings.process.new_tickets_to, channel=channel,
                             agency=agency.name if agency else None,
                             response_due_at=sla.calendar.add(now, sla.first_response),
                             created_at=now, updated_at=now)

    def _record(self, arrival: Arrival, ticket: Ticket | None, direction: str = Direction.IN,
                author: str = "", body: str | None = None) -> Message:
        mail = arrival.mail
        message = Message.create(
            ticket=ticket, direction=direction, message_id=mail.message_id, author=author,
            sender=mail.sender.address if mail.sender else "",
            sender_name=mail.sender.name if mail.sender else "",
            to=[a.address for a in mail.to][:100], cc=[a.address for a in mail.cc][:100],
            subject=mail.subject, body=mail.body if body is None else body, date=mail.date,
            in_reply_to=mail.in_reply_to[0] if mail.in_reply_to else None,
            references=list(mail.references), verdict=arrival.verdict.kind.value,
            verdict_reason=arrival.verdict.reason, decision=arrival.decision,
            raw_sha256=arrival.raw_sha256, source=arrival.source,
            defects=list(mail.defects) + [f"not kept: {line}" for line in mail.dropped],
            created_at=self.clock(),
        )
        if mail.dropped:
            # Over a limit (limits.*): the ticket says what its message lost; the raw message
            # is kept whole in the store (raw_sha256) for an admin who needs it.
            if ticket is not None:
                for line in mail.dropped:
                    self._event(ticket, SYSTEM_ACTOR, "dropped", line)
            log.warning("message %s: %s", mail.message_id, "; ".join(mail.dropped))
        for part in mail.attachments:
            digest = self.store.put(part.data)
            Attachment.create(message=message, filename=part.filename,
                              content_type=part.content_type, size=part.size, sha256=digest)
        return message

    def _reopen(self, ticket: Ticket, actor: str, text: str, by_mail: bool) -> Outbox:
        ticket.closed_at = None
        self._set_status(ticket, TicketStatus.OPEN, actor,
                         "reopened by reply" if by_mail else excerpt(text))
        self._event(ticket, actor, "reopened", excerpt(text))
        self._touch(ticket)
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "reopened", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": ticket_context(ticket), "text": "" if by_mail else text},
            in_reply_to=in_reply_to, references=references, auto_reply=by_mail,
        )

    def _set_status(self, ticket: Ticket, status: TicketStatus, actor: str, detail: str) -> None:
        old = ticket.status
        ticket.status = status
        ticket.save()
        self._event(ticket, actor, "status", f"{old} -> {status}: {detail}" if detail else
                    f"{old} -> {status}")

    def _touch(self, ticket: Ticket) -> None:
        Ticket.update(updated_at=self.clock()).where(Ticket.number == ticket.number).execute()

    def _event(self, ticket: Ticket, actor: str, kind: str, detail: str = "") -> None:
        Event.create(ticket=ticket, actor=actor, kind=kind, detail=detail, at=self.clock())

    def _requester(self, ticket: Ticket) -> Recipient:
        return Recipient(ticket.requester_name or "", ticket.requester)

    def _cc(self, ticket: Ticket) -> list[Recipient]:
        return [Recipient("", address) for address in ticket.cc or ()]

    def _thread(self, ticket: Ticket) -> tuple[str | None, list[str]]:
        """In-Reply-To and References for mail about a ticket: its first message and its
        latest one from a user, so clients thread our mail with the conversation."""
        ids = [m.message_id for m in Message.select(Message.message_id)
               .where(Message.ticket == ticket, Message.direction == Direction.IN)
               .order_by(Message.id)]
        ids = [i for i in ids if real_id(i)]
        if not ids:
            return None, []
        references = [ids[0]] if ids[0] != ids[-1] else []
        return ids[-1], references


ALL_USERS = "all users"  # the scope of an outage that names no agencies


def outage_context(outage: Outage) -> dict[str, Any]:
    """What the templates see of an outage."""
    return {"number": outage.number, "title": outage.title,
            "applications": list(outage.applications or ()),
            "agencies": list(outage.agencies or ()),
            "scope": scope_text(outage), "public_text": outage.public_text,
            "state": outage.state, "opened_at": outage.opened_at, "opened_by": outage.opened_by,
            "resolution": outage.resolution, "resolved_at": outage.resolved_at}


def scope_text(outage: Outage) -> str:
    return "agencies: " + ", ".join(outage.agencies) if outage.agencies else ALL_USERS


def ticket_context(ticket: Ticket) -> dict[str, object]:
    """What the templates see of a ticket."""
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "resolution": ticket.resolution,
        "created_at": ticket.created_at,
        "group": ticket.group,
        "agent": ticket.agent,
        "channel": ticket.channel,
        "agency": ticket.agency,
        "response_due_at": ticket.response_due_at,
    }


def real_id(message_id: str | None) -> str | None:
    """Message-IDs we made up for mail that had none mean nothing to the user's client."""
    if not message_id or message_id.endswith(".invalid>"):
        return None
    return message_id


def required_text(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequest(f"the {what} text is empty")
    return text


def excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
