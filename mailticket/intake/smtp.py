"""SMTP/LMTP intake: the site's MTA hands us mail, and we answer 250 only after it is committed.

An aiosmtpd server (SMTP or LMTP) passes each message's bytes, untouched, to the sink (the
intake pipeline) in a worker thread. The sink commits before it returns; if it cannot, or
anything at all goes wrong, the MTA gets 451 and keeps the message to try again. A message the
pipeline could not process is quarantined (kept), so it is answered 250 too: retrying would
not help. Any recipient is accepted: the MTA decides what reaches us.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailticket.config import SmtpIntake
from mailticket.errors import TemporaryFailure
from mailticket.intake.items import Outcome, RawMail, Result

log = logging.getLogger(__name__)

# Reply codes (RFC 5321 / RFC 3463 enhanced codes).
OK = "250 OK"
OK_QUEUED = "250 OK: queued as ticket {ticket}"
OK_KEPT = "250 OK: kept for review"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please retry"


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
    """The aiosmtpd handler: only the DATA hook; everything else is aiosmtpd's default."""

    def __init__(self, source: str, sink: Sink, lmtp: bool):
        self.source = source
        self.sink = sink
        self.lmtp = lmtp

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        status = await self._process(session, envelope)
        if self.lmtp:
            # RFC 2033: one reply per accepted recipient, after the final dot. The message is
            # processed once, so every recipient gets the same answer.
            return "\r\n".join([status] * max(len(envelope.rcpt_tos), 1))
        return status

    async def _process(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:  # pragma: no cover - aiosmtpd always sets it after DATA
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        key = hashlib.sha256(raw).hexdigest()
        item = RawMail(source=self.source, key=key, raw=with_return_path(bytes(raw),
                                                                        envelope.mail_from))
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(None, self.sink.process_batch, [item])
            if len(results) != 1:
                raise RuntimeError(f"the sink returned {len(results)} results for 1 message")
            status = reply_for(results[0])
        except TemporaryFailure as exc:
            log.warning("%s: message from %s (key %.12s) not recorded, answered 451: %s",
                        self.source, session.peer, item.key, exc)
            return TEMPORARY_FAILURE
        except Exception:
            log.exception("%s: message from %s (key %.12s) not recorded, answered 451",
                          self.source, session.peer, item.key)
            return TEMPORARY_FAILURE
        log.info("%s: message from <%s> for %s (%d bytes, key %.12s): %s", self.source,
                 envelope.mail_from, ", ".join(envelope.rcpt_tos), len(raw), item.key, status)
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


class _LmtpController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


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
        lmtp = self.settings.protocol == "lmtp"
        controller_class = _LmtpController if lmtp else Controller
        controller = controller_class(
            _Handler(self.settings.label, self.sink, lmtp),
            hostname=self.settings.host,
            port=self.settings.port,
            data_size_limit=self.max_message_bytes,  # aiosmtpd answers 552 beyond it
            decode_data=False,                        # we want the bytes as sent
        )
        controller.start()
        self._controller = controller
        log.info("%s: listening", self.label)

    def stop(self) -> None:
        """Stop listening. A message being processed right now may still commit; its sender,
        cut off before the 250, sends it again and it is recognised as a duplicate."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            log.info("%s: stopped", self.label)
