"""What agents do to tickets, whichever door they use (the CLI, commands in mail): reply,
assign, escalate, resolve, close, reopen, and log requests taken by phone or at
the desk. Each checks the ticket's state first and tells whoever must act next.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from mailticket.config import Agent
from mailticket.desk.core import DeskCore, excerpt, required_text, ticket_context, view
from mailticket.desk.greeting import greet
from mailticket.desk.views import Reopen, reopening
from mailticket.errors import InvalidRequest
from mailticket.mail import tokens
from mailticket.mail.compose import Recipient
from mailticket.models import Message, Outbox, Ticket
from mailticket.vocabulary import Channel, Direction, TicketStatus


class AgentWork(DeskCore):
    def reply(self, number: int, actor: str, text: str) -> Outbox:
        ticket = self.get(number)
        text = required_text(text, "reply")
        row = self._send_reply(ticket, actor, text)
        Message.create(ticket=ticket, direction=Direction.OUT, message_id=row.message_id,
                       sender=self.settings.desk.address, sender_name=actor,
                       to=[r.address for r in [self._requester(ticket), *self._cc(ticket)]],
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
            context={"ticket": ticket_context(ticket), "text": text, "author": actor},
            in_reply_to=in_reply_to, references=references, attachments=attachments,
        )
        self._event(ticket, actor, "reply", excerpt(text))
        if ticket.first_response_at is None:
            ticket.first_response_at = self.clock()
            ticket.save()
        if ticket.status == TicketStatus.NEW:
            self._set_status(ticket, TicketStatus.OPEN, actor, "first reply")
        self._touch(ticket)
        return row

    def close(self, number: int, actor: str, resolution: str) -> Outbox:
        ticket = self.get(number)
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidRequest(f"ticket #{number} is already closed")
        resolution = required_text(resolution, "resolution")
        ticket.resolution = resolution
        ticket.closed_at = self.clock()
        self._set_status(ticket, TicketStatus.CLOSED, actor, excerpt(resolution))
        self._touch(ticket)
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "closed", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": ticket_context(ticket)},
            in_reply_to=in_reply_to, references=references,
        )

    def reopen(self, number: int, actor: str, text: str) -> Outbox:
        ticket = self.get(number)
        verdict, why = reopening(view(ticket), actor, now=self.clock(), staff=True, window=timedelta(
            days=self.settings.desk.reopen_window_days))
        if verdict is not Reopen.REOPEN:
            raise InvalidRequest(why)
        return self._reopen(ticket, actor, required_text(text, "reason"), by_mail=False)

    def assign(self, number: int, actor: str, who: str) -> Outbox:
        """Give the ticket to one agent (of any group); the agent is told."""
        ticket = self.get(number)
        agent = self._agent(who)
        if ticket.agent == agent.address:
            raise InvalidRequest(f"ticket #{number} is already assigned to {agent}")
        ticket.agent = agent.address
        ticket.save()
        self._event(ticket, actor, "assigned", str(agent))
        if ticket.status == TicketStatus.NEW:
            self._set_status(ticket, TicketStatus.OPEN, actor, f"assigned to {agent}")
        self._touch(ticket)
        return self.mailer.queue(
            "assigned", ticket, to=[Recipient(agent.name, agent.address)],
            context={"ticket": ticket_context(ticket), "agent": str(agent), "author": actor})

    def escalate(self, number: int, actor: str, group_name: str, text: str) -> Outbox:
        """Hand the ticket to another group (level 1 -> 2 -> 3, as ``escalation`` allows); the
        group is told, with the message. The assigned agent is cleared: the group picks one."""
        ticket = self.get(number)
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidRequest(f"ticket #{number} is closed; reopen it first")
        process = self.settings.process
        target = process.group(group_name)
        if target is None:
            known = ", ".join(g.name for g in process.groups) or "none configured"
            raise InvalidRequest(f"no group {group_name!r} (groups: {known})")
        text = required_text(text, "escalation message")
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
                    f"{source or '-'} -> {target.name} (level {target.level}): {excerpt(text)}")
        if ticket.status in (TicketStatus.NEW, TicketStatus.RESOLVED):
            self._set_status(ticket, TicketStatus.OPEN, actor, f"escalated to {target.name}")
        self._touch(ticket)
        return self.mailer.queue(
            "escalated", ticket, to=[Recipient("", a) for a in target.recipients],
            context={"ticket": ticket_context(ticket), "from_group": source or "",
                     "to_group": target.name, "level": target.level, "text": text,
                     "author": actor})

    def resolve(self, number: int, actor: str, text: str) -> Outbox:
        """Fixed: the ticket goes back to the desk's queue as resolved, and the user is asked to
        reply if it is not fixed (the desk closes it after verifying, or the scheduler does
        when nobody replies)."""
        ticket = self.get(number)
        if ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            raise InvalidRequest(f"ticket #{number} is already {ticket.status}")
        text = required_text(text, "resolution")
        ticket.resolution = text
        ticket.resolved_at = self.clock()
        ticket.group = self.settings.process.new_tickets_to or ticket.group
        self._set_status(ticket, TicketStatus.RESOLVED, actor, excerpt(text))
        self._touch(ticket)
        desk_group = self.settings.process.group(ticket.group or "")
        if desk_group is not None:
            self.mailer.queue(
                "handed_back", ticket, to=[Recipient("", a) for a in desk_group.recipients],
                context={"ticket": ticket_context(ticket), "text": text, "author": actor})
        in_reply_to, references = self._thread(ticket)
        return self.mailer.queue(
            "resolved", ticket, to=[self._requester(ticket)], cc=self._cc(ticket),
            context={"ticket": ticket_context(ticket), "text": text},
            in_reply_to=in_reply_to, references=references)

    def open_by_agent(self, actor: str, requester: str, channel: str, subject: str,
                      text: str, requester_name: str = "") -> Ticket:
        """A request taken by phone, at the desk or from voicemail: logged by an agent, and
        the user gets the same acknowledgement with the number as by mail."""
        logged = Channel.logged_by_agents()
        if channel not in logged:
            raise InvalidRequest(f"channel must be one of {', '.join(logged)}, not {channel!r}")
        text = required_text(text, "message")
        subject = " ".join((subject or "").split())[:300]
        if not subject:
            raise InvalidRequest("the subject is empty")
        ticket = self._new_ticket(subject, requester.lower(), requester_name, [],
                                  channel=Channel(channel))
        now = self.clock()
        domain = self.settings.desk.address.rpartition("@")[2]
        Message.create(ticket=ticket, direction=Direction.IN, message_id=tokens.message_id(
            self.mailer.thread_key, domain, ticket.number), sender=requester.lower(),
            sender_name=requester_name, subject=subject, body=text, date=now, author=actor,
            verdict="human", decision=f"logged ({channel})", source=channel, created_at=now)
        self._event(ticket, actor, "created", f"logged by {actor} from a {channel} request")
        outage = greet(self, ticket, subject, text)
        self.mailer.queue(
            "ack", ticket, to=[self._requester(ticket)],
            context={"ticket": ticket_context(ticket), "unknown_tag": None,
                     "linked_from": None, "not_kept": [], "outage": outage})
        return ticket

    def _agent(self, who: str) -> Agent:
        found = self.settings.process.find_agents(who)
        if not found:
            known = ", ".join(str(a) for a in self.settings.process.agents) or "none configured"
            raise InvalidRequest(f"no agent {who!r} (agents: {known})")
        if len(found) > 1:
            raise InvalidRequest(f"{who!r} names several agents: "
                                 f"{', '.join(str(a) for a in found)}; give the address")
        return found[0]

    def set_open(self, number: int, actor: str, text: str) -> str:
        """``#status open``: a closed ticket is reopened (the user told), a new or resolved
        one goes back to open; what happened."""
        ticket = self.get(number)
        if ticket.status == TicketStatus.CLOSED:
            self.reopen(number, actor, text or f"reopened by {actor}")
            return "reopened; the user was told"
        if ticket.status == TicketStatus.OPEN:
            raise InvalidRequest(f"ticket #{number} is already open")
        self._set_status(ticket, TicketStatus.OPEN, actor, "#status open")
        self._touch(ticket)
        return "status is now open"
