#!/usr/bin/env python
"""Outage resolve benchmark: an outage with 5,000 linked open tickets resolved through the real
``mailticket outage resolve`` (in a child process): seconds, tickets closed, mails queued and
the child's peak memory.

Prints figures; asserts nothing. Run from the repo root::

    python bench/outage.py                  # 5,000 tickets, SQLite
    python bench/outage.py --quick          # 500 tickets
    python bench/outage.py --database postgresql://postgres@127.0.0.1:5432/test

The setup is bulk inserts (tickets with a requester, every fifth with two Cc's, each linked to
outage #1), not timed. The resolve closes every ticket in batches of 200 (one transaction
each), queueing "Ticket #N has been closed" to its users, then the lead's summary. Peak memory
is the child's VmHWM (read by the child itself as it exits), next to that of
``mailticket --help`` (the interpreter and the package imported). With ``--database`` a fresh
database is created on that server and dropped afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

import peewee  # noqa: E402

from mailticket.models import Outage, OutageTicket, Outbox, Ticket  # noqa: E402
from mailticket.wiring import attach, detach  # noqa: E402
from tests.helpers import write_config  # noqa: E402

CONFIG = """\
groups:
  desk: {level: 1, members: ["Ada <ada@desk.example.test>"]}
  lead: {level: 3, members: ["Lee <lee@desk.example.test>"]}
new_tickets_to: desk
outages:
  notify: [appsupport@desk.example.test]
  applications:
    records: {names: [records system, RMS], related: [portal]}
"""


def build(url: str, tickets: int) -> float:
    """The outage and its tickets, by bulk inserts; seconds taken."""
    started = time.monotonic()
    db = attach(url)
    try:
        now = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
        with db.atomic():
            outage = Outage.create(title="Records system down", applications=["records"],
                                   agencies=[], public_text="We are on it.", state="open",
                                   opened_at=now, opened_by="bench", updated_at=now)
            rows = [{"subject": f"Records system down ({n})", "status": "open",
                     "requester": f"user{n:05d}@agency{n % 40}.example.gov",
                     "requester_name": f"User {n}", "group": "desk", "channel": "email",
                     "cc": [f"boss{n % 40}@agency{n % 40}.example.gov",
                            f"peer{n:05d}@example.org"] if n % 5 == 0 else [],
                     "created_at": now, "updated_at": now} for n in range(1, tickets + 1)]
            for start in range(0, len(rows), 500):
                Ticket.insert_many(rows[start:start + 500]).execute()
            numbers = [n for (n,) in Ticket.select(Ticket.number).tuples()]
            links = [{"outage": outage.number, "ticket": n, "linked_at": now,
                      "linked_by": "bench"} for n in numbers]
            for start in range(0, len(links), 500):
                OutageTicket.insert_many(links[start:start + 500]).execute()
    finally:
        detach(url)
    return time.monotonic() - started


# The child reports its own peak: ru_maxrss of a child (wait4, RUSAGE_CHILDREN) starts from
# this process's size at the fork, so it would report the bench, not the resolve.
_RUN = """\
import atexit, runpy, sys
path = sys.argv[1]
atexit.register(lambda: open(path, "a").write(
    next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]))
sys.argv = ["mailticket", *sys.argv[2:]]
runpy.run_module("mailticket", run_name="__main__")
"""


def child(config: Path, *args: str) -> tuple[float, int, str]:
    """Run ``python -m mailticket --config CONFIG ARGS``: (seconds, peak RSS in KiB, output)."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", _RUN, peak.name, "--config", str(config),
                               *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
        output = done.stdout.decode(errors="replace")
        if done.returncode:
            raise RuntimeError(f"mailticket {' '.join(args)} exited {done.returncode}: {output}")
        return seconds, int(peak.read() or 0), output.strip()


def counts(url: str) -> tuple[int, dict[str, int]]:
    attach(url)
    try:
        closed = Ticket.select().where(Ticket.status == "closed").count()
        kinds = {kind: n for kind, n in Outbox.select(Outbox.kind, peewee.fn.COUNT(Outbox.id))
                 .group_by(Outbox.kind).tuples()}
    finally:
        detach(url)
    return closed, kinds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tickets", type=int, default=5000, help="linked tickets (5000)")
    p.add_argument("--database", help="postgresql://USER@HOST:PORT/DB: a fresh database is "
                   "created on that server and dropped after (default: SQLite)")
    p.add_argument("--quick", action="store_true", help="500 tickets")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.quick:
        args.tickets = 500
    tmp = Path(tempfile.mkdtemp(prefix="mailticket-bench-outage-"))
    postgres = None
    try:
        if args.database:
            from ingest import FreshPostgres

            postgres = FreshPostgres(args.database)
            url, kind = postgres.create(), f"PostgreSQL {postgres.version}"
        else:
            import sqlite3

            url, kind = f"sqlite:///{tmp / 'mailticket.db'}", f"SQLite {sqlite3.sqlite_version}"
        config = write_config(tmp, url, extra=CONFIG)
        print(f"building {args.tickets} tickets linked to outage #1 ...", flush=True)
        setup = build(url, args.tickets)
        _, baseline, _ = child(config, "--help")
        print("resolving through mailticket outage resolve ...", flush=True)
        seconds, peak, output = child(config, "outage", "resolve", "1", "--message",
                                      "The records database was restarted.", "--as", "bench")
        closed, kinds = counts(url)
        print(f"\nmailticket outage resolve benchmark  "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"environment: {os.cpu_count()} CPUs, {platform.platform()}, "
              f"Python {platform.python_version()}, {kind}; load average "
              f"{os.getloadavg()[0]:.2f}")
        print(f"setup:       {args.tickets} tickets ({args.tickets // 5} with 2 Cc's) linked "
              f"to one outage, bulk-inserted in {setup:.1f} s")
        print(f"resolve:     {output}")
        print(f"  seconds (the child process, start to exit)  {seconds:.2f} s "
              f"({args.tickets / seconds:.0f} tickets/s)")
        print(f"  tickets closed                              {closed}")
        print("  mails queued                                "
              f"{sum(kinds.values())} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
        print(f"  peak RSS of the resolve                     {peak / 1024:.1f} MiB "
              f"(mailticket --help: {baseline / 1024:.1f} MiB)")
        return 0
    finally:
        if postgres is not None:
            postgres.drop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
