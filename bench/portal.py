#!/usr/bin/env python
"""Portal benchmark: ticket pages under load, and what that load does to intake.

Prints figures; asserts nothing. Run from the repo root::

    python bench/portal.py --quick      # smoke run: 5 s phases, 10 clients
    python bench/portal.py              # 15 s phases, 50 clients, mail at 20 a second
    python bench/portal.py --database postgresql://postgres@127.0.0.1:5432/test

Everything runs on loopback and is started here: the daemon as a child process (SMTP intake,
the portal on waitress, outgoing mail to an SMTP sink in this process). A ticket with
``--messages`` messages is built first (one request and its follow-ups, by SMTP); then:

(a) acks alone: new requests arrive by SMTP at ``--rate`` a second; latency = the ack reached
    the sink - just before the mail was handed over.
(b) pages alone: ``--clients`` threads, each with its own keep-alive connection and the
    requester's session cookie, load the ticket's page as fast as they are answered.
(c) both at once: the page load of (b) while the mail of (a) arrives (the two share the
    machine's cores with the daemon: what matters is that intake is never blocked by the
    portal, so it counts the SMTP answers that were not 250 as well).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import email.parser  # noqa: E402
import email.policy  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import smtplib  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlparse, urlunparse  # noqa: E402

from tests.helpers import make_mail, write_config  # noqa: E402
from tests.servers.daemon import DaemonProcess  # noqa: E402
from tests.servers.smtpsink import SmtpSink, free_port  # noqa: E402

PARSER = email.parser.BytesParser(policy=email.policy.default)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/t/[A-Za-z0-9_.=-]+")


class AckSink(SmtpSink):
    """The SMTP sink, noting when (time.monotonic) each message arrived."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrived: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[override]
        reply = await super().handle_DATA(server, session, envelope)
        with self._lock:
            while len(self.arrived) < len(self.messages):
                self.arrived.append(time.monotonic())
        return reply

    def acks_by_reply_to(self) -> dict[str, float]:
        """In-Reply-To of each ack -> when it arrived."""
        with self._lock:
            pairs = list(zip(self.messages, self.arrived))
        found = {}
        for message, at in pairs:
            head = PARSER.parsebytes(message.raw, headersonly=True)
            found.setdefault(str(head.get("In-Reply-To", "")).strip(), at)
        return found


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


class FreshPostgres:
    """A database of its own on the server of ``url``, dropped afterwards."""

    def __init__(self, url: str):
        self.base = urlparse(url)
        self.name = f"mt_portal_{uuid.uuid4().hex[:10]}"
        self.url = urlunparse(self.base._replace(path="/" + self.name))

    def _admin(self):
        import psycopg2

        b = self.base
        conn = psycopg2.connect(dbname=b.path.lstrip("/") or "postgres", user=b.username,
                                password=b.password, host=b.hostname, port=b.port or 5432)
        conn.autocommit = True
        return conn

    def __enter__(self) -> str:
        # Not "with conn": since psycopg2 2.9 that opens a transaction even in autocommit mode,
        # and CREATE DATABASE refuses to run inside one.
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            conn.close()
        return self.url

    def __exit__(self, *exc: object) -> None:
        conn = self._admin()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
        conn.close()


# --- the load ------------------------------------------------------------------------------

class PageLoad:
    """``clients`` threads loading one page with a session cookie until stopped."""

    def __init__(self, port: int, path: str, cookie: str, clients: int):
        self.port, self.path, self.cookie, self.clients = port, path, cookie, clients
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.started = self.ended = 0.0

    def __enter__(self) -> "PageLoad":
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.ended = time.monotonic()

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        mine: list[float] = []
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                connection.request("GET", self.path, headers={"Cookie": self.cookie})
                response = connection.getresponse()
                body = response.read()
                problem = None if response.status == 200 and b"</html>" in body else \
                    f"status {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                problem = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            if problem:
                with self.lock:
                    self.errors[problem] = self.errors.get(problem, 0) + 1
            else:
                mine.append(time.monotonic() - began)
        connection.close()
        with self.lock:
            self.latencies.extend(mine)

    def figures(self) -> dict:
        seconds = self.ended - self.started
        return {"views": len(self.latencies), "seconds": round(seconds, 2),
                "views_per_s": round(len(self.latencies) / seconds, 1) if seconds else None,
                "p50_ms": _ms(percentile(self.latencies, 50)),
                "p99_ms": _ms(percentile(self.latencies, 99)),
                "errors": dict(self.errors)}


def mail_at_rate(smtp_port: int, sink: AckSink, rate: float, seconds: float) -> dict:
    """New requests at ``rate`` a second; the latency of each one's acknowledgement."""
    sent: dict[str, float] = {}
    refused: dict[str, int] = {}
    client = smtplib.SMTP("127.0.0.1", smtp_port, timeout=30)
    begin = time.monotonic()
    count = int(rate * seconds)
    for i in range(count):
        due = begin + i / rate
        time.sleep(max(0.0, due - time.monotonic()))
        message_id = f"<bench.{uuid.uuid4().hex}@example.org>"
        raw = make_mail(subject=f"Bench request {i}", sender=f"user{i}.{uuid.uuid4().hex[:6]}"
                        "@example.org", message_id=message_id)
        at = time.monotonic()
        try:
            client.sendmail("bench@example.org", ["desk@example.test"], raw)
            sent[message_id] = at
        except smtplib.SMTPResponseException as exc:
            refused[str(exc.smtp_code)] = refused.get(str(exc.smtp_code), 0) + 1
    client.quit()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        acks = sink.acks_by_reply_to()
        if all(m in acks for m in sent):
            break
        time.sleep(0.1)
    acks = sink.acks_by_reply_to()
    latencies = [acks[m] - at for m, at in sent.items() if m in acks]
    return {"mails": count, "acked": len(latencies), "refused": refused,
            "ack_p50_s": _s(percentile(latencies, 50)), "ack_p99_s": _s(percentile(latencies, 99)),
            "ack_max_s": _s(max(latencies) if latencies else None)}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- the run -------------------------------------------------------------------------------

def build_ticket(daemon: DaemonProcess, smtp_port: int, sink: AckSink, messages: int) -> tuple[int, str]:
    """A ticket with ``messages`` messages from its requester; its number and the ack's link."""
    first = f"<bench.first.{uuid.uuid4().hex}@example.org>"
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.sendmail("viewer@example.org", ["desk@example.test"],
                        make_mail(subject="The records system is slow",
                                  sender="Vera Viewer <viewer@example.org>", message_id=first,
                                  body="Loading a record takes a minute.\n" * 5))
    ack = _wait(lambda: next((m for m in sink.messages
                              if PARSER.parsebytes(m.raw, headersonly=True)["In-Reply-To"] == first),
                             None), "the acknowledgement")
    message = PARSER.parsebytes(ack.raw)
    number = int(re.search(r"#(\d+)", str(message["Subject"])).group(1))
    link = LINK.search(message.get_body(("plain",)).get_content()).group(0)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        for i in range(messages - 1):
            client.sendmail("viewer@example.org", ["desk@example.test"], make_mail(
                subject=f"Re: [DESK #{number}] The records system is slow",
                sender="Vera Viewer <viewer@example.org>",
                body=f"Follow-up {i}: still slow, here is what I saw.\n" * 4))
    _wait(lambda: len(daemon.cli_json("ticket", "show", str(number), "--json")["messages"])
          >= messages, f"{messages} messages on the ticket", timeout=60)
    return number, link


def session_cookie(link: str) -> str:
    url = urlparse(link)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", url.path)
    response = connection.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    if response.status != 303 or not cookie:
        raise RuntimeError(f"following the link gave {response.status}, no session")
    return cookie


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def run(args: argparse.Namespace, database: str, tmp: Path) -> dict:
    sink = AckSink().start()
    smtp_port, web_port = free_port(), free_port()
    config = write_config(
        tmp, database, intake=f"smtp: {{listen: '127.0.0.1:{smtp_port}'}}",
        outgoing=f"smtp: {{host: 127.0.0.1, port: {sink.port}, security: none}}",
        extra=f"""
        limits: {{auto_replies_per_recipient_per_hour: 100000, auto_replies_per_hour: 1000000}}
        web: {{listen: '127.0.0.1:{web_port}', base_url: 'http://127.0.0.1:{web_port}',
               threads: {args.threads}, workers: {args.workers}}}
        """)
    daemon = DaemonProcess(config, tmp / "daemon.log").start()
    try:
        number, link = build_ticket(daemon, smtp_port, sink, args.messages)
        cookie = session_cookie(link)
        path = f"/tickets/{number}"
        figures: dict = {"database": database.split(":")[0], "clients": args.clients,
                         "messages_on_ticket": args.messages, "rate": args.rate,
                         "seconds": args.seconds, "threads": args.threads,
                         "workers": args.workers}
        figures["acks_alone"] = mail_at_rate(smtp_port, sink, args.rate, args.seconds)
        with PageLoad(web_port, path, cookie, args.clients) as alone:
            time.sleep(args.seconds)
        figures["pages_alone"] = alone.figures()
        with PageLoad(web_port, path, cookie, args.clients) as loaded:
            figures["acks_under_page_load"] = mail_at_rate(smtp_port, sink, args.rate,
                                                           args.seconds)
        figures["pages_with_mail"] = loaded.figures()
        return figures
    finally:
        daemon.stop()
        sink.stop()


def show(figures: dict) -> None:
    print(f"\nportal benchmark: {figures['database']}, a ticket with "
          f"{figures['messages_on_ticket']} messages, {figures['clients']} clients, "
          f"mail at {figures['rate']}/s, {figures['seconds']} s phases, "
          f"{figures['threads']} portal threads, "
          f"{figures['workers'] or 'no'} portal processes (web.workers)")
    for name in ("pages_alone", "pages_with_mail"):
        f = figures[name]
        print(f"  {name:<22} {f['views_per_s']:>7} views/s  p50 {f['p50_ms']} ms  "
              f"p99 {f['p99_ms']} ms  ({f['views']} views, errors {f['errors'] or 'none'})")
    for name in ("acks_alone", "acks_under_page_load"):
        f = figures[name]
        print(f"  {name:<22} ack p50 {f['ack_p50_s']} s  p99 {f['ack_p99_s']} s  "
              f"max {f['ack_max_s']} s  ({f['acked']}/{f['mails']} acked, "
              f"refused {f['refused'] or 'none'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a file in a temporary folder) or a PostgreSQL URL "
                             "(a database of its own is made on that server and dropped)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="mails a second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--threads", type=int, default=8, help="web.threads")
    parser.add_argument("--workers", type=int, default=0,
                        help="web.workers: portal processes (0: in the daemon's process)")
    parser.add_argument("--quick", action="store_true", help="5 s phases, 10 clients")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients = 5.0, 10
    with tempfile.TemporaryDirectory(prefix="mt-portal-bench-") as folder:
        tmp = Path(folder)
        if args.database == "sqlite":
            figures = run(args, f"sqlite:///{tmp / 'bench.db'}", tmp)
        else:
            with FreshPostgres(args.database) as url:
                figures = run(args, url, tmp)
    show(figures)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
