"""Commands an agent writes at the top of a mail to the desk: ``#assign alice``, ``#escalate
network``, ``#resolve``, ``#close``, ``#status open``, ``#comment``, ``#incident [off]``.

A pure reading of the text: the command lines at the top (blank lines between them allowed) are
taken off, the rest is the text to relay. A line at the top that starts with ``#`` and a word is
a command, known or not: an unknown one is reported back to the agent, never relayed to the user
and never ignored. ``#42`` (a number) or ``# heading`` (a space) is text, not a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Command", "KNOWN", "split_commands"]

KNOWN = ("assign", "escalate", "resolve", "close", "status", "comment", "incident")
_COMMAND = re.compile(r"^#([A-Za-z][A-Za-z_-]*)(?:[ \t]+(.*))?$")
MAX_COMMANDS = 20


@dataclass(frozen=True)
class Command:
    name: str        # lower case, e.g. "escalate"
    argument: str    # the rest of the line, stripped ("network please look")
    line: str        # as written, for the report

    @property
    def known(self) -> bool:
        return self.name in KNOWN


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
