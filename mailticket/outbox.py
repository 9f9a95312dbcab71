"""Queueing outgoing mail: rendered and stored in the caller's transaction, delivered later by
the one sender (``sender.py``). A relay outage delays mail; it never loses it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import jinja2
import peewee

from mailticket.config import Settings
from mailticket.db import Prepared
from mailticket.errors import TemporaryFailure
from mailticket.mail.compose import (Composer, Recipient, build_message, deliverable,
                                     new_message_id, subject_with_tag, ticket_tag)
from mailticket.models import Outbox, Ticket, utcnow

log = logging.getLogger(__name__)

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
HELD = "held"

_RECENT_TO = Prepared(lambda kind, since, held, address: Outbox.select(
    peewee.fn.COUNT(Outbox.id)).where(
        (Outbox.kind == kind) & (Outbox.created_at >= since) & (Outbox.status != held)
        & (Outbox.primary_recipient == address)), 4)

# Mail that answers mail automatically: rate-limited per recipient, marked Auto-Submitted.
RATE_LIMITED_KINDS = frozenset({"ack"})


class Mailer:
    """Renders a kind of mail for a ticket and puts it in the outbox."""

    def __init__(self, settings: Settings, composer: Composer,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.composer = composer
        self.clock = clock
        self.desk = Recipient(settings.desk.name, settings.desk.address)
        self.domain = settings.desk.address.rpartition("@")[2]
        self.queued = 0  # how many rows this mailer has queued; the sender is woken when it grows

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
        automated: bool = True,
    ) -> Outbox:
        to, cc = list(to), list(cc)
        number = ticket.number if ticket is not None else None
        tag = ticket_tag(self.settings.desk.ticket_prefix, number) if number is not None else ""
        full_context = {
            "desk": {"name": self.settings.desk.name, "address": self.settings.desk.address},
            "tag": tag,
            "reopen_window_days": self.settings.desk.reopen_window_days,
            **context,
        }
        try:
            rendered = self.composer.render(kind, full_context)
        except jinja2.TemplateError as exc:
            # The admin's template, not the message, is at fault: nothing is recorded, and the
            # source keeps the mail until the template is fixed (check-config tells how).
            raise TemporaryFailure(f"template {kind} cannot be rendered: {exc}") from exc
        message_id = new_message_id(self.domain, number)
        content = build_message(
            rendered, sender=self.desk, to=to, cc=cc, message_id=message_id, tag=tag,
            ticket=number, in_reply_to=in_reply_to, references=references, automated=automated,
        )
        recipients = _unique([deliverable(r.address) for r in to + cc])
        status, reason = PENDING, None
        if kind in RATE_LIMITED_KINDS:
            status, reason = self._rate_check(kind, recipients)
        row = Outbox.create(
            ticket=ticket, kind=kind, envelope_from=self.settings.desk.address,
            recipients=recipients, primary_recipient=recipients[0] if recipients else "",
            message_id=message_id, subject=subject_with_tag(rendered.subject, tag),
            content=content, status=status, next_attempt_at=self.clock(), last_error=reason,
            created_at=self.clock(),
        )
        if status == HELD:
            log.warning("outbox #%d held: %s", row.id, reason)
        else:
            self.queued += 1
        return row

    def _rate_check(self, kind: str, recipients: list[str]) -> tuple[str, str | None]:
        limit = self.settings.limits.acks_per_sender_per_hour
        since = self.clock() - timedelta(hours=1)
        for address in recipients:
            recent = _RECENT_TO.first(Outbox._meta.database, kind, since, HELD, address)[0]
            if recent >= limit:
                return HELD, (f"rate limit: {recent} {kind} mails to {address} in the last hour "
                              f"(limits.acks_per_sender_per_hour is {limit})")
        return PENDING, None


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item.lower(), None)
    return list(seen)

