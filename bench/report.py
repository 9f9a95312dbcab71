#!/usr/bin/env python
"""Status report benchmark: gather the figures and render the report over 100,000 tickets.

Prints figures; asserts nothing. Run from the repo root::

    python bench/report.py                       # SQLite in a temporary directory
    python bench/report.py --database postgresql://postgres@127.0.0.1:5432/test
    python bench/report.py --tickets 20000 --runs 3 --html /tmp/report.html --text /tmp/report.txt
    python bench/report.py --time-indexes        # also with indexes on message.created_at and
                                                 # event.at, which the schema does not have yet

The database is built with bulk inserts (executemany on SQLite, COPY on PostgreSQL, where a
fresh database is created on the server of ``--database`` and dropped afterwards): ``--tickets``
tickets created over the 90 days before "now" (Tuesday 10 February 2026, 17:00 New York time),
mostly in business hours, with their messages (the request, follow-ups, replies, notes) and
events (created, status changes, replies, follow-ups, assignments, escalations, reopenings). Old
tickets are nearly all closed; a few hundred stay open, as on a real desk.

Then ``gather`` + ``render`` run ``--runs`` times for each of four periods (the morning report,
the end-of-shift report, the weekend, and a whole week charted by day); min and median are
printed, and the end-of-shift report's figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import peewee  # noqa: E402

from mailticket import db as dbmod  # noqa: E402
from mailticket.config import Sla  # noqa: E402
from mailticket.config.calendar import BusinessCalendar, BusinessDuration  # noqa: E402
from mailticket.mail.compose import Composer  # noqa: E402
from mailticket.models import Event, Message, Ticket  # noqa: E402
from mailticket.reports.figures import IncidentLine, NoteLine, Period, gather  # noqa: E402
from mailticket.reports.render import render  # noqa: E402
from mailticket.wiring import attach, detach  # noqa: E402

ZONE = ZoneInfo("America/New_York")
CALENDAR = BusinessCalendar.from_config(timezone="America/New_York", days="mon-fri",
                                        hours="07:00-17:00")
SLA = Sla(first_response=BusinessDuration(days=1), calendar=CALENDAR,
          warn_before=timedelta(hours=2))
MAILBOXES = ("imap://desk@mail.example.test:993/INBOX", "imap://support@mail.example.test:993/INBOX",
             "smtp://127.0.0.1:8025")
AGENCIES = tuple(f"Agency {i:02d}" for i in range(1, 21))
AGENTS = tuple(f"agent{i}@desk.example.test" for i in range(1, 13))
GROUPS = (("desk", 70), ("network", 15), ("apps", 10), ("lead", 5))
CHANNELS = (("email", 85), ("phone", 8), ("walk-in", 2), ("voicemail", 5))
SUBJECTS = ("VPN down", "Password reset", "Locked account", "Printer on floor 3 is broken",
            "Access to the records system", "Who is the registrar for my county?",
            "Notifications not arriving", "Role change for a new officer", "Mail delays",
            "Cannot log in <again> & again")


def local(text: str) -> datetime:
    """A New York wall time as naive UTC."""
    return (datetime.fromisoformat(text).replace(tzinfo=ZONE).astimezone(timezone.utc)
            .replace(tzinfo=None))


NOW = local("2026-02-10T17:00")  # a Tuesday, end of shift
PERIODS = (  # name, period, now
    ("morning", Period(local("2026-02-09T17:00"), local("2026-02-10T07:30")),
     local("2026-02-10T07:30")),
    ("end of shift", Period(local("2026-02-10T07:30"), NOW), NOW),
    ("weekend", Period(local("2026-02-06T17:00"), local("2026-02-09T07:30")),
     local("2026-02-09T07:30")),
    ("a week, by day", Period(NOW - timedelta(days=7), NOW), NOW),
)


# --- the data --------------------------------------------------------------------------------------

def weighted(rng: random.Random, pairs) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def business_moment(rng: random.Random, first: datetime, last: datetime) -> datetime:
    """A moment between ``first`` and ``last``, nine in ten of them while the desk is open."""
    span = (last - first).total_seconds()
    while True:
        at = first + timedelta(seconds=rng.random() * span)
        if CALENDAR.is_open(at) or rng.random() < 0.1:
            return at.replace(microsecond=0)


class Rows:
    """Rows of one table, every column given: peewee's Python-side defaults are filled in once."""

    def __init__(self, model: type[peewee.Model], names: tuple[str, ...]):
        fields = model._meta.fields
        self.table = model._meta.table_name
        rest = [f for f in model._meta.sorted_fields
                if f.name not in names and not isinstance(f, peewee.AutoField)]
        self.columns = [fields[n].column_name for n in names] + [f.column_name for f in rest]
        self.tail = tuple(_text(f.db_value(f.default() if callable(f.default) else f.default))
                          for f in rest)
        self.rows: list[tuple] = []

    def add(self, *values) -> None:
        self.rows.append(tuple(_text(v) for v in values) + self.tail)


def _text(value):
    return value.isoformat(" ") if isinstance(value, datetime) else value


def generate(n_tickets: int, seed: int) -> list[Rows]:
    rng = random.Random(seed)
    tickets = Rows(Ticket, ("number", "subject", "status", "requester", "requester_name",
                            "created_at", "updated_at", "closed_at", "group", "agent", "channel",
                            "agency", "resolved_at", "first_response_at", "response_due_at",
                            "sla_warned_at", "sla_breached_at"))
    messages = Rows(Message, ("ticket", "direction", "message_id", "sender", "subject", "source",
                              "created_at"))
    events = Rows(Event, ("ticket", "at", "actor", "kind", "detail"))
    first = NOW - timedelta(days=90)
    created_times = sorted(business_moment(rng, first, NOW) for _ in range(n_tickets))
    mid = 0
    for number, created in enumerate(created_times, start=1):
        age = NOW - created
        channel = weighted(rng, CHANNELS)
        group = weighted(rng, GROUPS)
        requester = f"user{rng.randrange(20000)}@agency{rng.randrange(20)}.example.org"
        subject = rng.choice(SUBJECTS)
        due = CALENDAR.add(created, timedelta(hours=10))
        r = rng.random()
        if age > timedelta(days=10):
            status = "closed" if r < 0.995 else ("resolved" if r < 0.998 else "open")
        elif age > timedelta(days=2):
            status = "closed" if r < 0.6 else ("resolved" if r < 0.8 else "open")
        else:
            status = "new" if r < 0.3 else ("open" if r < 0.8 else
                                            "resolved" if r < 0.95 else "closed")
        responded = None
        if status != "new":
            late = rng.random() < 0.08
            responded = min(NOW, (due + timedelta(hours=rng.uniform(0.1, 20))) if late
                            else created + (due - created) * rng.uniform(0.02, 0.95))
        resolved_at = closed_at = None
        if status in ("resolved", "closed"):
            resolved_at = min(NOW, (responded or created) + timedelta(hours=rng.uniform(0.5, 48)))
        if status == "closed":
            closed_at = min(NOW, resolved_at + timedelta(hours=rng.uniform(1, 72)))
        last = closed_at or resolved_at or responded or created
        warned = breached = None
        if status in ("new", "open") and responded is None:
            if due <= NOW:
                breached = warned = due
            elif CALENDAR.between(NOW, due) <= SLA.warn_before:
                warned = NOW - timedelta(minutes=5)
        agent = rng.choice(AGENTS) if status != "new" else None
        tickets.add(number, f"{subject} ({number})", status, requester, "", created, last,
                    closed_at, group, agent, channel, rng.choice(AGENCIES), resolved_at,
                    responded, due, warned, breached)

        def msg(direction, at, source):
            nonlocal mid
            mid += 1
            messages.add(number, direction, f"<bench-{mid}@example.test>", requester, subject,
                         source, at)

        def ev(at, kind, detail=""):
            events.add(number, at, "ada@desk.example.test", kind, detail)

        msg("in", created, rng.choice(MAILBOXES) if channel == "email" else channel)
        ev(created, "created", "new request")
        if responded is not None:
            msg("out", responded, "")
            ev(responded, "reply", "Looking into it.")
            ev(responded, "status", "new -> open: first reply")
            if rng.random() < 0.5:
                ev(responded, "assigned", agent or "")
            if rng.random() < 0.15:
                to = "lead" if group == "network" else "network"
                ev(responded + timedelta(minutes=30), "escalated",
                   f"{group} -> {to} (level {3 if to == 'lead' else 2}): over to you")
            end = resolved_at or NOW
            for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
                at = responded + (end - responded) * rng.random()
                msg("in", at, rng.choice(MAILBOXES))
                ev(at, "follow_up", f"message <bench-{mid}@example.test>")
            if rng.random() < 0.2:
                at = responded + (end - responded) * rng.random()
                msg("note", at, "")
                ev(at, "comment", "internal note")
        if resolved_at is not None:
            msg("out", resolved_at, "")
            ev(resolved_at, "status", "open -> resolved: fixed it")
        if closed_at is not None:
            ev(closed_at, "status", "resolved -> closed: confirmed by the user")
            if rng.random() < 0.02 and closed_at < NOW - timedelta(hours=2):
                again = closed_at + timedelta(hours=1)
                ev(again, "status", "closed -> open: reopened by reply")
                ev(again, "reopened", "it broke again")
    return [tickets, messages, events]


def load(db: peewee.Database, tables: list[Rows]) -> None:
    if dbmod.is_sqlite(db):
        conn = db.connection()
        with db.atomic():
            for table in tables:
                names = ", ".join(f'"{c}"' for c in table.columns)
                marks = ", ".join("?" * len(table.columns))
                conn.executemany(f'INSERT INTO "{table.table}" ({names}) VALUES ({marks})',
                                 table.rows)
        return
    conn = db.connection()
    with db.atomic():
        cursor = conn.cursor()
        for table in tables:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in table.rows:
                writer.writerow(["\\N" if v is None else v for v in row])
            buffer.seek(0)
            names = ", ".join(f'"{c}"' for c in table.columns)
            cursor.copy_expert(f'COPY "{table.table}" ({names}) FROM STDIN '
                               "WITH (FORMAT csv, NULL '\\N')", buffer)
        cursor.execute("SELECT setval(pg_get_serial_sequence('ticket', 'number'), "
                       "(SELECT max(number) FROM ticket))")
    db.execute_sql("ANALYZE")  # what autovacuum does soon after a bulk load


# --- the run ---------------------------------------------------------------------------------------

def timed(runs: int, action) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), result


def time_reports(db, composer: Composer, runs: int) -> dict:
    incidents = [IncidentLine(4711, "Mail delays for all users", 120, NOW - timedelta(hours=3))]
    notes = [NoteLine("Application Support <apps@example.test>", NOW - timedelta(hours=5),
                      "Release tonight", "The records system is down 22:00-23:00.\nExpect calls.")]
    results = {}
    for name, period, now in PERIODS:
        def gathered(period=period, now=now):
            return gather(db, period, now, sla=SLA, incidents=incidents, notes=notes)

        def both(period=period, now=now):
            data = gathered()
            return data, render(composer, data, title="Status", desk_name="Service Desk",
                                desk_address="desk@example.test")

        gather_min, gather_median, data = timed(runs, gathered)
        render_min, render_median, _ = timed(runs, lambda data=data: render(
            composer, data, title="Status", desk_name="Service Desk",
            desk_address="desk@example.test"))
        total_min, total_median, (data, rendered) = timed(runs, both)
        results[name] = dict(gather=(gather_min, gather_median),
                             render=(render_min, render_median),
                             total=(total_min, total_median), data=data, rendered=rendered)
    return results


def print_times(results: dict, heading: str) -> None:
    print(f"\n{heading}")
    print(f"  {'period':<16} {'gather min/median':>20} {'render min/median':>20} "
          f"{'gather+render min/median':>27}")
    for name, r in results.items():
        cells = [f"{r[k][0] * 1000:7.1f} / {r[k][1] * 1000:6.1f} ms"
                 for k in ("gather", "render", "total")]
        print(f"  {name:<16} {cells[0]:>20} {cells[1]:>20} {cells[2]:>27}")


def print_figures(name: str, data, rendered) -> None:
    print(f"\nfigures of the {name} report ({data.period.start:%Y-%m-%d %H:%M} - "
          f"{data.period.end:%Y-%m-%d %H:%M} UTC)")
    print(f"  mail received {data.mail_total}: "
          + ", ".join(f"{c.name} {c.count}" for c in data.mail_by_mailbox))
    print(f"  new tickets {data.new_total}: "
          + ", ".join(f"{c.name} {c.count}" for c in data.new_by_channel))
    print(f"  follow-ups {data.follow_ups}, resolved {data.resolved}, closed {data.closed}, "
          f"reopened {data.reopened}")
    print(f"  escalations {data.escalations_total}: "
          + ", ".join(f"to {c.name} {c.count}" for c in data.escalations))
    print(f"  first responses within / outside the SLA: {data.first_response_within} / "
          f"{data.first_response_outside}")
    print(f"  mail by {data.volume_unit}: " + " ".join(str(b.count) for b in data.volume))
    print(f"  open more than {data.old_ticket_days} days: {data.old_tickets_total} "
          f"({len(data.old_tickets)} listed)")
    print(f"  near or past the first-response target: {data.sla_tickets_total} "
          f"({sum(t.overdue for t in data.sla_tickets)} of those listed overdue)")
    print(f"  rendered: subject {rendered.subject!r}, text {len(rendered.text)} chars, "
          f"HTML {len(rendered.html)} chars")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", help="postgresql://USER@HOST:PORT/DB: a fresh database is "
                   "created on that server for the run and dropped afterwards (default: SQLite)")
    p.add_argument("--tickets", type=int, default=100_000, help="tickets (100000)")
    p.add_argument("--runs", type=int, default=7, help="timed runs of each report (7)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--time-indexes", action="store_true",
                   help="time again with indexes on message.created_at and event.at")
    p.add_argument("--html", type=Path, help="write the end-of-shift report's HTML here")
    p.add_argument("--text", type=Path, help="write the end-of-shift report's text here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    postgres = None
    with tempfile.TemporaryDirectory(prefix="mt-bench-report-") as tmp:
        try:
            if args.database:
                from ingest import FreshPostgres

                postgres = FreshPostgres(args.database)
                url, kind = postgres.create(), f"PostgreSQL {postgres.version}"
            else:
                url, kind = f"sqlite:///{Path(tmp) / 'mailticket.db'}", \
                    f"SQLite {sqlite3.sqlite_version}"
            print(f"{kind}, Python {platform.python_version()}, peewee {peewee.__version__}, "
                  f"{platform.node()}")
            db = attach(url)
            started = time.perf_counter()
            tables = generate(args.tickets, args.seed)
            generated = time.perf_counter() - started
            load(db, tables)
            loaded = time.perf_counter() - started - generated
            counts = ", ".join(f"{len(t.rows):,} {t.table}s" for t in tables)
            print(f"database: {counts} over 90 days "
                  f"(generated in {generated:.1f} s, loaded in {loaded:.1f} s)")
            del tables

            composer = Composer()
            results = time_reports(db, composer, args.runs)
            print_times(results, f"{args.runs} runs each, as the schema stands:")
            name = "end of shift"
            print_figures(name, results[name]["data"], results[name]["rendered"])
            if args.html:
                args.html.write_text(results[name]["rendered"].html)
            if args.text:
                args.text.write_text(results[name]["rendered"].text)
            if args.time_indexes:
                db.execute_sql('CREATE INDEX IF NOT EXISTS "message_created_at" '
                               'ON "message" ("created_at")')
                db.execute_sql('CREATE INDEX IF NOT EXISTS "event_at" ON "event" ("at")')
                if not dbmod.is_sqlite(db):
                    db.execute_sql("ANALYZE")
                print_times(time_reports(db, composer, args.runs),
                            "with indexes on message.created_at and event.at:")
            detach(url)
        finally:
            if postgres is not None:
                postgres.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
