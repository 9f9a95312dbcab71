"""The ``whois`` command: the agency and contacts for a user, agency or county (the directory)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailticket.config.directory import Answer
from mailticket.errors import InvalidRequest

from .arguments import Commands, add_json
from .exitcodes import EXIT_FAILED, EXIT_OK
from .output import print_json

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    whois = commands.add_parser(
        "whois", help="the agency and contacts (sponsor, registrar, JTAC...) for a user, "
                      "agency or county, from the directory file")
    whois.add_argument("query", help="a mail address, an agency name or code, or a county")
    add_json(whois)
    whois.set_defaults(handler=whois_lookup)


def whois_lookup(app: App, args: argparse.Namespace) -> int:
    directory = app.settings.directory
    if directory is None:
        raise InvalidRequest("no directory file is configured (directory: in the config)")
    answer = directory.whois(args.query)
    if args.json:
        print_json(_as_json(answer))
        return EXIT_OK if answer.agencies or answer.county else EXIT_FAILED
    if not answer.agencies and answer.county is None:
        raise InvalidRequest(f"{args.query!r} is in no agency or county of the directory")
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


def _as_json(answer: Answer) -> dict[str, Any]:
    return {
        "query": answer.query, "ambiguous": answer.ambiguous,
        "agencies": [{"name": a.name, "code": a.code, "county": a.county,
                      "domains": list(a.domains)} for a in answer.agencies],
        "county": answer.county.name if answer.county else None,
        "contacts": [{"role": c.role, "name": c.name, "email": c.email, "phone": c.phone}
                     for c in answer.contacts]}
