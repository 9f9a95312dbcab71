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
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import peewee

from mailticket import __version__
from mailticket import config as configmod
from mailticket.errors import ConfigError, InvalidRequest, MailticketError, TemporaryFailure

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
    listing.add_argument("--group", help="only tickets with this group")
    listing.add_argument("--agent", help="only tickets assigned to this agent (address or name)")
    listing.add_argument("--agency", help="only tickets of this agency (name, any case)")
    listing.add_argument("--channel", choices=("email", "phone", "walk-in", "voicemail"))
    listing.add_argument("--overdue", action="store_true",
                         help="only tickets past their first-response target with no response")
    listing.add_argument("--due-within", metavar="DURATION", type=_plain_duration,
                         help="only tickets whose first response is due within e.g. 2h, "
                              "30 minutes, 1 day")
    listing.add_argument("--older-than", metavar="DAYS", type=int,
                         help="only tickets created more than DAYS days ago")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = tickets.add_parser("show", help="a ticket with its messages and history")
    show.add_argument("number", type=_ticket_number)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    new = tickets.add_parser(
        "new", help="log a request taken by phone, at the desk or from voicemail; the user gets "
                    "the acknowledgement with the number")
    new.add_argument("--requester", required=True, metavar="ADDRESS", type=_mail_address,
                     help="the user's mail address (the acknowledgement goes there)")
    new.add_argument("--name", default="", help="the user's name")
    new.add_argument("--channel", required=True, choices=("phone", "walk-in", "voicemail"))
    new.add_argument("--subject", required=True, metavar="TEXT")
    new.add_argument("--message", "-m", required=True, metavar="TEXT", help="what the user said")
    new.add_argument("--as", dest="actor", metavar="NAME",
                     help="who does this (default: $MAILTICKET_AGENT or your login name)")
    incident = tickets.add_parser(
        "incident", help="mark a ticket as an incident affecting users (status reports list them)")
    incident.add_argument("number", type=_ticket_number)
    incident.add_argument("--off", action="store_true", help="no longer an incident")
    incident.add_argument("--as", dest="actor", metavar="NAME",
                          help="who does this (default: $MAILTICKET_AGENT or your login name)")
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

    whois = commands.add_parser(
        "whois", help="the agency and contacts (sponsor, registrar, JTAC...) for a user, "
                      "agency or county, from the directory file")
    whois.add_argument("query", help="a mail address, an agency name or code, or a county")
    whois.add_argument("--json", action="store_true", help="machine-readable output")

    jobs = commands.add_parser("jobs", help="the desk's timed jobs (SLA checks, auto-close)")
    j_actions = jobs.add_subparsers(dest="action", metavar="ACTION")
    j_actions.required = True
    j_actions.add_parser("list", help="the jobs, how often they run, and their last run")
    j_run = j_actions.add_parser("run", help="run one job now, or as if at another time")
    j_run.add_argument("name", help="the job's name (see jobs list)")
    j_run.add_argument("--at", type=_datetime, metavar="DATETIME",
                       help="run as if at this time: 2026-12-01T09:00 (UTC) or with an offset, "
                            "2026-12-01T09:00-05:00")

    report = commands.add_parser("report", help="the status reports (config reports:)")
    r_actions = report.add_subparsers(dest="action", metavar="ACTION")
    r_actions.required = True
    r_actions.add_parser("list", help="the reports, their schedules, last and next runs")
    r_preview = r_actions.add_parser("preview", help="render a report without sending it")
    r_preview.add_argument("name")
    r_preview.add_argument("--html", type=str, metavar="FILE", help="also write the HTML part here")
    r_preview.add_argument("--at", type=_datetime, metavar="DATETIME",
                           help="as if at this time (default: now): the period ends there")
    r_send = r_actions.add_parser("send", help="send a report now (the period: since its last run)")
    r_send.add_argument("name")

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


def _plain_duration(text: str) -> timedelta:
    from mailticket.config.calendar import CalendarError, parse_plain_duration

    try:
        return parse_plain_duration(text)
    except CalendarError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mail_address(text: str) -> str:
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", text.strip()):
        raise argparse.ArgumentTypeError(f"not a mail address: {text!r}")
    return text.strip().lower()


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date and time like 2026-12-01T09:00: {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


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
        ("ticket", "new"): _ticket_new, ("whois", None): _whois,
        ("ticket", "incident"): _ticket_incident,
        ("report", "list"): _report_list, ("report", "preview"): _report_preview,
        ("report", "send"): _report_send,
        ("jobs", "list"): _jobs_list, ("jobs", "run"): _jobs_run,
        ("quarantine", "list"): _quarantine_list, ("quarantine", "retry"): _quarantine_retry,
        ("outbox", "list"): _outbox_list, ("outbox", "retry"): _outbox_retry,
    }[(args.command, getattr(args, "action", None))]
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
        "incident_at": _iso(ticket.incident_at),
    }


def _ticket_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import Ticket, utcnow

    query = Ticket.select().order_by(Ticket.number.desc()).limit(max(1, args.limit))
    if args.status:
        query = query.where(Ticket.status == args.status)
    if args.group:
        query = query.where(Ticket.group == args.group)
    if args.agent:
        found = app.settings.process.find_agents(args.agent)
        addresses = [a.address for a in found] or [args.agent.lower()]
        query = query.where(Ticket.agent.in_(addresses))
    if args.agency:
        query = query.where(peewee.fn.LOWER(Ticket.agency) == args.agency.lower())
    if args.channel:
        query = query.where(Ticket.channel == args.channel)
    now = utcnow()
    waiting = (Ticket.first_response_at.is_null() & Ticket.status.in_(["new", "open"])
               & Ticket.response_due_at.is_null(False))
    if args.overdue:
        query = query.where(waiting & (Ticket.response_due_at <= now))
    if args.due_within is not None:
        query = query.where(waiting & (Ticket.response_due_at > now)
                            & (Ticket.response_due_at <= now + args.due_within))
    if args.older_than is not None:
        query = query.where(Ticket.created_at < now - timedelta(days=args.older_than))
    tickets = list(query)
    if args.json:
        _print_json([_ticket_summary(t) for t in tickets])
        return EXIT_OK
    if not tickets:
        print("no tickets" + (f" with status {args.status}" if args.status else "")
              + (" matching the filters" if _filtered(args) else ""))
        return EXIT_OK
    print(f"{'#':>6}  {'status':<9} {'group':<10} {'due':<17} {'requester':<28} subject")
    for t in tickets:
        due = "-" if t.first_response_at or not t.response_due_at else \
            t.response_due_at.strftime("%Y-%m-%d %H:%M")
        print(f"{t.number:>6}  {t.status:<9} {_safe(t.group or '-')[:10]:<10} {due:<17} "
              f"{_safe(t.requester[:28]):<28} {_safe(t.subject[:60])}")
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
            "author": m.author, "decision": m.decision,
            "attachments": [{"filename": a.filename, "content_type": a.content_type,
                             "size": a.size, "sha256": a.sha256}
                            for a in attachments.get(m.id, [])],
        } for m in messages]
        data["events"] = [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind,
                           "detail": e.detail} for e in events]
        data["sla"] = {"first_response_due_at": _iso(ticket.response_due_at),
                       "first_response_at": _iso(ticket.first_response_at),
                       "warned_at": _iso(ticket.sla_warned_at),
                       "breached_at": _iso(ticket.sla_breached_at)}
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
    if ticket.channel != "email" or ticket.agency:
        print(f"  channel:   {ticket.channel}" + (f"   agency: {_safe(ticket.agency)}"
                                                  if ticket.agency else ""))
    print(f"  SLA:       {_sla_clock(ticket)}")
    # One timeline: messages (in, out, notes) and history events, in the order they happened.
    entries: list[tuple[Any, int, Any]] = [(m.created_at, 0, m) for m in messages]
    entries += [(e.at, 1, e) for e in events]
    entries.sort(key=lambda entry: (entry[0] or datetime.min, entry[1]))
    print("\nTimeline:")
    for _, kind, item in entries:
        if kind == 1:
            print(f"  {_when(item.at)}  {_safe(item.actor)}: {item.kind} "
                  f"{_safe(item.detail)}".rstrip())
            continue
        who = item.author or item.sender
        label = {"in": "mail in", "out": "mail out", "note": "note"}.get(item.direction,
                                                                          item.direction)
        print(f"  {_when(item.created_at)}  --- {label} from {_safe(who)} ({item.verdict})")
        print(f"      Subject: {_safe(item.subject)}")
        for a in attachments.get(item.id, []):
            print(f"      Attachment: {_safe(a.filename)} ({_safe(a.content_type)}, "
                  f"{a.size} bytes)")
        body = _safe(item.body.strip()) or "(empty)"
        print("      " + body.replace("\n", "\n      "))
    return EXIT_OK


def _sla_clock(ticket: Any) -> str:
    if ticket.response_due_at is None:
        return "no target"
    due = f"first response due {_when(ticket.response_due_at)}"
    if ticket.first_response_at is not None:
        late = ticket.first_response_at > ticket.response_due_at
        return (f"{due}; answered {_when(ticket.first_response_at)}"
                + (" (late)" if late else " (in time)"))
    if ticket.sla_breached_at is not None:
        return f"{due}; OVERDUE (lead alerted {_when(ticket.sla_breached_at)})"
    if ticket.sla_warned_at is not None:
        return f"{due}; group warned {_when(ticket.sla_warned_at)}"
    return due


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


def _filtered(args: argparse.Namespace) -> bool:
    return bool(args.group or args.agent or args.agency or args.channel or args.overdue
                or args.due_within is not None or args.older_than is not None)


def _ticket_new(app: Any, args: argparse.Namespace) -> int:
    from mailticket.db import transaction

    with transaction(app.db):
        ticket = app.desk.open_by_agent(_actor(args), args.requester, args.channel,
                                        args.subject, args.message, requester_name=args.name)
    print(f"ticket #{ticket.number} logged ({args.channel}); the acknowledgement goes to "
          f"{ticket.requester}")
    return EXIT_OK


def _whois(app: Any, args: argparse.Namespace) -> int:
    directory = app.settings.directory
    if directory is None:
        print("mailticket: no directory file is configured (directory: in the config)",
              file=sys.stderr)
        return EXIT_FAILED
    answer = directory.whois(args.query)
    if args.json:
        _print_json({
            "query": answer.query, "ambiguous": answer.ambiguous,
            "agencies": [{"name": a.name, "code": a.code, "county": a.county,
                          "domains": list(a.domains)} for a in answer.agencies],
            "county": answer.county.name if answer.county else None,
            "contacts": [{"role": c.role, "name": c.name, "email": c.email, "phone": c.phone}
                         for c in answer.contacts]})
        return EXIT_OK if answer.agencies or answer.county else EXIT_FAILED
    if not answer.agencies and answer.county is None:
        print(f"mailticket: {args.query!r} is in no agency or county of the directory",
              file=sys.stderr)
        return EXIT_FAILED
    if answer.ambiguous:
        print(f"{args.query!r} could be: " + "; ".join(a.name for a in answer.agencies))
        return EXIT_OK
    for agency in answer.agencies:
        print(f"agency:  {agency.name}" + (f" ({agency.code})" if agency.code else ""))
    if answer.county is not None:
        print(f"county:  {answer.county.name}")
    for c in answer.contacts:
        reach = ", ".join(x for x in (c.email, c.phone) if x)
        print(f"  {c.role:<12} {c.name}" + (f"  {reach}" if reach else ""))
    return EXIT_OK


def _jobs_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.desk.jobs import JOBS, last_run

    for job in JOBS.values():
        print(f"{job.name:<11} every {job.every_seconds:>4} s  last: {last_run(job.name) or 'never'}")
        print(f"            {job.description}")
    return EXIT_OK


def _jobs_run(app: Any, args: argparse.Namespace) -> int:
    from mailticket.desk.jobs import JOBS, run_job
    from mailticket.models import utcnow

    if args.name not in JOBS:
        print(f"mailticket: no job {args.name!r} (jobs: {', '.join(JOBS)})", file=sys.stderr)
        return EXIT_FAILED
    at = args.at or utcnow()
    result = run_job(args.name, app.desk, app.db, at)
    print(f"{args.name} as at {at:%Y-%m-%d %H:%M} UTC: {result}")
    return EXIT_OK


def _schedule(app: Any, name: str) -> Any:
    schedule = app.settings.reports.get(name)
    if schedule is None:
        known = ", ".join(s.name for s in app.settings.reports.schedules) or "none configured"
        raise InvalidRequest(f"no report {name!r} (reports: {known})")
    return schedule


def _report_list(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import ReportRun, utcnow
    from mailticket.reports.schedule import next_slot

    schedules = app.settings.reports.schedules
    if not schedules:
        print("no reports are configured (reports: in the config)")
        return EXIT_OK
    now = utcnow()
    for s in schedules:
        days = ",".join(d for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat",
                                                  "sun")) if i in s.days)
        last = (ReportRun.select().where(ReportRun.report == s.name)
                .order_by(ReportRun.slot.desc()).first())
        print(f"{s.name}: {s.title!r} at {s.at:%H:%M} {days} ({s.timezone}) to "
              f"{', '.join(s.to)}")
        print(f"    last: " + (f"{_when(last.slot)} {last.outcome}" if last else "never")
              + f"   next: {_when(next_slot(s, now))}")
    return EXIT_OK


def _report_preview(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import utcnow
    from mailticket.reports.render import render
    from mailticket.reports.runner import gather_for

    schedule = _schedule(app, args.name)
    at = args.at or utcnow()
    data = gather_for(app.settings, schedule, at, at)
    rendered = render(app.composer, data, title=schedule.title, desk_name=app.settings.desk.name,
                      desk_address=app.settings.desk.address)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(rendered.html or "")
        print(f"(HTML part written to {args.html})", file=sys.stderr)
    return EXIT_OK


def _report_send(app: Any, args: argparse.Namespace) -> int:
    from mailticket.models import utcnow
    from mailticket.reports.runner import send

    schedule = _schedule(app, args.name)
    now = utcnow().replace(microsecond=0)
    if not send(app.desk, app.db, schedule, now, now):
        raise InvalidRequest(f"report {args.name} was sent at this very second already")
    print(f"report {args.name} queued to {', '.join(schedule.to)}; the daemon sends it")
    return EXIT_OK


def _ticket_incident(app: Any, args: argparse.Namespace) -> int:
    from mailticket.db import transaction

    with transaction(app.db):
        app.desk.set_incident(args.number, _actor(args), on=not args.off)
    print(f"ticket #{args.number} " + ("is no longer an incident" if args.off
                                       else "marked as an incident affecting users"))
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
