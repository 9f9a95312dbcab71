"""Outages through the daemon process, against a real Dovecot, a real SMTP relay sink and the
real database: what an admin and the sending MTA see when a server, the disk or the database
fails, and that nothing is lost or done twice once it is back.

* Dovecot restarted while a batch is being committed: the daemon reconnects and moves the batch
  without taking it in again; every mail makes one ticket and one acknowledgement.
* The relay down: mail waits in the outbox (``outbox list`` says why and when it is tried next)
  and goes out when the relay is back. A recipient refused for good (5xx) fails with the reason;
  ``outbox list --failed`` shows it and ``outbox retry`` sends it again.
* SMTP and LMTP intake answer 451 whenever the message cannot be committed (storage directory
  gone, disk full, SQLite unable to grow, PostgreSQL gone read-only) so that the MTA keeps it;
  the same mail sent again afterwards makes one ticket.
"""

from __future__ import annotations

import hashlib
import re
import resource
import shutil
import smtplib
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

import pytest

from tests.conftest import backends
from tests.helpers import DESK, make_mail, write_config
from tests.servers.daemon import DaemonProcess, wait_until
from tests.servers.smtpsink import free_port

pytestmark = pytest.mark.integration

TAG = re.compile(r"\[DESK #(\d+)\]")
TEMPORARY_FAILURE = (451, b"4.3.0 Temporary failure, please retry")


# --- the daemon -----------------------------------------------------------------------------------

@pytest.fixture
def start_daemon(tmp_path, database_url, smtp_sink):
    """Starts the daemon with SMTP (or LMTP) intake, optionally an IMAP mailbox, and the
    ``smtp_sink`` as its relay (retrying every 0.5 to 2 s); stops it after the test."""
    started: list[DaemonProcess] = []

    def start(*, imap_port: int | None = None, protocol: str = "smtp") -> DaemonProcess:
        intake_port = free_port()
        intake = ""
        if imap_port is not None:
            intake += (f"imap:\n    - {{host: 127.0.0.1, port: {imap_port}, security: none, "
                       f"username: desk, password: '${{DESK_IMAP_PASSWORD}}', idle: true, "
                       f"poll_interval: 60}}\n  ")
        intake += f"smtp: {{listen: '127.0.0.1:{intake_port}', protocol: {protocol}}}"
        outgoing = (f"smtp: {{host: 127.0.0.1, port: {smtp_sink.port}, security: none, "
                    f"timeout: 5}}\n"
                    f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
        config = write_config(tmp_path, database_url, intake=intake, outgoing=outgoing)
        daemon = DaemonProcess(config, tmp_path / "daemon.log",
                               env={"DESK_IMAP_PASSWORD": "secret"})
        daemon.intake_port = intake_port
        daemon.protocol = protocol
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        code = daemon.stop()
        print(daemon.log_text())  # shown by pytest when the test failed
        assert code == 0, "the daemon did not stop cleanly"
        assert "secret" not in daemon.log_text()


def mails_to(sink, address: str) -> list:
    return [m for m in sink.messages if address in m.rcpt_tos]


def ticket_of(reply: bytes) -> int:
    match = re.fullmatch(rb"OK: queued as ticket (\d+)", reply)
    assert match, reply
    return int(match.group(1))


def deliver(daemon: DaemonProcess, raw: bytes, sender: str,
            rcpts: tuple[str, ...] = (DESK,)) -> list[tuple[int, bytes]]:
    """One transaction to the daemon's intake; the replies to the message (one per recipient
    over LMTP, where smtplib reads only the first itself)."""
    cls = smtplib.LMTP if daemon.protocol == "lmtp" else smtplib.SMTP
    with cls("127.0.0.1", daemon.intake_port, timeout=30) as client:
        client.ehlo_or_helo_if_needed()
        assert client.mail(sender)[0] == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        replies = [client.data(raw)]
        if daemon.protocol == "lmtp":
            replies += [client.getreply() for _ in rcpts[1:]]
        return replies


# --- IMAP: Dovecot restarted while the daemon commits a batch ---------------------------------------

@contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Hold the database's write lock (SQLite) or a lock on the intake keys (PostgreSQL), so the
    daemon's next batch waits in its transaction until the block ends."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url[len("sqlite:///"):], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    import psycopg2

    url = urlparse(database_url)
    conn = psycopg2.connect(dbname=unquote(url.path.lstrip("/")), user=url.username,
                            password=url.password, host=url.hostname, port=url.port)
    try:
        with conn.cursor() as cursor:
            cursor.execute('LOCK TABLE "intake_key" IN EXCLUSIVE MODE')  # readers still read
        yield
    finally:
        conn.rollback()
        conn.close()


def test_dovecot_restarted_while_the_daemon_commits_a_batch(start_daemon, fresh_mailbox,
                                                            smtp_sink, database_url):
    dovecot = fresh_mailbox
    daemon = start_daemon(imap_port=dovecot.port)
    senders = [f"user{n}@example.org" for n in range(12)]
    # 20 kB each, so that what the server sends is mostly the mail itself (see below).
    mails = [make_mail(subject=f"Question {n}", sender=s, body="Details.\n" * 2000)
             for n, s in enumerate(senders)]
    try:
        with write_lock(database_url):
            dovecot.append_many("desk", mails)  # at once: one batch
            # The daemon's session has sent every message: the batch is in the daemon's hands,
            # its transaction waiting for the lock.
            wait_until(lambda: dovecot.session_bytes_sent() >= sum(map(len, mails)),
                       what="the daemon fetching the batch")
            dovecot.stop()
            dovecot.start()
        wait_until(lambda: len(dovecot.folder_uids("desk", "Processed")) == len(mails),
                   timeout=30, what="every message moved to Processed")
    finally:
        dovecot.start()
    assert dovecot.folder_uids("desk", "INBOX") == []
    wait_until(lambda: len(smtp_sink.messages) >= len(mails), what="the acknowledgements")

    tickets = daemon.cli_json("ticket", "list")
    assert sorted(t["requester"] for t in tickets) == sorted(senders)
    assert [len(mails_to(smtp_sink, s)) for s in senders] == [1] * len(senders)
    log = daemon.log_text()
    assert "reconnecting in" in log
    assert f"{len(mails)} message(s) recorded before the last disconnect moved aside" in log
    assert daemon.process.poll() is None


# --- the relay ---------------------------------------------------------------------------------------

def test_mail_waits_in_the_outbox_while_the_relay_is_down(start_daemon, smtp_sink):
    smtp_sink.stop()
    daemon = start_daemon()
    [(code, reply)] = deliver(daemon, make_mail(subject="VPN is down", sender="fay@example.org"),
                              "fay@example.org")
    assert code == 250
    number = ticket_of(reply)

    [row] = wait_until(lambda: [r for r in daemon.cli_json("outbox", "list") if r["attempts"]],
                       interval=0.5, what="a failed delivery attempt")
    assert (row["status"], row["kind"], row["ticket"], row["recipients"]) == \
        ("pending", "ack", number, ["fay@example.org"])
    assert row["next_attempt_at"]
    assert row["last_error"].startswith(f"cannot connect to relay 127.0.0.1:{smtp_sink.port}: ")
    shown = daemon.cli("outbox", "list")
    lines = shown.stdout.splitlines()
    assert shown.returncode == 0 and shown.stderr == ""
    assert re.fullmatch(rf"#{row['id']}  pending  ack       ticket {number}  "
                        rf"to fay@example.org  attempts \d+", lines[0]), lines
    assert lines[1:] and lines[1].strip().startswith("cannot connect to relay")

    smtp_sink.start()
    [ack] = smtp_sink.wait_for(1, timeout=15)
    assert ack.rcpt_tos == ("fay@example.org",)
    assert TAG.search(str(ack.message["Subject"])).group(1) == str(number)
    wait_until(lambda: daemon.cli_json("outbox", "list") == [], interval=0.5,
               what="the outbox to empty")
    assert daemon.cli("outbox", "list").stdout == "outbox is empty: everything was sent\n"
    assert len(smtp_sink.messages) == 1


def test_a_refused_recipient_fails_with_the_reason_and_retry_sends_it(start_daemon, smtp_sink):
    smtp_sink.reject_recipient("gil@example.org")
    daemon = start_daemon()
    [(code, _)] = deliver(daemon, make_mail(subject="Locked out", sender="gil@example.org"),
                          "gil@example.org")
    assert code == 250

    [row] = wait_until(lambda: daemon.cli_json("outbox", "list", "--failed"), interval=0.5,
                       what="the ack to fail")
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["last_error"] == ("all recipients refused: gil@example.org: "
                                 "550 5.1.1 No such user")
    shown = daemon.cli("outbox", "list", "--failed")
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.splitlines() == [
        f"#{row['id']}  failed   ack       ticket {row['ticket']}  to gil@example.org  attempts 1",
        "     all recipients refused: gil@example.org: 550 5.1.1 No such user",
    ]
    assert smtp_sink.messages == []

    smtp_sink.accept_recipient("gil@example.org")  # the admin fixed the mailbox
    retried = daemon.cli("outbox", "retry", str(row["id"]))
    assert (retried.returncode, retried.stdout, retried.stderr) == \
        (0, f"outbox #{row['id']} queued again; the daemon will send it\n", "")
    [ack] = smtp_sink.wait_for(1, timeout=15)
    assert ack.rcpt_tos == ("gil@example.org",)
    wait_until(lambda: daemon.cli("outbox", "list", "--failed").stdout == "no failed mail\n",
               interval=0.5, what="no failed mail left")

    again = daemon.cli("outbox", "retry", str(row["id"]), check=False)
    assert again.returncode == 1 and again.stdout == ""
    assert re.fullmatch(rf"mailticket: outbox #{row['id']} was already sent at .+\n", again.stderr)
    unknown = daemon.cli("outbox", "retry", "9999", check=False)
    assert (unknown.returncode, unknown.stderr) == (1, "mailticket: no outbox row #9999\n")
    assert len(smtp_sink.messages) == 1


# --- intake: 451 on any failure to commit ------------------------------------------------------------

@contextmanager
def storage_is_a_file(tmp_path: Path, daemon: DaemonProcess, database_url: str):
    """The storage directory replaced by a file (works as root, unlike chmod): nothing can be
    stored until the directory is back."""
    store, away = tmp_path / "store", tmp_path / "store.away"
    store.mkdir(exist_ok=True)
    store.rename(away)
    store.write_text("not a directory\n")
    try:
        yield
    finally:
        store.unlink()
        away.rename(store)


@contextmanager
def disk_full(tmp_path: Path, daemon: DaemonProcess, database_url: str):
    """The daemon can write no byte to any file (RLIMIT_FSIZE 0; Python ignores SIGXFSZ, so
    writes fail with EFBIG): its database (SQLite) and its storage as on a full disk."""
    pid = daemon.process.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def sqlite_full(tmp_path: Path, daemon: DaemonProcess, database_url: str):
    """The daemon may write files up to 4 kB only: the message is stored (it is smaller) but
    SQLite cannot append a single page to its write-ahead log, as on a disk that fills up."""
    pid = daemon.process.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def _postgres_admin(database_url: str):
    import psycopg2

    from tests.conftest import postgres_url

    url = urlparse(postgres_url())
    conn = psycopg2.connect(dbname=unquote(url.path.lstrip("/")), user=url.username,
                            password=url.password, host=url.hostname, port=url.port)
    conn.autocommit = True
    return conn, unquote(urlparse(database_url).path.lstrip("/"))


def _terminate_connections(database_url: str) -> None:
    conn, name = _postgres_admin(database_url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    finally:
        conn.close()


def _set_read_only(database_url: str, read_only: bool) -> None:
    """Like a failover to a standby and back: the database turns read-only (or writable) and
    every connection to it is cut, so the daemon's next ones see the change."""
    conn, name = _postgres_admin(database_url)
    try:
        with conn.cursor() as cursor:
            if read_only:
                cursor.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            else:
                cursor.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    finally:
        conn.close()
    _terminate_connections(database_url)


@contextmanager
def postgres_read_only(tmp_path: Path, daemon: DaemonProcess, database_url: str):
    _set_read_only(database_url, True)
    try:
        yield
    finally:
        _set_read_only(database_url, False)


FAULTS = {"storage-is-a-file": storage_is_a_file, "disk-full": disk_full,
          "sqlite-full": sqlite_full, "postgres-read-only": postgres_read_only}
# The faults that belong to one database only run on it (parametrized, never skipped).
FAULT_BACKEND = {"sqlite-full": "sqlite", "postgres-read-only": "postgres"}
FAULT_CASES = [(fault, backend) for fault in FAULTS for backend in backends()
               if FAULT_BACKEND.get(fault, backend) == backend]


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
@pytest.mark.parametrize("fault, database_url", FAULT_CASES, indirect=["database_url"])
def test_intake_answers_451_while_it_cannot_commit(start_daemon, smtp_sink, tmp_path,
                                                    database_url, protocol, fault):
    daemon = start_daemon(protocol=protocol)
    rcpts = (DESK, "desk2@example.test") if protocol == "lmtp" else (DESK,)
    raw = make_mail(subject="Printer jammed", sender="hal@example.org", to=", ".join(rcpts))

    with FAULTS[fault](tmp_path, daemon, database_url):
        assert deliver(daemon, raw, "hal@example.org", rcpts) == [TEMPORARY_FAILURE] * len(rcpts)
        # The MTA tries again while it still fails: still 451, still nothing recorded.
        assert deliver(daemon, raw, "hal@example.org", rcpts) == [TEMPORARY_FAILURE] * len(rcpts)
    if fault == "sqlite-full":
        # The message was stored: it was the database that failed.
        stored = hashlib.sha256(b"Return-Path: <hal@example.org>\r\n" + raw).hexdigest()
        assert (tmp_path / "store" / stored[:2] / stored[2:4] / stored).stat().st_size < 4096

    # Fixed: the MTA's next try is taken in; any later copy is recognised and makes no second
    # ticket.
    replies = deliver(daemon, raw, "hal@example.org", rcpts)
    assert [code for code, _ in replies] == [250] * len(rcpts), replies
    number = ticket_of(replies[0][1])
    again = deliver(daemon, raw, "hal@example.org", rcpts)
    assert [code for code, _ in again] == [250] * len(rcpts), again
    tickets = daemon.cli_json("ticket", "list")
    assert [(t["number"], t["requester"]) for t in tickets] == [(number, "hal@example.org")]
    assert len(daemon.cli_json("ticket", "show", str(number))["messages"]) == 1
    [ack] = smtp_sink.wait_for(1)
    assert ack.rcpt_tos == ("hal@example.org",)
    if not fault.endswith("-full"):  # on a full disk the log cannot be written either
        assert "not recorded, answered 451" in daemon.log_text()
    assert len(smtp_sink.messages) == 1


@pytest.mark.parametrize("database_url", [b for b in backends() if b == "postgres"],
                         indirect=True)
def test_the_first_mail_after_a_postgres_restart_is_accepted(start_daemon, database_url):
    """A connection the server dropped is noticed before it is used (db._hung_up), so the first
    message after a restart or failover is not answered 451."""
    daemon = start_daemon()
    first = make_mail(subject="Before the restart", sender="ida@example.org")
    assert deliver(daemon, first, "ida@example.org")[0][0] == 250
    _terminate_connections(database_url)  # what a restart or failover does to them
    second = make_mail(subject="After the restart", sender="ida@example.org")
    assert deliver(daemon, second, "ida@example.org")[0][0] == 250


def _mail_stored_under(prefix: str, sender: str) -> bytes:
    """A mail whose stored copy (Return-Path added) is named ``prefix``... in the store."""
    for nonce in range(10_000_000):
        raw = (f"From: {sender}\r\nTo: {DESK}\r\nSubject: Printer {nonce}\r\n"
               f"Message-ID: <{nonce}.{prefix}@example.org>\r\n\r\nIt is broken.\r\n").encode()
        digest = hashlib.sha256(f"Return-Path: <{sender}>\r\n".encode() + raw).hexdigest()
        if digest.startswith(prefix):
            return raw
    raise AssertionError("no such mail")  # pragma: no cover


def test_storage_recreated_empty_takes_mail_again(start_daemon, tmp_path):
    """The store makes a directory again when it is gone (restored empty, remounted)."""
    daemon = start_daemon()
    first = make_mail(subject="Before", sender="jo@example.org")
    assert deliver(daemon, first, "jo@example.org")[0][0] == 250
    [blob] = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    # The admin restores the storage directory as a new, empty one (a new volume, a remount).
    shutil.rmtree(tmp_path / "store")
    (tmp_path / "store").mkdir()
    second = _mail_stored_under(blob.name[:4], "jo@example.org")
    assert deliver(daemon, second, "jo@example.org")[0][0] == 250
