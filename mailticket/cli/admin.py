"""The commands that run, check or set up the service itself: run, check-config, init-db."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailticket.config import Settings
from mailticket.db import safe_url

from .arguments import Commands
from .exitcodes import EXIT_OK

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    # run and check-config need no database: the package's dispatch runs them before building
    # the parts (and run, the daemon, is started there: only the entry point imports it).
    commands.add_parser("run", help="run the daemon (intake, outgoing mail, timed jobs, the "
                                    "portal) until SIGTERM/SIGINT")
    commands.add_parser("check-config", help="validate the config file and templates, start nothing")
    commands.add_parser("init-db", help="create or upgrade the database schema").set_defaults(
        handler=init_db)


def check_config(settings: Settings) -> int:
    from mailticket.mail.compose import Composer

    Composer(settings.templates).check()
    if settings.web is not None:
        from mailticket.web.context import check_pages

        check_pages(settings)
    print(f"{settings.path}: OK")
    return EXIT_OK


def init_db(app: App, args: argparse.Namespace) -> int:
    # Building the app has migrated the schema already.
    print(f"database ready: {safe_url(app.settings.database)}")
    return EXIT_OK
