"""The command line's argument types and the options several commands share."""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailticket.config.addresses import valid_address

# argparse's object that ``add_subparsers`` returns (its class is private to argparse).
Commands = Any


def family(commands: Commands, name: str, help: str, **options: Any) -> Commands:
    """A command family (``mailticket NAME ACTION ...``): its parser, and the actions to add."""
    actions = commands.add_parser(name, help=help, **options).add_subparsers(
        dest="action", metavar="ACTION")
    actions.required = True
    return actions


def choices(values: Iterable[str]) -> tuple[str, ...]:
    """The plain texts of vocabulary members: argparse names choices by repr in its errors."""
    return tuple(str(value) for value in values)


def plain_duration(text: str) -> timedelta:
    from mailticket.config.calendar import CalendarError, parse_plain_duration

    try:
        return parse_plain_duration(text)
    except CalendarError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def mail_address(text: str) -> str:
    if not valid_address(text.strip()):
        raise argparse.ArgumentTypeError(f"not a mail address: {text!r}")
    return text.strip().lower()


def moment(text: str) -> datetime:
    """A date and time, naive UTC; one with an offset is converted."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date and time like 2026-12-01T09:00: {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def ticket_number(text: str) -> int:
    cleaned = text.lstrip("#")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise argparse.ArgumentTypeError(f"not a ticket number: {text!r}")
    return int(cleaned)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as", dest="actor", metavar="NAME",
                        help="who does this (default: $MAILTICKET_AGENT or your login name)")


def actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("MAILTICKET_AGENT") or getpass.getuser()
