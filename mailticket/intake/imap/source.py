"""The IMAP source: hands each new message of one mailbox to the pipeline, then moves it aside.

A message leaves the intake folder only after ``Sink.process_batch`` has returned, that is after the
transaction recording it (and the cursor) has committed. Messages are keyed ``UIDVALIDITY/UID``.
After a crash between the commit and the move, the messages still in the folder at or below the
cursor are moved on the next connect, by the outcome the pipeline recorded for them, without being
handed over again. The IMAP commands are in ``commands``, the waiting for mail in ``idle``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailticket import backoff
from mailticket.config import ImapMailbox
from mailticket.errors import TemporaryFailure
from mailticket.intake.imap.commands import (
    close,
    connect,
    describe,
    ensure_folder,
    expunge,
    fetch_headers,
    fetch_raw,
    fetch_sizes,
    move,
    uids_after,
    uids_up_to,
)
from mailticket.intake.imap.idle import IDLE_RECHECK, IDLE_SLICE, take_announcements, wait_idle
from mailticket.intake.items import Cursor, Outcome, RawMail, Result

# The package's logger, as when the source was one module: logging configs name it.
log = logging.getLogger(__package__)

BATCH_BYTES = 64 * 1024 * 1024  # most message bytes fetched and held at once


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


def message_key(uidvalidity: int, uid: int) -> str:
    return f"{uidvalidity}/{uid}"


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
                delay = backoff.delay(self._failures, self.backoff_base, self.backoff_cap,
                                      rand=random.random)
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
        client = connect(self.mailbox)
        try:
            uidvalidity, last_uid = self._catch_up(client, stop)
            self._failures = 0  # a full pass worked: the next failure starts the backoff anew
            self._follow(client, uidvalidity, last_uid, stop)
        except BaseException:
            close(client)
            raise
        try:
            client.logout()
        except Exception:
            close(client)

    def _catch_up(self, client: IMAPClient, stop: threading.Event) -> tuple[int, int]:
        """Select the folder, move what was committed before, take what is new: (UIDVALIDITY,
        the last UID taken)."""
        box = self.mailbox
        ensure_folder(client, box.processed_folder)
        ensure_folder(client, box.quarantine_folder)
        uidvalidity = int(client.select_folder(box.folder)[b"UIDVALIDITY"])
        last_uid = self._start_uid(uidvalidity)
        unknown = self._recover(client, uidvalidity, last_uid)
        return uidvalidity, self._take_new(client, uidvalidity, last_uid, stop, unknown)

    def _follow(self, client: IMAPClient, uidvalidity: int, last_uid: int,
                stop: threading.Event) -> None:
        """Wait for mail (IDLE, or polling) and take it, until ``stop`` is set."""
        box = self.mailbox
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
            take_announcements(client)
            uids = sorted(set(pending) | set(uids_after(client, last_uid)))
            pending = ()
            if not uids:
                if take_announcements(client):
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
