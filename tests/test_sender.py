"""The sender draining the outbox into a real SMTP sink, on SQLite (and PostgreSQL when enabled).

Time is an injected clock: backoff is checked by moving it, never by sleeping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest

from mailticket.config import Outgoing, OutgoingSmtp
from mailticket.db import transaction
from mailticket.errors import InvalidRequest, MailticketError
from mailticket.models import Outbox, utcnow
from mailticket.processes import process_identity
from mailticket.sender import RECORD_EVERY, RECORD_SECONDS, Sender, backoff, retry
from mailticket.transport import SmtpTransport

pytestmark = pytest.mark.integration


def pending_count() -> int:
    """How many rows wait to be sent (due or not)."""
    return Outbox.select().where(Outbox.status == "pending").count()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def outgoing_for(sink, *, base=10.0, cap=60.0, max_attempts=10) -> Outgoing:
    smtp = OutgoingSmtp(host=sink.host, port=sink.port, security="none", username=None,
                        password=None, timeout=5.0)
    return Outgoing(smtp=smtp, maildir=None, retry_base=base, retry_max=cap,
                    max_attempts=max_attempts)


def content(n: int) -> bytes:
    return (f"From: desk@example.org\r\nTo: user{n}@example.com\r\nSubject: Ticket #{n}\r\n"
            f"Message-ID: <out{n}@example.org>\r\n\r\nYour ticket number is {n}.\r\n").encode()


def make_row(n: int, recipients: list[str] | None = None, **fields) -> Outbox:
    return Outbox.create(kind="ack", envelope_from="desk@example.org",
                         recipients=recipients or [f"user{n}@example.com"],
                         message_id=f"<out{n}@example.org>", subject=f"Ticket #{n}",
                         content=content(n), status="pending", **fields)


def reload(row: Outbox) -> Outbox:
    return Outbox.get_by_id(row.id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_sender(database, smtp_sink, clock):
    made: list[Sender] = []

    def make(**options) -> Sender:
        sender = Sender(database, SmtpTransport(outgoing_for(smtp_sink).smtp),
                        outgoing_for(smtp_sink, **options), clock=clock)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.transport.close()


def test_pending_rows_are_delivered_in_order_and_marked_sent(database, smtp_sink, make_sender,
                                                            caplog):
    rows = [make_row(n) for n in range(1, 4)]
    sender = make_sender()

    with caplog.at_level("INFO", logger="mailticket.sender"):
        assert sender.drain() == 3

    got = smtp_sink.wait_for(3)
    assert [m.raw for m in got] == [content(n) for n in range(1, 4)]
    assert [m.rcpt_tos for m in got] == [(f"user{n}@example.com",) for n in range(1, 4)]
    for row in map(reload, rows):
        assert (row.status, row.attempts, row.claimed_until) == ("sent", 1, None)
        assert row.sent_at == sender.clock()
    assert f"outbox #{rows[0].id} sent to user1@example.com (ack)" in caplog.text
    assert sender.drain() == 0
    assert pending_count() == 0


def test_rows_not_yet_due_or_claimed_by_another_sender_wait(database, smtp_sink, make_sender,
                                                           clock):
    later = make_row(1, next_attempt_at=clock() + timedelta(minutes=5))
    claimed = make_row(2, claimed_until=clock() + timedelta(minutes=1))
    stale_claim = make_row(3, claimed_until=clock() - timedelta(seconds=1))
    sender = make_sender()

    assert sender.drain() == 1
    statuses = [reload(r).status for r in (later, claimed, stale_claim)]
    assert statuses == ["pending", "pending", "sent"]

    clock.advance(6 * 60)
    assert sender.drain() == 2


def test_relay_down_keeps_rows_pending_with_capped_backoff_then_delivers(
        database, smtp_sink, make_sender, clock):
    rows = [make_row(n) for n in range(1, 4)]
    sender = make_sender(base=10, cap=60, max_attempts=10)
    smtp_sink.stop()

    delays = []
    for attempt in range(1, 6):
        before = clock()
        assert sender.drain() == 0
        states = [reload(r) for r in rows]
        assert {(r.status, r.attempts) for r in states} == {("pending", attempt)}
        assert all("Connection refused" in r.last_error for r in states)
        delays.append((states[0].next_attempt_at - before).total_seconds())
        clock.advance(1)
        assert sender.drain() == 0, "nothing is due before its time"
        clock.now = states[0].next_attempt_at
    assert delays == [10, 20, 40, 60, 60]

    smtp_sink.start()
    assert sender.drain() == 3
    assert [m.raw for m in smtp_sink.wait_for(3)] == [content(n) for n in range(1, 4)]
    assert {reload(r).status for r in rows} == {"sent"}


def test_a_long_relay_outage_never_fails_mail(database, smtp_sink, make_sender, clock):
    row = make_row(1)
    sender = make_sender(base=10, cap=60, max_attempts=3)
    smtp_sink.stop()
    for _ in range(10):
        sender.drain()
        clock.advance(3600)
    waiting = reload(row)
    assert (waiting.status, waiting.attempts) == ("pending", 10)
    smtp_sink.start()
    smtp_sink.fail_next(1, 451, "4.3.0 Busy after the restart")
    sender.drain()  # one 4xx after a long outage is one refusal, not the tenth attempt
    assert reload(row).status == "pending"
    clock.advance(3600)
    assert sender.drain() == 1
    assert reload(row).status == "sent"


def test_5xx_marks_the_row_failed_with_the_reason(database, smtp_sink, make_sender):
    row = make_row(1)
    ok = make_row(2)
    smtp_sink.fail_next(1, 550, "5.7.1 Message rejected as spam")

    assert make_sender().drain() == 1

    failed = reload(row)
    assert failed.status == "failed"
    assert "550 5.7.1 Message rejected as spam" in failed.last_error
    assert reload(ok).status == "sent"


def test_4xx_is_retried_until_max_attempts_then_failed(database, smtp_sink, make_sender, clock):
    row = make_row(1)
    smtp_sink.fail_next(100, 451, "4.3.0 Try again later")
    sender = make_sender(max_attempts=3)

    for _ in range(3):
        assert sender.drain() == 0
        clock.advance(3600)

    final = reload(row)
    assert (final.status, final.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in final.last_error and "451 4.3.0" in final.last_error
    assert sender.drain() == 0


def test_a_recipient_refused_for_now_is_retried_alone(database, smtp_sink, make_sender, clock):
    row = make_row(1, recipients=["ok@example.com", "busy@example.com"])
    smtp_sink.reject_recipient("busy@example.com", 450, "4.2.1 Mailbox busy")
    sender = make_sender()

    assert sender.drain() == 1
    partly = reload(row)
    assert (partly.status, partly.recipients) == ("pending", ["busy@example.com"])
    assert "450 4.2.1 Mailbox busy" in partly.last_error

    smtp_sink.clear()
    clock.advance(3600)
    assert sender.drain() == 1
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("busy@example.com",)
    assert reload(row).status == "sent"


def test_an_unexpected_error_is_treated_as_temporary(database, clock, caplog):
    class Broken:
        def send(self, envelope_from, recipients, content):
            raise RuntimeError("boom")

        def close(self):
            pass

    row = make_row(1)
    sender = Sender(database, Broken(), Outgoing(None, None, 10.0, 60.0, 5), clock=clock)

    assert sender.drain() == 0

    after = reload(row)
    assert (after.status, after.attempts) == ("pending", 1)
    assert "RuntimeError: boom" in after.last_error
    assert f"outbox #{row.id}" in caplog.text


def test_two_senders_draining_at_once_send_each_row_once(database, smtp_sink, make_sender):
    rows = [make_row(n) for n in range(1, 41)]
    senders = [make_sender(), make_sender()]
    start = threading.Barrier(len(senders))
    counts: list[int] = []
    errors: list[BaseException] = []

    def work(sender: Sender) -> None:
        try:
            start.wait()
            counts.append(sender.drain())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            database.close()  # this thread's connection

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert sum(counts) == len(rows)
    ids = sorted(m.message["Message-ID"] for m in smtp_sink.wait_for(len(rows)))
    assert ids == sorted(f"<out{n}@example.org>" for n in range(1, 41))
    assert len(smtp_sink.messages) == len(rows)
    assert {r.status for r in Outbox.select()} == {"sent"}


def test_retry_sends_a_failed_row_again(database, smtp_sink, make_sender):
    row = make_row(1)
    smtp_sink.fail_next(1, 550)
    sender = make_sender()
    sender.drain()
    assert reload(row).status == "failed"

    retry(database, row.id)

    again = reload(row)
    assert (again.status, again.attempts) == ("pending", 0)
    assert pending_count() == 1
    assert sender.drain() == 1
    assert reload(row).status == "sent"
    with pytest.raises(InvalidRequest, match="already sent"):
        retry(database, row.id)
    with pytest.raises(MailticketError, match="no outbox row #999999"):
        retry(database, 999999)


def test_run_sends_when_woken_and_drains_once_more_on_stop(database, smtp_sink, make_sender):
    sender = make_sender()
    stop, wake = threading.Event(), threading.Event()

    def run() -> None:
        try:
            sender.run(stop, wake, idle_seconds=30)
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        make_row(1)
        wake.set()
        smtp_sink.wait_for(1, timeout=5)
    finally:
        stop.set()
        wake.set()
        thread.join(10)
    assert not thread.is_alive()

    # Stopped before it starts: the last drain still sends what is due, then the transport closes.
    sender.clock = utcnow  # rows made now are due for a real clock too
    make_row(2)
    sender.run(stop, wake)
    assert len(smtp_sink.wait_for(2)) == 2
    deadline = time.monotonic() + 5
    while smtp_sink.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert smtp_sink.open_connections == 0, "the transport was closed (QUIT)"


def test_run_survives_a_relay_outage(database, smtp_sink, make_sender):
    sender = make_sender()
    smtp_sink.stop()
    row = make_row(1)
    stop, wake = threading.Event(), threading.Event()
    stop.set()

    sender.run(stop, wake)

    assert reload(row).status == "pending"


def test_backoff_is_capped_exponential():
    assert [backoff(n, 30, 3600) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920,
                                                           3600, 3600]
    assert backoff(10_000, 30, 3600) == 3600


class CountingTransactions:
    """Wraps ``mailticket.db.transaction``; counts the write transactions a sender opens."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, db):
        self.count += 1
        return transaction(db)


def test_a_drain_claims_and_records_in_chunks_not_per_mail(database, smtp_sink, clock):
    rows = [make_row(n) for n in range(1, 151)]
    counting = CountingTransactions()
    sender = Sender(database, SmtpTransport(outgoing_for(smtp_sink).smtp),
                    outgoing_for(smtp_sink), clock=clock, transaction=counting)
    try:
        started = time.monotonic()
        assert sender.drain() == 150
        elapsed = time.monotonic() - started
        # 2 claims (100 + 50) and a record every RECORD_EVERY outcomes, plus at most one more
        # record per RECORD_SECONDS of sending; it was 300 (a claim and a record per mail).
        expected = 2 + 150 // RECORD_EVERY + int(elapsed / RECORD_SECONDS) + 1
        assert counting.count <= expected < 300, counting.count
        assert [m.raw for m in smtp_sink.wait_for(150)] == [content(n) for n in range(1, 151)]
        assert {(r.status, r.attempts, r.claimed_until) for r in map(reload, rows)} == {
            ("sent", 1, None)}

        before = counting.count
        assert sender.drain() == 0
        assert counting.count == before, "nothing due: no write transaction (no write lock)"
    finally:
        sender.transport.close()


def test_an_outcome_is_not_recorded_over_a_lease_another_sender_took(database, smtp_sink,
                                                                     clock, caplog):
    first, second = make_row(1), make_row(2)
    theirs = clock() + timedelta(minutes=5)

    class LeaseStolen(SmtpTransport):
        def send(self, envelope_from, recipients, content):
            refused = super().send(envelope_from, recipients, content)
            if recipients == ["user1@example.com"]:
                # Our lease ran out meanwhile and another sender claimed the row.
                Outbox.update(claimed_until=theirs).where(Outbox.id == first.id).execute()
            return refused

    sender = Sender(database, LeaseStolen(outgoing_for(smtp_sink).smtp),
                    outgoing_for(smtp_sink), clock=clock)
    try:
        assert sender.drain() == 2
    finally:
        sender.transport.close()
    taken = reload(first)
    assert (taken.status, taken.attempts, taken.claimed_until) == ("pending", 0, theirs)
    assert reload(second).status == "sent"
    assert f"outbox #{first.id}: lease lost before the outcome was recorded (sent)" in caplog.text


def test_a_slow_chunk_hands_back_rows_before_their_lease_runs_short(database, smtp_sink,
                                                                    clock):
    rows = [make_row(n) for n in range(1, 6)]
    lease_left: list[float] = []

    class Slow(SmtpTransport):
        def send(self, envelope_from, recipients, content):
            row = next(r for r in Outbox.select() if r.recipients == recipients)
            lease_left.append((row.claimed_until - clock()).total_seconds())
            clock.advance(45)  # each send takes 45 s of a 120 s lease
            return super().send(envelope_from, recipients, content)

    sender = Sender(database, Slow(outgoing_for(smtp_sink).smtp), outgoing_for(smtp_sink),
                    clock=clock, lease_seconds=120)
    try:
        assert sender.drain() == 5
    finally:
        sender.transport.close()
    assert [m.raw for m in smtp_sink.wait_for(5)] == [content(n) for n in range(1, 6)]
    assert len(smtp_sink.messages) == 5
    assert {(reload(r).status, reload(r).claimed_until) for r in rows} == {("sent", None)}
    # No send started with less than half the lease left: the rest was handed back and
    # claimed afresh (two sends per claim here).
    assert len(lease_left) == 5 and min(lease_left) >= 60, lease_left


def test_claims_of_a_dead_sender_on_this_host_are_handed_back_at_start(database, smtp_sink,
                                                                       make_sender, clock):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = process_identity(child.pid)  # read while it runs, then it exits
    child.wait()
    until = clock() + timedelta(seconds=120)
    orphan = make_row(1, claimed_until=until, claimed_by=dead)
    live = make_row(2, claimed_until=until, claimed_by=process_identity(os.getppid()))
    elsewhere = make_row(3, claimed_until=until, claimed_by="other-host/1/1")
    sender = make_sender()
    assert sender.release_dead_claims() == 1
    assert sender.drain() == 1
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("user1@example.com",)]
    assert reload(orphan).status == "sent"
    assert reload(live).claimed_until == until and reload(elsewhere).claimed_until == until
