"""SMTP/LMTP intake: the site's MTA hands us mail, and we answer 250 only after it is committed.

An aiosmtpd server (SMTP or LMTP) passes each message's bytes, untouched, to the sink (the
intake pipeline) in a worker thread. The sink commits before it returns; if it cannot, or
anything at all goes wrong, the MTA gets 451 and keeps the message to try again. A message the
pipeline could not process is quarantined (kept), so it is answered 250 too: retrying would
not help. Any recipient is accepted: the MTA decides what reaches us.

Lines of any length are taken (aiosmtpd's RFC 5321 limit of 1,000 octets would bounce mail
that is only a little unusual); only the message size is limited: 552 beyond it. Over LMTP
every reply to a message, errors included, is given once per recipient (RFC 2033).
Stopping closes the listener, refuses new transactions (421) and waits, within a bound, for
the messages in hand to be committed and answered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import socket
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from mailticket.config import SmtpIntake
from mailticket.errors import TemporaryFailure
from mailticket.intake.items import Outcome, RawMail, Result

log = logging.getLogger(__name__)

# Reply codes (RFC 5321 / RFC 3463 enhanced codes).
OK = "250 OK"
OK_QUEUED = "250 OK: queued as ticket {ticket}"
OK_KEPT = "250 OK: kept for review"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"
TOO_BIG = "552 5.3.4 Message too big"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# How long stop() waits by default for the messages in hand (received, being committed).
STOP_TIMEOUT = 30.0


class Sink(Protocol):
    """Where the server hands messages: the intake pipeline."""

    def process_batch(self, items: list[RawMail]) -> list[Result]:
        """Record the items and commit before returning; raise TemporaryFailure when the
        commit did not happen. Blocking."""
        ...


def reply_for(result: Result) -> str:
    """The status line for a message the sink has committed."""
    if result.outcome is Outcome.QUARANTINED:
        return OK_KEPT
    if result.outcome in (Outcome.RECORDED, Outcome.DUPLICATE):
        return OK_QUEUED.format(ticket=result.ticket) if result.ticket is not None else OK
    raise ValueError(f"unknown outcome {result.outcome!r}")


class _Handler:
    """The aiosmtpd handler: only the DATA hook; everything else is aiosmtpd's default. Also
    the state shared by the server's connections: whether it is stopping, and how many
    messages are in hand. Both are only touched in the event loop's thread."""

    def __init__(self, source: str, sink: Sink):
        self.source = source
        self.sink = sink
        self.closing = False   # stop() has begun: no new transactions
        self.in_flight = 0     # DATA commands not answered yet

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # One status; over LMTP the protocol repeats it for every recipient.
        return await self._process(session, envelope)

    async def _process(self, session: Session, envelope: Envelope) -> str:
        key = "?"
        try:
            raw = envelope.original_content
            if raw is None:  # pragma: no cover - aiosmtpd always sets it after DATA
                raw = envelope.content if isinstance(envelope.content, bytes) else b""
            key = hashlib.sha256(raw).hexdigest()
            item = RawMail(source=self.source, key=key,
                           raw=with_return_path(bytes(raw), envelope.mail_from))
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(None, self.sink.process_batch, [item])
            if len(results) != 1:
                raise RuntimeError(f"the sink returned {len(results)} results for 1 message")
            status = reply_for(results[0])
        except TemporaryFailure as exc:
            log.warning("%s: message from %s (key %.12s) not recorded, answered 451: %s",
                        self.source, session.peer, key, exc)
            return TEMPORARY_FAILURE
        except Exception:
            log.exception("%s: message from %s (key %.12s) not recorded, answered 451",
                          self.source, session.peer, key)
            return TEMPORARY_FAILURE
        log.info("%s: message from <%s> for %s (%d bytes, key %.12s): %s", self.source,
                 envelope.mail_from, ", ".join(envelope.rcpt_tos), len(raw), key, status)
        return status


def with_return_path(raw: bytes, mail_from: str | None) -> bytes:
    """Record the envelope sender as the final delivery agent would (RFC 5321 4.4): the rules
    for the null reverse-path (bounces, auto-replies) read the Return-Path header."""
    if mail_from is None or raw[:12].lower() == b"return-path:":
        return raw
    address = mail_from.strip().strip("<>")
    if any(c in address for c in "\r\n<>"):
        return raw
    return b"Return-Path: <" + address.encode("utf-8", "replace") + b">\r\n" + raw


def _same_help(method: Any) -> Any:
    """aiosmtpd's HELP text of an smtp_* method, for the override of it."""
    return syntax(method.__smtp_syntax__, method.__smtp_syntax_extended__,
                  method.__smtp_syntax_when__)


class _IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with: lines as long as the message may be; 421 to new transactions
    while stopping; DATA counted in flight until answered; and the reply after the data of a
    message given once per recipient when ``per_recipient`` (LMTP)."""

    per_recipient = False
    event_handler: _Handler

    def __init__(self, handler: _Handler, *, line_length_limit: int, **kwargs: Any):
        # Read by SMTP.__init__ for its StreamReader: the longest line taken, in DATA and in
        # commands (which are still held to their own 512-byte limits).
        self.line_length_limit = line_length_limit
        self._in_data = False
        self._replies_due = 0
        super().__init__(handler, **kwargs)

    async def _refuse_if_closing(self) -> bool:
        if not self.event_handler.closing:
            return False
        await self.push(SHUTTING_DOWN)
        if self.transport is not None:
            self.transport.close()
        return True

    @_same_help(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._refuse_if_closing():
            return
        await super().smtp_MAIL(arg)

    @_same_help(SMTP.smtp_DATA)
    async def smtp_DATA(self, arg: str) -> None:
        if await self._refuse_if_closing():
            return
        self.event_handler.in_flight += 1
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False
            self._replies_due = 0
            self.event_handler.in_flight -= 1

    async def push(self, status: str | bytes) -> None:
        # In DATA, the one push after "354" is the reply to the message: the handler's, or
        # aiosmtpd's own 552 (over data_size_limit) or 500 (a line over line_length_limit,
        # which is longer than the message may be, so that message is too big as well).
        copies, self._replies_due = self._replies_due, 0
        if copies and isinstance(status, str):
            if status.startswith("500 Line too long") or (
                    self.per_recipient and status.startswith("552 ")):
                status = TOO_BIG
            if self.per_recipient:
                status = "\r\n".join([status] * copies)
        await super().push(status)
        if self._in_data and isinstance(status, str) and status.startswith("354"):
            assert self.envelope is not None
            self._replies_due = max(len(self.envelope.rcpt_tos), 1)


class _IntakeLMTP(_IntakeSMTP, LMTP):
    # RFC 2033: one reply per accepted recipient after the final dot. The message is
    # processed once, so every recipient gets the same answer.
    per_recipient = True


class _IntakeController(Controller):
    def __init__(self, handler: _Handler, *, lmtp: bool, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.protocol_class = _IntakeLMTP if lmtp else _IntakeSMTP

    def factory(self) -> SMTP:
        return self.protocol_class(self.handler, **self.SMTP_kwargs)


async def _drain(controller: Controller, handler: _Handler, timeout: float) -> int:
    """In the server's loop: stop listening and starting transactions, then wait up to
    ``timeout`` seconds for the DATA commands in flight to be answered. Returns how many
    are still in flight."""
    handler.closing = True
    if controller.server is not None:
        controller.server.close()   # the listening socket only; connections stay open
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while handler.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return handler.in_flight


class SmtpIntakeServer:
    """Listens on ``settings.host:settings.port`` (SMTP or LMTP) in a thread of its own."""

    def __init__(self, settings: SmtpIntake, sink: Sink, max_message_bytes: int):
        self.settings = settings
        self.sink = sink
        self.max_message_bytes = max_message_bytes
        self._controller: Controller | None = None

    @property
    def label(self) -> str:
        return self.settings.label

    def start(self) -> None:
        if self._controller is not None:
            return
        _check_can_listen(self.settings.host, self.settings.port)
        controller = _IntakeController(
            _Handler(self.settings.label, self.sink),
            lmtp=self.settings.protocol == "lmtp",
            hostname=self.settings.host,
            port=self.settings.port,
            data_size_limit=self.max_message_bytes,  # 552 beyond it (and SIZE advertised)
            # Any line the message may hold (+ a transparent dot and CRLF): a longer line
            # makes the message too big anyway.
            line_length_limit=self.max_message_bytes + 3,
            decode_data=False,                        # we want the bytes as sent
        )
        controller.start()
        self._controller = controller
        log.info("%s: listening", self.label)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop listening, answer 421 to new transactions, and wait up to ``timeout`` seconds
        for the messages in hand to be committed and answered; then close the connections.
        A message still in hand after that may yet commit; its sender, cut off before the
        250, sends it again and it is recognised as a duplicate."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        handler = controller.handler
        left = 0
        try:
            future = asyncio.run_coroutine_threadsafe(
                _drain(controller, handler, timeout), controller.loop)
            left = future.result(timeout + 5)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.warning("%s: could not wait for the messages in hand: %r", self.label, exc)
        if left:
            log.warning("%s: %d message(s) still in hand after %g s, cut off", self.label,
                        left, timeout)
        controller.stop()
        log.info("%s: stopped", self.label)


def _check_can_listen(host: str, port: int) -> None:
    """Fail at once, in one line, when the address is taken (aiosmtpd would wait for its
    ready timeout and then raise from its thread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"intake.smtp.listen: cannot listen on {host}:{port}: "
                                     f"{exc.strerror}") from None
