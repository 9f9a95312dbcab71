#!/usr/bin/env python
"""Crash-safety chaos benchmark: mail in through IMAP while the daemon is killed with SIGKILL.

Prints a table; exits non-zero when anything was lost or duplicated. Run from the repo root::

    python bench/chaos.py                       # 500 mails, 20 kills, SQLite (a few minutes)
    python bench/chaos.py --messages 100 --kills 5
    python bench/chaos.py --database postgresql://postgres@127.0.0.1:5432/test

Everything runs on loopback and is started here: a throwaway Dovecot (tests/servers/dovecot.py),
an SMTP sink in this process (tests/servers/smtpsink.py) and the daemon, again and again, as a
child process. The workload, the kills and the counting are in tests/servers/chaos.py (shared
with tests/test_chaos.py). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from bench.ingest import FreshPostgres  # noqa: E402
from tests.servers.chaos import ChaosError, ChaosRun, Tally, tail  # noqa: E402
from tests.servers.dovecot import DOVECOT_BIN, Dovecot  # noqa: E402
from tests.servers.smtpsink import SmtpSink  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500, help="APPENDs in all (default 500)")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs (default 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--database", help="postgresql://USER@HOST:PORT/DB: a fresh database is "
                   "created on that server for the run and dropped after (default: SQLite)")
    p.add_argument("--drain-timeout", type=float, default=200.0, help="time limit of the final "
                   "clean run, s (200; acknowledgements claimed by a killed sender wait for "
                   "their 120 s lease)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument("--quiet", action="store_true", help="no line per kill")
    args = p.parse_args(argv)
    if args.kills < 1 or args.messages < 2 * args.kills:
        p.error("need --kills >= 1 and --messages >= 2 * --kills")
    if args.database and not args.database.startswith(("postgres://", "postgresql://")):
        p.error("--database takes a postgresql:// URL (SQLite is the default)")
    return args


def environment(db_kind: str, postgres: FreshPostgres | None) -> dict:
    import peewee

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "database": db_kind,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres.version if postgres else None,
        "peewee": peewee.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not DOVECOT_BIN.exists():
        print(f"{DOVECOT_BIN} is missing: run scripts/install-test-deps", file=sys.stderr)
        return 1

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="mailticket-chaos-"))
    dovecot: Dovecot | None = None
    sink: SmtpSink | None = None
    postgres: FreshPostgres | None = None
    run: ChaosRun | None = None
    status = 1
    try:
        if args.database:
            postgres = FreshPostgres(args.database)
            database_url, db_kind = postgres.create(), "postgresql"
        else:
            database_url, db_kind = f"sqlite:///{tmp / 'mailticket.db'}", "sqlite"
        env = environment(db_kind, postgres)
        (tmp / "dovecot").mkdir()
        dovecot = Dovecot(tmp / "dovecot", tls=False)
        dovecot.start()
        sink = SmtpSink()
        sink.start()
        log = (lambda line: None) if args.quiet else (lambda line: print("  " + line, flush=True))
        run = ChaosRun(tmp, database_url, dovecot, sink, messages=args.messages,
                       kills=args.kills, seed=args.seed, drain_timeout=args.drain_timeout,
                       log=log)
        print(f"chaos: {args.messages} messages, {args.kills} kills, {db_kind}, seed "
              f"{args.seed} ...", flush=True)
        tally = run.run()
        env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report(tally, env, args)
        if args.json:
            args.json.write_text(json.dumps({"environment": env, "messages": args.messages,
                                             "kills": args.kills, "seed": args.seed,
                                             "figures": dataclasses.asdict(tally),
                                             "ok": tally.ok}, indent=2) + "\n")
            print(f"figures written to {args.json}")
        status = 0 if tally.ok else 1
        if not tally.ok:
            show_logs(run, dovecot)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except (ChaosError, Exception) as exc:  # noqa: BLE001 - print what helps, then clean up
        print(f"chaos run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        show_logs(run, dovecot)
        status = 1
    finally:
        cleanup(run, sink, dovecot, postgres, tmp, keep=args.keep)
    return status


def report(tally: Tally, env: dict, args: argparse.Namespace) -> None:
    print()
    print(f"mailticket chaos benchmark  {env['date']}")
    db = env["database"] + (f" {env['postgresql']}" if env.get("postgresql") else
                            f" {env['sqlite']}")
    print(f"environment: {env['cpus']} CPUs, load average {env['loadavg_at_start'][0]:.2f} at "
          f"start, {env['loadavg_at_end'][0]:.2f} at end; Python {env['python']}; database {db}")
    print()
    print(tally.table())


def show_logs(run: ChaosRun | None, dovecot: Dovecot | None) -> None:
    if run is not None and run.daemon is not None:
        print(f"--- {run.daemon.log.name} (last lines) ---\n{tail(run.daemon.log_text(), 25)}",
              file=sys.stderr)
    if dovecot is not None:
        print(f"--- dovecot log (last lines) ---\n{dovecot.log_tail(15)}", file=sys.stderr)


def cleanup(run: ChaosRun | None, sink: SmtpSink | None, dovecot: Dovecot | None,
            postgres: FreshPostgres | None, tmp: Path, keep: bool) -> None:
    steps = [
        ("daemon", lambda: run and run.stop()),
        ("sink", lambda: sink and sink.stop()),
        ("dovecot", lambda: dovecot and dovecot.remove()),
        ("postgres", lambda: postgres and postgres.drop()),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
            print(f"cleanup of {name} failed: {exc}", file=sys.stderr)
    if keep:
        print(f"kept {tmp} (logs/daemon-NN.log: one per daemon run)", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
