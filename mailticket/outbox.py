"""Queueing outgoing mail: rendered and stored in the caller's transaction, delivered later by
the one sender (``sender.py``). A relay outage delays mail; it never loses it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import jinja2
import peewee

from mailticket.config import Settings
from mailticket.db import Prepared
from mailticket.errors import TemporaryFailure
from mailticket.mail import tokens
from mailticket.mail.compose import (
    Composer,
    Recipient,
    build_message,
    deliverable,
    subject_with_tag,
    ticket_tag,
)
from mailticket.mail.kinds import CAPPED_KINDS, MAIL_KINDS, STAFF_KINDS, Audience
from mailticket.models import Outbox, Ticket, thread_key, utcnow
from mailticket.portal.links import Links
from mailticket.vocabulary import OutboxStatus

log = logging.getLogger(__name__)

# Automatic mail in the last hour, to one recipient and desk-wide (one marker per capped kind).
_N = len(CAPPED_KINDS)
_RECENT_TO = Prepared(lambda *p: Outbox.select(peewee.fn.COUNT(Outbox.id)).where(
    Outbox.kind.in_(list(p[:_N])) & (Outbox.created_at >= p[_N]) & (Outbox.status != p[_N + 1])
    & (Outbox.primary_recipient == p[_N + 2])), _N + 3)
_RECENT_ALL = Prepared(lambda *p: Outbox.select(peewee.fn.COUNT(Outbox.id)).where(
    Outbox.kind.in_(list(p[:_N])) & (Outbox.created_at >= p[_N]) & (Outbox.status != p[_N + 1])),
    _N + 2)


class Mailer:
    """Renders a kind of mail for a ticket and puts it in the outbox."""

    def __init__(self, settings: Settings, db: peewee.Database, composer: Composer,
                 clock: Callable[[], datetime] = utcnow, links: Links | None = None):
        self.settings = settings
        # With the portal on, every mail to users about a ticket carries each recipient's own
        # link to it, so each recipient gets a copy of their own (the same To and Cc headers).
        self.links = links
        self.db = db
        self.composer = composer
        self.clock = clock
        self.desk = Recipient(settings.desk.name, settings.desk.address)
        self.domain = settings.desk.address.rpartition("@")[2]
        # How many rows this mailer has queued (the sender is woken when it grows); intake
        # threads and the scheduler queue at once, hence the lock.
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._thread_key: bytes | None = None
        self._breaker_logged_at: datetime | None = None

    @property
    def queued(self) -> int:
        with self._queued_lock:
            return self._queued

    @property
    def thread_key(self) -> bytes:
        if self._thread_key is None:
            self._thread_key = thread_key(self.db)
        return self._thread_key

    def queue(
        self,
        kind: str,
        ticket: Ticket | None,
        *,
        to: Iterable[Recipient],
        cc: Iterable[Recipient] = (),
        context: dict[str, Any],
        in_reply_to: str | None = None,
        references: Iterable[str] = (),
        auto_reply: bool = False,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> Outbox:
        """Render and queue one mail of a kind of ``mail.kinds``. ``auto_reply``: it answers
        incoming mail by itself (an acknowledgement, "reopened" after a user's reply), so the
        caps on such mail apply. With the portal on, mail to users about a ticket is queued as
        one copy per recipient, each with that recipient's ``portal_link``; the first copy
        (the requester's) is returned."""
        spec = MAIL_KINDS[kind]
        to, cc = list(to), list(cc)
        number = ticket.number if ticket is not None else None
        tag = ticket_tag(self.settings.desk.ticket_prefix, number) if number is not None else ""
        full_context = {
            "desk": {"name": self.settings.desk.name, "address": self.settings.desk.address},
            "tag": tag,
            "reopen_window_days": self.settings.desk.reopen_window_days,
            "portal_link": None,
            **context,
        }
        recipients = _unique([deliverable(r.address) for r in to + cc])
        if self.links is None or spec.audience is not Audience.USER or number is None:
            return self._queue_one(kind, ticket, tag, full_context, to, cc, recipients,
                                   in_reply_to, references, auto_reply, attachments)
        rows = [self._queue_one(kind, ticket, tag,
                                {**full_context,
                                 "portal_link": self.links.ticket_link(address, number)},
                                to, cc, [address], in_reply_to, references, auto_reply,
                                attachments)
                for address in recipients]
        return rows[0]

    def _queue_one(self, kind: str, ticket: Ticket | None, tag: str, context: dict[str, Any],
                   to: list[Recipient], cc: list[Recipient], recipients: list[str],
                   in_reply_to: str | None, references: Iterable[str], auto_reply: bool,
                   attachments: Sequence[tuple[str, str, bytes]]) -> Outbox:
        spec = MAIL_KINDS[kind]
        number = ticket.number if ticket is not None else None
        try:
            rendered = self.composer.render(kind, context)
        except jinja2.TemplateError as exc:
            # The admin's template, not the message, is at fault: nothing is recorded, and the
            # source keeps the mail until the template is fixed (check-config tells how).
            raise TemporaryFailure(f"template {kind} cannot be rendered: {exc}") from exc
        message_id = tokens.message_id(self.thread_key, self.domain, number)
        comment = self.settings.desk.comment_address
        content = build_message(
            rendered, sender=self.desk, to=to, cc=cc, message_id=message_id, tag=tag,
            ticket=number, in_reply_to=in_reply_to, references=references,
            automated=spec.automated,
            reply_to=Recipient(f"{self.settings.desk.name} (internal note)", comment)
            if comment and kind in STAFF_KINDS else None,
            attachments=attachments,
        )
        status: OutboxStatus = OutboxStatus.PENDING
        reason: str | None = None
        if auto_reply:
            status, reason = self._cap_check(recipients)
        row = Outbox.create(
            ticket=ticket, kind=kind, envelope_from=self.settings.desk.address,
            recipients=recipients, primary_recipient=recipients[0] if recipients else "",
            message_id=message_id, subject=subject_with_tag(rendered.subject, tag),
            content=content, status=status, next_attempt_at=self.clock(), last_error=reason,
            created_at=self.clock(),
        )
        if status == OutboxStatus.HELD:
            log.warning("outbox #%d held: %s", row.id, reason)
        else:
            with self._queued_lock:
                self._queued += 1
        return row

    def _cap_check(self, recipients: list[str]) -> tuple[OutboxStatus, str | None]:
        limits = self.settings.limits
        db, held = self.db, OutboxStatus.HELD
        now = self.clock()
        since = now - timedelta(hours=1)
        for address in recipients:
            recent = _RECENT_TO.first(db, *CAPPED_KINDS, since, held, address)[0]
            if recent >= limits.auto_replies_per_recipient_per_hour:
                return held, (f"cap: {recent} automatic mails to {address} in the last hour "
                              "(limits.auto_replies_per_recipient_per_hour is "
                              f"{limits.auto_replies_per_recipient_per_hour})")
        recent = _RECENT_ALL.first(db, *CAPPED_KINDS, since, held)[0]
        if recent >= limits.auto_replies_per_hour:
            self._breaker_tripped(now, recent)
            return held, (f"desk-wide breaker: {recent} automatic mails in the last hour "
                          f"(limits.auto_replies_per_hour is {limits.auto_replies_per_hour})")
        return OutboxStatus.PENDING, None

    def _breaker_tripped(self, now: datetime, recent: int) -> None:
        """Tell the desk when the breaker trips: in the log (once a minute from this process)
        and by one mail to alerts_to an hour (counted in the outbox, so across restarts)."""
        limit = self.settings.limits.auto_replies_per_hour
        if self._breaker_logged_at is None or now - self._breaker_logged_at >= timedelta(minutes=1):
            self._breaker_logged_at = now
            log.error("desk-wide breaker: %d automatic mails in the last hour (limit %d); new "
                      "ones are held (mailticket outbox list)", recent, limit)
        if not self.settings.desk.alerts_to:
            return
        if Outbox.select().where(Outbox.kind == "breaker",
                                 Outbox.created_at >= now - timedelta(hours=1)).exists():
            return
        self.queue("breaker", None, to=[Recipient("", a) for a in self.settings.desk.alerts_to],
                   context={"recent": recent, "limit": limit, "ticket": None})


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item.lower(), None)
    return list(seen)

