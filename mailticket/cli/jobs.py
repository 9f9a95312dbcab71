"""The ``jobs`` commands: the desk's timed jobs, their last runs, and running one now."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailticket.errors import InvalidRequest

from .arguments import Commands, family, moment
from .exitcodes import EXIT_OK

if TYPE_CHECKING:
    from mailticket.wiring import App


def add_commands(commands: Commands) -> None:
    actions = family(commands, "jobs", help="the desk's timed jobs (SLA checks, auto-close)")
    actions.add_parser("list", help="the jobs, how often they run, and their last run") \
        .set_defaults(handler=list_jobs)
    run = actions.add_parser("run", help="run one job now, or as if at another time")
    run.add_argument("name", help="the job's name (see jobs list)")
    run.add_argument("--at", type=moment, metavar="DATETIME",
                     help="run as if at this time: 2026-12-01T09:00 (UTC) or with an offset, "
                          "2026-12-01T09:00-05:00")
    run.set_defaults(handler=run_job)


def list_jobs(app: App, args: argparse.Namespace) -> int:
    from mailticket.jobs import JOBS, last_run

    for job in JOBS.values():
        print(f"{job.name:<11} every {job.every_seconds:>4} s  last: {last_run(job.name) or 'never'}")
        print(f"            {job.description}")
    return EXIT_OK


def run_job(app: App, args: argparse.Namespace) -> int:
    from mailticket.jobs import JOBS
    from mailticket.jobs import run_job as run
    from mailticket.models import utcnow

    if args.name not in JOBS:
        raise InvalidRequest(f"no job {args.name!r} (jobs: {', '.join(JOBS)})")
    at = args.at or utcnow()
    result = run(args.name, app.desk, app.db, at)
    print(f"{args.name} as at {at:%Y-%m-%d %H:%M} UTC: {result}")
    return EXIT_OK
