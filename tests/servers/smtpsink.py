"""A real SMTP server on loopback that keeps what it is sent, and can be told to fail.

Used as a pytest plugin (fixture ``smtp_sink``) and, without pytest, as the plain class
``SmtpSink`` (the benchmarks start one the same way)::

    sink = SmtpSink(); sink.start()
    ...                      # send to sink.host, sink.port
    sink.wait_for(3)         # the first three messages, or AssertionError after the timeout
    sink.fail_next(2, 451)   # the next two DATA commands answer 451
    sink.stop(); sink.start()  # the relay is down, then back on the same port
    sink.close()
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

#: What a failure code sounds like when the test does not say.
DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    451: "4.3.0 Requested action aborted: local error in processing",
    452: "4.3.1 Insufficient system storage",
    550: "5.7.1 Message rejected",
    552: "5.3.4 Message size exceeds fixed limit",
    554: "5.6.0 Transaction failed",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class SunkMessage:
    """One message the sink accepted: the envelope and the bytes exactly as received."""

    envelope_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass
class _Failure:
    remaining: int
    code: int
    text: str


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP, telling the sink which connections are open so it can drop them."""

    def __init__(self, sink: "SmtpSink", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sink._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sink._closed(self)
        super().connection_lost(error)


class _SinkController(Controller):
    def __init__(self, sink: "SmtpSink", **kwargs):
        self._sink = sink
        super().__init__(sink, **kwargs)

    def factory(self) -> SMTP:
        return _CountingSMTP(self._sink, self.handler, **self.SMTP_kwargs)


@dataclass
class SmtpSink:
    """An aiosmtpd server collecting messages in memory; ``port`` stays the same across
    ``stop()``/``start()`` so a client configured once sees the relay go down and come back."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[SunkMessage] = field(default_factory=list)
    #: Connections that greeted us (EHLO/HELO/LHLO): a persistent client keeps this at 1.
    connections: int = 0
    #: DATA commands answered, including the ones told to fail.
    data_commands: int = 0

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self._lock = threading.Condition()
        self._failures: list[_Failure] = []
        self._rejected_rcpts: dict[str, tuple[int, str]] = {}
        self._sessions: set[_CountingSMTP] = set()
        self._controller: _SinkController | None = None

    # --- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> "SmtpSink":
        if self._controller is None:
            controller = _SinkController(self, hostname=self.host, port=self.port,
                                         ready_timeout=10.0)
            controller.start()
            self._controller = controller
            # The controller's own start-up probe is not a client.
            with self._lock:
                self.connections = 0
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the relay is down."""
        controller, self._controller = self._controller, None
        if controller is not None:
            self.drop_connections()
            controller.stop()

    refuse_connections = stop
    accept_connections = start

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every open client connection from the server side (an idle timeout, a restart)
        while still accepting new ones."""
        controller = self._controller
        if controller is None:
            return
        done = threading.Event()

        def close_all() -> None:
            for session in list(self._sessions):
                if session.transport is not None:
                    session.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)
        deadline = time.monotonic() + 5
        while self._sessions and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def open_connections(self) -> int:
        return len(self._sessions)

    # --- what the test tells it -------------------------------------------------------------

    def fail_next(self, n: int = 1, code: int = 451, text: str | None = None) -> None:
        """Answer the next ``n`` DATA commands with ``code`` (421 also closes the connection)."""
        with self._lock:
            self._failures.append(_Failure(n, code, text or DEFAULT_TEXT.get(code, "failure")))

    def reject_recipient(self, address: str, code: int = 550, text: str | None = None) -> None:
        """Answer RCPT TO for ``address`` with ``code`` from now on."""
        with self._lock:
            self._rejected_rcpts[address.lower()] = (
                code, text or ("5.1.1 No such user" if code >= 500 else "4.2.1 Mailbox busy"))

    def clear(self) -> None:
        """Forget collected messages, counters, pending failures and rejected recipients."""
        with self._lock:
            self.messages.clear()
            self._failures.clear()
            self._rejected_rcpts.clear()
            self.connections = 0
            self.data_commands = 0

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SunkMessage]:
        """The first ``count`` messages, waiting for them up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"smtp sink: expected {count} message(s) within {timeout:g}s, "
                        f"got {len(self.messages)}")
                self._lock.wait(left)
            return list(self.messages[:count])

    # --- aiosmtpd handler hooks -------------------------------------------------------------

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        self._greeted()
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str) -> str:
        self._greeted()
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        with self._lock:
            rejected = self._rejected_rcpts.get(address.lower())
        if rejected:
            return f"{rejected[0]} {rejected[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_commands += 1
            failure = self._failures[0] if self._failures else None
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
            else:
                self.messages.append(SunkMessage(
                    envelope.mail_from or "", tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or b"")))
                self._lock.notify_all()
        if failure is None:
            return "250 OK"
        if failure.code == 421 and server.transport is not None:
            # 421 means the server closes the channel; the reply is flushed before the close.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return f"{failure.code} {failure.text}"

    # --- bookkeeping ------------------------------------------------------------------------

    def _greeted(self) -> None:
        with self._lock:
            self.connections += 1

    def _opened(self, session: _CountingSMTP) -> None:
        self._sessions.add(session)

    def _closed(self, session: _CountingSMTP) -> None:
        self._sessions.discard(session)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A started SmtpSink on a free loopback port; stopped after the test."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
