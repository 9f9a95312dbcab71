"""The command line for agents and admins, and the only place errors become exit codes.

``main`` parses the arguments, loads the config and hands the command to its handler; each
command family (tickets, outages, quarantine, outbox, jobs, reports, whois, portal, the service itself)
lives in its own module, with its arguments. Handlers return an exit code or raise; errors become exit
codes and one-line messages here, and only here.

Exit codes: 0 done; 1 the request failed (unknown ticket, wrong state, ...); 2 bad arguments;
3 the config file is invalid; 4 a temporary failure (database unreachable): try again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import peewee

from mailticket import __version__
from mailticket import config as configmod
from mailticket.errors import ConfigError, MailticketError, TemporaryFailure

from . import admin, jobs, outages, outbox, portal, quarantine, reports, tickets, whois
from .exitcodes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_TEMPORARY, EXIT_USAGE

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_TEMPORARY", "EXIT_USAGE", "main"]

EPILOG = """\
config: --config PATH, else $MAILTICKET_CONFIG, else config/mailticket.yaml
exit codes: 0 done, 1 request failed, 2 bad arguments, 3 invalid config, 4 temporary failure
"""

# The command families, in the order ``mailticket --help`` lists them.
FAMILIES = (admin, tickets, outages, quarantine, whois, jobs, reports, outbox, portal)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailticket", description="A service desk that people reach by email.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help="the YAML config file")
    parser.add_argument("--version", action="version", version=f"mailticket {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for family in FAMILIES:
        family.add_commands(commands)
    return parser


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
    """Logging is set up once, here: the daemon's from the config, a command's quiet. Commands
    other than ``run`` and ``check-config`` get the parts built from the settings."""
    from mailticket import logs

    if args.command == "run":
        from mailticket.daemon import Daemon

        logs.setup(settings.logging.level, settings.logging.file, _secrets(settings))
        return EXIT_OK if Daemon(settings).run_forever() else EXIT_FAILED
    if args.command == "portal" and args.action == "serve":  # a service: the config's logging
        logs.setup(settings.logging.level, settings.logging.file, _secrets(settings))
    else:
        logs.setup("WARNING", None, _secrets(settings))
    if args.command == "check-config":
        return admin.check_config(settings)

    from mailticket.wiring import build

    app = build(settings, migrate=True)
    try:
        return args.handler(app, args)
    finally:
        app.close()


def _secrets(settings: configmod.Settings) -> list[str]:
    """The passwords the logs must never show."""
    secrets = [m.password.value for m in settings.intake.imap if m.password]
    if settings.outgoing.smtp and settings.outgoing.smtp.password:
        secrets.append(settings.outgoing.smtp.password.value)
    return secrets
