"""What users do to their tickets besides writing (which comes in as mail, through intake):
confirm that a resolved ticket is fixed, which closes it."""

from __future__ import annotations

from mailticket.desk.agent_work import AgentWork
from mailticket.desk.core import view
from mailticket.errors import InvalidRequest
from mailticket.models import Outbox
from mailticket.vocabulary import TicketStatus


class UserWork(AgentWork):
    def confirm_fixed(self, number: int, address: str) -> Outbox:
        """"It's fixed, close it": someone on a resolved ticket closes it with its resolution,
        and gets the usual "Ticket #N has been closed"."""
        ticket = self.get(number)
        if not view(ticket).involves(address):
            raise InvalidRequest(f"{address} is not on ticket #{number}")
        if ticket.status != TicketStatus.RESOLVED:
            raise InvalidRequest(f"ticket #{number} is {ticket.status}, not resolved")
        return self.close(number, address.lower(), ticket.resolution or "confirmed fixed")
