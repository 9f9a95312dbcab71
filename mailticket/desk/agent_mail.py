"""An agent's mail about a ticket: the commands at its top are run (``desk.commands.COMMANDS``),
the rest is relayed to the requester or kept as an internal note, and the agent gets a report of
what each command did.
"""

from __future__ import annotations

from mailticket.config import Agent
from mailticket.db import savepoint
from mailticket.desk.agent_work import AgentWork
from mailticket.desk.commands import COMMANDS, Run, split_commands
from mailticket.desk.core import Arrival, excerpt, real_id, ticket_context
from mailticket.errors import InvalidRequest
from mailticket.mail.compose import Recipient
from mailticket.models import Message, Ticket
from mailticket.vocabulary import Direction


class AgentMail(AgentWork):
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
        relayed = bool(text.strip()) and not note and not consumed
        # Only what was sent to the users is the desk's mail to them (users see it on the
        # portal, with its files); commands alone, or a resolution they get in the
        # resolved/closed mail, stay the desk's own, as a note.
        message = self._record(arrival, ticket, direction=Direction.OUT if relayed
                               else Direction.NOTE, author=actor, body=text)
        if note:
            self._event(ticket, actor, "comment", excerpt(text) or "(no text)")
            self._touch(ticket)
        elif relayed:
            self._send_reply(ticket, actor, text, attachments=[
                (a.filename, a.content_type, a.data) for a in arrival.mail.attachments])
        results = [self.run_command(Run(self, ticket.number, actor, command, text))
                   for command in commands]
        if commands:
            now = Ticket.get_by_id(ticket.number)  # as the commands left it
            self.mailer.queue(
                "agent_report", now, to=[Recipient(agent.name, agent.address)],
                context={"ticket": ticket_context(now),
                         "results": results,
                         "relayed": relayed,
                         "note": note},
                in_reply_to=real_id(arrival.mail.message_id))
        return message

    def run_command(self, run: Run) -> str:
        """Run one agent command in its own savepoint; a line saying what happened (or why
        not). An unknown command does nothing and says which commands there are."""
        line = run.command.line
        spec = COMMANDS.get(run.command.name)
        if spec is None:
            return (f"{line}: unknown command, nothing done (commands: "
                    f"{', '.join('#' + name for name in COMMANDS)})")
        try:
            with savepoint(self.db):
                if spec.needs_argument and not run.argument.partition(" ")[0]:
                    raise InvalidRequest(spec.needs_argument)
                return f"{line}: {spec.run(run)}"
        except InvalidRequest as exc:
            return f"{line}: not done: {exc}"
