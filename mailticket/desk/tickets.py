"""The ticket lifecycle: new -> open -> resolved -> closed (and reopened), every change an event.

Called inside the caller's transaction (the intake pipeline or the CLI); queues the mail each
change causes through the Mailer, in the same transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from mailticket.config import Agent, Settings
from mailticket.db import savepoint
from mailticket.errors import InvalidRequest, UnknownTicket
from mailticket.desk.commands import KNOWN, Command, split_commands
from mailticket.desk.views import TicketView
from mailticket.mail import tokens
from mailticket.mail.bounces import BounceReport
from mailticket.mail.classify import Verdict
from mailticket.mail.compose import Recipient
from mailticket.mail.parse import ParsedMail
from mailticket.models import Attachment, Event, Message, Outbox, Ticket, utcnow
from mailticket.outbox import Mailer
from mailticket.storage import Store

log = logging.getLogger(__name__)

NEW, OPEN, RESOLVED, CLOSED = "new", "open", "resolved", "closed"
CHANNELS = ("email", "phone", "walk-in", "voicemail")
STATUSES = (NEW, OPEN, RESOLVED, CLOSED)
SYSTEM = "mailticket"


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


class Desk:
    def __init__(self, settings: Settings, mailer: Mailer, store: Store,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.mailer = mailer
        self.store = store
        self.clock = clock
        self.own_addresses = settings.desk.own_addresses

    # --- lookups (the route.Lookup protocol) -------------------------------------------------

    def ticket(self, number: int) -> TicketView | None:
        found = _locked(number)
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

    def get(self, number: int) -> Ticket:
        """The ticket, locked until the transaction ends (PostgreSQL: SELECT ... FOR UPDATE;
        SQLite's write transactions are serial already), so two agents closing it at once, or
        an agent and an incoming reply, act one after the other on what the other did."""
        found = _locked(number)
        if found is None:
            raise UnknownTicket(number)
        return found

    # --- mail in -----------------------------------------------------------------------------

    def open_ticket(self, arrival: Arrival, *, linked_to: int | None = None,
                    unknown_tag: int | None = None, acknowledge: bool = True) -> Message:
        """A new request: the ticket, its first message and (for people) the acknowledgement."""
        mail = arrival.mail
        linked = self.get(linked_to) if linked_to is not None else None
        ticket = self._create(mail, linked_to=linked)
        message = self._record(arrival, ticket)
        self._event(ticket, arrival.actor, "created", arrival.reason)
        if linked is not None:
            self._event(ticket, SYSTEM, "linked", f"follows ticket #{linked.number}")
            self._event(linked, SYSTEM, "linked", f"a later message opened ticket #{ticket.number}")
        if acknowledge:
            self.mailer.queue(
                "ack", ticket, to=[self._requester(ticket)],
                context={"ticket": _ticket_context(ticket), "unknown_tag": unknown_tag,
                         "linked_from": linked.number if linked else None,
                         "not_kept": list(mail.dropped)},
                in_reply_to=_real_id(mail.message_id),
                references=[r for r in mail.references if _real_id(r)],
                auto_reply=True,
            )
        return message

    def follow_up(self, number: int, arrival: Arrival) -> Message:
        """A reply on a ticket that is not closed. The requester (or a Cc) answering a resolved
        ticket sends it back to open."""
        ticket = self.get(number)
        message = self._record(arrival, ticket)
        self._event(ticket, arrival.actor, "follow_up", f"message {arrival.mail.message_id}")
        if ticket.status == RESOLVED and view(ticket).involves(arrival.actor):
            self._set_status(ticket, OPEN, arrival.actor,
                             "the requester replied to a resolved ticket")
        self._touch(ticket)
        return message

    def reopen_by_mail(self, number: int, arrival: Arrival) -> Message:
        ticket = self.get(number)
        message = self._record(arrival, ticket)
        self._reopen(ticket, arrival.actor, arrival.mail.body.strip()[:2000], by_mail=True)
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
        message = self._record(arrival, ticket, direction="note")
        self._event(ticket, arrival.actor, "unverified_mail", arrival.reason)
        log.warning("ticket #%d: unverified mail from %s kept as a note", number, arrival.actor)
        if self.settings.desk.alerts_to:
            mail = arrival.mail
            self.mailer.queue(
                "unverified", ticket, to=[Recipient("", a) for a in self.settings.desk.alerts_to],
                context={"ticket": _ticket_context(ticket),
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
        message = self._record(arrival, ticket, direction="note" if ticket else "in")
        failed = {r.address: r for r in report.permanent}
        marked: list[str] = []
        rows = (Outbox.select().where(Outbox.message_id.in_(list(report.original_ids[:20])))
                if report.original_ids and failed else [])
        for row in rows:
            reached_not = [failed[a.lower()] for a in row.recipients if a.lower() in failed]
            if not reached_not:
                continue
            known = {b["recipient"] for b in row.bounced or ()}
            row.bounced = list(row.bounced or ()) + [
                {"recipient": r.address, "status": r.status, "detail": r.detail,
                 "at": self.clock().isoformat(timespec="seconds")}
                for r in reached_not if r.address not in known]
            row.status = "bounced"
            row.last_error = ("bounced: " + "; ".join(
                " ".join(filter(None, (r.address, r.status, r.detail))) for r in reached_not))[:2000]
            row.save()
            marked.append(f"outbox #{row.id} ({row.kind}) did not reach "
                          + ", ".join(r.address for r in reached_not))
            log.warning("outbox #%d bounced: %s", row.id, row.last_error)
        if ticket is not None:
            delayed = [r.address for r in report.recipients if r.temporary]
            detail = "; ".join(marked) or ("delivery delayed for " + ", ".join(delayed) if delayed
                                           else "a bounce of our mail (recipient not named)")
            self._event(ticket, arrival.actor, "bounce", detail)
        return message

    def keep(self, arrival: Arrival) -> Message:
        """Mail that concerns no ticket and makes none (automated mail, our own): recorded."""
        return self._record(arrival, None)

    # --- agents (the CLI) ----------------------------------------------------------------------

    def reply(self, number: int, actor: str, text: str) -> Outbox:
        ticket = self.get(number)
        text = _required_text(text, "reply")
        row = self._send_reply(ticket, actor, text)
        Message.create(ticket=ticket, direction="out", message_id=row.message_id,
                       sender=self.settings.desk.address, sender_name=actor, to=row.recipients,
                       subject=row.subject, body=text, date=self.clock(), author=actor,
                       verdict="agent", decision="reply", created_at=self.clock())
        return row

    def _send_reply(self, ticket: Ticket, actor: str, text: str,
                    attachments: Sequence[tuple[str, str, bytes]] = ()) -> Outbox:
        """An agent's words (and files) to the requester and Cc's, from the desk address,
        threaded."""
        in_reply_to, references = self._thread(ticket)
        row = self.mailer.queue(
            "reply", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": _ticket_context(ticket), "text": text, "author": actor},
            in_reply_to=in_reply_to, references=references, automated=False,
            attachments=attachments,
        )
        self._event(ticket, actor, "reply", _excerpt(text))
        if ticket.first_response_at is None:
            ticket.first_response_at = self.clock()
            ticket.save()
        if ticket.status == NEW:
            self._set_status(ticket, OPEN, actor, "first reply")
        self._touch(ticket)
        return row

    # --- agents by mail ------------------------------------------------------------------------

    def agent_mail(self, number: int, arrival: Arrival, agent: Agent, comment: bool) -> Message:
        """Mail from an agent about a ticket: the command lines at its top are run, the rest is
        relayed to the requester and Cc's (or kept as an internal note: mail to the comment
        address, or with #comment), and the agent gets a report of what each command did."""
        ticket = self.get(number)
        actor = agent.name or agent.address
        commands, text = split_commands(arrival.mail.body)
        note = comment or any(c.name == "comment" for c in commands)
        # "#resolve" or "#close" with nothing after it takes the text as the resolution, which
        # the user then gets in the resolved/closed mail: it is not relayed a second time.
        consumed = bool(text.strip()) and any(
            c.name in ("resolve", "close") and not c.argument for c in commands)
        message = self._record(arrival, ticket, direction="note" if note else "out",
                               author=actor, body=text)
        if note:
            self._event(ticket, actor, "comment", _excerpt(text) or "(no text)")
            self._touch(ticket)
        elif text.strip() and not consumed:
            self._send_reply(ticket, actor, text, attachments=[
                (a.filename, a.content_type, a.data) for a in arrival.mail.attachments])
        results = [self._run_command(ticket.number, actor, command, text)
                   for command in commands]
        if commands:
            now = Ticket.get_by_id(ticket.number)  # as the commands left it
            self.mailer.queue(
                "agent_report", now, to=[Recipient(agent.name, agent.address)],
                context={"ticket": _ticket_context(now),
                         "results": results,
                         "relayed": bool(text.strip()) and not note and not consumed,
                         "note": note},
                in_reply_to=_real_id(arrival.mail.message_id))
        return message

    def _run_command(self, number: int, actor: str, command: Command, text: str) -> str:
        """Run one agent command; a line saying what happened (or why not)."""
        argument = command.argument
        db = Ticket._meta.database
        try:
            with savepoint(db):
                if command.name == "assign":
                    if not argument:
                        raise InvalidRequest("#assign needs an agent: #assign NAME")
                    row = self.assign(number, actor, argument)
                    return f"{command.line}: assigned to {', '.join(row.recipients)}"
                if command.name == "escalate":
                    group, _, why = argument.partition(" ")
                    if not group:
                        raise InvalidRequest("#escalate needs a group: #escalate GROUP [message]")
                    self.escalate(number, actor, group, why.strip() or text
                                  or f"escalated by {actor}")
                    return f"{command.line}: escalated to {group}"
                if command.name == "resolve":
                    self.resolve(number, actor, argument or text)
                    return f"{command.line}: resolved; the user was asked to verify"
                if command.name == "close":
                    self.close(number, actor, argument or text)
                    return f"{command.line}: closed; the user was told"
                if command.name == "status":
                    return f"{command.line}: {self._status_command(number, actor, argument, text)}"
                if command.name == "incident":
                    off = argument.strip().lower() in ("off", "no", "false", "0")
                    self.set_incident(number, actor, on=not off)
                    return f"{command.line}: " + ("no longer an incident" if off
                                                  else "marked as an incident")
                if command.name == "comment":
                    return f"{command.line}: kept as an internal note, not sent to the user"
                return (f"{command.line}: unknown command, nothing done (commands: "
                        f"{', '.join('#' + k for k in KNOWN)})")
        except InvalidRequest as exc:
            return f"{command.line}: not done: {exc}"

    def _status_command(self, number: int, actor: str, status: str, text: str) -> str:
        status = status.strip().lower()
        ticket = self.get(number)
        if status == "open":
            if ticket.status == CLOSED:
                self.reopen(number, actor, text or f"reopened by {actor}")
                return "reopened; the user was told"
            if ticket.status == OPEN:
                raise InvalidRequest(f"ticket #{number} is already open")
            self._set_status(ticket, OPEN, actor, "#status open")
            self._touch(ticket)
            return "status is now open"
        if status == "resolved":
            self.resolve(number, actor, text)
            return "resolved; the user was asked to verify"
        if status == "closed":
            self.close(number, actor, text)
            return "closed; the user was told"
        raise InvalidRequest(f"#status takes open, resolved or closed, not {status!r}")

    def close(self, number: int, actor: str, resolution: str) -> Outbox:
        ticket = self.get(number)
        if ticket.status == CLOSED:
            raise InvalidRequest(f"ticket #{number} is already closed")
        resolution = _required_text(resolution, "resolution")
        ticket.resolution = resolution
        ticket.closed_at = self.clock()
        self._set_status(ticket, CLOSED, actor, _excerpt(resolution))
        self._touch(ticket)
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "closed", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": _ticket_context(ticket)},
            in_reply_to=in_reply_to, references=references,
        )

    def assign(self, number: int, actor: str, who: str) -> Outbox | None:
        """Give the ticket to one agent (of any group); the agent is told."""
        ticket = self.get(number)
        agent = self._agent(who)
        if ticket.agent == agent.address:
            raise InvalidRequest(f"ticket #{number} is already assigned to {agent}")
        ticket.agent = agent.address
        ticket.save()
        self._event(ticket, actor, "assigned", str(agent))
        if ticket.status == NEW:
            self._set_status(ticket, OPEN, actor, f"assigned to {agent}")
        self._touch(ticket)
        return self.mailer.queue(
            "assigned", ticket, to=[Recipient(agent.name, agent.address)],
            context={"ticket": _ticket_context(ticket), "agent": str(agent), "author": actor})

    def escalate(self, number: int, actor: str, group_name: str, text: str) -> Outbox:
        """Hand the ticket to another group (level 1 -> 2 -> 3, as ``escalation`` allows); the
        group is told, with the message. The assigned agent is cleared: the group picks one."""
        ticket = self.get(number)
        if ticket.status == CLOSED:
            raise InvalidRequest(f"ticket #{number} is closed; reopen it first")
        process = self.settings.process
        target = process.group(group_name)
        if target is None:
            known = ", ".join(g.name for g in process.groups) or "none configured"
            raise InvalidRequest(f"no group {group_name!r} (groups: {known})")
        text = _required_text(text, "escalation message")
        source = ticket.group
        if source == target.name:
            raise InvalidRequest(f"ticket #{number} is already with {target.name}")
        allowed = process.escalates_to(source) if source else tuple(g.name for g in process.groups)
        if target.name not in allowed:
            raise InvalidRequest(f"{source} does not escalate to {target.name} (it escalates to: "
                                 f"{', '.join(allowed) or 'nobody'})")
        ticket.group = target.name
        ticket.agent = None
        ticket.save()
        self._event(ticket, actor, "escalated",
                    f"{source or '-'} -> {target.name} (level {target.level}): {_excerpt(text)}")
        if ticket.status in (NEW, RESOLVED):
            self._set_status(ticket, OPEN, actor, f"escalated to {target.name}")
        self._touch(ticket)
        return self.mailer.queue(
            "escalated", ticket, to=[Recipient("", a) for a in target.recipients],
            context={"ticket": _ticket_context(ticket), "from_group": source or "",
                     "to_group": target.name, "level": target.level, "text": text,
                     "author": actor})

    def resolve(self, number: int, actor: str, text: str) -> Outbox:
        """Fixed: the ticket goes back to the desk's queue as resolved, and the user is asked to
        reply if it is not fixed (the desk closes it after verifying, or the scheduler does
        when nobody replies)."""
        ticket = self.get(number)
        if ticket.status in (RESOLVED, CLOSED):
            raise InvalidRequest(f"ticket #{number} is already {ticket.status}")
        text = _required_text(text, "resolution")
        ticket.resolution = text
        ticket.resolved_at = self.clock()
        ticket.group = self.settings.process.new_tickets_to or ticket.group
        self._set_status(ticket, RESOLVED, actor, _excerpt(text))
        self._touch(ticket)
        desk_group = self.settings.process.group(ticket.group or "")
        if desk_group is not None:
            self.mailer.queue(
                "handed_back", ticket, to=[Recipient("", a) for a in desk_group.recipients],
                context={"ticket": _ticket_context(ticket), "text": text, "author": actor})
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "resolved", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": _ticket_context(ticket), "text": text},
            in_reply_to=in_reply_to, references=references)

    def set_incident(self, number: int, actor: str, on: bool = True) -> None:
        """Mark the ticket as an incident affecting users (or no longer); status reports list
        the open incidents with how many users they touch."""
        ticket = self.get(number)
        if on == (ticket.incident_at is not None):
            raise InvalidRequest(f"ticket #{number} is {'already' if on else 'not'} marked as "
                                 "an incident")
        ticket.incident_at = self.clock() if on else None
        ticket.save()
        self._event(ticket, actor, "incident", "marked as an incident affecting users" if on
                    else "no longer an incident")
        self._touch(ticket)

    def _agent(self, who: str) -> Agent:
        found = self.settings.process.find_agents(who)
        if not found:
            known = ", ".join(str(a) for a in self.settings.process.agents) or "none configured"
            raise InvalidRequest(f"no agent {who!r} (agents: {known})")
        if len(found) > 1:
            raise InvalidRequest(f"{who!r} names several agents: "
                                 f"{', '.join(str(a) for a in found)}; give the address")
        return found[0]

    def reopen(self, number: int, actor: str, text: str) -> Outbox:
        ticket = self.get(number)
        if ticket.status != CLOSED:
            raise InvalidRequest(f"ticket #{number} is {ticket.status}, not closed")
        return self._reopen(ticket, actor, _required_text(text, "reason"), by_mail=False)

    # --- internals ---------------------------------------------------------------------------

    def _create(self, mail: ParsedMail, linked_to: Ticket | None) -> Ticket:
        assert mail.sender is not None
        requester = mail.sender.address
        cc = []
        for address in list(mail.to) + list(mail.cc):
            key = address.address.lower()
            if key != requester.lower() and key not in self.own_addresses and key not in cc:
                cc.append(key)
        return self._new_ticket(mail.subject, requester, mail.sender.name, cc[:50],
                                linked_to=linked_to)

    def _new_ticket(self, subject: str, requester: str, requester_name: str, cc: list[str],
                    linked_to: Ticket | None = None, channel: str = "email") -> Ticket:
        now = self.clock()
        sla = self.settings.sla
        directory = self.settings.directory
        agency = directory.agency_of(requester) if directory is not None else None
        return Ticket.create(subject=subject, status=NEW, requester=requester,
                             requester_name=requester_name, cc=cc, linked_to=linked_to,
                             group=self.settings.process.new_tickets_to, channel=channel,
                             agency=agency.name if agency else None,
                             response_due_at=sla.calendar.add(now, sla.first_response),
                             created_at=now, updated_at=now)

    def open_by_agent(self, actor: str, requester: str, channel: str, subject: str,
                      text: str, requester_name: str = "") -> Ticket:
        """A request taken by phone, at the desk or from voicemail: logged by an agent, and
        the user gets the same acknowledgement with the number as by mail."""
        if channel not in CHANNELS or channel == "email":
            raise InvalidRequest(f"channel must be one of {', '.join(CHANNELS[1:])}, "
                                 f"not {channel!r}")
        text = _required_text(text, "message")
        subject = " ".join((subject or "").split())[:300]
        if not subject:
            raise InvalidRequest("the subject is empty")
        ticket = self._new_ticket(subject, requester.lower(), requester_name, [], channel=channel)
        now = self.clock()
        domain = self.settings.desk.address.rpartition("@")[2]
        Message.create(ticket=ticket, direction="in", message_id=tokens.message_id(
            self.mailer.thread_key, domain, ticket.number), sender=requester.lower(),
            sender_name=requester_name, subject=subject, body=text, date=now, author=actor,
            verdict="human", decision=f"logged ({channel})", source=channel, created_at=now)
        self._event(ticket, actor, "created", f"logged by {actor} from a {channel} request")
        self.mailer.queue(
            "ack", ticket, to=[self._requester(ticket)],
            context={"ticket": _ticket_context(ticket), "unknown_tag": None,
                     "linked_from": None, "not_kept": []})
        return ticket

    def _record(self, arrival: Arrival, ticket: Ticket | None, direction: str = "in",
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
                    self._event(ticket, SYSTEM, "dropped", line)
            log.warning("message %s: %s", mail.message_id, "; ".join(mail.dropped))
        for part in mail.attachments:
            digest = self.store.put(part.data)
            Attachment.create(message=message, filename=part.filename,
                              content_type=part.content_type, size=part.size, sha256=digest)
        return message

    def _reopen(self, ticket: Ticket, actor: str, text: str, by_mail: bool) -> Outbox:
        ticket.closed_at = None
        self._set_status(ticket, OPEN, actor, "reopened by reply" if by_mail else _excerpt(text))
        self._event(ticket, actor, "reopened", _excerpt(text))
        self._touch(ticket)
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "reopened", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": _ticket_context(ticket), "text": "" if by_mail else text},
            in_reply_to=in_reply_to, references=references, auto_reply=by_mail,
        )

    def _set_status(self, ticket: Ticket, status: str, actor: str, detail: str) -> None:
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
               .where(Message.ticket == ticket, Message.direction == "in")
               .order_by(Message.id)]
        ids = [i for i in ids if _real_id(i)]
        if not ids:
            return None, []
        references = [ids[0]] if ids[0] != ids[-1] else []
        return ids[-1], references


def _locked(number: int) -> Ticket | None:
    if not 0 < number < 2 ** 31:  # PostgreSQL's serial; no desk gets near it
        return None
    query = Ticket.select().where(Ticket.number == number)
    if Ticket._meta.database.for_update:  # PostgreSQL; SQLite has no row locks (nor needs them)
        query = query.for_update()
    return query.first()


def _ticket_context(ticket: Ticket) -> dict[str, object]:
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


def _real_id(message_id: str | None) -> str | None:
    """Message-IDs we made up for mail that had none mean nothing to the user's client."""
    if not message_id or message_id.endswith(".invalid>"):
        return None
    return message_id


def _required_text(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequest(f"the {what} text is empty")
    return text


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

