"""The automated greeting: a new ticket that matches an open outage is linked to it (by the desk,
in the new ticket's transaction) and its acknowledgement tells the user that the desk knows.

The rule (``best_match``, pure) is that a ticket matches an open outage when it falls within
everything the outage says about itself:

- an outage that names applications matches only a ticket whose subject or body names one of
  them: its key or one of its ``outages.applications`` names, as a whole word or phrase, in
  any case ("RMS" matches "the rms is down", not "farms");
- an outage with a scope (agencies) matches only a ticket whose requester's agency, from the
  directory, is in it; a requester of no known agency is not in any scope;
- an outage that names neither (every user, no application) matches nothing: it would take in
  every request the desk gets while it is open, and close them all when it is resolved. Agents
  link tickets to it by hand.

Only ``open`` outages match: one ``resolving`` is fixed already. When several match, the ticket
is linked to one, the most specific (it matched both an application and a scope, then an
application, then a scope), and among those the most recently opened: a ticket is closed when
its outage is resolved, so it must not be closed by another outage's fix while its own goes on.

The acknowledgement mentions the outage only once it has a public text: until the desk says
what users are told, nothing of the outage is shown to them (its title may be another user's
subject, when it was opened from a ticket).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailticket.config import Settings
from mailticket.config.directory.entries import fold
from mailticket.db import Prepared
from mailticket.desk.core import DeskCore, outage_context
from mailticket.models import Outage, OutageLog, OutageTicket, Ticket
from mailticket.vocabulary import SYSTEM_ACTOR, OutageState


@dataclass(frozen=True)
class Candidate:
    """An open outage as the rule sees it: its number, when it was opened, the names each of its
    applications answers to, and its scope (folded agency names; empty: every agency)."""

    number: int
    opened_at: datetime
    names: tuple[tuple[str, ...], ...]
    scope: frozenset[str]


def candidate(number: int, opened_at: datetime, applications: Sequence[str],
              agencies: Sequence[str], settings: Settings) -> Candidate:
    names = []
    for name in applications or ():
        app = settings.outages.application(name)
        names.append((app.name, *app.names) if app else (name,))
    return Candidate(number, opened_at, tuple(names), frozenset(fold(a) for a in agencies or ()))


@functools.lru_cache(maxsize=256)
def _names_pattern(names: tuple[str, ...]) -> tuple[tuple[str, ...], re.Pattern[str]]:
    """Any of ``names`` as a whole word or phrase (any run of spaces between words), to search
    text already case-folded; with the first word of each, a cheap test that must pass first.
    The names come from the config or an agent, never from the mail, and are escaped anyway."""
    words = sorted((fold(n).split() for n in names if n.split()), key=len, reverse=True)
    phrases = "|".join(r"\s+".join(re.escape(w) for w in phrase) for phrase in words)
    firsts = tuple(dict.fromkeys(phrase[0] for phrase in words))
    return firsts, re.compile(rf"(?<!\w)(?:{phrases})(?!\w)")


def _names_in(names: tuple[str, ...], folded: str) -> bool:
    firsts, pattern = _names_pattern(names)
    return any(first in folded for first in firsts) and pattern.search(folded) is not None


def matches(outage: Candidate, subject: str, body: str, agency: str | None,
            folded: str | None = None) -> int:
    """How specifically the ticket matches ``outage``: 0 not at all, 1 by one of application or
    scope, 2 by both (the outage named both). ``folded``: subject and body, case-folded, when
    the caller has it already."""
    if not outage.names and not outage.scope:
        return 0
    if outage.scope and (agency is None or fold(agency) not in outage.scope):
        return 0
    if outage.names:
        if folded is None:
            folded = f"{subject}\n{body}".casefold()
        if not any(_names_in(names, folded) for names in outage.names):
            return 0
    return 2 if outage.names and outage.scope else 1


def best_match(outages: Sequence[Candidate], subject: str, body: str,
               agency: str | None) -> Candidate | None:
    """The one open outage a new ticket is linked to, or None (the rule is the module's)."""
    folded = f"{subject}\n{body}".casefold() if any(o.names for o in outages) else ""
    scored = [(score, bool(o.names), o.opened_at, o.number, o) for o in outages
              if (score := matches(o, subject, body, agency, folded))]
    return max(scored, key=lambda s: s[:4])[4] if scored else None


_OPEN = Prepared(lambda state: Outage.select(
    Outage.number, Outage.opened_at, Outage.applications, Outage.agencies)
    .where(Outage.state == state), 1)


def open_outages(db: Any, settings: Settings) -> list[Candidate]:
    """The open outages, as the rule sees them: one query on the indexed state (usually
    answering no row), and only the columns the rule needs."""
    found = []
    for number, opened_at, applications, agencies in _OPEN.execute(
            db, OutageState.OPEN.value).fetchall():
        found.append(candidate(number, Outage.opened_at.python_value(opened_at),
                               Outage.applications.python_value(applications),
                               Outage.agencies.python_value(agencies), settings))
    return found


def greet(desk: DeskCore, ticket: Ticket, subject: str, body: str) -> dict[str, Any] | None:
    """Link the new ``ticket`` to the open outage it matches, if any, in the caller's
    transaction (its history and the outage's log say so). What its acknowledgement tells the
    user of the outage (the templates' ``outage``): None when it matched none, or when the
    outage has no public text yet (the desk has not said what users are told; its title may
    be another user's subject)."""
    candidates = open_outages(desk.db, desk.settings)
    while candidates:
        best = best_match(candidates, subject, body, ticket.agency)
        if best is None:
            return None
        outage = _still_open(desk, best.number)
        if outage is not None:
            break
        candidates.remove(best)
    else:
        return None
    now = desk.clock()
    OutageTicket.create(outage=outage, ticket=ticket, linked_at=now, linked_by=SYSTEM_ACTOR)
    desk._event(ticket, SYSTEM_ACTOR, "outage",
                f"linked to outage #{outage.number} automatically: {outage.title}")
    OutageLog.create(outage=outage, at=now, author=SYSTEM_ACTOR,
                     text=f"linked new ticket #{ticket.number} automatically")
    return outage_context(outage) if outage.public_text else None


def _still_open(desk: DeskCore, number: int) -> Outage | None:
    """The outage read again, and on PostgreSQL share-locked until the transaction ends, when
    it is still open. A resolve marks it resolving under an update lock: it waits for this
    ticket's transaction (and then closes the ticket with the rest), or this waits for the
    resolve and sees it is no longer open; so no ticket is linked after its outage's resolve
    has counted its tickets. Several intakes share the lock and do not wait for each other."""
    query = Outage.select().where(Outage.number == number)
    if desk.db.for_update:
        query = query.for_update("FOR SHARE")
    found = query.first()
    return found if found is not None and found.state == OutageState.OPEN else None
