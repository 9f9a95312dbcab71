"""Read-only views of desk state that routing decides on (no database access here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
