"""The ``outage`` commands: open an outage, link and unlink its tickets, tell users and
partners, show its scope and impact, and resolve it (its tickets closed, their users told)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailticket.db import reading, transaction
from mailticket.desk import outages
from mailticket.errors import UnknownOutage
from mailticket.models import Outage, OutageLog, OutageTicket, Ticket

from .arguments import Commands, actor, add_actor, add_json, family, ticket_number
from .exitcodes import EXIT_OK
from .output import iso, print_json, safe, when

if TYPE_CHECKING:
    from mailticket.wiring import App


def outage_number(text: str) -> int:
    cleaned = text.lstrip("#")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"not an outage number: {text!r}")
    return int(cleaned)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number, 1 or more: {text!r}")
    return int(text)


def add_commands(commands: Commands) -> None:
    actions = family(commands, "outage",
                     help="outages: open, link tickets, tell users, show the impact, resolve")
    opening = actions.add_parser(
        "open", help="open an outage; the lead and outages.notify are told at once")
    opening.add_argument("title")
    opening.add_argument("--app", dest="apps", action="append", default=[], metavar="APP",
                         help="an affected application (outages.applications); repeatable")
    opening.add_argument("--agency", dest="agencies", action="append", default=[],
                         metavar="AGENCY", help="limit the scope to an agency of the "
                                                "directory (name or code); repeatable")
    opening.add_argument("--public", default="", metavar="TEXT", help="what users are told")
    source = opening.add_mutually_exclusive_group()
    source.add_argument("--from-ticket", type=ticket_number, metavar="N",
                        help="the ticket it was seen in: linked to it")
    source.add_argument("--from-spike", type=outage_number, metavar="ID",
                        help="the spike of look-alike tickets it was alerted as (the alert "
                             "names it): its tickets not closed nor in another outage linked")
    _add_advice(opening)
    add_actor(opening)
    opening.set_defaults(handler=open_outage)

    listing = actions.add_parser("list", help="outages, newest first, with their figures")
    add_json(listing)
    listing.set_defaults(handler=list_outages)
    show = actions.add_parser("show", help="an outage: scope and impact, tickets, log")
    show.add_argument("number", type=outage_number)
    add_json(show)
    show.set_defaults(handler=show_outage)

    for name, helptext, handler in (
            ("link", "link tickets to an open outage", link_tickets),
            ("unlink", "unlink tickets from an open outage", unlink_tickets)):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("number", type=outage_number)
        action.add_argument("tickets", nargs="+", type=ticket_number, metavar="TICKET")
        add_actor(action)
        action.set_defaults(handler=handler)

    update = actions.add_parser("update", help="change what users are told")
    update.add_argument("number", type=outage_number)
    update.add_argument("--public", metavar="TEXT", help="what users are told")
    update.add_argument("--title", metavar="TEXT",
                        help="a new title (public too: the portal shows it)")
    update.add_argument("--notify", action="store_true",
                        help="mail it to the users of every linked ticket not closed")
    _add_advice(update)
    add_actor(update)
    update.set_defaults(handler=update_outage)

    note = actions.add_parser("note", help="add to the outage's internal log")
    note.add_argument("number", type=outage_number)
    note.add_argument("--message", "-m", required=True, metavar="TEXT")
    add_actor(note)
    note.set_defaults(handler=note_outage)

    resolve = actions.add_parser(
        "resolve", help="resolve it: every linked ticket not closed is closed with the "
                        "resolution and its users told; the lead gets the figures")
    resolve.add_argument("number", type=outage_number)
    resolve.add_argument("--message", "-m", required=True, metavar="RESOLUTION")
    resolve.add_argument("--batch-size", type=_positive, default=outages.BATCH_SIZE,
                         help=f"tickets closed per transaction (default {outages.BATCH_SIZE})")
    add_actor(resolve)
    resolve.set_defaults(handler=resolve_outage)


def _add_advice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--advise-partners", action="store_true",
                        help="mail the public text to outages.partners")
    parser.add_argument("--advise-contacts", action="store_true",
                        help="mail the public text to the directory contacts (sponsors, "
                             "registrars, JTACs...) of the affected agencies")


# --- reading ------------------------------------------------------------------------------------

def _summary(app: App, outage: Outage) -> dict[str, Any]:
    return {"number": outage.number, "title": outage.title, "state": outage.state,
            "applications": outage.applications, "agencies": outage.agencies,
            "scope": outages.scope_text(outage), "public_text": outage.public_text,
            "opened_at": iso(outage.opened_at), "opened_by": outage.opened_by,
            "resolved_at": iso(outage.resolved_at), "resolved_by": outage.resolved_by,
            "resolution": outage.resolution,
            "impact": outages.impact(outage, app.settings).as_dict()}


def list_outages(app: App, args: argparse.Namespace) -> int:
    with reading(app.db):
        found = [_summary(app, o) for o in Outage.select().order_by(Outage.number.desc())]
    if args.json:
        print_json(found)
        return EXIT_OK
    if not found:
        print("no outages")
        return EXIT_OK
    print(f"{'#':>5}  {'state':<9} {'opened':<20} {'tickets':>7} {'users':>5}  title")
    for o in found:
        figures = o["impact"]
        print(f"{o['number']:>5}  {o['state']:<9} {o['opened_at'][:16].replace('T', ' '):<20} "
              f"{figures['tickets']:>7} {figures['users']:>5}  {safe(o['title'])[:60]}")
    return EXIT_OK


def show_outage(app: App, args: argparse.Namespace) -> int:
    with reading(app.db):
        outage = Outage.get_or_none(Outage.number == args.number)
        if outage is None:
            raise UnknownOutage(args.number)
        data = _summary(app, outage)
        tickets = list(Ticket.select(Ticket, OutageTicket)
                       .join(OutageTicket, on=(OutageTicket.ticket == Ticket.number))
                       .where(OutageTicket.outage == outage.number).order_by(Ticket.number))
        entries = list(OutageLog.select().where(OutageLog.outage == outage.number)
                       .order_by(OutageLog.id))
    data["tickets"] = [{"number": t.number, "status": t.status, "subject": t.subject,
                        "requester": t.requester, "channel": t.channel, "agency": t.agency,
                        "linked_at": iso(t.outageticket.linked_at),
                        "linked_by": t.outageticket.linked_by,
                        "settled": t.outageticket.settled} for t in tickets]
    data["log"] = [{"at": iso(e.at), "author": e.author, "text": e.text} for e in entries]
    if args.json:
        print_json(data)
        return EXIT_OK
    figures = data["impact"]
    print(f"Outage #{outage.number}: {safe(outage.title)}")
    print(f"  state:        {outage.state}")
    print(f"  applications: {safe(', '.join(outage.applications)) or '-'}")
    print(f"  scope:        {safe(data['scope'])}")
    print(f"  opened:       {when(outage.opened_at)} by {safe(outage.opened_by)}")
    if outage.resolution:
        print(f"  resolution:   {safe(outage.resolution)}"
              + (f" ({when(outage.resolved_at)} by {safe(outage.resolved_by)})"
                 if outage.resolved_at else f" (resolving, by {safe(outage.resolved_by)})"))
    print(f"  public text:  {safe(outage.public_text) or '-'}")
    print("Scope and impact:")
    print(f"  tickets:      {figures['tickets']} ({figures['open_tickets']} open): "
          + ", ".join(f"{c['count']} {c['name']}" for c in figures["channels"]))
    print(f"  users:        {figures['users']}")
    reach = figures["reach"] + (f" ({figures['outside']} ticket(s) from outside the scope)"
                                if figures["outside"] else "")
    print(f"  reach:        {reach}")
    print("  agencies:     " + (safe("; ".join(f"{a['name']} {a['count']}"
                                               for a in figures["agencies"])) or "-"))
    print(f"  related:      {safe(', '.join(figures['related'])) or '-'}")
    print("Tickets:")
    for t in data["tickets"]:
        print(f"  #{t['number']:<6} {t['status']:<9} {t['channel']:<9} "
              f"{safe(t['requester'])[:28]:<28} {safe(t['subject'])[:40]}")
    if not data["tickets"]:
        print("  (none)")
    print("Log:")
    for e in entries:
        print(f"  {when(e.at)}  {safe(e.author)}: {safe(e.text)}")
    return EXIT_OK


# --- changing -----------------------------------------------------------------------------------
# Each change is one transaction, opened here (resolve: one per batch, in desk.outages.resolve).

def open_outage(app: App, args: argparse.Namespace) -> int:
    who = actor(args)
    linked = ""
    with transaction(app.db):
        if args.from_spike:
            outage, tickets, skipped = app.desk.outage_from_spike(
                args.from_spike, who, args.title, applications=args.apps,
                agencies=args.agencies, public_text=args.public)
            linked = (f"; from spike #{args.from_spike}: "
                      + (", ".join(f"#{n}" for n in tickets) or "no ticket") + " linked"
                      + (" (left out, closed or in another outage: "
                         + ", ".join(f"#{n}" for n in skipped) + ")" if skipped else ""))
        else:
            outage = app.desk.open_outage(who, args.title, applications=args.apps,
                                          agencies=args.agencies, public_text=args.public,
                                          from_ticket=args.from_ticket)
            if args.from_ticket:
                linked = f"; ticket #{args.from_ticket} linked"
        advised = _advise(app, args, outage.number, who)
    told = app.desk.outage_staff()
    print(f"outage #{outage.number} opened: {outage.title}" + linked
          + (f"; told {', '.join(told)}" if told else "; nobody to tell (no lead, "
             "outages.notify or desk.alerts_to)") + advised)
    return EXIT_OK


def _advise(app: App, args: argparse.Namespace, number: int, who: str) -> str:
    done = ""
    for whom, wanted in (("partners", args.advise_partners), ("contacts", args.advise_contacts)):
        if wanted:
            done += f"; {whom} advised: {', '.join(app.desk.advise(number, who, whom))}"
    return done


def link_tickets(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        linked = app.desk.link_tickets(args.number, actor(args), args.tickets)
    print(f"outage #{args.number}: linked " + ", ".join(f"#{n}" for n in linked))
    return EXIT_OK


def unlink_tickets(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        done = app.desk.unlink_tickets(args.number, actor(args), args.tickets)
    print(f"outage #{args.number}: unlinked " + ", ".join(f"#{n}" for n in done))
    return EXIT_OK


def update_outage(app: App, args: argparse.Namespace) -> int:
    who = actor(args)
    with transaction(app.db):
        told = app.desk.update_outage(args.number, who, args.public, notify=args.notify,
                                      title=args.title)
        advised = _advise(app, args, args.number, who)
    print(f"outage #{args.number}: "
          + " and ".join(what for what, given in (("title", args.title),
                                                  ("public text", args.public)) if given is not None)
          + " updated"
          + (f"; the users of {told} ticket(s) told" if args.notify else "") + advised)
    return EXIT_OK


def note_outage(app: App, args: argparse.Namespace) -> int:
    with transaction(app.db):
        app.desk.note_outage(args.number, actor(args), args.message)
    print(f"outage #{args.number}: noted")
    return EXIT_OK


def resolve_outage(app: App, args: argparse.Namespace) -> int:
    closed, finished = outages.resolve(app.desk, app.db, args.number, actor(args), args.message,
                                       batch_size=args.batch_size)
    print(f"outage #{args.number} " + ("resolved" if finished else "still resolving")
          + f"; {closed} ticket(s) dealt with, their users told")
    return EXIT_OK
