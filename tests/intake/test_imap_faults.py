"""The IMAP source when the server fails under it, against a real Dovecot: restarted, a session
killed, kicked (BYE) or hung, while the source idles and while a batch is in hand. Whatever the
moment, the source logs the failure, reconnects with backoff and goes on; each message is handed
to the sink (committed) exactly once and ends in Processed."""

from __future__ import annotations

import logging
import signal
import threading

import pytest

from mailticket.intake.items import Cursor, RawMail, Result
from tests.intake.test_imap import MemorySink, mailbox_for, make_mail, running
from tests.servers import wait_until

pytestmark = pytest.mark.integration

FAULTS = ["restart", "kill", "kick", "hang"]


class GatedSink(MemorySink):
    """A MemorySink whose ``block_at``-th batch (0-based) waits for ``gate`` before it commits:
    a slow transaction, during which the test breaks the connection."""

    def __init__(self, block_at: int = 0):
        super().__init__()
        self.block_at = block_at
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()

    def process_batch(self, items: list[RawMail], cursor: Cursor | None = None) -> list[Result]:
        with self.lock:
            call, self.calls = self.calls, self.calls + 1
        if call == self.block_at:
            self.entered.set()
            assert self.gate.wait(20), "the test never opened the gate"
        return super().process_batch(items, cursor)


@pytest.fixture
def server(fresh_mailbox):
    """``fresh_mailbox``; running again afterwards, with no session left hanging."""
    yield fresh_mailbox
    fresh_mailbox.signal_sessions(signal.SIGKILL)
    fresh_mailbox.start()


def break_connection(server, fault: str) -> None:
    """The server side fails the source's connection in the way ``fault`` names."""
    if fault == "restart":
        server.stop()
        server.start()
    elif fault == "kill":
        assert server.signal_sessions(signal.SIGKILL), "no session to kill"
    elif fault == "kick":
        server.kick("desk")
    elif fault == "hang":
        # Connection open, server silent: only the source's timeout can notice.
        assert server.signal_sessions(signal.SIGSTOP), "no session to stop"
    else:  # pragma: no cover
        raise ValueError(fault)


def assert_each_taken_once(sink: MemorySink, server, mails: list[bytes]) -> None:
    keys = [item.key for item in sink.items]
    assert len(keys) == len(set(keys)), f"handed over more than once: {keys}"
    assert sorted(item.raw for item in sink.items) == sorted(mails)
    assert sorted(server.fetch_all("desk", "Processed")) == sorted(mails)
    assert server.folder_uids("desk", "INBOX") == []


def assert_reconnected_quietly(caplog, run) -> None:
    """The failure was reported and logged as an outage (a warning naming the backoff), not as
    a crash with a traceback; the source is still running."""
    assert run.errors, "the failure was not reported"
    assert run.thread.is_alive()
    records = [r for r in caplog.records if r.name == "mailticket.intake.imap"]
    assert any("reconnecting in" in r.getMessage() and r.levelno == logging.WARNING
               for r in records), [r.getMessage() for r in records]
    assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("fault", FAULTS)
def test_connection_lost_while_a_batch_is_in_hand(server, fault, caplog):
    """The second of three batches is being committed when the connection fails: it is moved
    after the reconnect without being handed over again, and the third batch follows."""
    mails = [make_mail("batch", n) for n in range(25)]
    for raw in mails:
        server.append("desk", raw)
    sink = GatedSink(block_at=1)
    box = mailbox_for(server, batch_size=10, idle=True, poll_interval=60.0, timeout=1.0)

    with caplog.at_level(logging.INFO, logger="mailticket.intake.imap"):
        with running(box, sink) as run:
            assert sink.entered.wait(10), "the second batch never reached the sink"
            break_connection(server, fault)
            sink.gate.set()
            wait_until(lambda: len(server.folder_uids("desk", "Processed")) == 25, timeout=15,
                       what="all 25 messages in Processed")
            assert_reconnected_quietly(caplog, run)

    assert_each_taken_once(sink, server, mails)
    assert [len(batch) for batch in sink.batches] == [10, 10, 5]
    second = [item.key for item in sink.batches[1]]
    # After the reconnect the source asked what had become of the batch it had not moved.
    assert second in sink.outcome_queries
    assert "message(s) recorded before the last disconnect moved aside" in caplog.text


@pytest.mark.parametrize("fault", FAULTS)
def test_connection_lost_while_idling(server, fault, caplog):
    """The source idles (polling is off: IDLE or a reconnect are the only ways to see new mail)
    when its connection fails; mail that arrives afterwards is taken in, once."""
    first = make_mail("before the fault")
    server.append("desk", first)
    sink = MemorySink()
    # Renewing IDLE every second bounds how long a hung server goes unnoticed (30 s by default).
    box = mailbox_for(server, idle=True, poll_interval=60.0, idle_renew=1.0, timeout=1.0)
    mails = [first]

    with caplog.at_level(logging.INFO, logger="mailticket.intake.imap"):
        with running(box, sink) as run:
            wait_until(lambda: server.fetch_all("desk", "Processed") == [first],
                       what="the first message")
            # Once the batch is moved the source goes back to IDLE (after a NOOP and a SEARCH,
            # milliseconds): the fault finds it idling.
            wait_until(lambda: server.session_pids(), what="the source's session")
            if fault == "restart":
                server.stop()
                # Delivered by the MTA while IMAP is down.
                mails.append(make_mail("while the server was down"))
                server.deliver_offline("desk", mails[-1])
                server.start()
            else:
                break_connection(server, fault)
            wait_until(lambda: run.errors, timeout=10, what="the source noticing the fault")
            mails.append(make_mail("after the fault"))
            server.append("desk", mails[-1])
            wait_until(lambda: len(server.folder_uids("desk", "Processed")) == len(mails),
                       timeout=10, what="the mail that came after the fault")
            assert_reconnected_quietly(caplog, run)

    assert_each_taken_once(sink, server, mails)
