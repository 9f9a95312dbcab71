"""Read-only views of desk state that routing decides on (no database access here), and the one
rule for who may reopen a ticket and when: mail (routing), the portal and the CLI ask it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailticket.vocabulary import TicketStatus


@dataclass(frozen=True)
class TicketView:
    number: int
    status: str
    requester: str
    cc: frozenset[str]
    closed_at: datetime | None

    def involves(self, address: str) -> bool:
        address = address.lower()
        return address == self.requester.lower() or address in self.cc


class Reopen(enum.Enum):
    REOPEN = "reopen"          # closed, within the window, by someone on it (or by staff)
    BACK_TO_OPEN = "open"      # resolved: a word from someone on it sends it back to open
    NEW_LINKED = "new_linked"  # closed too long ago, or asked by someone not on it
    NOT_CLOSED = "not_closed"  # new or open: there is nothing to reopen


def reopening(ticket: TicketView, by: str, *, now: datetime, window: timedelta,
              staff: bool = False, involved: bool | None = None) -> tuple[Reopen, str]:
    """What a wish of ``by`` to reopen ``ticket`` comes to, and why. Staff (agents, from the
    CLI or by mail) may reopen any closed ticket; a user on the ticket within
    ``desk.reopen_window_days`` of its closing; anyone else, or later, gets a new ticket linked
    to it. ``involved``: ``by`` counts as on the ticket (default: requester or Cc)."""
    if involved is None:
        involved = ticket.involves(by)
    if ticket.status == TicketStatus.RESOLVED:
        if staff or involved:
            return Reopen.BACK_TO_OPEN, "resolved, and someone on it says it is not fixed"
        return Reopen.NEW_LINKED, "resolved, and asked by someone not on it"
    if ticket.status != TicketStatus.CLOSED:
        return Reopen.NOT_CLOSED, f"ticket #{ticket.number} is {ticket.status}, not closed"
    if staff:
        return Reopen.REOPEN, "reopened by the desk"
    if not involved:
        return Reopen.NEW_LINKED, "closed, and asked by someone not on it"
    closed_at = ticket.closed_at or now
    if now - closed_at <= window:
        return Reopen.REOPEN, "within the reopen window"
    return Reopen.NEW_LINKED, f"closed {(now - closed_at).days} days ago"
