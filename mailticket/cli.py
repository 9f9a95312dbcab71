"""The command line for agents and admins, and the only place errors become exit codes.

Exit codes: 0 done; 1 the request failed (unknown ticket, wrong state, ...); 2 bad arguments;
3 the config file is invalid; 4 a temporary failure (database unreachable): try again.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import datetime
from typing import Any, Sequence

import peewee

from mailticket import __version__
from mailticket import config as configmod
from mailticket.errors import ConfigError, MailticketError, TemporaryFailure

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_TEMPORARY = 0, 1, 2, 3, 4

EPILOG = """\
config: --config PATH, else $MAILTICKET_CONFIG, else config/mailticket.yaml
exit codes: 0 done, 1 request failed, 2 bad arguments, 3 invalid config, 4 temporary failure
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailticket", description="A service desk that people reach by email.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help="the YAML config file")
    parser.add_argument("--version", action="version", version=f"mailticket {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    commands.add_parser("run", help="run the daemon (intake, outgoing mail) until SIGTERM/SIGINT")
    commands.add_parser("check-config", help="validate the config file and templates, start nothing")
    commands.add_parser("init-db", help="create or upgrade the database schema")

    ticket = commands.add_parser("ticket", help="list, show, reply to, close and reopen tickets")
    tickets = ticket.add_subparsers(dest="action", metavar="ACTION")
    tickets.required = True
    listing = tickets.add_parser("list", help="list tickets, newest first")
    listing.add_argument("--status", choices=("new", "open", "resolved", "closed"))
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = tickets.add_parser("show", help="a ticket with its messages and history")
    show.add_argument("number", type=_ticket_number)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    assign = tickets.add_parser("assign", help="give a ticket to an agent; the agent is told")
    assign.add_argument("number", type=_ticket_number)
    assign.add_argument("agent", help="the agent: address, local part or name (config groups)")
    assign.add_argument("--as", dest="actor", metavar="NAME",
                        help="who does this (default: $MAILTICKET_AGENT or your login name)")
    escalate = tickets.add_parser(
        "escalate", help="hand a ticket to another group (as config escalation allows); "
                         "the group is told")
    escalate.add_argument("number", type=_ticket_number)
    escalate.add_argument("--to", dest="group", required=True, metavar="GROUP",
                          help="the group (a key of config groups)")
    escalate.add_argument("--message", "-m", required=True, metavar="TEXT",
                          help="what the group must know")
    escalate.add_argument("--as", dest="actor", metavar="NAME",
                          help="who does this (default: $MAILTICKET_AGENT or your login name)")
    for name, helptext, what in (
            ("reply", "send a reply to the requester (and Cc's)", "the reply text"),
            ("resolve", "mark it fixed: back to the desk's queue, the user is asked to verify",
             "what was done"),
            ("close", "close a ticket; the user gets 'Ticket #N has been closed'", "the resolution"),
            ("reopen", "reopen a closed ticket; the user is told", "why it is reopened")):
        action = tickets.add_parser(name, help=helptext)
        action.add_argument("number", type=_ticket_number)
        action.add_argument("--message", "-m", required=True, metavar="TEXT", help=what)
        action.add_argument("--as", dest="actor", metavar="NAME",
                            help="who does this (default: $MAILTICKET_AGENT or your login name)")

    quarantine = commands.add_parser("quarantine", help="messages that could not be processed")
    q_actions = quarantine.add_subparsers(dest="action", metavar="ACTION")
    q_actions.required = True
    q_list = q_actions.add_parser("list", help="messages held in quarantine")
    q_list.add_argument("--all", action="store_true", help="include released ones")
    q_list.add_argument("--json", action="store_true", help="machine-readable output")
    q_retry = q_actions.add_parser("retry", help="run a quarantined message through intake again")
    q_retry.add_argument("id", type=int)

    outbox = commands.add_parser("outbox", help="outgoing mail waiting, sent or failed")
    o_actions = outbox.add_subparsers(dest="action", metavar="ACTION")
    o_actions.required = True
    o_list = o_actions.add_parser(
        "list", help="mail not sent or not delivered (pending, held, failed, bounced)")
    o_list.add_argument("--failed", action="store_true",
                        help="only mail that failed for good or bounced")
    o_list.add_argument("--json", action="store_true", help="machine-readable output")
    o_retry = o_actions.add_parser("retry", help="send a failed, bounced or held mail again")
    o_retry.add_argument("id", type=int)
    return parser


def _ticket_number(text: str) -> int:
    cleaned = text.lstrip("#")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"not a ticket number: {text!r}")
    return int(cleaned)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = configmod.load(args.config)
        return _dispatch(args, settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mailticket: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except TemporaryFailure as exc:
        print(f"mailticket: temporary failure, try again: {exc}", file=sys.stderr)
        return EXIT_TEMPORARY
    except MailticketError as exc:
        print(f"mailticket: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        print(f"mailticket: database unavailable: {exc}", file=sys.stderr)
        return EXIT_TEMPORARY
    except OSError as exc:  # a port in use, a directory we may not write...
        print(f"mailticket: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace, settings: configmod.Settings) -> int:
    from mailticket import logs

    secrets = [m.password.value for m in settings.intake.imap if m.password]
    if settings.outgoing.smtp and settings.outgoing.smtp.password:
        secrets.append(settings.outgoing.smtp.password.value)
    if args.command == "run":
        from mailticket.daemon import Daemon

        logs.setup(settings.logging.level, settings.logging.file, secrets)
        healthy = Daemon(settings).run_forever()
        return EXIT_OK if healthy else EXIT_FAILED
    logs.setup("WARNING", None, secrets)
    if args.command == "check-config":
        from mailticket.mail.compose import Composer

        Composer(settings.templates).check()
        print(f"{settings.path}: OK")
        return EXIT_OK

    from mailticket.wiring import build

    app = build(settings, migrate=True)
    if args.command == "init-db":
        print(f"database ready: {_safe_url(settings.database)}")
        return EXIT_OK
    handler = {
        ("ticket", "list"): _ticket_list, ("ticket", "show"): _ticket_show,
        ("ticket", "reply"): _ticket_change, ("ticket", "close"): _ticket_change,
        ("ticket", "reopen"): _ticket_change, ("ticket", "resolve"): _ticket_change,
        ("ticket", "assign"): _ticket_assign, ("ticket", "escalate"): _ticket_escalate,
        ("quarantine", "list"): _quarantine_list, ("quarantine", "retry"): _quarantine_retry,
        ("outbox", "list"): _outbox_list, ("outbox", "retry"): _outbox_retry,
    }[(args.command, args.action)]
    return handler(app, args)


def _safe_url(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("MAILTICKET_AGENT") or getpass.getuser()


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _safe(text: str | None) -> str:
    """Text a sender wrote, made harmless for a terminal: no escape sequences, no bells."""
    return _UNPRINTABLE.sub("\ufffd", text or "")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# --- tickets ----------------------------------------------------------------------------------

def _ticket_summary(ticket: Any) -> dict[str, Any]:
    return {
        "number": ticket.number, "status": ticket.status, "subject": ticket.subject,
        "requester": ticket.requester, "requester_name": ticket.requester_name,
        "cc": ticket.cc, "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at), "closed_at": _iso(ticket.closed_at),
        "resolution": ticket.resolution, "linked_to": ticket.linked_to_id,
        "group": ticket.group, "agent": ticket.agent, "channel": ticket.channel,
        "agency": ticket.agency, "resolved_at": _iso(ticket.resolved_at),
    }


def _ticket_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import Ticket

    query = Ticket.select().order_by(Ticket.number.desc()).limit(max(1, args.limit))
    if args.status:
        query = query.where(Ticket.status == args.status)
    tickets = list(query)
    if args.json:
        _print_json([_ticket_summary(t) for t in tickets])
        return EXIT_OK
    if not tickets:
        print("no tickets" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    print(f"{'#':>6}  {'status':<9} {'updated':<20} {'requester':<30} subject")
    for t in tickets:
        print(f"{t.number:>6}  {t.status:<9} {_when(t.updated_at):<20} "
              f"{_safe(t.requester[:30]):<30} {_safe(t.subject[:60])}")
    return EXIT_OK


def _ticket_show(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import Attachment, Event, Message

    ticket = app.desk.get(args.number)
    messages = list(Message.select().where(Message.ticket == ticket).order_by(Message.id))
    attachments: dict[int, list[Any]] = {}
    for a in Attachment.select().where(Attachment.message.in_([m.id for m in messages])):
        attachments.setdefault(a.message_id, []).append(a)
    events = list(Event.select().where(Event.ticket == ticket).order_by(Event.id))
    if args.json:
        data = _ticket_summary(ticket)
        data["messages"] = [{
            "direction": m.direction, "message_id": m.message_id, "from": m.sender,
            "from_name": m.sender_name, "subject": m.subject, "date": _iso(m.date),
            "received_at": _iso(m.created_at), "verdict": m.verdict, "body": m.body,
            "attachments": [{"filename": a.filename, "content_type": a.content_type,
                             "size": a.size, "sha256": a.sha256}
                            for a in attachments.get(m.id, [])],
        } for m in messages]
        data["events"] = [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind,
                           "detail": e.detail} for e in events]
        _print_json(data)
        return EXIT_OK
    print(f"Ticket #{ticket.number}: {_safe(ticket.subject) or '(no subject)'}")
    print(f"  status:    {ticket.status}")
    if ticket.group or ticket.agent:
        print(f"  group:     {ticket.group or '-'}   agent: {_safe(ticket.agent) or '-'}")
    print(f"  requester: {_safe(ticket.requester_name)} <{_safe(ticket.requester)}>"
          .replace("  <", " <"))
    if ticket.cc:
        print(f"  cc:        {_safe(', '.join(ticket.cc))}")
    print(f"  created:   {_when(ticket.created_at)}   updated: {_when(ticket.updated_at)}")
    if ticket.linked_to_id:
        print(f"  follows:   ticket #{ticket.linked_to_id}")
    if ticket.resolution:
        print(f"  resolution: {_safe(ticket.resolution)}")
    print("\nMessages:")
    for m in messages:
        who = m.author or m.sender
        print(f"--- {m.direction} {_when(m.created_at)} from {_safe(who)} ({m.verdict})")
        print(f"    Subject: {_safe(m.subject)}")
        for a in attachments.get(m.id, []):
            print(f"    Attachment: {_safe(a.filename)} ({_safe(a.content_type)}, {a.size} bytes)")
        body = _safe(m.body.strip()) or "(empty)"
        print("    " + body.replace("\n", "\n    "))
    print("\nHistory:")
    for e in events:
        print(f"  {_when(e.at)}  {_safe(e.actor)}: {e.kind} {_safe(e.detail)}".rstrip())
    return EXIT_OK


def _ticket_change(app: Any, args: argparse.Namespace) -> int:
    from mailticket.db import transaction

    actor = _actor(args)
    with transaction(app.db):
        action = getattr(app.desk, args.action)
        row = action(args.number, actor, args.message)
    done = {"reply": "reply queued", "close": "closed", "reopen": "reopened",
            "resolve": "resolved"}[args.action]
    print(f"ticket #{args.number} {done}; mail to {', '.join(row.recipients)} queued as "
          f"outbox #{row.id}" + (f" ({row.status})" if row.status != "pending" else ""))
    return EXIT_OK


def _ticket_assign(app: Any, args: argparse.Namespace) -> int:
    from mailticket.db import transaction

    with transaction(app.db):
        row = app.desk.assign(args.number, _actor(args), args.agent)
    print(f"ticket #{args.number} assigned to {', '.join(row.recipients)}; they are told "
          f"(outbox #{row.id})")
    return EXIT_OK


def _ticket_escalate(app: Any, args: argparse.Namespace) -> int:
    from mailticket.db import transaction

    with transaction(app.db):
        row = app.desk.escalate(args.number, _actor(args), args.group, args.message)
    print(f"ticket #{args.number} escalated to {args.group}; mail to {', '.join(row.recipients)} "
          f"queued as outbox #{row.id}")
    return EXIT_OK


# --- quarantine and outbox --------------------------------------------------------------------

def _quarantine_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import Quarantine

    query = Quarantine.select(Quarantine.id, Quarantine.source, Quarantine.source_key,
                              Quarantine.error, Quarantine.status, Quarantine.created_at,
                              Quarantine.message_id, Quarantine.ticket).order_by(Quarantine.id)
    if not args.all:
        query = query.where(Quarantine.status == "held")
    rows = list(query)
    if args.json:
        _print_json([{"id": q.id, "source": q.source, "key": q.source_key, "error": q.error,
                      "status": q.status, "created_at": _iso(q.created_at),
                      "message_id": q.message_id, "ticket": q.ticket_id} for q in rows])
        return EXIT_OK
    if not rows:
        print("quarantine is empty")
        return EXIT_OK
    for q in rows:
        print(f"#{q.id}  {_when(q.created_at)}  {q.status}  {q.source} {_safe(q.source_key)}")
        print(f"     {_safe(q.error)}")
    return EXIT_OK


def _quarantine_retry(app: Any, args: argparse.Namespace) -> int:
    from mailticket.intake.items import Outcome

    result = app.pipeline.retry_quarantined(args.id)
    if result.outcome is Outcome.QUARANTINED:
        print(f"quarantined message #{args.id} still fails: {result.detail}", file=sys.stderr)
        return EXIT_FAILED
    where = f"ticket #{result.ticket}" if result.ticket else "recorded (no ticket)"
    print(f"quarantined message #{args.id} released: {where}")
    return EXIT_OK


def _outbox_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import Outbox

    statuses = ["failed", "bounced"] if args.failed else ["pending", "held", "failed", "bounced"]
    rows = list(Outbox.select(Outbox.id, Outbox.kind, Outbox.ticket, Outbox.recipients,
                              Outbox.status, Outbox.attempts, Outbox.next_attempt_at,
                              Outbox.last_error, Outbox.subject, Outbox.bounced)
                .where(Outbox.status.in_(statuses)).order_by(Outbox.id))
    if args.json:
        _print_json([{"id": o.id, "kind": o.kind, "ticket": o.ticket_id,
                      "recipients": o.recipients, "status": o.status, "attempts": o.attempts,
                      "next_attempt_at": _iso(o.next_attempt_at), "last_error": o.last_error,
                      "subject": o.subject, "bounced": o.bounced or []} for o in rows])
        return EXIT_OK
    if not rows:
        print("no failed mail" if args.failed else "outbox is empty: everything was sent")
        return EXIT_OK
    for o in rows:
        print(f"#{o.id}  {o.status:<8} {o.kind:<9} ticket {o.ticket_id or '-'}  "
              f"to {', '.join(o.recipients)}  attempts {o.attempts}")
        if o.last_error:
            print(f"     {o.last_error}")
    return EXIT_OK


def _outbox_retry(app: Any, args: argparse.Namespace) -> int:
    from mailticket.sender import retry

    retry(app.db, args.id)
    print(f"outbox #{args.id} queued again; the daemon will send it")
    return EXIT_OK
