"""The ``ticket`` commands: list and show tickets, log one taken by phone, and change them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailticket.db import transaction
from mailticket.desk import queries
from mailticket.desk.commands import command_help
from mailticket.models import Event, Message, Outage, OutageTicket, Ticket, utcnow
from mailticket.vocabulary import PORTAL_SOURCE, Channel, Direction, OutboxStatus, TicketStatus

from .arguments import (
    Commands,
    actor,
    add_actor,
    add_json,
    choices,
    family,
    mail_address,
    plain_duration,
    ticket_number,
)
from .exitcodes import EXIT_OK
from .output import iso, print_json, safe, when

if TYPE_CHECKING:
    from mailticket.wiring import App

# Changes that take a message: (action, help, what the message is, what the CLI reports).
_CHANGES = (
    ("reply", "send a reply to the requester (and Cc's)", "the reply text", "reply queued"),
    ("resolve", "mark it fixed: back to the desk's queue, the user is asked to verify",
     "what was done", "resolved"),
    ("close", "close a ticket; the user gets 'Ticket #N has been closed'", "the resolution",
     "closed"),
    ("reopen", "reopen a closed ticket; the user is told", "why it is reopened", "reopened"),
)
_DONE = {action: done for action, _, _, done in _CHANGES}


def add_commands(commands: Commands) -> None:
    actions = family(
        commands, "ticket", help="list, show, reply to, close and reopen tickets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="agents may also work a ticket by mail, with these lines at the top of it:\n"
               + "\n".join(f"  {line}" for line in command_help()))
    _add_list(actions)
    show = actions.add_parser("show", help="a ticket with its messages and history")
    show.add_argument("number", type=ticket_number)
    add_json(show)
    show.set_defaults(handler=show_ticket)
    _add_new(actions)
    _add_assignments(actions)
    for name, helptext, what, _ in _CHANGES:
        action = actions.add_parser(name, help=helptext)
        action.add_argument("number", type=ticket_number)
        action.add_argument("--message", "-m", required=True, metavar="TEXT", help=what)
        add_actor(action)
        action.set_defaults(handler=change_ticket)


def _add_list(actions: Commands) -> None:
    listing = actions.add_parser("list", help="list tickets, newest first")
    listing.add_argument("--status", choices=choices(TicketStatus))
    listing.add_argument("--group", help="only tickets with this group")
    listing.add_argument("--agent", help="only tickets assigned to this agent (address or name)")
    listing.add_argument("--agency", help="only tickets of this agency (name, any case)")
    listing.add_argument("--channel", choices=choices(Channel))
    listing.add_argument("--overdue", action="store_true",
                         help="only tickets past their first-response target with no response")
    listing.add_argument("--due-within", metavar="DURATION", type=plain_duration,
                         help="only tickets whose first response is due within e.g. 2h, "
                              "30 minutes, 1 day")
    listing.add_argument("--older-than", metavar="DAYS", type=int,
                         help="only tickets created more than DAYS days ago")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json(listing)
    listing.set_defaults(handler=list_tickets)


def _add_new(actions: Commands) -> None:
    new = actions.add_parser(
        "new", help="log a request taken by phone, at the desk or from voicemail; the user gets "
                    "the acknowledgement with the number")
    new.add_argument("--requester", required=True, metavar="ADDRESS", type=mail_address,
                     help="the user's mail address (the acknowledgement goes there)")
    new.add_argument("--name", default="", help="the user's name")
    new.add_argument("--channel", required=True, choices=choices(Channel.logged_by_agents()))
    new.add_argument("--subject", required=True, metavar="TEXT")
    new.add_argument("--message", "-m", required=True, metavar="TEXT", help="what the user said")
    add_actor(new)
    new.set_defaults(handler=new_ticket)


def _add_assignments(actions: Commands) -> None:
    incident = actions.add_parser(
        "incident", help="open an outage from a ticket (as mailticket outage open --from-ticket)")
    incident.add_argument("number", type=ticket_number)
    incident.add_argument("--off", action="store_true",
                          help="gone: says which outage command to use instead")
    add_actor(incident)
    incident.set_defaults(handler=mark_incident)
    assign = actions.add_parser("assign", help="give a ticket to an agent; the agent is told")
    assign.add_argument("number", type=ticket_number)
    assign.add_argument("agent", help="the agent: address, local part or name (config groups)")
    add_actor(assign)
    assign.set_defaults(handler=assign_ticket)
    escalate = actions.add_parser(
        "escalate", help="hand a ticket to another group (as config escalation allows); "
                         "the group is told")
    escalate.add_argument("number", type=ticket_number)
    escalate.add_argument("--to", dest="group", required=True, metavar="GROUP",
                          help="the group (a key of config groups)")
    escalate.add_argument("--message", "-m", required=True, metavar="TEXT",
                          help="what the group must know")
    add_actor(escalate)
    escalate.set_defaults(handler=escalate_ticket)


# --- reading ------------------------------------------------------------------------------------

def list_tickets(app: App, args: argparse.Namespace) -> int:
    wanted = _filter(app, args)
    found = queries.tickets(wanted, utcnow())
    if args.json:
        print_json([_summary(t) for t in found])
        return EXIT_OK
    if not found:
        print("no tickets" + (f" with status {args.status}" if args.status else "")
              + (" matching the filters" if wanted.narrowed else ""))
        return EXIT_OK
    print(f"{'#':>6}  {'status':<9} {'group':<10} {'due':<17} {'requester':<28} subject")
    for t in found:
        due = "-" if t.first_response_at or not t.response_due_at else \
            t.response_due_at.strftime("%Y-%m-%d %H:%M")
        print(f"{t.number:>6}  {t.status:<9} {safe(t.group or '-')[:10]:<10} {due:<17} "
              f"{safe(t.requester[:28]):<28} {safe(t.subject[:60])}")
    return EXIT_OK


def _filter(app: App, args: argparse.Namespace) -> queries.TicketFilter:
    """The list's filter from the arguments; ``--agent`` names agents as the config does, and
    an address no group lists is taken as it is."""
    agents: list[str] = []
    if args.agent:
        found = app.settings.process.find_agents(args.agent)
        agents = [a.address for a in found] or [args.agent.lower()]
    return queries.TicketFilter(
        status=args.status, group=args.group, agents=agents, agency=args.agency,
        channel=args.channel, overdue=args.overdue, due_within=args.due_within,
        older_than_days=args.older_than, limit=args.limit)


def _summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number, "status": ticket.status, "subject": ticket.subject,
        "requester": ticket.requester, "requester_name": ticket.requester_name,
        "cc": ticket.cc, "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at), "closed_at": iso(ticket.closed_at),
        "resolution": ticket.resolution, "linked_to": ticket.linked_to_id,
        "group": ticket.group, "agent": ticket.agent, "channel": ticket.channel,
        "agency": ticket.agency, "resolved_at": iso(ticket.resolved_at),
        "incident_at": iso(ticket.incident_at),
    }


def show_ticket(app: App, args: argparse.Namespace) -> int:
    ticket = app.desk.get(args.number)
    history = queries.history(ticket)
    if args.json:
        print_json(_detail(ticket, history))
        return EXIT_OK
    _print_header(ticket)
    print("\nTimeline:")
    for item in history.timeline():
        if isinstance(item, Event):
            print(f"  {when(item.at)}  {safe(item.actor)}: {item.kind} "
                  f"{safe(item.detail)}".rstrip())
        else:
            _print_message(item, history)
    return EXIT_OK


def _detail(ticket: Ticket, history: queries.History) -> dict[str, Any]:
    data = _summary(ticket)
    data["messages"] = [{
        "direction": m.direction, "message_id": m.message_id, "from": m.sender,
        "from_name": m.sender_name, "subject": m.subject, "date": iso(m.date),
        "received_at": iso(m.created_at), "verdict": m.verdict, "body": m.body,
        "author": m.author, "decision": m.decision, "source": m.source,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "sha256": a.sha256} for a in history.attachments_of(m)],
    } for m in history.messages]
    data["events"] = [{"at": iso(e.at), "actor": e.actor, "kind": e.kind,
                       "detail": e.detail} for e in history.events]
    data["outages"] = _outages_of(ticket)
    data["sla"] = {"first_response_due_at": iso(ticket.response_due_at),
                   "first_response_at": iso(ticket.first_response_at),
                   "warned_at": iso(ticket.sla_warned_at),
                   "breached_at": iso(ticket.sla_breached_at)}
    return data


def _print_header(ticket: Ticket) -> None:
    print(f"Ticket #{ticket.number}: {safe(ticket.subject) or '(no subject)'}")
    print(f"  status:    {ticket.status}")
    if ticket.group or ticket.agent:
        print(f"  group:     {ticket.group or '-'}   agent: {safe(ticket.agent) or '-'}")
    print(f"  requester: {safe(ticket.requester_name)} <{safe(ticket.requester)}>"
          .replace("  <", " <"))
    if ticket.cc:
        print(f"  cc:        {safe(', '.join(ticket.cc))}")
    print(f"  created:   {when(ticket.created_at)}   updated: {when(ticket.updated_at)}")
    if ticket.linked_to_id:
        print(f"  follows:   ticket #{ticket.linked_to_id}")
    if ticket.resolution:
        print(f"  resolution: {safe(ticket.resolution)}")
    if ticket.channel != Channel.EMAIL or ticket.agency:
        print(f"  channel:   {ticket.channel}" + (f"   agency: {safe(ticket.agency)}"
                                                  if ticket.agency else ""))
    for outage in _outages_of(ticket):
        print(f"  outage:    #{outage['number']} ({outage['state']}): {safe(outage['title'])}")
    print(f"  SLA:       {_sla_clock(ticket)}")


def _outages_of(ticket: Ticket) -> list[dict[str, Any]]:
    return [{"number": o.number, "title": o.title, "state": o.state}
            for o in Outage.select().join(OutageTicket)
            .where(OutageTicket.ticket == ticket.number).order_by(Outage.number)]


_LABELS = {Direction.IN: "mail in", Direction.OUT: "mail out", Direction.NOTE: "note"}


def _print_message(message: Message, history: queries.History) -> None:
    who = message.author or message.sender
    label = _LABELS.get(message.direction, message.direction)
    via = " via the portal" if message.source == PORTAL_SOURCE else ""
    print(f"  {when(message.created_at)}  --- {label}{via} from {safe(who)} ({message.verdict})")
    print(f"      Subject: {safe(message.subject)}")
    for a in history.attachments_of(message):
        print(f"      Attachment: {safe(a.filename)} ({safe(a.content_type)}, {a.size} bytes)")
    body = safe(message.body.strip()) or "(empty)"
    print("      " + body.replace("\n", "\n      "))


def _sla_clock(ticket: Ticket) -> str:
    if ticket.response_due_at is None:
        return "no target"
    due = f"first response due {when(ticket.response_due_at)}"
    if ticket.first_response_at is not None:
        late = ticket.first_response_at > ticket.response_due_at
        return (f"{due}; answered {when(ticket.first_response_at)}"
                + (" (late)" if late else " (in time)"))
    if ticket.sla_breached_at is not None:
        return f"{due}; OVERDUE (lead alerted {when(ticket.sla_breached_at)})"
    if ticket.sla_warned_at is not None:
        return f"{due}; group warned {when(ticket.sla_warned_at)}"
    return due


# --- changing -----------------------------------------------------------------------------------
# Each change runs in its own transaction, opened here at the edge (the desk never commits).

def change_ticket(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        row = getattr(app.desk, args.action)(args.number, actor(args), args.message)
    print(f"ticket #{args.number} {_DONE[args.action]}; mail to {', '.join(row.recipients)} "
          f"queued as outbox #{row.id}"
          + (f" ({row.status})" if row.status != OutboxStatus.PENDING else ""))
    return EXIT_OK


def new_ticket(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        ticket = app.desk.open_by_agent(actor(args), args.requester, args.channel,
                                        args.subject, args.message, requester_name=args.name)
    print(f"ticket #{ticket.number} logged ({args.channel}); the acknowledgement goes to "
          f"{ticket.requester}")
    return EXIT_OK


def mark_incident(app: App, args: argparse.Namespace) -> int:
    """Incidents are outages now (schema v6): the old command opens one from the ticket, so
    scripts that mark incidents keep working; ``--off`` is an error naming what to run."""
    with transaction(app.db):
        if args.off:
            app.desk.incident_off(args.number)
        outage = app.desk.outage_from_ticket(args.number, actor(args))
    print(f"ticket #{args.number}: outage #{outage.number} opened from it "
          f"(mailticket outage show {outage.number})")
    return EXIT_OK


def assign_ticket(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        row = app.desk.assign(args.number, actor(args), args.agent)
    print(f"ticket #{args.number} assigned to {', '.join(row.recipients)}; they are told "
          f"(outbox #{row.id})")
    return EXIT_OK


def escalate_ticket(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        row = app.desk.escalate(args.number, actor(args), args.group, args.message)
    print(f"ticket #{args.number} escalated to {args.group}; mail to {', '.join(row.recipients)} "
          f"queued as outbox #{row.id}")
    return EXIT_OK
