"""The ``portal`` commands: switch off every portal link and session of an address."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailticket.config.addresses import valid_address
from mailticket.db import transaction
from mailticket.errors import InvalidRequest

from .arguments import Commands, family
from .exitcodes import EXIT_OK

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    actions = family(commands, "portal", help="the self-service portal's links")
    revoke = actions.add_parser(
        "revoke", help="refuse every link and session of an address made so far (a lost "
                       "phone, a forwarded link); mail sent later carries new links")
    revoke.add_argument("address", help="the user's mail address")
    revoke.set_defaults(handler=revoke_address)
    serve = actions.add_parser(
        "serve", help="serve the portal alone on web.listen until SIGTERM (mailticket run "
                      "starts web.workers of these; a daemon on the same database sends the "
                      "mail it queues)")
    serve.set_defaults(handler=serve_portal)


def serve_portal(app: App, args: argparse.Namespace) -> int:
    if app.settings.web is None:
        raise InvalidRequest("the portal is off: the config has no web section")
    from mailticket.web.server import serve

    serve(app)
    return EXIT_OK


def revoke_address(app: App, args: argparse.Namespace) -> int:
    address = args.address.strip()
    if not valid_address(address):
        raise InvalidRequest(f"{address!r} is not a mail address")
    if app.links is None:
        raise InvalidRequest("the portal is off (no web section in the config): there are no "
                             "links to revoke")
    with transaction(app.db):
        generation = app.links.revoke(address)
    print(f"revoked every portal link and session of {address.lower()} "
          f"(generation {generation}); mail sent from now on carries new links")
    return EXIT_OK
