"""The only code that speaks SMTP outward: one persistent relay connection, or a Maildir.

A transport takes an envelope and the rendered bytes and either delivers them or raises
``TemporaryFailure`` (try again later: 4xx, relay down, connection lost) or ``PermanentFailure``
(a 5xx: it will never work as asked). The bytes are handed over untouched (``sendmail`` with
bytes), so nothing is re-encoded on the way out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import socket
import ssl
import threading
from pathlib import Path
from typing import Protocol

from mailticket.config import Outgoing, OutgoingSmtp
from mailticket.errors import ConfigError, PermanentFailure, TemporaryFailure, describe

log = logging.getLogger(__name__)

#: Recipients the relay refused while accepting the message for the others:
#: address -> (reply code, reply text).
Refused = dict[str, tuple[int, str]]


class RelayUnavailable(TemporaryFailure):
    """The relay could not be reached or would not talk to us (refused, timed out, TLS or login
    failed): every message would fail the same way right now, so the caller can stop trying."""


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: list[str], content: bytes) -> Refused: ...

    def close(self) -> None: ...


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        # A server's reply text, shown to admins: lossy decoding is harmless here.
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())


def _failure(code: int, reply: bytes | str, what: str) -> TemporaryFailure | PermanentFailure:
    """4xx -> TemporaryFailure, 5xx -> PermanentFailure, with the server's own words."""
    reason = f"{what}: {code} {_text(reply)}".rstrip()
    if 500 <= code < 600:
        return PermanentFailure(reason)
    return TemporaryFailure(reason)


class SmtpTransport:
    """Delivers through the configured relay over ONE connection, opened on first use and
    reopened when the server has closed it."""

    def __init__(self, settings: OutgoingSmtp, *, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self.settings
        user = f" as {s.username}" if s.username else ""
        return f"SmtpTransport({s.security}://{s.host}:{s.port}{user})"

    # --- connection ---------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"relay {s.host}:{s.port}"
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            self._greet(conn, where)
        except RelayUnavailable:
            _quietly_close(conn)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _quietly_close(conn)
            raise RelayUnavailable(f"{where} refused the login of {s.username!r}: "
                                   f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:
            _quietly_close(conn)
            raise RelayUnavailable(f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timeout, TLS, reset
            _quietly_close(conn)
            raise RelayUnavailable(f"cannot connect to {where}: {_describe(exc)}") from None
        log.debug("connected to %r", self)
        return conn

    def _greet(self, conn: smtplib.SMTP, where: str) -> None:
        """EHLO, STARTTLS when the settings ask for it, and the login if there is one."""
        s = self.settings
        conn.ehlo()
        if s.security == "starttls":
            if not conn.has_extn("starttls"):
                raise RelayUnavailable(f"{where} does not offer STARTTLS "
                                       "(outgoing.smtp.security is starttls)")
            conn.starttls(context=self._context())
            conn.ehlo()
        if s.username:
            password = s.password.value if s.password is not None else ""
            conn.login(s.username, password)

    def close(self) -> None:
        """Say QUIT and drop the connection; the next send opens a new one."""
        with self._lock:
            self._drop(polite=True)

    def _drop(self, polite: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if polite:
            try:
                conn.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        _quietly_close(conn)

    # --- sending ------------------------------------------------------------------------------

    def send(self, envelope_from: str, recipients: list[str], content: bytes) -> Refused:
        """Deliver ``content`` to ``recipients``. Returns the recipients the relay refused while
        accepting the others (empty when all were accepted); raises TemporaryFailure or
        PermanentFailure when the relay took the message for nobody."""
        if not recipients:
            raise PermanentFailure("no recipients")
        with self._lock:
            try:
                return self._send_once(envelope_from, recipients, content)
            except _Stale:
                # The server closed an idle connection (or said 421 on it): one fresh try.
                log.debug("relay connection was closed by the server; reconnecting")
                self._drop()
                try:
                    return self._send_once(envelope_from, recipients, content)
                except _Stale as exc:
                    self._drop()
                    raise TemporaryFailure(str(exc)) from None

    def _send_once(self, envelope_from: str, recipients: list[str], content: bytes) -> Refused:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            options = self._mail_options(conn, envelope_from, recipients, content)
            refused = conn.sendmail(envelope_from, recipients, content, mail_options=options)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            if reused:
                raise _Stale(f"relay closed the connection: {_describe(exc)}") from None
            raise TemporaryFailure(f"relay closed the connection: {_describe(exc)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._all_refused(exc.recipients, reused) from None
        except smtplib.SMTPSenderRefused as exc:
            self._after_reply(exc.smtp_code, reused, exc.smtp_error)
            raise _failure(exc.smtp_code, exc.smtp_error,
                           f"sender <{envelope_from}> refused") from None
        except smtplib.SMTPDataError as exc:
            self._after_reply(exc.smtp_code, reused, exc.smtp_error)
            raise _failure(exc.smtp_code, exc.smtp_error, "message refused") from None
        except smtplib.SMTPResponseException as exc:
            self._after_reply(exc.smtp_code, reused, exc.smtp_error)
            raise _failure(exc.smtp_code, exc.smtp_error, "relay said") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentFailure(f"relay cannot carry this message: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TemporaryFailure(f"delivery to relay failed: {_describe(exc)}") from None
        return {rcpt: (code, _text(reply)) for rcpt, (code, reply) in refused.items()}

    def _after_reply(self, code: int, reused: bool, reply: bytes | str) -> None:
        if code == 421:
            # 421 closes the channel; on a connection that sat idle it usually means "timeout".
            self._drop()
            if reused:
                raise _Stale(f"relay said: 421 {_text(reply)}")

    def _all_refused(self, refused: dict[str, tuple[int, bytes]],
                     reused: bool) -> TemporaryFailure | PermanentFailure:
        codes = [code for code, _ in refused.values()]
        if 421 in codes:
            self._drop()
            if reused:
                raise _Stale("relay said 421 to RCPT")
        reason = "all recipients refused: " + "; ".join(
            f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())
        if all(500 <= code < 600 for code in codes):
            return PermanentFailure(reason)
        return TemporaryFailure(reason)

    @staticmethod
    def _mail_options(conn: smtplib.SMTP, envelope_from: str, recipients: list[str],
                      content: bytes) -> list[str]:
        options = []
        if not content.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not all(a.isascii() for a in (envelope_from, *recipients)):
            if not conn.has_extn("smtputf8"):
                raise PermanentFailure("an address is not ASCII and the relay does not offer "
                                       "SMTPUTF8")
            options.append("SMTPUTF8")
        return options


class _Stale(Exception):
    """A reused connection turned out to be closed: reconnect and try once more."""


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _describe(exc: BaseException) -> str:
    """``errors.describe``, with smtplib's errors unprefixed: their text is the relay's reply
    or smtplib's own sentence ("Connection unexpectedly closed")."""
    return describe(exc, prefix=not isinstance(exc, smtplib.SMTPException))


class MaildirTransport:
    """Writes each message as a file into a Maildir (tmp/, then renamed into new/): for sites
    without a relay, and for looking at what would have been sent. The bytes are written as
    rendered; the envelope is not recorded."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._counter = 0
        self._lock = threading.Lock()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.path)!r})"

    def _name(self, content: bytes) -> tuple[str, str]:
        """Named after the content: a message sent again after a crash (between writing it and
        recording it sent) replaces its first copy instead of making a second one."""
        with self._lock:
            self._counter += 1
            counter = self._counter
        digest = hashlib.sha256(content).hexdigest()[:32]
        return f"{digest}.P{os.getpid()}Q{counter}", f"{digest}.mailticket.{self._host}"

    def send(self, envelope_from: str, recipients: list[str], content: bytes) -> Refused:
        if not recipients:
            raise PermanentFailure("no recipients")
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            tmp_name, name = self._name(content)
            if (self.path / "new" / name).exists() or any((self.path / "cur").glob(name + "*")):
                return {}  # delivered before (a re-send after a crash)
            tmp = self.path / "tmp" / tmp_name
            with open(tmp, "xb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.path / "new" / name)
        except OSError as exc:
            # A full disk or a permission problem may be fixed by the admin: try again later.
            raise TemporaryFailure(f"cannot write to maildir {self.path}: {exc}") from None
        return {}

    def close(self) -> None:
        pass


def make_transport(outgoing: Outgoing) -> SmtpTransport | MaildirTransport:
    """The transport the config asks for: the SMTP relay, or else the Maildir."""
    if outgoing.smtp is not None:
        return SmtpTransport(outgoing.smtp)
    if outgoing.maildir is not None:
        return MaildirTransport(outgoing.maildir)
    raise ConfigError("outgoing: give either smtp (a relay) or maildir (a local folder)")
