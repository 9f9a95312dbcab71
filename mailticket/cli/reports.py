"""The ``report`` commands: the configured status reports, previewing one, sending one now."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mailticket.config import ReportSchedule
from mailticket.config.calendar import DAY_NAMES
from mailticket.desk import queries
from mailticket.errors import InvalidRequest
from mailticket.models import utcnow

from .arguments import Commands, family, moment
from .exitcodes import EXIT_OK
from .output import when

if TYPE_CHECKING:
    from mailticket.wiring import App



def add_commands(commands: Commands) -> None:
    actions = family(commands, "report", help="the status reports (config reports:)")
    actions.add_parser("list", help="the reports, their schedules, last and next runs") \
        .set_defaults(handler=list_reports)
    preview = actions.add_parser("preview", help="render a report without sending it")
    preview.add_argument("name")
    preview.add_argument("--html", type=str, metavar="FILE", help="also write the HTML part here")
    preview.add_argument("--at", type=moment, metavar="DATETIME",
                         help="as if at this time (default: now): the period ends there")
    preview.set_defaults(handler=preview_report)
    send = actions.add_parser("send", help="send a report now (the period: since its last run)")
    send.add_argument("name")
    send.set_defaults(handler=send_report)


def _schedule(app: App, name: str) -> ReportSchedule:
    schedule = app.settings.reports.get(name)
    if schedule is None:
        known = ", ".join(s.name for s in app.settings.reports.schedules) or "none configured"
        raise InvalidRequest(f"no report {name!r} (reports: {known})")
    return schedule


def list_reports(app: App, args: argparse.Namespace) -> int:
    from mailticket.reports.schedule import next_slot

    schedules = app.settings.reports.schedules
    if not schedules:
        print("no reports are configured (reports: in the config)")
        return EXIT_OK
    now = utcnow()
    for s in schedules:
        days = ",".join(d for i, d in enumerate(DAY_NAMES) if i in s.days)
        last = queries.last_report_run(s.name)
        print(f"{s.name}: {s.title!r} at {s.at:%H:%M} {days} ({s.timezone}) to "
              f"{', '.join(s.to)}")
        print("    last: " + (f"{when(last.slot)} {last.outcome}" if last else "never")
              + f"   next: {when(next_slot(s, now))}")
    return EXIT_OK


def preview_report(app: App, args: argparse.Namespace) -> int:
    from mailticket.reports.render import render
    from mailticket.reports.runner import gather_for

    schedule = _schedule(app, args.name)
    at = args.at or utcnow()
    data = gather_for(app.db, app.settings, schedule, at, at)
    rendered = render(app.composer, data, title=schedule.title, desk_name=app.settings.desk.name,
                      desk_address=app.settings.desk.address)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(rendered.html or "")
        print(f"(HTML part written to {args.html})", file=sys.stderr)
    return EXIT_OK


def send_report(app: App, args: argparse.Namespace) -> int:
    from mailticket.reports.runner import send

    schedule = _schedule(app, args.name)
    now = utcnow().replace(microsecond=0)
    if not send(app.desk, app.db, schedule, now, now):
        raise InvalidRequest(f"report {args.name} was sent at this very second already")
    print(f"report {args.name} queued to {', '.join(schedule.to)}; the daemon sends it")
    return EXIT_OK
