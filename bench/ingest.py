#!/usr/bin/env python
"""Ingest benchmark: mail in through IMAP -> tickets -> acknowledgements out through SMTP.

Prints figures; asserts nothing. Run from the repo root::

    python bench/ingest.py --quick          # smoke run: 100 mails, 5 s of steady arrival
    python bench/ingest.py                  # 1,000 mails, 30 s at 20 mails/s
    python bench/ingest.py --database postgresql://postgres@127.0.0.1:5432/test
    python bench/ingest.py --profile /tmp/ingest.pyspy   # + py-spy samples of the daemon

Everything runs on loopback and is started here: a throwaway Dovecot (tests/servers/dovecot.py),
an SMTP sink in this process (tests/servers/smtpsink.py) and the daemon as a child process
(tests/servers/daemon.py). Phases:

(a) backlog: ``--messages`` mails (70 % new requests, 30 % replies tagged ``[DESK #N]`` for
    tickets opened earlier in the same backlog; ~10 % with a 20-200 KB attachment, ~20 %
    non-ASCII) are appended to INBOX before the daemon starts. Timed from the daemon's start
    until INBOX is empty (drain) and until every acknowledgement reached the sink (end to end).
(b) steady arrival: with the daemon idle in IMAP IDLE, new requests are appended at ``--rate``
    a second for ``--duration`` seconds; latency = ack received by the sink - just before APPEND.
(c) peak RSS (VmHWM) of the daemon, of this process (bench + sink) and of Dovecot.

See bench/README.md for what each figure means and the latest results.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import collections  # noqa: E402
import email.parser  # noqa: E402
import email.policy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from urllib.parse import urlparse, urlunparse  # noqa: E402

from tests.helpers import make_mail, write_config  # noqa: E402
from tests.servers.daemon import DaemonProcess  # noqa: E402
from tests.servers.dovecot import DOVECOT_BIN, Dovecot  # noqa: E402
from tests.servers.smtpsink import SmtpSink  # noqa: E402

TARGETS = {
    "backlog_e2e_msgs_per_s": (">=", 300.0),
    "steady_latency_p50_s": ("<", 0.5),
    "steady_latency_p99_s": ("<", 2.0),
}
TOKEN = re.compile(r"BT-([bsr]\d{5,})")
HEADERS = email.parser.BytesHeaderParser(policy=email.policy.default)
CLK_TCK = os.sysconf("SC_CLK_TCK")

ASCII_SUBJECTS = [
    "Printer on floor 3 prints blank pages", "Cannot log in to the portal",
    "Password expired, need a reset", "VPN drops every ten minutes",
    "Access request for the reporting application", "Who is the registrar for our agency?",
    "Account locked after three attempts", "Notification emails not arriving",
    "How do I export the monthly report?", "Role change for a new team member",
]
NONASCII_SUBJECTS = [
    "Drucker im 3. Stock druckt nur leere Seiten – Grüße", "Impossible de me connecter au portail (réseau)",
    "Пароль не подходит после смены", "パスワードをリセットしてください",
    "Zugang gesperrt – bitte prüfen", "Ñandú: el informe mensual no se exporta",
    "Δεν λειτουργεί το VPN", "Kontoen min er låst – hjælp",
]
ASCII_BODY = ("Hello desk,\n\n{what}\nIt started this morning around 9 and it happens every time.\n"
              "Steps: open the application, sign in, choose the report, press export.\n"
              "Reference {token}.\n\nThanks,\n{name}\n")
NONASCII_BODY = ("Guten Tag,\n\n{what}\nSeit heute Morgen geht es nicht mehr. Schöne Grüße aus Köln.\n"
                 "Ça ne marche toujours pas — merci d’avance. Спасибо. よろしくお願いします。\n"
                 "Referenz {token}.\n\n{name}\n")
ASCII_NAMES = ["Ann User", "Bob Smith", "Carol Jones", "Dan Brown", "Eve Adams", "Frank Lee"]
NONASCII_NAMES = ["Jürgen Müller", "Zoë Faßbender", "Łukasz Żółć", "Søren Ørsted", "José Núñez",
                  "Дмитрий Иванов", "山田太郎"]
ATTACHMENT_TYPES = [("screenshot{n}.png", "image/png"), ("log{n}.txt.gz", "application/gzip"),
                    ("report{n}.pdf", "application/pdf")]


class BenchError(Exception):
    pass


# --- the workload --------------------------------------------------------------------------------

@dataclass
class Mail:
    token: str
    kind: str            # "new" or "reply"
    raw: bytes
    ticket: int | None   # the ticket number a new request should get / a reply names
    nonascii: bool = False
    attachment: int = 0  # bytes of attachment data (before base64)


def _mail(rng: random.Random, token: str, sender: str, nonascii: bool, attachment: int,
          subject: str | None = None) -> tuple[bytes, str]:
    name = rng.choice(NONASCII_NAMES if nonascii else ASCII_NAMES)
    what = rng.choice(NONASCII_SUBJECTS if nonascii else ASCII_SUBJECTS)
    if subject is None:
        subject = f"{what} ({token})"
    body = (NONASCII_BODY if nonascii else ASCII_BODY).format(what=what, token=token, name=name)
    attachments = []
    if attachment:
        pattern, ctype = rng.choice(ATTACHMENT_TYPES)
        filename = pattern.format(n=token[-4:])
        if nonascii:
            filename = "Bildschirmfoto_ü_" + filename
        attachments.append((filename, ctype, rng.randbytes(attachment)))
    raw = make_mail(subject=subject, sender=f"{name} <{sender}>", body=body,
                    message_id=f"<{token}.{uuid.uuid4().hex[:12]}@bench.example.org>",
                    attachments=attachments)
    return raw, subject


def backlog_workload(n: int, seed: int) -> list[Mail]:
    """``n`` mails: 70 % new requests (the k-th gets ticket k in a fresh database), 30 % replies
    tagged with the number of a request placed before them; 10 % with attachments, 20 % non-ASCII."""
    rng = random.Random(seed)
    n_new = max(1, round(n * 0.7))
    reply_positions = set(rng.sample(range(1, n), n - n_new)) if n > 1 else set()
    with_attachment = set(rng.sample(range(n), round(n * 0.1)))
    nonascii = set(rng.sample(range(n), round(n * 0.2)))
    mails: list[Mail] = []
    requests: list[tuple[str, str]] = []  # (sender, subject) of new request k at index k-1
    for i in range(n):
        size = rng.randint(20_000, 200_000) if i in with_attachment else 0
        if i in reply_positions:
            number = rng.randint(1, len(requests))
            sender, original = requests[number - 1]
            token = f"BT-r{i:05d}"
            subject = f"Re: [DESK #{number}] {original} {token}"
            raw, _ = _mail(rng, token, sender, i in nonascii, size, subject=subject)
            mails.append(Mail(token, "reply", raw, number, i in nonascii, size))
        else:
            number = len(requests) + 1
            sender = f"user{number:05d}@requesters{number % 37}.example.org"
            token = f"BT-b{i:05d}"
            raw, subject = _mail(rng, token, sender, i in nonascii, size)
            requests.append((sender, subject))
            mails.append(Mail(token, "new", raw, number, i in nonascii, size))
    return mails


def steady_workload(n: int, seed: int) -> list[Mail]:
    """``n`` new requests from distinct senders, each with a unique token in its subject."""
    rng = random.Random(seed + 1)
    mails = []
    for i in range(n):
        token = f"BT-s{i:05d}"
        nonascii = rng.random() < 0.2
        raw, _ = _mail(rng, token, f"steady{i:05d}@arrivals{i % 29}.example.net", nonascii, 0)
        mails.append(Mail(token, "new", raw, None, nonascii, 0))
    return mails


# --- measuring -----------------------------------------------------------------------------------

class TimedSink(SmtpSink):
    """The SMTP sink, also noting when (time.monotonic) each message arrived."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrived: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[override]
        reply = await super().handle_DATA(server, session, envelope)
        now = time.monotonic()
        with self._lock:
            while len(self.arrived) < len(self.messages):
                self.arrived.append(now)
        return reply


class AckIndex:
    """Token -> arrival time of the first ack whose subject carries it (subjects parsed lazily)."""

    def __init__(self, sink: TimedSink):
        self.sink = sink
        self.seen = 0
        self.first: dict[str, float] = {}
        self.untokened = 0
        self.duplicates = 0

    def update(self) -> None:
        with self.sink._lock:
            messages = self.sink.messages[self.seen:]
            arrived = self.sink.arrived[self.seen:len(self.sink.messages)]
        for message, at in zip(messages, arrived):
            subject = str(HEADERS.parsebytes(message.raw).get("Subject", ""))
            match = TOKEN.search(subject)
            if match is None:
                self.untokened += 1
            elif match.group(0) in self.first:
                self.duplicates += 1
            else:
                self.first[match.group(0)] = at
            self.seen += 1

    def count(self, prefix: str) -> int:
        return sum(1 for token in self.first if token.startswith(prefix))


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process in KiB (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(session id, user+system CPU seconds) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def session_processes(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[0] == sid:
                pids.append(int(entry))
    return pids


def cpu_seconds(pid: int | None) -> float:
    stat = proc_stat(pid) if pid else None
    return stat[1] if stat else 0.0


def dovecot_cpu(dovecot: Dovecot) -> float:
    if dovecot.process is None:
        return 0.0
    return sum(cpu_seconds(pid) for pid in session_processes(dovecot.process.pid))


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


class Monitor(threading.Thread):
    """Polls the folders' message counts (STATUS on its own IMAP connection) and the sink."""

    def __init__(self, dovecot: Dovecot, acks: AckIndex, interval: float = 0.05):
        super().__init__(name="bench-monitor", daemon=True)
        self.dovecot, self.acks, self.interval = dovecot, acks, interval
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.changed_at = time.monotonic()
        self.first_seen: dict[str, float] = {}   # event -> time
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.dovecot.client("desk") as client:
                while not self.stop_event.is_set():
                    counts = {}
                    for folder in ("INBOX", "Processed", "Quarantine"):
                        if folder == "INBOX" or client.folder_exists(folder):
                            status = client.folder_status(folder, [b"MESSAGES"])
                            counts[folder] = int(status[b"MESSAGES"])
                        else:
                            counts[folder] = 0
                    self.acks.update()
                    counts["acks"] = self.acks.seen
                    now = time.monotonic()
                    with self.lock:
                        if counts != self.counts:
                            self.changed_at = now
                        self.counts = counts
                        if counts["Processed"] or counts["Quarantine"]:
                            self.first_seen.setdefault("first_move", now)
                        if counts["INBOX"] == 0:
                            self.first_seen.setdefault("inbox_empty", now)
                    self.stop_event.wait(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def snapshot(self) -> tuple[dict[str, int], float, dict[str, float]]:
        with self.lock:
            return dict(self.counts), self.changed_at, dict(self.first_seen)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


# --- py-spy --------------------------------------------------------------------------------------

class Profiler:
    """py-spy record (raw collapsed stacks, all threads, idle included) of the daemon."""

    def __init__(self, output: Path, rate: int):
        self.output, self.rate = output, rate
        self.process: subprocess.Popen | None = None

    def attach(self, pid: int) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            print("  (--profile: py-spy is not installed; pip install py-spy)", flush=True)
            return
        self.process = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw",
             "--threads", "--idle", "--nonblocking", "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
#: Activities counted wherever they appear on a stack (a sample counts once per activity).
ACTIVITIES = [
    ("SQL BEGIN (incl. waiting for the write lock)", re.compile(r"\.begin \(peewee|_begin \(peewee")),
    ("SQL COMMIT", re.compile(r"\.commit \(peewee")),
    ("SQL statements (execute_sql)", re.compile(r"execute_sql \(peewee")),
    ("peewee, all", re.compile(r"\(peewee\.py")),
    ("IMAP client (imapclient/imaplib)", re.compile(r"\((imapclient/|imaplib\.py)")),
    ("SMTP client (smtplib)", re.compile(r"\(smtplib\.py")),
    ("email package (parse/compose)", re.compile(r"\(email/")),
    ("jinja2 templates", re.compile(r"\(jinja2/")),
    ("logging", re.compile(r"\(logging/")),
    ("storage (raw mail to disk)", re.compile(r"\(mailticket/storage\.py")),
    ("waiting (Event/Condition.wait)", re.compile(r"^(Event|Condition)\.wait \(threading")),
]


def summarize_profile(path: Path, top: int = 16) -> list[str]:
    """Per busy thread: activities, the mailticket functions with the most samples on the stack
    (inclusive, leaving out wrappers present in nearly every sample) and the hottest leaves."""
    if not path.exists():
        return [f"  (no profile written to {path})"]
    inclusive: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    leaves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    activity: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1][:60]
        frames = frames[1:]
        count = int(count_text)
        totals[thread] += count
        names = []
        for frame in frames:
            m = _FRAME.match(frame)
            names.append(frame if m is None else f"{m['func']} ({_short(m['file'])})")
        for name in set(names):
            if "(mailticket/" in name:
                inclusive[thread][name] += count
        if names:
            leaves[thread][names[-1]] += count
        for label, pattern in ACTIVITIES:
            if any(pattern.search(n) for n in names):
                activity[thread][label] += count
    lines = []
    grand = sum(totals.values()) or 1
    for thread, total in totals.most_common():
        if total < 0.02 * grand:
            continue
        if activity[thread]["waiting (Event/Condition.wait)"] > 0.95 * total:
            lines.append(f"  thread {thread}: idle")
            continue
        lines.append(f"  thread {thread}: {total} samples")
        lines.append("    activities (share of this thread's samples):")
        for label, _ in ACTIVITIES:
            if activity[thread][label]:
                lines.append(f"      {100 * activity[thread][label] / total:5.1f}%  {label}")
        lines.append("    mailticket functions (inclusive):")
        shown = 0
        for name, count in inclusive[thread].most_common():
            if count > 0.97 * total or name.startswith("Daemon."):
                continue
            lines.append(f"      {100 * count / total:5.1f}%  {name}")
            shown += 1
            if shown >= top:
                break
        lines.append("    leaf frames (self):")
        for name, count in leaves[thread].most_common(8):
            lines.append(f"      {100 * count / total:5.1f}%  {name}")
    return lines


def _short(file: str) -> str:
    for marker in ("/mailticket/", "/site-packages/", "/dist-packages/", "/lib/python3"):
        if marker in file:
            return file[file.index(marker) + 1:]
    return file


# --- PostgreSQL ------------------------------------------------------------------------------------

class FreshPostgres:
    """A new database on the server of ``url`` for this run, dropped afterwards."""

    def __init__(self, url: str):
        import psycopg2  # noqa: F401 - fail early with a clear message

        self.base = urlparse(url)
        self.name = f"mt_bench_{uuid.uuid4().hex[:10]}"
        self.url = urlunparse(self.base._replace(path="/" + self.name))
        self.version = ""

    def _admin(self):
        import psycopg2

        b = self.base
        conn = psycopg2.connect(dbname=(b.path.lstrip("/") or "postgres"), user=b.username,
                                password=b.password, host=b.hostname, port=b.port or 5432)
        conn.autocommit = True
        return conn

    def create(self) -> str:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
                cur.execute("SHOW server_version")
                self.version = cur.fetchone()[0]
        finally:
            conn.close()
        return self.url

    def drop(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
        finally:
            conn.close()


# --- the run ---------------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    figures: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dovecot: Dovecot | None = None
    sink: TimedSink | None = None
    daemon: DaemonProcess | None = None
    profiler: Profiler | None = None
    postgres: FreshPostgres | None = None


def environment(run: Run, db_kind: str) -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{mem_kib / 1048576:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    try:
        dovecot_version = subprocess.run([str(DOVECOT_BIN), "--version"], capture_output=True,
                                         text=True, timeout=10).stdout.strip()
    except OSError:
        dovecot_version = "?"
    import imapclient
    import peewee

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "memory": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "database": db_kind,
        "postgresql": run.postgres.version if run.postgres else None,
        "peewee": peewee.__version__,
        "imapclient": imapclient.__version__,
        "dovecot": dovecot_version,
    }


def append_backlog(dovecot: Dovecot, mails: list[Mail], chunk: int = 50) -> float:
    """APPEND every mail into INBOX on one connection, MULTIAPPEND in chunks when offered."""
    started = time.monotonic()
    with dovecot.client("desk") as client:
        if client.has_capability("MULTIAPPEND"):
            for start in range(0, len(mails), chunk):
                client.multiappend("INBOX", [m.raw for m in mails[start:start + chunk]])
        else:
            for mail in mails:
                client.append("INBOX", mail.raw)
        count = int(client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"])
    if count != len(mails):
        raise BenchError(f"INBOX holds {count} messages after appending {len(mails)}")
    return time.monotonic() - started


def phase_backlog(run: Run, mails: list[Mail], config: Path, acks: AckIndex) -> bool:
    args, f = run.args, run.figures
    n = len(mails)
    n_new = sum(1 for m in mails if m.kind == "new")
    dovecot, sink = run.dovecot, run.sink
    assert dovecot is not None and sink is not None
    monitor = Monitor(dovecot, acks)
    run.daemon = DaemonProcess(config, run.tmp / "daemon.log",
                               env={"DESK_IMAP_PASSWORD": "secret"})
    cpu_dovecot_0, cpu_self_0 = dovecot_cpu(dovecot), self_cpu()
    if run.profiler is not None:
        def attach_when_spawned() -> None:
            deadline = time.monotonic() + 20
            while run.daemon.process is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if run.daemon.process is not None:
                run.profiler.attach(run.daemon.process.pid)
        threading.Thread(target=attach_when_spawned, daemon=True).start()
    monitor.start()
    timeout = args.timeout or (60 + n * 0.25)
    done = False
    why = ""
    try:
        t0 = time.monotonic()
        run.daemon.start(timeout=60)
        t_running = time.monotonic()
        pid = run.daemon.process.pid
        deadline = t0 + timeout
        while True:
            counts, changed_at, _ = monitor.snapshot()
            now = time.monotonic()
            if monitor.error is not None:
                raise BenchError(f"monitor failed: {monitor.error!r}")
            if counts and counts["INBOX"] == 0 and acks.count("BT-b") >= n_new:
                done = True
                break
            if run.daemon.process.poll() is not None:
                why = f"the daemon exited with {run.daemon.process.returncode}"
                break
            if now > deadline:
                why = f"timed out after {timeout:.0f} s"
                break
            if now - changed_at > args.stall:
                why = f"nothing changed for {args.stall:.0f} s"
                break
            time.sleep(0.02)
    finally:
        monitor.stop()
    if run.profiler is not None:
        run.profiler.stop()
    counts, _, first = monitor.snapshot()
    acked = acks.count("BT-b")
    backlog_acks = [acks.first[m.token] for m in mails if m.kind == "new" and m.token in acks.first]
    t_acks = max(backlog_acks) if backlog_acks else None
    t_drained = first.get("inbox_empty")
    f.update({
        "backlog_messages": n,
        "backlog_new_requests": n_new,
        "backlog_replies": n - n_new,
        "backlog_complete": done,
        "daemon_startup_s": t_running - t0,
        "backlog_first_move_s": (first["first_move"] - t0) if "first_move" in first else None,
        "backlog_first_ack_s": (min(backlog_acks) - t0) if backlog_acks else None,
        "backlog_drain_s": (t_drained - t0) if t_drained else None,
        "backlog_drain_msgs_per_s": n / (t_drained - t0) if t_drained else None,
        "backlog_e2e_s": (t_acks - t0) if done else None,
        "backlog_e2e_msgs_per_s": n / (t_acks - t0) if done else None,
        "backlog_e2e_after_startup_msgs_per_s":
            n / (t_acks - t_running) if done and t_acks > t_running else None,
        "backlog_acks_received": acked,
        "backlog_processed_folder": counts.get("Processed"),
        "backlog_quarantined": counts.get("Quarantine"),
        "backlog_inbox_left": counts.get("INBOX"),
        "backlog_reply_acks_unexpected": acks.count("BT-r"),
        "daemon_cpu_backlog_s": cpu_seconds(pid),
        "dovecot_cpu_backlog_s": dovecot_cpu(dovecot) - cpu_dovecot_0,
        "bench_cpu_backlog_s": self_cpu() - cpu_self_0,
    })
    if not done:
        run.notes.append(f"backlog incomplete: {why} (INBOX {counts.get('INBOX')}, acks "
                         f"{acked}/{n_new}, quarantined {counts.get('Quarantine')})")
    return done


def idle_notify_delay(dovecot: Dovecot, samples: int = 5) -> float | None:
    """Median time from APPEND to the EXISTS a plain IMAPClient in IDLE receives: the server's
    own share of every IDLE-driven latency (Dovecot waits 500 ms before it notifies). Measured
    on the ``robot`` user so that the desk's INBOX is untouched."""
    delays = []
    with dovecot.client("robot") as watcher, dovecot.client("robot") as writer:
        watcher.select_folder("INBOX")
        for i in range(samples):
            watcher.idle()
            try:
                time.sleep(0.05)
                before = time.monotonic()
                writer.append("INBOX", make_mail(subject=f"calibration {i}",
                                                 sender="calibration@example.org"))
                responses = watcher.idle_check(timeout=5)
                after = time.monotonic()
            finally:
                watcher.idle_done()
            if any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                delays.append(after - before)
    return percentile(delays, 50)


def phase_steady(run: Run, mails: list[Mail], acks: AckIndex) -> None:
    args, f = run.args, run.figures
    dovecot, daemon = run.dovecot, run.daemon
    assert dovecot is not None and daemon is not None and daemon.process is not None
    pid = daemon.process.pid
    time.sleep(args.settle)  # the daemon is back in IDLE
    cpu_daemon_0, cpu_dovecot_0, cpu_self_0 = cpu_seconds(pid), dovecot_cpu(dovecot), self_cpu()
    arrivals: dict[str, float] = {}
    append_times: list[float] = []
    interval = 1.0 / args.rate
    with dovecot.client("desk") as client:
        start = time.monotonic() + 0.1
        for i, mail in enumerate(mails):
            target = start + i * interval
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            arrivals[mail.token] = before = time.monotonic()
            client.append("INBOX", mail.raw)
            append_times.append(time.monotonic() - before)
            if daemon.process.poll() is not None:
                run.notes.append("the daemon exited during steady arrival")
                break
    t_last = time.monotonic()
    achieved = len(arrivals) / max(1e-9, t_last - start)
    deadline = t_last + args.drain_wait
    while time.monotonic() < deadline:
        acks.update()
        if all(token in acks.first for token in arrivals) or daemon.process.poll() is not None:
            break
        time.sleep(0.02)
    acks.update()
    latencies = [acks.first[t] - at for t, at in arrivals.items() if t in acks.first]
    missing = len(arrivals) - len(latencies)
    with dovecot.client("desk") as client:
        inbox_left = int(client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"])
    f.update({
        "steady_rate_target_per_s": args.rate,
        "steady_rate_achieved_per_s": achieved,
        "steady_duration_s": args.duration,
        "steady_messages": len(arrivals),
        "steady_acks_missing": missing,
        "steady_inbox_left": inbox_left,
        "steady_latency_p50_s": percentile(latencies, 50),

        "steady_latency_p95_s": percentile(latencies, 95),
        "steady_latency_p99_s": percentile(latencies, 99),
        "steady_latency_max_s": max(latencies) if latencies else None,
        "steady_latency_mean_s": sum(latencies) / len(latencies) if latencies else None,
        "steady_append_p50_s": percentile(append_times, 50),
        "steady_append_max_s": max(append_times) if append_times else None,
        "daemon_cpu_steady_s": cpu_seconds(pid) - cpu_daemon_0,
        "dovecot_cpu_steady_s": dovecot_cpu(dovecot) - cpu_dovecot_0,
        "bench_cpu_steady_s": self_cpu() - cpu_self_0,
    })
    if missing:
        run.notes.append(f"steady: {missing} of {len(arrivals)} acks did not arrive within "
                         f"{args.drain_wait:.0f} s of the last APPEND")
    if inbox_left:
        run.notes.append(f"steady: {inbox_left} message(s) still in INBOX {args.drain_wait:.0f} s "
                         "after the last APPEND while the daemon sat in IDLE: their arrival was "
                         "not noticed (see bench/README.md, 'IDLE race')")


def measure_memory(run: Run) -> None:
    f = run.figures
    if run.daemon is not None and run.daemon.process is not None:
        mem = proc_status(run.daemon.process.pid)
        f["daemon_peak_rss_mib"] = mem.get("VmHWM", 0) / 1024 or None
        f["daemon_rss_end_mib"] = mem.get("VmRSS", 0) / 1024 or None
    mem = proc_status(os.getpid())
    f["bench_and_sink_peak_rss_mib"] = mem.get("VmHWM", 0) / 1024 or None
    if run.dovecot is not None and run.dovecot.process is not None:
        peaks = [proc_status(pid).get("VmHWM", 0)
                 for pid in session_processes(run.dovecot.process.pid)]
        f["dovecot_peak_rss_max_process_mib"] = max(peaks, default=0) / 1024 or None
        f["dovecot_processes"] = len(peaks)


def sanity(run: Run, expected_tickets: int) -> None:
    """After the daemon stopped: tickets, quarantine and outbox as the CLI sees them."""
    daemon, f = run.daemon, run.figures
    try:
        tickets = daemon.cli_json("ticket", "list", "--limit", str(expected_tickets + 100))
        held = daemon.cli_json("quarantine", "list")
        waiting = daemon.cli_json("outbox", "list")
    except Exception as exc:  # noqa: BLE001 - a sanity check must not hide the figures
        run.notes.append(f"sanity check failed: {exc}")
        return
    f["tickets_in_database"] = len(tickets)
    f["quarantine_rows"] = len(held)
    f["outbox_not_sent"] = len(waiting)
    if len(tickets) != expected_tickets:
        run.notes.append(f"expected {expected_tickets} tickets, the database has {len(tickets)}")
    if held:
        run.notes.append(f"{len(held)} message(s) quarantined, e.g.: {held[0].get('error')}")


# --- output ----------------------------------------------------------------------------------------

def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = str(value)
    return f"{text}{(' ' + unit) if unit else ''}"


def _target(key: str, value) -> str:
    if key not in TARGETS:
        return ""
    op, goal = TARGETS[key]
    if value is None:
        return f"{op} {goal:g}   (n/a)"
    ok = value >= goal if op == ">=" else value < goal
    return f"{op} {goal:g}   {'met' if ok else 'MISSED'}"


def report(run: Run, env: dict, knobs: dict, workload: dict) -> None:
    f = run.figures
    print()
    print(f"mailticket ingest benchmark  {env['date']}")
    print(f"environment: {env['cpus']} CPUs ({env['cpus_usable']} usable) {env['cpu_model']}, "
          f"{env['memory']}; {env['platform']}")
    print(f"             load average {env['loadavg_at_start'][0]:.2f} at start, "
          f"{env.get('loadavg_at_end', ['?'])[0]} at end (other work on the machine skews the "
          "figures)")
    print(f"             Python {env['python']}, SQLite {env['sqlite']}, peewee {env['peewee']}, "
          f"imapclient {env['imapclient']}, Dovecot {env['dovecot'].split()[0]}")
    db = env["database"] + (f" {env['postgresql']}" if env.get("postgresql") else "")
    print(f"config:      database {db}; " + ", ".join(f"{k}={v}" for k, v in knobs.items()))
    print(f"workload:    {workload['summary']}")
    rows = [
        ("(a) backlog", None, ""),
        ("messages (new / replies)", f"{f.get('backlog_messages')} "
         f"({f.get('backlog_new_requests')} / {f.get('backlog_replies')})", ""),
        ("daemon start -> 'running'", _fmt(f.get("daemon_startup_s"), "s"), ""),
        ("daemon start -> first move", _fmt(f.get("backlog_first_move_s"), "s"), ""),
        ("daemon start -> first ack", _fmt(f.get("backlog_first_ack_s"), "s"), ""),
        ("INBOX drained", _fmt(f.get("backlog_drain_s"), "s"), ""),
        ("drain rate", _fmt(f.get("backlog_drain_msgs_per_s"), "msg/s"), ""),
        ("all acks at the sink", _fmt(f.get("backlog_e2e_s"), "s"), ""),
        ("end to end", _fmt(f.get("backlog_e2e_msgs_per_s"), "msg/s"),
         _target("backlog_e2e_msgs_per_s", f.get("backlog_e2e_msgs_per_s"))),
        ("end to end, after start-up", _fmt(f.get("backlog_e2e_after_startup_msgs_per_s"),
                                            "msg/s"), ""),
        ("acks / quarantined / reply acks", f"{f.get('backlog_acks_received')} / "
         f"{f.get('backlog_quarantined')} / {f.get('backlog_reply_acks_unexpected')}", ""),
        ("CPU: daemon / dovecot / bench", f"{_fmt(f.get('daemon_cpu_backlog_s'))} / "
         f"{_fmt(f.get('dovecot_cpu_backlog_s'))} / {_fmt(f.get('bench_cpu_backlog_s'))} s", ""),
        ("(b) steady arrival", None, ""),
        ("rate (target / achieved)", f"{_fmt(f.get('steady_rate_target_per_s'))} / "
         f"{_fmt(f.get('steady_rate_achieved_per_s'))} msg/s for "
         f"{_fmt(f.get('steady_duration_s'))} s", ""),
        ("messages / acks missing / INBOX left", f"{f.get('steady_messages')} / "
         f"{f.get('steady_acks_missing')} / {f.get('steady_inbox_left')}", ""),
        ("latency p50", _fmt(f.get("steady_latency_p50_s"), "s"),
         _target("steady_latency_p50_s", f.get("steady_latency_p50_s"))),
        ("Dovecot IDLE notify delay (APPEND->EXISTS)", _fmt(f.get("imap_idle_notify_delay_s"), "s"),
         ""),
        ("latency p95", _fmt(f.get("steady_latency_p95_s"), "s"), ""),
        ("latency p99", _fmt(f.get("steady_latency_p99_s"), "s"),
         _target("steady_latency_p99_s", f.get("steady_latency_p99_s"))),
        ("latency max", _fmt(f.get("steady_latency_max_s"), "s"), ""),
        ("APPEND p50 / max (in latency)", f"{_fmt(f.get('steady_append_p50_s'))} / "
         f"{_fmt(f.get('steady_append_max_s'))} s", ""),
        ("CPU: daemon / dovecot / bench", f"{_fmt(f.get('daemon_cpu_steady_s'))} / "
         f"{_fmt(f.get('dovecot_cpu_steady_s'))} / {_fmt(f.get('bench_cpu_steady_s'))} s", ""),
        ("(c) memory", None, ""),
        ("daemon peak RSS (VmHWM)", _fmt(f.get("daemon_peak_rss_mib"), "MiB"), ""),
        ("bench + sink peak RSS", _fmt(f.get("bench_and_sink_peak_rss_mib"), "MiB"), ""),
        ("dovecot largest process peak", _fmt(f.get("dovecot_peak_rss_max_process_mib"), "MiB"),
         ""),
        ("checks", None, ""),
        ("tickets / quarantined / unsent", f"{f.get('tickets_in_database')} / "
         f"{f.get('quarantine_rows')} / {f.get('outbox_not_sent')}", ""),
        ("daemon stop (SIGTERM)", _fmt(f.get("daemon_stop_s"), "s"), ""),
    ]
    print()
    print(f"{'figure':<44} {'value':<30} target")
    for label, value, target in rows:
        if value is None:
            print(label)
        else:
            print(f"  {label:<42} {value:<30} {target}")
    for note in run.notes:
        print(f"NOTE: {note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1000, help="backlog size (default 1000)")
    p.add_argument("--duration", type=float, default=30, help="seconds of steady arrival (30)")
    p.add_argument("--rate", type=float, default=20, help="steady arrivals per second (20)")
    p.add_argument("--database", help="postgresql://USER@HOST:PORT/DB: a fresh database is "
                   "created on that server for the run and dropped after (default: SQLite)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 messages, 5 s")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--batch-size", type=int, help="intake.imap batch_size (default: the "
                   "daemon's default)")
    p.add_argument("--log-level", default="info", help="the daemon's logging.level (info)")
    p.add_argument("--seed", type=int, default=1, help="workload random seed (1)")
    p.add_argument("--timeout", type=float, help="backlog time limit, s (60 + 0.25 s/message)")
    p.add_argument("--stall", type=float, default=30, help="give up when nothing changes for "
                   "this many seconds (30)")
    p.add_argument("--drain-wait", type=float, default=30, help="steady: wait this long after "
                   "the last APPEND for the remaining acks (30)")
    p.add_argument("--settle", type=float, default=2.0, help="pause between the phases (2 s)")
    p.add_argument("--profile", type=Path, help="py-spy the daemon during the backlog; raw "
                   "collapsed stacks to this file and a summary printed")
    p.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s (200)")
    p.add_argument("--summarize", type=Path, metavar="RAW", help="only print the summary of an "
                   "earlier --profile file, run nothing")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument("--spike", action="store_true", help="configure outages.spike (5 tickets "
                   "within 15 minutes) and an application, so that intake runs spike detection")
    args = p.parse_args(argv)
    if args.quick:
        args.messages, args.duration = 100, 5
    if args.messages < 2 or args.rate <= 0 or args.duration < 0:
        p.error("need --messages >= 2, --rate > 0, --duration >= 0")
    if args.database and not args.database.startswith(("postgres://", "postgresql://")):
        p.error("--database takes a postgresql:// URL (SQLite is the default)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize:
        print("\n".join(summarize_profile(args.summarize)))
        return 0

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="mailticket-bench-"))
    run = Run(args, tmp)
    status = 1
    try:
        if args.database:
            run.postgres = FreshPostgres(args.database)
            database_url, db_kind = run.postgres.create(), "postgresql"
        else:
            database_url, db_kind = f"sqlite:///{tmp / 'mailticket.db'}", "sqlite"
        env = environment(run, db_kind)
        if args.profile:
            run.profiler = Profiler(args.profile, args.profile_rate)

        print(f"generating {args.messages} backlog mails ...", flush=True)
        backlog = backlog_workload(args.messages, args.seed)
        steady = steady_workload(int(args.rate * args.duration), args.seed)
        size = sum(len(m.raw) for m in backlog)
        workload = {
            "summary": (f"backlog {len(backlog)} mails, {size / 1e6:.1f} MB "
                        f"({sum(m.kind == 'new' for m in backlog)} new, "
                        f"{sum(m.kind == 'reply' for m in backlog)} replies, "
                        f"{sum(bool(m.attachment) for m in backlog)} with attachments, "
                        f"{sum(m.nonascii for m in backlog)} non-ASCII); steady "
                        f"{len(steady)} new requests at {args.rate:g}/s"),
            "backlog_bytes": size,
        }

        (tmp / "dovecot").mkdir()
        run.dovecot = Dovecot(tmp / "dovecot", tls=False)
        run.dovecot.start()
        run.sink = TimedSink()
        run.sink.start()
        acks = AckIndex(run.sink)

        run.figures["imap_idle_notify_delay_s"] = idle_notify_delay(run.dovecot)
        print(f"appending {len(backlog)} mails to INBOX ...", flush=True)
        run.figures["backlog_append_s"] = append_backlog(run.dovecot, backlog)
        workload["summary"] += f"; backlog appended in {run.figures['backlog_append_s']:.1f} s"

        batch = f", batch_size: {args.batch_size}" if args.batch_size else ""
        intake = (f"imap:\n"
                  f"    - {{host: 127.0.0.1, port: {run.dovecot.port}, security: none, "
                  f"username: desk, password: '${{DESK_IMAP_PASSWORD}}', idle: true, "
                  f"poll_interval: 1{batch}}}")
        outgoing = (f"smtp: {{host: 127.0.0.1, port: {run.sink.port}, security: none}}\n"
                    f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
        extra = ("limits:\n  auto_replies_per_recipient_per_hour: 1000000\n"
                 "  auto_replies_per_hour: 1000000\n"
                 f"logging:\n  level: {args.log_level}\n")
        if args.spike:
            # The workload's subjects repeat (10 ASCII, 8 non-ASCII) from distinct senders:
            # spikes form, so the detector does its whole work (and alerts) during the run.
            extra += ("outages:\n  notify: [lead@example.org]\n"
                      "  spike: {tickets: 5, within: 15 minutes}\n"
                      "  applications:\n    VPN: {names: [virtual private network]}\n")
        config = write_config(tmp, database_url, extra=extra, intake=intake, outgoing=outgoing)
        from mailticket import config as configmod

        settings = configmod.load(config, environ={"DESK_IMAP_PASSWORD": "secret"})
        box = settings.intake.imap[0]
        knobs = {"batch_size": box.batch_size, "idle": box.idle, "poll_interval": box.poll_interval,
                 "log_level": args.log_level, "spike": args.spike}

        print("phase (a): backlog ...", flush=True)
        complete = phase_backlog(run, backlog, config, acks)
        if complete and args.duration > 0:
            print(f"phase (b): steady arrival, {args.rate:g}/s for {args.duration:g} s ...",
                  flush=True)
            phase_steady(run, steady, acks)
        elif not complete:
            run.notes.append("steady arrival skipped: the backlog did not complete")
        measure_memory(run)
        env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        stop_started = time.monotonic()
        run.daemon.stop()
        run.figures["daemon_stop_s"] = time.monotonic() - stop_started
        expected = run.figures.get("backlog_new_requests", 0) + run.figures.get("steady_messages", 0)
        sanity(run, expected)
        report(run, env, knobs, workload)
        if args.profile:
            print(f"\nprofile of the daemon during the backlog ({args.profile}):")
            print("\n".join(summarize_profile(args.profile)))
        if args.json:
            args.json.write_text(json.dumps({"environment": env, "config": knobs,
                                             "workload": workload, "figures": run.figures,
                                             "targets": {k: list(v) for k, v in TARGETS.items()},
                                             "notes": run.notes}, indent=2) + "\n")
            print(f"figures written to {args.json}")
        status = 0 if complete else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except Exception as exc:  # noqa: BLE001 - print what helps, then clean up
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    finally:
        if status != 0:
            for name, text in (("daemon log", run.daemon.log_text() if run.daemon else ""),
                               ("dovecot log", run.dovecot.log_tail() if run.dovecot else "")):
                if text:
                    tail = "\n".join(text.splitlines()[-25:])
                    print(f"--- {name} (last lines) ---\n{tail}", file=sys.stderr)
        cleanup(run, keep=args.keep)
    return status


def cleanup(run: Run, keep: bool) -> None:
    steps = [
        ("profiler", lambda: run.profiler and run.profiler.stop()),
        ("daemon", lambda: run.daemon and _stop_daemon(run.daemon)),
        ("sink", lambda: run.sink and run.sink.stop()),
        ("dovecot", lambda: run.dovecot and run.dovecot.remove()),
        ("postgres", lambda: run.postgres and run.postgres.drop()),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
            print(f"cleanup of {name} failed: {exc}", file=sys.stderr)
    if keep:
        print(f"kept {run.tmp}", file=sys.stderr)
    else:
        shutil.rmtree(run.tmp, ignore_errors=True)


def _stop_daemon(daemon: DaemonProcess) -> None:
    if daemon.process is None or daemon.process.poll() is not None:
        return
    try:
        daemon.stop(timeout=30)
    except Exception:  # noqa: BLE001
        daemon.kill()


if __name__ == "__main__":
    sys.exit(main())
