"""Commands an agent writes at the top of a mail to the desk (``#assign alice``, ``#escalate
network``, ``#resolve``, ``#close``, ``#status open``, ``#comment``, ``#outage ID|open|spike``,
``#incident``): how they are read, and the table ``COMMANDS`` of what each one is (name,
argument rule, the desk operation it runs, its help line).

Reading is pure: the command lines at the top (blank lines between them allowed) are
taken off, the rest is the text to relay. A line at the top that starts with ``#`` and a word is
a command, known or not: an unknown one is reported back to the agent, never relayed to the user
and never ignored. ``#42`` (a number) or ``# heading`` (a space) is text, not a command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailticket.errors import InvalidRequest
from mailticket.vocabulary import TicketStatus

__all__ = ["COMMANDS", "Command", "CommandSpec", "Run", "command_help", "split_commands"]

_COMMAND = re.compile(r"^#([A-Za-z][A-Za-z_-]*)(?:[ \t]+(.*))?$")
MAX_COMMANDS = 20


@dataclass(frozen=True)
class Command:
    name: str        # lower case, e.g. "escalate"
    argument: str    # the rest of the line, stripped ("network please look")
    line: str        # as written, for the report

    @property
    def known(self) -> bool:
        return self.name in COMMANDS


def split_commands(body: str) -> tuple[list[Command], str]:
    """(commands at the top of ``body``, the text after them)."""
    lines = body.splitlines()
    commands: list[Command] = []
    rest_at = 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            rest_at = index + 1
            continue
        match = _COMMAND.match(stripped)
        if match is None or len(commands) >= MAX_COMMANDS:
            break
        commands.append(Command(match.group(1).lower(), (match.group(2) or "").strip(),
                                stripped))
        rest_at = index + 1
    else:
        rest_at = len(lines)
    return commands, "\n".join(lines[rest_at:]).strip("\n")


@dataclass(frozen=True)
class Run:
    """One command being run: on which ticket, by whom, with what, and the mail's text."""

    desk: Any  # desk.agent_mail.AgentMail (which imports this module)
    number: int
    actor: str
    command: Command
    text: str

    @property
    def argument(self) -> str:
        return self.command.argument


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str                        # as the agent writes it
    help: str                         # one line for listings
    run: Callable[[Run], str]         # the desk operation; returns what happened
    needs_argument: str = ""          # the error when the argument is required and missing


def _assign(run: Run) -> str:
    row = run.desk.assign(run.number, run.actor, run.argument)
    return f"assigned to {', '.join(row.recipients)}"


def _escalate(run: Run) -> str:
    group, _, why = run.argument.partition(" ")
    run.desk.escalate(run.number, run.actor, group,
                      why.strip() or run.text or f"escalated by {run.actor}")
    return f"escalated to {group}"


def _resolve(run: Run) -> str:
    run.desk.resolve(run.number, run.actor, run.argument or run.text)
    return "resolved; the user was asked to verify"


def _close(run: Run) -> str:
    run.desk.close(run.number, run.actor, run.argument or run.text)
    return "closed; the user was told"


def _status(run: Run) -> str:
    status = run.argument.strip().lower()
    desk, number, actor = run.desk, run.number, run.actor
    if status == TicketStatus.OPEN:
        return desk.set_open(number, actor, run.text)
    if status == TicketStatus.RESOLVED:
        desk.resolve(number, actor, run.text)
        return "resolved; the user was asked to verify"
    if status == TicketStatus.CLOSED:
        desk.close(number, actor, run.text)
        return "closed; the user was told"
    raise InvalidRequest(f"#status takes open, resolved or closed, not {status!r}")


def _comment(run: Run) -> str:
    return "kept as an internal note, not sent to the user"


def _incident(run: Run) -> str:
    """The old flag, kept for agents' habits: it opens an outage from the ticket."""
    if run.argument.strip().lower() in ("off", "no", "false", "0"):
        run.desk.incident_off(run.number)
    outage = run.desk.outage_from_ticket(run.number, run.actor)
    return f"outage #{outage.number} opened from this ticket; the lead is told"


def _outage(run: Run) -> str:
    """``#outage ID`` links the ticket; ``#outage open [TITLE]`` opens one from it;
    ``#outage spike ID [TITLE]`` opens one from a spike alert (desk/spikes.py)."""
    word, _, rest = run.argument.partition(" ")
    if word.lower() == "open":
        outage = run.desk.outage_from_ticket(run.number, run.actor, rest.strip())
        return f"outage #{outage.number} opened from this ticket; the lead is told"
    if word.lower() == "spike":
        spike, _, title = rest.strip().partition(" ")
        if not spike.lstrip("#").isdigit():
            raise InvalidRequest("#outage spike takes the spike's number: #outage spike ID")
        outage, linked, _ = run.desk.outage_from_spike(int(spike.lstrip("#")), run.actor,
                                                       title.strip())
        return (f"outage #{outage.number} opened from spike #{int(spike.lstrip('#'))}, "
                f"{len(linked)} ticket(s) linked; the lead is told")
    number = word.lstrip("#")
    if not number.isdigit():
        raise InvalidRequest(f"#outage takes an outage number, open or spike, not {word!r}")
    run.desk.link_tickets(int(number), run.actor, [run.number])
    return f"linked to outage #{int(number)}"


COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in (
    CommandSpec("assign", "#assign NAME", "give the ticket to an agent; the agent is told",
                _assign, needs_argument="#assign needs an agent: #assign NAME"),
    CommandSpec("escalate", "#escalate GROUP [message]",
                "hand the ticket to another group, with the message (else the mail's text)",
                _escalate, needs_argument="#escalate needs a group: #escalate GROUP [message]"),
    CommandSpec("resolve", "#resolve [resolution]",
                "resolved (the text below is the resolution); the user is asked to verify",
                _resolve),
    CommandSpec("close", "#close [resolution]",
                "close the ticket (the text below is the resolution); the user is told", _close),
    CommandSpec("status", "#status open|resolved|closed", "set the ticket's status", _status),
    CommandSpec("comment", "#comment", "keep the text as an internal note, not sent to the user",
                _comment),
    CommandSpec("outage", "#outage ID | #outage open [TITLE] | #outage spike ID [TITLE]",
                "link the ticket to outage ID, or open an outage from it or from a spike "
                "alert's tickets (the lead is told)",
                _outage, needs_argument="#outage needs an outage number or open: #outage ID"),
    CommandSpec("incident", "#incident",
                "open an outage from the ticket (as #outage open)", _incident),
)}


def command_help() -> list[str]:
    """One line per command, for listings."""
    return [f"{spec.usage}: {spec.help}" for spec in COMMANDS.values()]
