"""Routing, a pure function: a parsed, classified mail plus a ticket lookup -> a Decision.

No database here: the lookup is handed in, so every rule can be tested with plain values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from mailticket.desk.views import Reopen, TicketView, reopening
from mailticket.mail import tokens
from mailticket.mail.bounces import BounceReport
from mailticket.mail.classify import Kind, Verdict
from mailticket.mail.parse import ParsedMail
from mailticket.vocabulary import TicketStatus


class Action(enum.Enum):
    NEW_TICKET = "new_ticket"        # a new request: ticket + acknowledgement
    FOLLOW_UP = "follow_up"          # added to an existing ticket
    REOPEN = "reopen"                # a reply to a closed ticket within the window
    NEW_LINKED = "new_linked"        # a reply to a ticket closed too long ago: new ticket, linked
    ATTACH = "attach"                # automated mail about a ticket: kept on it, nothing changes
    UNVERIFIED = "unverified"        # a tag from someone not on the ticket: a note, nothing changes
    AGENT = "agent"                  # an agent's mail about a ticket: commands run, text relayed
    IGNORE = "ignore"                # automated mail about nothing we know: kept, no ticket
    BOUNCE = "bounce"                # a bounce of our mail: a note on its ticket, outbox marked
    REPORT_NOTE = "report_note"      # to the report notes address: kept for the status report
    QUARANTINE = "quarantine"        # cannot be a ticket (no sender): kept aside for the admin


class Lookup(Protocol):
    def ticket(self, number: int) -> TicketView | None: ...
    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> TicketView | None: ...


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    ticket: int | None = None        # the ticket acted on (or linked from, for NEW_LINKED)
    unknown_tag: int | None = None   # a tag in the subject naming no ticket
    acknowledge: bool = False        # send the acknowledgement for a new ticket
    comment: bool = False            # AGENT: mail to the comment address, an internal note
    bounce: BounceReport | None = None  # BOUNCE: what the bounce says

    @property
    def recorded(self) -> str:
        """What the message records as its decision. A bounce is recorded as what it is to its
        ticket, as it always was: kept on it (attach), or about nothing we know (ignore)."""
        if self.action is Action.BOUNCE:
            return (Action.ATTACH if self.ticket is not None else Action.IGNORE).value
        return self.action.value


def tag_pattern(prefix: str) -> re.Pattern[str]:
    """Matches "[DESK #42]" (also "[DESK#42]", "[desk #42]") anywhere in a subject, so any
    reply or forward prefix in front of it ("Re:", "AW:", "Fwd:", "RE: RE:") is irrelevant."""
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


def find_tag(subject: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.search(subject)
    return int(match.group(1)) if match else None


def route(
    mail: ParsedMail,
    verdict: Verdict,
    lookup: Lookup,
    *,
    tag: re.Pattern[str],
    reopen_window: timedelta,
    now: datetime,
    thread_key: bytes = b"",
    outsider_mail: str = "note",
    about: Sequence[str] = (),
    agents: frozenset[str] = frozenset(),
    from_agent: bool = False,
    bounce: BounceReport | None = None,
    report_notes_address: str = "",
    comment_address: str = "",
) -> Decision:
    """``thread_key`` verifies the tokens in our Message-IDs; ``outsider_mail`` is the policy for
    a tag from someone not on the ticket ("note" or "new_ticket"); ``about`` are Message-IDs the
    mail is about besides its own threading headers; ``agents`` are the desk's staff (lower
    case), who may touch any ticket; ``from_agent``: the sender is a configured agent
    (authenticated when the config asks), whose mail about a ticket is worked as the agent's
    (commands, relay to the user); ``bounce``: what a bounce says (``mail.bounces.analyse``),
    whose original it is about; mail to ``report_notes_address`` is a note for the status
    report; an agent's mail to ``comment_address`` is an internal note."""
    if verdict.kind is Kind.OWN:
        return Decision(Action.IGNORE, f"our own mail ({verdict.reason})")
    if report_notes_address and verdict.acknowledge and addressed_to(mail, report_notes_address):
        # Notes for the status report (application support...): kept, not a ticket, not
        # answered; the next report of each kind includes them.
        return Decision(Action.REPORT_NOTE, f"mail to {report_notes_address}")
    if bounce is not None and not about:
        about = bounce.original_ids
    decision = _decide(mail, verdict, lookup, tag=tag, reopen_window=reopen_window, now=now,
                       thread_key=thread_key, outsider_mail=outsider_mail, about=about,
                       agents=agents, from_agent=from_agent)
    if bounce is not None and decision.action in (Action.ATTACH, Action.IGNORE):
        return replace(decision, action=Action.BOUNCE, bounce=bounce)
    if decision.action is Action.AGENT and comment_address:
        return replace(decision, comment=addressed_to(mail, comment_address))
    return decision


def addressed_to(mail: ParsedMail, address: str) -> bool:
    """Whether ``mail`` was sent to ``address``: To, Cc, or the envelope recipient the MTA
    recorded (Delivered-To, X-Original-To)."""
    address = address.lower()
    if any(a.key == address for a in mail.to + mail.cc):
        return True
    return any(address in value.lower() for name in ("delivered-to", "x-original-to")
               for value in mail.headers.get(name, ()))


def _decide(mail: ParsedMail, verdict: Verdict, lookup: Lookup, *, tag: re.Pattern[str],
            reopen_window: timedelta, now: datetime, thread_key: bytes, outsider_mail: str,
            about: Sequence[str], agents: frozenset[str], from_agent: bool) -> Decision:
    """The ticket the mail is about (tag, our token in its thread, its threading headers),
    then what to do with it."""
    thread_ids = list(about) + list(mail.in_reply_to) + list(reversed(mail.references))
    # Tickets named by a verified token in the thread: the writer saw mail we sent about them.
    threaded = [n for n in (tokens.ticket_of(thread_key, i) for i in thread_ids) if n] \
        if thread_key else []
    number = find_tag(mail.subject, tag)
    ticket = lookup.ticket(number) if number is not None else None
    unknown_tag = number if number is not None and ticket is None else None
    how = f"subject tag #{number}" if ticket else ""
    if ticket is None and threaded:
        ticket = lookup.ticket(threaded[0])
        how = "a reply to our mail" if ticket else ""
    if ticket is None and thread_ids:
        ticket = lookup.ticket_for_message_ids(thread_ids)
        how = "In-Reply-To/References" if ticket else ""

    if not verdict.acknowledge:
        if ticket is not None:
            return Decision(Action.ATTACH, f"{verdict.kind.value} about ticket #{ticket.number} "
                                           f"({how}); {verdict.reason}", ticket=ticket.number)
        return Decision(Action.IGNORE, f"{verdict.kind.value}: {verdict.reason}")

    if mail.sender is None:
        return Decision(Action.QUARANTINE, "no sender address: nobody to answer")

    if ticket is None:
        if unknown_tag is not None:
            return Decision(Action.NEW_TICKET, f"subject tag #{unknown_tag} names no ticket",
                            unknown_tag=unknown_tag, acknowledge=True)
        return Decision(Action.NEW_TICKET, "no ticket tag or thread", acknowledge=True)

    if from_agent:
        return Decision(Action.AGENT, f"agent {mail.sender.key} on ticket #{ticket.number} "
                                      f"({how})", ticket=ticket.number)
    involved = ticket.involves(mail.sender.address) or mail.sender.key in agents
    if not involved and ticket.number not in threaded and ticket.status != TicketStatus.CLOSED:
        # A tag anyone could type, from someone not on the ticket: it must not change it.
        why = (f"subject tag #{ticket.number} ({how}) from {mail.sender.address}, who is not "
               "on the ticket, in mail that is no reply to ours")
        if outsider_mail == "new_ticket":
            return Decision(Action.NEW_LINKED, why, ticket=ticket.number, acknowledge=True)
        return Decision(Action.UNVERIFIED, why, ticket=ticket.number)

    if ticket.status == TicketStatus.CLOSED:
        verdict_of, why = reopening(ticket, mail.sender.address, now=now, window=reopen_window,
                                    involved=involved)
        if verdict_of is Reopen.REOPEN:
            return Decision(Action.REOPEN, f"reply to closed ticket #{ticket.number} ({how}) "
                                           f"{why}", ticket=ticket.number)
        return Decision(Action.NEW_LINKED, f"reply to closed ticket #{ticket.number} ({how}): "
                                           f"{why}", ticket=ticket.number, acknowledge=True)

    return Decision(Action.FOLLOW_UP, f"follow-up on ticket #{ticket.number} ({how})",
                    ticket=ticket.number)
