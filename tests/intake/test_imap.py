"""The IMAP source against a real Dovecot (tests/servers/dovecot.py), with an in-memory sink."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Callable, Iterator

import pytest

from mailticket.backoff import delay as backoff_delay
from mailticket.config import ImapMailbox, Secret
from mailticket.errors import TemporaryFailure
from mailticket.intake.imap import ImapSource
from mailticket.intake.imap.commands import describe
from mailticket.intake.items import Cursor, Outcome, RawMail, Result
from tests.servers import unavailable
from tests.servers import wait_until as wait_for

pytestmark = pytest.mark.integration


# --- helpers -------------------------------------------------------------------------------------

def make_mail(subject: str, n: int = 0) -> bytes:
    """A small message with CRLF line ends (what IMAP hands back byte for byte)."""
    msg = EmailMessage()
    msg["From"] = f"user{n}@example.org"
    msg["To"] = "desk@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}-{n}-{time.monotonic_ns()}@example.org>"
    msg.set_content(f"Body of {subject} #{n}\n\nMore text.\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def mailbox_for(server, user: str = "desk", **overrides) -> ImapMailbox:
    name, password = server.user(user)
    settings = dict(host=server.host, port=server.port, security="none", username=name,
                    password=Secret(password), folder="INBOX", processed_folder="Processed",
                    quarantine_folder="Quarantine", idle=False, poll_interval=0.2, idle_renew=600.0,
                    batch_size=50, timeout=10.0)
    settings.update(overrides)
    return ImapMailbox(**settings)


def subject_rule(raw: bytes) -> Outcome:
    if b"Subject: quarantine me" in raw:
        return Outcome.QUARANTINED
    if b"Subject: seen before" in raw:
        return Outcome.DUPLICATE
    return Outcome.RECORDED


class MemorySink:
    """Records batches, cursors and outcomes in memory, like the pipeline would in the database.

    ``fail_next`` batches raise TemporaryFailure (nothing committed) before any are recorded.
    """

    def __init__(self, decide: Callable[[bytes], Outcome] = subject_rule, fail_next: int = 0):
        self.decide = decide
        self.fail_next = fail_next
        self.lock = threading.Lock()
        self.batches: list[list[RawMail]] = []
        self.cursors: dict[str, Cursor] = {}
        self.cursor_history: list[Cursor | None] = []
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.outcome_queries: list[list[str]] = []

    def load_cursor(self, source: str) -> Cursor | None:
        with self.lock:
            return self.cursors.get(source)

    def process_batch(self, items: list[RawMail], cursor: Cursor | None = None) -> list[Result]:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise TemporaryFailure("database is locked")
            self.batches.append(list(items))
            self.cursor_history.append(cursor)
            if cursor is not None:
                self.cursors[cursor.source] = cursor
            results = []
            for item in items:
                outcome = self.decide(item.raw)
                self.outcomes[(item.source, item.key)] = outcome
                results.append(Result(item.key, outcome))
            return results

    def outcomes_of(self, source: str, keys: list[str]) -> dict[str, Outcome]:
        with self.lock:
            self.outcome_queries.append(list(keys))
            return {k: self.outcomes[(source, k)] for k in keys if (source, k) in self.outcomes}

    @property
    def items(self) -> list[RawMail]:
        with self.lock:
            return [item for batch in self.batches for item in batch]


class Running:
    def __init__(self, source: ImapSource):
        self.source = source
        self.stop = threading.Event()
        self.errors: list[Exception] = []
        source.on_error = self.errors.append
        self.thread = threading.Thread(target=source.run, args=(self.stop,), daemon=True)


@contextmanager
def running(mailbox: ImapMailbox, sink: MemorySink, **kwargs) -> Iterator[Running]:
    kwargs.setdefault("backoff_base", 0.05)
    kwargs.setdefault("backoff_cap", 0.3)
    run = Running(ImapSource(mailbox, sink, **kwargs))
    run.thread.start()
    try:
        yield run
    finally:
        run.stop.set()
        run.thread.join(10)
        assert not run.thread.is_alive(), "ImapSource.run did not return after stop"


# --- the tests -----------------------------------------------------------------------------------

def test_hands_over_new_mail_in_batches_then_moves_it(fresh_mailbox):
    server = fresh_mailbox
    mails = [make_mail("hello", n) for n in range(5)]
    uids = [server.append("desk", raw) for raw in mails]
    uidvalidity = server.uidvalidity("desk")
    sink = MemorySink()
    box = mailbox_for(server, batch_size=2)

    with running(box, sink):
        wait_for(lambda: len(server.folder_uids("desk", "Processed")) == 5, what="5 processed")

    assert [len(b) for b in sink.batches] == [2, 2, 1]
    assert [item.key for item in sink.items] == [f"{uidvalidity}/{uid}" for uid in uids]
    assert [item.raw for item in sink.items] == mails
    assert {item.source for item in sink.items} == {box.label}
    assert sink.cursor_history == [Cursor(box.label, uidvalidity, uids[i]) for i in (1, 3, 4)]
    assert server.folder_uids("desk", "INBOX") == []
    moved = server.fetch_messages("desk", "Processed")
    assert [raw for _uid, raw, _flags in moved] == mails
    assert all(b"\\Seen" not in flags for _uid, _raw, flags in moved)  # BODY.PEEK
    assert server.folder_uids("desk", "Quarantine") == []


def test_outcomes_choose_the_folder(fresh_mailbox):
    server = fresh_mailbox
    good, bad, dup = make_mail("ordinary"), make_mail("quarantine me"), make_mail("seen before")
    for raw in (good, bad, dup):
        server.append("desk", raw)
    sink = MemorySink()

    with running(mailbox_for(server), sink):
        wait_for(lambda: not server.folder_uids("desk", "INBOX")
                 and len(server.folder_uids("desk", "Processed")) == 2, what="moves")

    assert server.fetch_all("desk", "Processed") == [good, dup]
    assert server.fetch_all("desk", "Quarantine") == [bad]


def test_temporary_failure_leaves_mail_in_place_and_retries(fresh_mailbox, caplog):
    server = fresh_mailbox
    raw = make_mail("retry me")
    server.append("desk", raw)
    sink = MemorySink(fail_next=2)

    with caplog.at_level(logging.WARNING, logger="mailticket.intake.imap"):
        with running(mailbox_for(server), sink) as run:
            wait_for(lambda: len(run.errors) >= 1, what="the first failure")
            assert server.fetch_all("desk", "INBOX") == [raw]  # nothing moved while failing
            assert server.folder_uids("desk", "Processed") == []
            wait_for(lambda: server.fetch_all("desk", "Processed") == [raw], what="the retry")

    assert len(run.errors) == 2 and all(isinstance(e, TemporaryFailure) for e in run.errors)
    assert len(sink.batches) == 1
    assert server.folder_uids("desk", "INBOX") == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "database is locked" in warnings[0]
    assert all("\n" not in w and "retry me" not in w for w in warnings)


def test_committed_but_not_moved_is_moved_without_handing_over(fresh_mailbox):
    server = fresh_mailbox
    recorded, quarantined, unknown, new = (make_mail("a"), make_mail("quarantine me"),
                                           make_mail("unknown"), make_mail("new"))
    uids = [server.append("desk", raw) for raw in (recorded, quarantined, unknown, new)]
    uidvalidity = server.uidvalidity("desk")
    keys = [f"{uidvalidity}/{uid}" for uid in uids]
    box = mailbox_for(server)
    sink = MemorySink()
    # As if the daemon crashed after committing the first three but before moving them; the
    # pipeline has (somehow) no outcome for the third: it is handed over again.
    sink.cursors[box.label] = Cursor(box.label, uidvalidity, uids[2])
    sink.outcomes[(box.label, keys[0])] = Outcome.RECORDED
    sink.outcomes[(box.label, keys[1])] = Outcome.QUARANTINED

    with running(box, sink):
        wait_for(lambda: not server.folder_uids("desk", "INBOX"), what="an empty INBOX")

    assert sink.outcome_queries == [keys[:3]]
    assert [item.key for item in sink.items] == keys[2:]
    assert sink.cursor_history == [Cursor(box.label, uidvalidity, uids[3])]
    assert server.fetch_all("desk", "Processed") == [recorded, unknown, new]
    assert server.fetch_all("desk", "Quarantine") == [quarantined]


def test_uidvalidity_change_reads_the_folder_from_the_start(fresh_mailbox, caplog):
    server = fresh_mailbox
    server.create_folder("desk", "Desk")
    box = mailbox_for(server, folder="Desk")
    sink = MemorySink()
    for n in range(2):
        server.append("desk", make_mail("first life", n), folder="Desk")
    with running(box, sink):
        wait_for(lambda: len(server.folder_uids("desk", "Processed")) == 2, what="first run")
    old_uidvalidity = server.uidvalidity("desk", "Desk")
    assert sink.cursors[box.label] == Cursor(box.label, old_uidvalidity, 2)

    # The folder is recreated: UIDs start again from 1 under a new UIDVALIDITY.
    server.delete_folder("desk", "Desk")
    server.create_folder("desk", "Desk")
    again = make_mail("second life")
    server.append("desk", again, folder="Desk")
    new_uidvalidity = server.uidvalidity("desk", "Desk")
    assert new_uidvalidity != old_uidvalidity

    with caplog.at_level(logging.WARNING, logger="mailticket.intake.imap"):
        with running(box, sink):
            wait_for(lambda: len(sink.batches) == 2, what="second run")
    assert sink.batches[1] == [RawMail(box.label, f"{new_uidvalidity}/1", again)]
    assert sink.cursor_history[1] == Cursor(box.label, new_uidvalidity, 1)
    assert sink.outcome_queries == []  # UID 1 <= old last_uid was not taken for a stranded message
    assert any("UIDVALIDITY changed" in r.getMessage() for r in caplog.records)


def test_idle_picks_up_mail_appended_while_idling(fresh_mailbox):
    server = fresh_mailbox
    server.append("desk", make_mail("before"))
    sink = MemorySink()
    # Polling alone would take 60 s: only IDLE can be this quick.
    box = mailbox_for(server, idle=True, poll_interval=60.0, idle_renew=600.0)

    with running(box, sink):
        wait_for(lambda: server.folder_uids("desk", "Processed"), what="the first message")
        time.sleep(0.3)  # let the source enter IDLE
        raw = make_mail("while idling")
        server.append("desk", raw)
        started = time.monotonic()
        wait_for(lambda: len(sink.items) == 2, timeout=5, what="the message sent during IDLE")
        assert time.monotonic() - started < 5
        wait_for(lambda: len(server.folder_uids("desk", "Processed")) == 2, what="its move")
    assert sink.items[1].raw == raw


def test_polling_picks_up_new_mail(fresh_mailbox):
    server = fresh_mailbox
    sink = MemorySink()
    with running(mailbox_for(server, idle=False, poll_interval=0.2), sink):
        time.sleep(0.3)
        raw = make_mail("polled")
        server.append("desk", raw)
        wait_for(lambda: server.fetch_all("desk", "Processed") == [raw], what="the polled message")
    assert [item.raw for item in sink.items] == [raw]


def test_server_without_move_or_idle(dovecot_nomove):
    server = dovecot_nomove
    server.empty("desk")
    with server.client("desk") as c:
        assert not c.has_capability("MOVE") and not c.has_capability("IDLE")
        assert c.has_capability("UIDPLUS")
    sink = MemorySink()
    # idle=True, but the server has no IDLE: the source polls.
    box = mailbox_for(server, idle=True, poll_interval=0.2)
    with running(box, sink):
        time.sleep(0.3)  # connected: what follows arrives while it waits
        good, bad = make_mail("fine"), make_mail("quarantine me")
        server.append("desk", good)
        server.append("desk", bad)
        wait_for(lambda: server.fetch_all("desk", "Quarantine") == [bad], what="quarantine")
        wait_for(lambda: server.fetch_all("desk", "Processed") == [good], what="processed")

    assert server.fetch_all("desk", "INBOX") == []  # expunged, not just flagged \Deleted
    assert [b"\\Deleted" in flags for _u, _r, flags in server.fetch_messages("desk", "Processed")] \
        == [False]


def test_no_move_crash_after_copy_only_expunges(dovecot_nomove):
    """Crash between COPY + \\Deleted and EXPUNGE: the next connect must not copy again."""
    server = dovecot_nomove
    server.empty("desk")
    server.create_folder("desk", "Processed")
    raw = make_mail("copied already")
    uid = server.append("desk", raw)
    with server.client("desk") as c:
        c.select_folder("INBOX")
        c.copy([uid], "Processed")
        c.add_flags([uid], [b"\\Deleted"])
    box = mailbox_for(server)
    sink = MemorySink()
    uidvalidity = server.uidvalidity("desk")
    sink.cursors[box.label] = Cursor(box.label, uidvalidity, uid)
    sink.outcomes[(box.label, f"{uidvalidity}/{uid}")] = Outcome.RECORDED

    with running(box, sink):
        wait_for(lambda: not server.fetch_all("desk", "INBOX"), what="the expunge")
    assert server.fetch_all("desk", "Processed") == [raw]
    assert sink.items == []


def test_reconnects_after_dovecot_restart(fresh_mailbox):
    server = fresh_mailbox
    sink = MemorySink()
    box = mailbox_for(server, idle=True, poll_interval=0.2)
    try:
        with running(box, sink) as run:
            first = make_mail("before the restart")
            server.append("desk", first)
            wait_for(lambda: server.fetch_all("desk", "Processed") == [first], what="first")
            server.stop()
            wait_for(lambda: run.errors, what="the source noticing the outage")
            server.start()
            second = make_mail("after the restart")
            server.append("desk", second)
            wait_for(lambda: server.fetch_all("desk", "Processed") == [first, second],
                     what="mail after the restart")
    finally:
        server.start()
    assert [item.raw for item in sink.items] == [first, second]


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "poll"])
def test_stop_returns_promptly(fresh_mailbox, idle):
    server = fresh_mailbox
    box = mailbox_for(server, idle=idle, poll_interval=600.0, idle_renew=600.0)
    run = Running(ImapSource(box, MemorySink()))
    run.thread.start()
    time.sleep(0.5)  # connected and waiting
    started = time.monotonic()
    run.stop.set()
    run.thread.join(5)
    assert not run.thread.is_alive()
    assert time.monotonic() - started < 2.5
    assert run.errors == []


def test_wrong_password_keeps_retrying_without_logging_it(fresh_mailbox, caplog):
    server = fresh_mailbox
    box = mailbox_for(server, password=Secret("not-the-password"))
    with caplog.at_level(logging.DEBUG):
        with running(box, MemorySink(), backoff_base=0.05, backoff_cap=0.1) as run:
            wait_for(lambda: len(run.errors) >= 3, what="three login attempts")
            assert run.thread.is_alive()
    errors = [r.getMessage() for r in caplog.records
              if r.name == "mailticket.intake.imap" and r.levelno == logging.ERROR]
    assert errors and "login failed (LoginError: [AUTHENTICATIONFAILED]" in errors[0]
    assert "not-the-password" not in caplog.text


def test_tls_ssl_and_starttls(fresh_mailbox, monkeypatch):
    server = fresh_mailbox
    if server.ca_file is None:
        unavailable("no openssl to make a test certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))  # read by ssl.create_default_context
    for security, port in (("ssl", server.tls_port), ("starttls", server.port)):
        raw = make_mail(f"over {security}")
        server.append("desk", raw)
        sink = MemorySink()
        with running(mailbox_for(server, security=security, port=port), sink) as run:
            wait_for(lambda: server.fetch_all("desk", "Processed")[-1:] == [raw], what=security)
        assert run.errors == [] and [item.raw for item in sink.items] == [raw]


def test_starttls_refuses_an_untrusted_certificate(fresh_mailbox, caplog):
    server = fresh_mailbox
    if server.ca_file is None:
        unavailable("no openssl to make a test certificate")
    server.append("desk", make_mail("stays put"))
    with running(mailbox_for(server, security="starttls"), MemorySink()) as run:
        wait_for(lambda: run.errors, what="the TLS failure")
    assert len(server.folder_uids("desk", "INBOX")) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in describe(run.errors[0])


# --- pure helpers --------------------------------------------------------------------------------

@pytest.mark.parametrize("attempt, rand, expected", [
    (0, 0.0, 0.5), (0, 1.0, 1.0), (1, 1.0, 2.0), (5, 1.0, 32.0), (6, 1.0, 60.0), (6, 0.0, 30.0),
    (100, 1.0, 60.0),
])
def test_backoff_delay(attempt, rand, expected):
    assert backoff_delay(attempt, 1.0, 60.0, rand=lambda: rand) == expected


def test_mail_arriving_while_a_batch_is_processed_is_not_left_waiting_for_idle(fresh_mailbox):
    """A message that arrives during our own FETCH/MOVE is announced in responses IMAPClient does
    not keep; IDLE would never announce it again. The source must find it without new mail."""
    server = fresh_mailbox
    late = make_mail("arrived during the batch")

    class ArrivingSink(MemorySink):
        def process_batch(self, items, cursor=None):
            if len(self.batches) == 0:
                server.append("desk", late)
            return super().process_batch(items, cursor)

    sink = ArrivingSink()
    server.append("desk", make_mail("first"))
    with running(mailbox_for(server, idle=True, idle_renew=600.0), sink):
        wait_for(lambda: any(item.raw == late for item in sink.items), timeout=5,
                 what="the message that arrived during the first batch")


def test_a_message_over_the_size_limit_is_not_downloaded_only_its_header(fresh_mailbox):
    dovecot = fresh_mailbox
    small = make_mail("small one")
    big = make_mail("big one").replace(b"More text.", b"x" * 300_000)
    dovecot.append("desk", big)
    dovecot.append("desk", small)
    sink = MemorySink(decide=lambda raw: Outcome.QUARANTINED if b"big one" in raw
                      else Outcome.RECORDED)
    with running(mailbox_for(dovecot), sink, max_message_bytes=100_000):
        wait_for(lambda: len(dovecot.folder_uids("desk", "Processed")) == 1
                 and len(dovecot.folder_uids("desk", "Quarantine")) == 1, what="both moved")
    by_subject = {b"big one" in item.raw: item for item in sink.items}
    taken_big, taken_small = by_subject[True], by_subject[False]
    assert taken_big.oversized == len(big)
    assert taken_big.raw.startswith(b"From: ") and b"x" * 1000 not in taken_big.raw
    assert len(taken_big.raw) < 2000  # the header, not the body
    assert (taken_small.raw, taken_small.oversized) == (small, 0)
    # The original is kept whole in the quarantine folder for the admin.
    assert dovecot.fetch_all("desk", "Quarantine") == [big]


def test_batches_are_bounded_in_bytes_as_well_as_in_count():
    from mailticket.intake.imap.source import by_bytes
    sizes = {1: 40, 2: 40, 3: 100, 4: 10, 5: 10}
    assert list(by_bytes([1, 2, 3, 4, 5], sizes, 90)) == [[1, 2], [3], [4, 5]]
    assert list(by_bytes([], sizes, 90)) == []
