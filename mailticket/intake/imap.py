"""The IMAP source: hands each new message of one mailbox to the pipeline, then moves it aside.

A message leaves the intake folder only after ``Sink.process_batch`` has returned, that is after the
transaction recording it (and the cursor) has committed. Messages are keyed ``UIDVALIDITY/UID``.
After a crash between the commit and the move, the messages still in the folder at or below the
cursor are moved on the next connect, by the outcome the pipeline recorded for them, without being
handed over again. IMAP is spoken through IMAPClient with UIDs only (RFC 3501); MOVE (RFC 6851),
UIDPLUS (RFC 4315) and IDLE (RFC 2177) are used when the server has them, with fallbacks when not.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError, ProtocolError

from mailticket.config import ImapMailbox
from mailticket.errors import TemporaryFailure
from mailticket.intake.items import Cursor, Outcome, RawMail, Result

log = logging.getLogger(__name__)

DELETED = b"\\Deleted"
IDLE_SLICE = 1.0  # seconds between looks at the stop event while idling
BATCH_BYTES = 64 * 1024 * 1024  # most message bytes fetched and held at once
HEADER_FETCH_LIMIT = 256 * 1024  # of a message too big to download, this much of its header
_BYTES_REPR = re.compile(r"b(['\"])(.*)\1")


class Sink(Protocol):
    """What the source needs from the pipeline."""

    def load_cursor(self, source: str) -> Cursor | None: ...

    def process_batch(self, items: list[RawMail], cursor: Cursor | None = None) -> list[Result]:
        """Records every item (one transaction, a savepoint each) and the cursor, commits, then
        returns one Result per item in order. Raises TemporaryFailure when nothing could be
        committed."""
        ...

    def outcomes_of(self, source: str, keys: list[str]) -> dict[str, Outcome]:
        """Outcomes already recorded for these keys (for messages committed but not yet moved)."""
        ...


ErrorHandler = Callable[[Exception], None]


# --- small functions over IMAPClient ------------------------------------------------------------

def connect(mailbox: ImapMailbox) -> IMAPClient:
    """A logged-in client; TLS as ``mailbox.security`` says (never falls back to plain text)."""
    context = ssl.create_default_context()
    if mailbox.security == "ssl":
        client = IMAPClient(mailbox.host, mailbox.port, ssl=True, ssl_context=context,
                            timeout=mailbox.timeout)
    else:
        client = IMAPClient(mailbox.host, mailbox.port, ssl=False, timeout=mailbox.timeout)
    try:
        if mailbox.security == "starttls":
            client.starttls(context)  # raises CapabilityError when the server lacks STARTTLS
        client.login(mailbox.username, mailbox.password.value)
    except BaseException:
        close(client)
        raise
    return client


def close(client: IMAPClient) -> None:
    """Drop the connection without a word to the server (it may already be gone)."""
    try:
        client.shutdown()
    except Exception:
        pass


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """CREATE ``folder`` unless it exists (another client may create it at the same moment)."""
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):
            raise


def message_key(uidvalidity: int, uid: int) -> str:
    return f"{uidvalidity}/{uid}"


def uids_after(client: IMAPClient, last_uid: int) -> list[int]:
    """UIDs above ``last_uid``, ascending. ``n:*`` also matches the highest UID when it is below
    n (RFC 3501 6.4.8), hence the filter."""
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def uids_up_to(client: IMAPClient, last_uid: int, *criteria: str) -> list[int]:
    """UIDs at or below ``last_uid`` matching ``criteria``, ascending."""
    if last_uid < 1:
        return []
    return sorted(uid for uid in client.search(["UID", f"1:{last_uid}", *criteria])
                  if uid <= last_uid)


def fetch_sizes(client: IMAPClient, uids: Sequence[int]) -> dict[int, int]:
    """RFC822.SIZE of each message: known before a byte of it is downloaded."""
    data = client.fetch(list(uids), ["RFC822.SIZE"])
    return {uid: int(item[b"RFC822.SIZE"]) for uid, item in data.items()
            if item.get(b"RFC822.SIZE") is not None}


def fetch_headers(client: IMAPClient, uids: Sequence[int]) -> dict[int, bytes]:
    """The header of each message (at most HEADER_FETCH_LIMIT bytes of it), without \\Seen."""
    data = client.fetch(list(uids), [f"BODY.PEEK[HEADER]<0.{HEADER_FETCH_LIMIT}>"])
    found = {}
    for uid, item in data.items():
        value = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER]")), None)
        if value is not None:
            found[uid] = bytes(value)
    return found


def fetch_raw(client: IMAPClient, uids: Sequence[int]) -> dict[int, bytes]:
    """The bytes of each message, in one UID FETCH, without setting \\Seen. Messages expunged
    meanwhile by another client are simply absent."""
    data = client.fetch(list(uids), ["BODY.PEEK[]"])
    wanted = set(uids)
    return {uid: bytes(item[b"BODY[]"]) for uid, item in data.items()
            if uid in wanted and item.get(b"BODY[]") is not None}


def expunge(client: IMAPClient, uids: Sequence[int]) -> None:
    """Expunge these \\Deleted messages: UID EXPUNGE with UIDPLUS, else a plain EXPUNGE (which
    also removes anything else flagged \\Deleted in the folder)."""
    if not uids:
        return
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(list(uids))
    else:
        client.expunge()


def move(client: IMAPClient, targets: dict[str, list[int]]) -> None:
    """Move messages of the selected folder into other folders: one UID MOVE per folder, or
    COPY + STORE +FLAGS \\Deleted per folder and one expunge when the server lacks MOVE."""
    targets = {folder: uids for folder, uids in targets.items() if uids}
    if not targets:
        return
    if client.has_capability("MOVE"):
        for folder, uids in targets.items():
            client.move(uids, folder)
        return
    copied: list[int] = []
    for folder, uids in targets.items():
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED], silent=True)
        copied += uids
    expunge(client, copied)


# Leave IDLE and search at least this often, a safety net: mail announced where we cannot see
# it (see _take_announcements) would otherwise wait for the next arrival or the IDLE renewal.
IDLE_RECHECK = 10.0


def _take_announcements(client: IMAPClient) -> bool:
    """Whether the server announced new messages (untagged EXISTS/RECENT) in responses that
    IMAPClient did not hand back to us, such as those of a SEARCH; forgets them.

    Dovecot syncs the mailbox at the end of a command: a message that lands while we SEARCH is
    announced after the search result, and IDLE then has nothing new to say about it.
    """
    untagged = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(untagged, dict):
        return False
    found = bool(untagged.pop("EXISTS", None)) | bool(untagged.pop("RECENT", None))
    return found


def wait_idle(client: IMAPClient, stop: threading.Event, renew: float,
              slice_seconds: float = IDLE_SLICE) -> bool:
    """IDLE until the mailbox changes, ``renew`` seconds pass or ``stop`` is set; True when the
    server announced a change."""
    announced = False
    client.idle()
    deadline = time.monotonic() + renew
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = min(slice_seconds, remaining)
        started = time.monotonic()
        responses = client.idle_check(timeout=timeout)
        if any(not _is_keepalive(r) for r in responses):
            announced = True
            break
        if not responses and time.monotonic() - started < timeout / 2:
            # Readable yet nothing parsed: most likely the server hung up (idle_check swallows
            # EOF). Leave IDLE; idle_done() raises if the connection is gone.
            break
    client.idle_done()
    return announced


def _is_keepalive(response: object) -> bool:
    return isinstance(response, tuple) and len(response) > 0 and response[0] == b"OK"


def backoff_delay(attempt: int, base: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with jitter: half to all of min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return ceiling / 2 + rand() * ceiling / 2


def describe(exc: BaseException) -> str:
    """One line about an error, safe to log: no password, no message content."""
    if isinstance(exc, ProtocolError):
        return "ProtocolError (unparsable server response)"  # its text may quote mail content
    text = " ".join(str(exc).split())
    quoted = _BYTES_REPR.fullmatch(text)  # imapclient passes server replies on as "b'...'"
    if quoted:
        text = quoted.group(2)
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def by_bytes(uids: Sequence[int], sizes: dict[int, int], budget: int) -> Iterator[list[int]]:
    """``uids`` in runs whose messages add up to at most ``budget`` bytes (a bigger message
    goes alone), so a batch of large mails never sits in memory all at once."""
    run: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if run and total + size > budget:
            yield run
            run, total = [], 0
        run.append(uid)
        total += size
    if run:
        yield run


def batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


# --- the source ---------------------------------------------------------------------------------

class ImapSource:
    """Reads one mailbox until stopped; survives server outages, bad passwords and sink failures."""

    def __init__(self, mailbox: ImapMailbox, sink: Sink, *, on_error: ErrorHandler | None = None,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0,
                 idle_slice: float = IDLE_SLICE, max_message_bytes: int = 0):
        self.mailbox = mailbox
        self.max_message_bytes = max_message_bytes  # 0: no limit
        self._sizes: dict[int, int] = {}
        self.sink = sink
        self.on_error = on_error
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.idle_slice = idle_slice
        self.label = mailbox.label
        self._failures = 0  # consecutive failed sessions, for the backoff

    def run(self, stop: threading.Event) -> None:
        """Take mail in until ``stop`` is set; reconnect after any failure."""
        log.info("%s: starting", self.label)
        while not stop.is_set():
            try:
                self._session(stop)
                break
            except Exception as exc:  # never let the daemon's intake thread die
                delay = backoff_delay(self._failures, self.backoff_base, self.backoff_cap)
                self._failures += 1
                self._log_failure(exc, delay)
                self._report(exc)
                if stop.wait(delay):
                    break
        log.info("%s: stopped", self.label)

    def _log_failure(self, exc: Exception, delay: float) -> None:
        if isinstance(exc, LoginError) and "[UNAVAILABLE]" in str(exc):  # RFC 5530: server-side
            log.warning("%s: the server cannot log us in right now (%s); retrying in %.1fs",
                        self.label, describe(exc), delay)
        elif isinstance(exc, LoginError):
            log.error("%s: login failed (%s); check the username and password; "
                      "retrying in %.1fs", self.label, describe(exc), delay)
        elif isinstance(exc, (OSError, IMAPClientError, TemporaryFailure)):
            log.warning("%s: %s; reconnecting in %.1fs", self.label, describe(exc), delay)
        else:
            log.error("%s: unexpected %s; reconnecting in %.1fs", self.label, describe(exc),
                      delay, exc_info=exc)

    def _report(self, exc: Exception) -> None:
        if self.on_error is None:
            return
        try:
            self.on_error(exc)
        except Exception:
            log.exception("%s: the on_error callback failed", self.label)

    def _session(self, stop: threading.Event) -> None:
        """One connection: catch up, then wait for mail and take it, until stop or an error."""
        box = self.mailbox
        client = connect(box)
        try:
            ensure_folder(client, box.processed_folder)
            ensure_folder(client, box.quarantine_folder)
            uidvalidity = int(client.select_folder(box.folder)[b"UIDVALIDITY"])
            last_uid = self._start_uid(uidvalidity)
            unknown = self._recover(client, uidvalidity, last_uid)
            last_uid = self._take_new(client, uidvalidity, last_uid, stop, unknown)
            self._failures = 0  # a full pass worked: the next failure starts the backoff anew
            use_idle = box.idle and client.has_capability("IDLE")
            if box.idle and not use_idle:
                log.info("%s: the server has no IDLE; polling every %gs", self.label,
                         box.poll_interval)
            while not stop.is_set():
                announced = True
                if use_idle:
                    announced = wait_idle(client, stop, min(box.idle_renew, IDLE_RECHECK),
                                          self.idle_slice)
                elif stop.wait(box.poll_interval):
                    break
                if stop.is_set():
                    break
                before = last_uid
                last_uid = self._take_new(client, uidvalidity, last_uid, stop)
                if not announced and last_uid != before:
                    log.warning("%s: IDLE did not announce new mail; the periodic re-check "
                                "found it (up to %gs late)", self.label, IDLE_RECHECK)
        except BaseException:
            close(client)
            raise
        try:
            client.logout()
        except Exception:
            close(client)

    def _start_uid(self, uidvalidity: int) -> int:
        cursor = self.sink.load_cursor(self.label)
        if cursor is None:
            return 0
        if cursor.uidvalidity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed from %d to %d; reading the folder from the start "
                        "(messages seen before are recognised by Message-ID)", self.label,
                        cursor.uidvalidity, uidvalidity)
            return 0
        return cursor.last_uid

    def _recover(self, client: IMAPClient, uidvalidity: int, last_uid: int) -> list[int]:
        """Move messages committed before the last disconnect but still here; return the UIDs of
        those the pipeline does not know (to be handed over as new)."""
        stranded = uids_up_to(client, last_uid)
        if not stranded:
            return []
        # Without MOVE, a crash between COPY + \Deleted and EXPUNGE leaves copied messages
        # flagged: expunge them rather than copy them twice. (With MOVE we never flag anything.)
        flagged = (set() if client.has_capability("MOVE")
                   else set(uids_up_to(client, last_uid, "DELETED")))
        unknown: list[int] = []
        for chunk in batches(stranded, self.mailbox.batch_size):
            keys = {message_key(uidvalidity, uid): uid for uid in chunk}
            outcomes = self.sink.outcomes_of(self.label, list(keys))
            targets: dict[str, list[int]] = {}
            copied: list[int] = []
            for key, uid in keys.items():
                outcome = outcomes.get(key)
                if outcome is None:
                    unknown.append(uid)
                elif uid in flagged:
                    copied.append(uid)
                else:
                    targets.setdefault(self._folder_for(outcome), []).append(uid)
            move(client, targets)
            expunge(client, copied)
        log.info("%s: %d message(s) recorded before the last disconnect moved aside; "
                 "%d unknown ones will be read again", self.label, len(stranded) - len(unknown),
                 len(unknown))
        return unknown

    def _take_new(self, client: IMAPClient, uidvalidity: int, last_uid: int,
                  stop: threading.Event, pending: Iterable[int] = ()) -> int:
        """Hand over every message above ``last_uid`` (and ``pending``), batch by batch; move each
        batch after it was committed. Returns the new last UID.

        Searches again until a search finds nothing: a message that arrived while we worked may
        have been announced in the untagged responses of our own commands (FETCH, MOVE), which
        IMAPClient does not keep, and IDLE would then never announce it again.
        """
        while not stop.is_set():
            client.noop()  # lets the server announce new messages before we search
            _take_announcements(client)
            uids = sorted(set(pending) | set(uids_after(client, last_uid)))
            pending = ()
            if not uids:
                if _take_announcements(client):
                    continue  # announced during the SEARCH, after its result: look again
                break
            for chunk in self._chunks(client, uids):
                items, keys = self._fetch(client, uidvalidity, chunk)
                if keys:
                    cursor = Cursor(self.label, uidvalidity, max(last_uid, chunk[-1]))
                    results = self.sink.process_batch(items, cursor)
                    self._move_results(client, keys, results)
                last_uid = max(last_uid, chunk[-1])
                if stop.is_set():
                    break
        return last_uid

    def _chunks(self, client: IMAPClient, uids: Sequence[int]) -> Iterator[list[int]]:
        """Batches of at most batch_size messages and BATCH_BYTES bytes (sizes asked first)."""
        for chunk in batches(uids, self.mailbox.batch_size):
            self._sizes = fetch_sizes(client, chunk)
            yield from by_bytes(chunk, self._sizes, BATCH_BYTES)

    def _fetch(self, client: IMAPClient, uidvalidity: int,
               chunk: Sequence[int]) -> tuple[list[RawMail], dict[str, int]]:
        """The messages of ``chunk``; one over max_message_bytes is not downloaded: only its
        header is, and the pipeline makes its ticket from that (the original is moved to the
        quarantine folder)."""
        limit = self.max_message_bytes
        big = [uid for uid in chunk if limit and self._sizes.get(uid, 0) > limit]
        raw = fetch_raw(client, [uid for uid in chunk if uid not in big]) if len(big) < len(
            chunk) else {}
        headers = fetch_headers(client, big) if big else {}
        items, keys = [], {}
        for uid in chunk:
            key = message_key(uidvalidity, uid)
            if uid in raw:
                items.append(RawMail(self.label, key, raw[uid]))
            elif uid in headers:
                log.warning("%s: UID %d is %d bytes, over limits.max_message_size: taking its "
                            "header only", self.label, uid, self._sizes[uid])
                items.append(RawMail(self.label, key, headers[uid], oversized=self._sizes[uid]))
            else:
                continue  # expunged meanwhile by another client
            keys[key] = uid
        return items, keys

    def _move_results(self, client: IMAPClient, keys: dict[str, int],
                      results: list[Result]) -> None:
        """Move each message where its outcome says; ``keys`` maps key -> UID."""
        unanswered = dict(keys)
        targets: dict[str, list[int]] = {}
        for result in results:
            uid = unanswered.pop(result.key, None)
            if uid is None:
                log.warning("%s: the pipeline returned a result for unknown key %s",
                            self.label, result.key)
                continue
            targets.setdefault(self._folder_for(result.outcome), []).append(uid)
        move(client, targets)
        counts = ", ".join(f"{len(uids)} to {folder}" for folder, uids in targets.items())
        log.info("%s: %d message(s) taken in (%s)", self.label, len(keys) - len(unanswered),
                 counts)
        if unanswered:
            # Left in the folder below the cursor: the next connect asks outcomes_of for them.
            log.warning("%s: no result for %d message(s); left in %s", self.label,
                        len(unanswered), self.mailbox.folder)

    def _folder_for(self, outcome: Outcome) -> str:
        if outcome is Outcome.QUARANTINED:
            return self.mailbox.quarantine_folder
        return self.mailbox.processed_folder
