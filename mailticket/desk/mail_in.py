"""The desk's side of intake: what each routing action does to the tickets (a new ticket and
its acknowledgement, a follow-up, a reopen, automated mail kept, an unverified note, a bounce
of our mail), and the ticket lookups routing decides on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mailticket.desk.core import Arrival, real_id, ticket_context, view
from mailticket.desk.greeting import greet
from mailticket.desk.spikes import SpikeWatch
from mailticket.desk.views import TicketView
from mailticket.mail.bounces import BounceReport
from mailticket.mail.compose import Recipient
from mailticket.mail.parse import ParsedMail
from mailticket.models import Message, Outbox, Ticket
from mailticket.vocabulary import (
    PORTAL_SOURCE,
    SYSTEM_ACTOR,
    Channel,
    Direction,
    OutboxStatus,
    TicketStatus,
)

log = logging.getLogger(__name__)


class MailIn(SpikeWatch):
    # --- lookups (the route.Lookup protocol) -------------------------------------------------

    def ticket(self, number: int) -> TicketView | None:
        found = self._locked(number)
        return view(found) if found else None

    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> TicketView | None:
        ids = [i for i in message_ids if i][:100]
        if not ids:
            return None
        message = (Message.select(Message.ticket).where(Message.message_id.in_(ids),
                                                          Message.ticket.is_null(False))
                   .order_by(Message.id.desc()).first())
        if message is None:
            message = (Outbox.select(Outbox.ticket).where(Outbox.message_id.in_(ids),
                                                          Outbox.ticket.is_null(False))
                       .order_by(Outbox.id.desc()).first())
        return view(message.ticket) if message else None

    # --- mail in -----------------------------------------------------------------------------

    def open_ticket(self, arrival: Arrival, *, linked_to: int | None = None,
                    unknown_tag: int | None = None, acknowledge: bool = True) -> Message:
        """A new request: the ticket, its first message and (for people) the acknowledgement."""
        mail = arrival.mail
        linked = self.get(linked_to) if linked_to is not None else None
        ticket = self._create(mail, linked_to=linked, channel=Channel.PORTAL
                              if arrival.source == PORTAL_SOURCE else Channel.EMAIL)
        message = self._record(arrival, ticket)
        self._event(ticket, arrival.actor, "created", arrival.reason)
        if linked is not None:
            self._event(ticket, SYSTEM_ACTOR, "linked", f"follows ticket #{linked.number}")
            self._event(linked, SYSTEM_ACTOR, "linked",
                        f"a later message opened ticket #{ticket.number}")
        outage = greet(self, ticket, mail.subject, mail.body)
        if acknowledge:
            self.mailer.queue(
                "ack", ticket, to=[self._requester(ticket)],
                context={"ticket": ticket_context(ticket), "unknown_tag": unknown_tag,
                         "linked_from": linked.number if linked else None,
                         "not_kept": list(mail.dropped), "outage": outage},
                in_reply_to=real_id(mail.message_id),
                references=[r for r in mail.references if real_id(r)],
                auto_reply=True,
            )
        self.watch_for_spike(ticket, mail.body)  # desk/spikes.py: one alert per spike
        return message

    def follow_up(self, number: int, arrival: Arrival) -> Message:
        """A reply on a ticket that is not closed. The requester (or a Cc) answering a resolved
        ticket sends it back to open."""
        ticket = self.get(number)
        message = self._record(arrival, ticket)
        self._event(ticket, arrival.actor, "follow_up", f"message {arrival.mail.message_id}")
        if ticket.status == TicketStatus.RESOLVED and view(ticket).involves(arrival.actor):
            self._set_status(ticket, TicketStatus.OPEN, arrival.actor,
                             "the requester replied to a resolved ticket")
            self._tell_desk(ticket, arrival.actor, "says it is not fixed", arrival.mail.body)
        self._touch(ticket)
        return message

    def reopen_by_mail(self, number: int, arrival: Arrival) -> Message:
        ticket = self.get(number)
        message = self._record(arrival, ticket)
        self._reopen(ticket, arrival.actor, arrival.mail.body.strip()[:2000], by_mail=True)
        self._tell_desk(ticket, arrival.actor, "reopened it", arrival.mail.body)
        return message

    def attach(self, number: int, arrival: Arrival) -> Message:
        """Automated mail about a ticket (an out-of-office reply to our mail...): kept on the
        ticket, nothing else changes and nobody is told."""
        ticket = self.get(number)
        message = self._record(arrival, ticket)
        self._event(ticket, arrival.actor, "automated_mail", arrival.reason)
        return message

    def unverified(self, number: int, arrival: Arrival) -> Message:
        """Mail with the ticket's tag from someone not on it, and no reply to our mail: kept as
        an unverified note. The status does not change, nobody is answered; the desk is told."""
        ticket = self.get(number)
        message = self._record(arrival, ticket, direction=Direction.NOTE)
        self._event(ticket, arrival.actor, "unverified_mail", arrival.reason)
        log.warning("ticket #%d: unverified mail from %s kept as a note", number, arrival.actor)
        if self.settings.desk.alerts_to:
            mail = arrival.mail
            self.mailer.queue(
                "unverified", ticket, to=[Recipient("", a) for a in self.settings.desk.alerts_to],
                context={"ticket": ticket_context(ticket),
                         "sender": f"{mail.sender.name} <{mail.sender.address}>"
                         if mail.sender and mail.sender.name else arrival.actor,
                         "subject": mail.subject, "excerpt": mail.body.strip()[:2000],
                         "reason": "a subject tag only"},
                auto_reply=True,
            )
        return message

    def bounced(self, number: int | None, arrival: Arrival, report: BounceReport) -> Message:
        """A bounce of mail we sent: kept as an internal note on its ticket (never a ticket of
        its own, never answered), and the outbox rows of the mail it names record whom it did
        not reach (only their own recipients: a bounce is not trusted to name others)."""
        ticket = self.get(number) if number is not None else None
        message = self._record(arrival, ticket, direction=Direction.NOTE if ticket
                               else Direction.IN)
        marked = self._mark_bounced(report)
        if ticket is not None:
            delayed = [r.address for r in report.recipients if r.temporary]
            detail = "; ".join(marked) or ("delivery delayed for " + ", ".join(delayed) if delayed
                                           else "a bounce of our mail (recipient not named)")
            self._event(ticket, arrival.actor, "bounce", detail)
        return message

    def _mark_bounced(self, report: BounceReport) -> list[str]:
        """Mark the outbox rows a bounce names; a line for each saying whom it missed."""
        failed = {r.address: r for r in report.permanent}
        if not report.original_ids or not failed:
            return []
        marked: list[str] = []
        for row in Outbox.select().where(Outbox.message_id.in_(list(report.original_ids[:20]))):
            reached_not = [failed[a.lower()] for a in row.recipients if a.lower() in failed]
            if not reached_not:
                continue
            known = {b["recipient"] for b in row.bounced or ()}
            row.bounced = list(row.bounced or ()) + [
                {"recipient": r.address, "status": r.status, "detail": r.detail,
                 "at": self.clock().isoformat(timespec="seconds")}
                for r in reached_not if r.address not in known]
            row.status = OutboxStatus.BOUNCED
            row.last_error = ("bounced: " + "; ".join(
                " ".join(filter(None, (r.address, r.status, r.detail))) for r in reached_not))[:2000]
            row.save()
            marked.append(f"outbox #{row.id} ({row.kind}) did not reach "
                          + ", ".join(r.address for r in reached_not))
            log.warning("outbox #%d bounced: %s", row.id, row.last_error)
        return marked

    def _tell_desk(self, ticket: Ticket, actor: str, what: str, text: str) -> None:
        """A user sent a ticket back to the desk (a reopen, a reply to a resolved ticket): its
        agent is told, or its group when nobody has it. Capped, like every mail incoming mail
        causes by itself."""
        group = self.settings.process.group(ticket.group or "")
        to = [ticket.agent] if ticket.agent else list(group.recipients) if group else []
        if not to:
            return
        self.mailer.queue(
            "user_reopened", ticket, to=[Recipient("", a) for a in to],
            context={"ticket": ticket_context(ticket), "actor": actor, "what": what,
                     "text": text.strip()[:2000]},
            auto_reply=True)

    def keep(self, arrival: Arrival) -> Message:
        """Mail that concerns no ticket and makes none (automated mail, our own, notes for the
        status report): recorded."""
        return self._record(arrival, None)

    def _create(self, mail: ParsedMail, linked_to: Ticket | None, channel: Channel) -> Ticket:
        assert mail.sender is not None
        requester = mail.sender.address
        cc: list[str] = []
        for address in list(mail.to) + list(mail.cc):
            key = address.address.lower()
            if key != requester.lower() and key not in self.own_addresses and key not in cc:
                cc.append(key)
        return self._new_ticket(mail.subject, requester, mail.sender.name, cc[:50],
                                linked_to=linked_to, channel=channel)
