"""SMTP/LMTP intake: a real aiosmtpd server on loopback, spoken to with smtplib.

The sink here is a test double for the pipeline's interface only (records in memory, can be
told to fail); everything between the socket and the sink is the real code.
"""

from __future__ import annotations

import hashlib
import smtplib
import threading
import time

import pytest

from mailticket.config import SmtpIntake
from mailticket.errors import TemporaryFailure
from mailticket.intake.items import Outcome, RawMail, Result
from mailticket.intake.smtp import SmtpIntakeServer
from tests.servers.smtpsink import free_port

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024

MESSAGE = (
    b"From: User <user@example.com>\r\n"
    b"To: desk@example.org\r\n"
    b"Subject: Printer on fire\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"It is really on fire \xe2\x80\x94 please help.\r\n"
    b".this line starts with a dot\r\n"
)


class MemorySink:
    """Records what it is given, as the pipeline would commit it; or fails like it could."""

    def __init__(self) -> None:
        self.recorded: list[RawMail] = []
        self.calls = 0
        self.fail_with: BaseException | None = None
        self.outcome = Outcome.RECORDED
        self.lock = threading.Lock()
        self.entered = threading.Event()
        self.gate: threading.Event | None = None  # when set, commits wait for it

    def process_batch(self, items: list[RawMail]) -> list[Result]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        with self.lock:
            self.calls += 1
            if self.fail_with is not None:
                raise self.fail_with
            self.recorded.extend(items)
            ticket = len(self.recorded) if self.outcome is not Outcome.QUARANTINED else None
            return [Result(key=item.key, outcome=self.outcome, ticket=ticket) for item in items]


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def start_server(sink: MemorySink, protocol: str) -> SmtpIntakeServer:
    settings = SmtpIntake(host="127.0.0.1", port=free_port(), protocol=protocol)
    server = SmtpIntakeServer(settings, sink, max_message_bytes=LIMIT)
    server.start()
    return server


@pytest.fixture
def smtp_server(sink):
    server = start_server(sink, "smtp")
    yield server
    server.stop()


@pytest.fixture
def lmtp_server(sink):
    server = start_server(sink, "lmtp")
    yield server
    server.stop()


def client(server: SmtpIntakeServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.settings.host, server.settings.port, timeout=10)


def deliver(server: SmtpIntakeServer, content: bytes = MESSAGE,
            rcpts: tuple[str, ...] = ("desk@example.org",)) -> tuple[int, bytes]:
    """MAIL, RCPT, DATA by hand, so the reply to DATA is seen whatever it is."""
    with client(server) as c:
        c.ehlo("mta.example.com")
        assert c.mail("user@example.com")[0] == 250
        for rcpt in rcpts:
            assert c.rcpt(rcpt)[0] == 250
        return c.data(content)


def test_250_after_the_sink_recorded_the_bytes_untouched(smtp_server, sink):
    code, reply = deliver(smtp_server)

    assert (code, reply) == (250, b"OK: queued as ticket 1")
    [item] = sink.recorded
    # The envelope sender is recorded as Return-Path, as a final delivery agent does.
    assert item.raw == b"Return-Path: <user@example.com>\r\n" + MESSAGE
    assert item.source == "smtp://127.0.0.1:%d" % smtp_server.settings.port
    assert item.key == hashlib.sha256(MESSAGE).hexdigest()


def test_the_reply_waits_for_the_sink_to_commit(smtp_server, sink):
    sink.gate = threading.Event()
    replies: list[tuple[int, bytes]] = []
    thread = threading.Thread(target=lambda: replies.append(deliver(smtp_server)))
    thread.start()
    try:
        assert sink.entered.wait(5)
        time.sleep(0.2)
        assert replies == [], "no reply before the sink has committed"
    finally:
        sink.gate.set()
        thread.join(10)
    assert replies == [(250, b"OK: queued as ticket 1")]


def test_sendmail_works_and_any_recipient_is_accepted(smtp_server, sink):
    with client(smtp_server) as c:
        refused = c.sendmail("user@example.com", ["desk@example.org", "whoever@elsewhere.test"],
                             MESSAGE)
    assert refused == {}
    assert len(sink.recorded) == 1


def test_duplicate_is_250_and_quarantined_is_250_kept(smtp_server, sink):
    sink.outcome = Outcome.DUPLICATE
    assert deliver(smtp_server)[0] == 250
    sink.outcome = Outcome.QUARANTINED
    assert deliver(smtp_server) == (250, b"OK: kept for review")


@pytest.mark.parametrize("error", [TemporaryFailure("database busy"), RuntimeError("bug"),
                                   ValueError("bad")])
def test_a_failing_sink_answers_451_and_records_nothing(smtp_server, sink, error, caplog):
    sink.fail_with = error

    code, reply = deliver(smtp_server)

    assert code == 451
    assert reply == b"4.3.0 Temporary failure, please retry"
    assert sink.recorded == [] and sink.calls == 1
    assert "answered 451" in caplog.text

    # The MTA retries; once the pipeline works again the same bytes make the same key.
    sink.fail_with = None
    assert deliver(smtp_server)[0] == 250
    assert sink.recorded[0].key == hashlib.sha256(MESSAGE).hexdigest()


def test_over_the_size_limit_is_552(smtp_server, sink):
    big = MESSAGE + b"x" * 76 + b"\r\n"
    big = big * (LIMIT // len(big) + 1)

    # A client that declares SIZE is refused at MAIL FROM ...
    with client(smtp_server) as c, pytest.raises(smtplib.SMTPSenderRefused) as err:
        c.sendmail("user@example.com", ["desk@example.org"], big)
    assert err.value.smtp_code == 552
    # ... one that does not is refused after DATA.
    assert deliver(smtp_server, big)[0] == 552
    assert sink.calls == 0


def lmtp_transaction(c: smtplib.LMTP, rcpts: list[str],
                     content: bytes = MESSAGE) -> list[tuple[int, bytes]]:
    """One LMTP transaction; the replies after DATA, one per recipient. (smtplib.LMTP.sendmail
    reads only the first of them, so the rest are read here.)"""
    c.ehlo_or_helo_if_needed()
    assert c.mail("user@example.com")[0] == 250
    for rcpt in rcpts:
        assert c.rcpt(rcpt)[0] == 250
    replies = [c.data(content)]
    replies += [c.getreply() for _ in rcpts[1:]]
    return replies


def test_lmtp_answers_once_per_recipient_and_processes_once(lmtp_server, sink):
    rcpts = ["desk@example.org", "support@example.org", "it@example.org"]
    with smtplib.LMTP(lmtp_server.settings.host, lmtp_server.settings.port, timeout=10) as c:
        assert lmtp_transaction(c, rcpts) == [(250, b"OK: queued as ticket 1")] * 3
        # Still in step with the server: a second transaction on the same connection.
        assert lmtp_transaction(c, rcpts[:1]) == [(250, b"OK: queued as ticket 2")]
        assert c.noop()[0] == 250

    assert sink.calls == 2
    assert [item.raw for item in sink.recorded] == [b"Return-Path: <user@example.com>\r\n" + MESSAGE] * 2


def test_lmtp_refuses_smtp_greetings(lmtp_server):
    with smtplib.SMTP(lmtp_server.settings.host, lmtp_server.settings.port, timeout=10) as c:
        assert c.ehlo()[0] == 500


def test_lmtp_failure_is_451_for_every_recipient(lmtp_server, sink):
    sink.fail_with = TemporaryFailure("database busy")
    rcpts = ["desk@example.org", "support@example.org"]

    with smtplib.LMTP(lmtp_server.settings.host, lmtp_server.settings.port, timeout=10) as c:
        assert lmtp_transaction(c, rcpts) == [(451, b"4.3.0 Temporary failure, please retry")] * 2
        assert c.noop()[0] == 250

    assert sink.recorded == []


def test_a_null_reverse_path_is_recorded_as_an_empty_return_path(smtp_server, sink):
    with client(smtp_server) as c:
        c.ehlo("mta.example.com")
        assert c.mail("<>")[0] == 250
        assert c.rcpt("desk@example.org")[0] == 250
        assert c.data(MESSAGE)[0] == 250
    [item] = sink.recorded
    assert item.raw == b"Return-Path: <>\r\n" + MESSAGE


# --- long lines, sizes over LMTP, stopping with a message in hand --------------------------------

LONG_LINES = (
    b"From: User <user@example.com>\r\n"
    b"To: desk@example.org\r\n"
    b"Subject: Long lines\r\n"
    b"X-Long: " + b"h" * 3000 + b"\r\n"                   # a 3,000-byte header line
    b"\r\n"
    b"" + b"b" * 5000 + b"\r\n"                           # a 5,000-byte body line
    b"." + b"d" * 4000 + b"\r\n"                          # a long line that starts with a dot
    b"end\r\n"
)
ONE_HUGE_LINE = MESSAGE + b"z" * (LIMIT + 100) + b"\r\n"     # over the limit in a single line
MANY_LINES = (MESSAGE + b"x" * 76 + b"\r\n") * (LIMIT // 100 + 1)  # over the limit, short lines


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_long_lines_are_accepted_and_recorded_byte_exact(sink, protocol):
    server = start_server(sink, protocol)
    try:
        if protocol == "smtp":
            assert deliver(server, LONG_LINES) == (250, b"OK: queued as ticket 1")
        else:
            with smtplib.LMTP(server.settings.host, server.settings.port, timeout=10) as c:
                rcpts = ["desk@example.org", "it@example.org"]
                replies = lmtp_transaction(c, rcpts, LONG_LINES)
                assert replies == [(250, b"OK: queued as ticket 1")] * 2
                assert c.noop()[0] == 250
    finally:
        server.stop()
    [item] = sink.recorded
    assert item.raw == b"Return-Path: <user@example.com>\r\n" + LONG_LINES
    assert item.key == hashlib.sha256(LONG_LINES).hexdigest()


def test_a_single_line_over_the_size_limit_is_552_not_500(smtp_server, sink):
    code, reply = deliver(smtp_server, ONE_HUGE_LINE)
    assert code == 552, reply
    # The connection is still in step: a normal message goes through after it.
    assert deliver(smtp_server)[0] == 250
    assert sink.calls == 1


@pytest.mark.parametrize("content", [MANY_LINES, ONE_HUGE_LINE], ids=["many-lines", "one-line"])
def test_lmtp_over_the_size_limit_is_552_for_every_recipient(lmtp_server, sink, content):
    rcpts = ["desk@example.org", "support@example.org"]
    with smtplib.LMTP(lmtp_server.settings.host, lmtp_server.settings.port, timeout=5) as c:
        assert lmtp_transaction(c, rcpts, content) == [(552, b"5.3.4 Message too big")] * 2
        # Still in step with the server.
        assert c.noop()[0] == 250
        assert lmtp_transaction(c, rcpts) == [(250, b"OK: queued as ticket 1")] * 2
    assert sink.calls == 1


def test_stop_finishes_the_message_in_hand_before_stopping(sink):
    server = start_server(sink, "smtp")
    sink.gate = threading.Event()
    events: list[str] = []
    replies: list[tuple[int, bytes]] = []

    def send() -> None:
        replies.append(deliver(server))
        events.append("replied")

    def stop() -> None:
        server.stop(timeout=20)
        events.append("stopped")

    idle = client(server)             # connected before the stop, between transactions
    idle.ehlo("mta.example.com")
    sender = threading.Thread(target=send)
    stopper = threading.Thread(target=stop)
    try:
        sender.start()
        assert sink.entered.wait(5)
        stopper.start()
        time.sleep(0.3)
        assert events == [], "stop() waits for the message in hand"
        # No new connections, and no new transactions on the ones still open.
        with pytest.raises(OSError):
            smtplib.SMTP(server.settings.host, server.settings.port, timeout=2)
        assert idle.mail("user@example.com")[0] == 421
    finally:
        sink.gate.set()
        sender.join(10)
        stopper.join(10)
        idle.close()
    assert replies == [(250, b"OK: queued as ticket 1")]
    assert events == ["replied", "stopped"]
    assert len(sink.recorded) == 1


def test_stop_waits_no_longer_than_its_bound(sink):
    server = start_server(sink, "smtp")
    sink.gate = threading.Event()
    replies: list[object] = []

    def send() -> None:
        try:
            replies.append(deliver(server))
        except (smtplib.SMTPException, OSError) as exc:
            replies.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert sink.entered.wait(5)
        started = time.monotonic()
        server.stop(timeout=0.5)
        assert 0.4 <= time.monotonic() - started < 3
    finally:
        sink.gate.set()
        sender.join(10)
    assert replies and not isinstance(replies[0], tuple), "cut off: no reply"
