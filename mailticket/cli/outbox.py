"""The ``outbox`` commands: outgoing mail not sent or not delivered, and sending one again."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailticket.desk import queries
from mailticket.vocabulary import OutboxStatus

from .arguments import Commands, add_json, family
from .exitcodes import EXIT_OK
from .output import iso, print_json

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    actions = family(commands, "outbox", help="outgoing mail waiting, sent or failed")
    listing = actions.add_parser(
        "list", help="mail not sent or not delivered (pending, held, failed, bounced)")
    listing.add_argument("--failed", action="store_true",
                         help="only mail that failed for good or bounced")
    add_json(listing)
    listing.set_defaults(handler=list_outbox)
    retry = actions.add_parser("retry", help="send a failed, bounced or held mail again")
    retry.add_argument("id", type=int)
    retry.set_defaults(handler=retry_outbox)


def list_outbox(app: App, args: argparse.Namespace) -> int:
    rows = queries.outbox_rows(OutboxStatus.undelivered() if args.failed
                               else OutboxStatus.unsent())
    if args.json:
        print_json([{"id": o.id, "kind": o.kind, "ticket": o.ticket_id,
                     "recipients": o.recipients, "status": o.status, "attempts": o.attempts,
                     "next_attempt_at": iso(o.next_attempt_at), "last_error": o.last_error,
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


def retry_outbox(app: App, args: argparse.Namespace) -> int:
    from mailticket.sender import retry

    retry(app.db, args.id)
    print(f"outbox #{args.id} queued again; the daemon will send it")
    return EXIT_OK
