"""A real SMTP server on loopback that keeps what it is sent, and can be told to fail.

Used as a pytest plugin (fixture ``smtp_sink``) and, without pytest, as the plain class
``SmtpSink`` (the benchmarks start one the same way)::

    sink = SmtpSink(); sink.start()
    ...                      # send to sink.host, sink.port
    sink.wait_for(3)         # the first three messages, or AssertionError after the timeout
    sink.fail_next(2, 451)   # the next two DATA commands answer 451
    sink.stop(); sink.start()  # the relay is down, then back on the same port
    sink.close()

``SmtpSink(tls="starttls", users={"desk": "pw"})`` offers STARTTLS (``tls="ssl"``: TLS from the
first byte) with a throwaway self-signed certificate, and AUTH for those users; clients trust
it through ``sink.client_ssl_context()``.
"""

from __future__ import annotations

import asyncio
import atexit
import email.message
import email.parser
import email.policy
import functools
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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


@functools.lru_cache(maxsize=None)
def self_signed_certificate() -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, made once per process with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the smtp sink needs the openssl command for TLS")
    directory = Path(tempfile.mkdtemp(prefix="smtpsink-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


@dataclass(frozen=True)
class SunkMessage:
    """One message the sink accepted: the envelope and the bytes exactly as received."""

    envelope_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        parser = email.parser.BytesParser(policy=email.policy.default)
        return parser.parsebytes(self.raw)  # type: ignore[return-value]


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
    messages: list[SunkMessage] = field(default_factory=list, repr=False)
    #: Connections that greeted us (EHLO/HELO): a persistent client keeps this at 1.
    connections: int = 0
    #: DATA commands answered, including the ones told to fail.
    data_commands: int = 0
    #: None (plain), "starttls" (offered, not required) or "ssl" (TLS from the first byte).
    tls: str | None = None
    #: When given, AUTH PLAIN/LOGIN is offered (after TLS) and checked against these.
    users: dict[str, str] | None = None
    #: Usernames that logged in successfully, in order.
    logins: list[str] = field(default_factory=list)

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
            options: dict = {}
            if self.tls is not None:
                cert, key = self_signed_certificate()
                server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                server_context.load_cert_chain(cert, key)
                if self.tls == "ssl":
                    options["ssl_context"] = server_context
                else:
                    options["tls_context"] = server_context
            if self.users is not None:
                options["authenticator"] = self._authenticate
                options["auth_require_tls"] = self.tls == "starttls"
            controller = _SinkController(self, hostname=self.host, port=self.port,
                                         ready_timeout=10.0, **options)
            controller.start()  # its start-up probe never greets, so it is not counted
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection: the relay is down."""
        if self._controller is not None:
            self.drop_connections()
            controller, self._controller = self._controller, None
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
                for transport in (session.transport, session._original_transport):
                    if transport is not None:
                        transport.close()
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

    def accept_recipient(self, address: str) -> None:
        """Take mail for ``address`` again (undoes ``reject_recipient``)."""
        with self._lock:
            self._rejected_rcpts.pop(address.lower(), None)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this sink's certificate (and verifies it)."""
        context = ssl.create_default_context(cafile=str(self_signed_certificate()[0]))
        return context

    def clear(self) -> None:
        """Forget collected messages, counters, pending failures and rejected recipients."""
        with self._lock:
            self.messages.clear()
            self._failures.clear()
            self._rejected_rcpts.clear()
            self.connections = 0
            self.data_commands = 0
            self.logins.clear()

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
        self._greeted(server)
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str) -> str:
        self._greeted(server)
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

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: object) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.users is not None:
            login = auth_data.login.decode("utf-8", "replace")
            if self.users.get(login) == auth_data.password.decode("utf-8", "replace"):
                with self._lock:
                    self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # --- bookkeeping ------------------------------------------------------------------------

    def _greeted(self, server: SMTP) -> None:
        # Once per connection, however often it says EHLO (again after STARTTLS, after RSET...).
        if not getattr(server, "_sink_counted", False):
            server._sink_counted = True  # type: ignore[attr-defined]
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
