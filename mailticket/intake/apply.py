"""What each routing action does, as a table ``Action -> desk operation``: the pipeline looks the
decision's action up here and calls the desk. Adding an action is one row (and its test).
"""

from __future__ import annotations

from collections.abc import Callable

from mailticket.config import Agent
from mailticket.desk.tickets import Arrival, Desk
from mailticket.intake.route import Action, Decision
from mailticket.models import Message

Operation = Callable[[Desk, Decision, Arrival, "Agent | None"], Message]


def _agent_mail(desk: Desk, decision: Decision, arrival: Arrival, agent: Agent | None) -> Message:
    assert agent is not None and decision.ticket is not None  # route decides AGENT so
    return desk.agent_mail(decision.ticket, arrival, agent, comment=decision.comment)


def _bounce(desk: Desk, decision: Decision, arrival: Arrival, agent: Agent | None) -> Message:
    assert decision.bounce is not None  # route decides BOUNCE only with the bounce's report
    return desk.bounced(decision.ticket, arrival, decision.bounce)


def _number(decision: Decision) -> int:
    assert decision.ticket is not None  # these actions are decided about a ticket
    return decision.ticket


OPERATIONS: dict[Action, Operation] = {
    Action.NEW_TICKET: lambda desk, d, arrival, agent: desk.open_ticket(
        arrival, unknown_tag=d.unknown_tag, acknowledge=d.acknowledge),
    Action.NEW_LINKED: lambda desk, d, arrival, agent: desk.open_ticket(
        arrival, linked_to=d.ticket, acknowledge=d.acknowledge),
    Action.FOLLOW_UP: lambda desk, d, arrival, agent: desk.follow_up(_number(d), arrival),
    Action.REOPEN: lambda desk, d, arrival, agent: desk.reopen_by_mail(_number(d), arrival),
    Action.ATTACH: lambda desk, d, arrival, agent: desk.attach(_number(d), arrival),
    Action.UNVERIFIED: lambda desk, d, arrival, agent: desk.unverified(_number(d), arrival),
    Action.AGENT: _agent_mail,
    Action.BOUNCE: _bounce,
    Action.IGNORE: lambda desk, d, arrival, agent: desk.keep(arrival),
    Action.REPORT_NOTE: lambda desk, d, arrival, agent: desk.keep(arrival),
    # Action.QUARANTINE has no operation: the pipeline keeps such mail aside, not on the desk.
}


def apply(desk: Desk, decision: Decision, arrival: Arrival, agent: Agent | None) -> Message:
    return OPERATIONS[decision.action](desk, decision, arrival, agent)
