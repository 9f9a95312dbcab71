"""The ``quarantine`` commands: the messages intake could not process, and running one again."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mailticket.desk import queries

from .arguments import Commands, add_json, family
from .exitcodes import EXIT_FAILED, EXIT_OK
from .output import iso, print_json, safe, when

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    actions = family(commands, "quarantine", help="messages that could not be processed")
    listing = actions.add_parser("list", help="messages held in quarantine")
    listing.add_argument("--all", action="store_true", help="include released ones")
    add_json(listing)
    listing.set_defaults(handler=list_quarantined)
    retry = actions.add_parser("retry", help="run a quarantined message through intake again")
    retry.add_argument("id", type=int)
    retry.set_defaults(handler=retry_quarantined)


def list_quarantined(app: App, args: argparse.Namespace) -> int:
    rows = queries.quarantined(include_released=args.all)
    if args.json:
        print_json([{"id": q.id, "source": q.source, "key": q.source_key, "error": q.error,
                     "status": q.status, "created_at": iso(q.created_at),
                     "message_id": q.message_id, "ticket": q.ticket_id} for q in rows])
        return EXIT_OK
    if not rows:
        print("quarantine is empty")
        return EXIT_OK
    for q in rows:
        print(f"#{q.id}  {when(q.created_at)}  {q.status}  {q.source} {safe(q.source_key)}")
        print(f"     {safe(q.error)}")
    return EXIT_OK


def retry_quarantined(app: App, args: argparse.Namespace) -> int:
    from mailticket.intake.items import Outcome

    result = app.pipeline.retry_quarantined(args.id)
    if result.outcome is Outcome.QUARANTINED:
        print(f"quarantined message #{args.id} still fails: {result.detail}", file=sys.stderr)
        return EXIT_FAILED
    where = f"ticket #{result.ticket}" if result.ticket else "recorded (no ticket)"
    print(f"quarantined message #{args.id} released: {where}")
    return EXIT_OK
