"""The sender: the one loop that drains the outbox table through a transport.

Rows are claimed with a lease before they are sent, so two senders (two daemons, or the daemon
and a CLI process) never send the same row; a sender that dies mid-send leaves a lease that
expires, and the row is sent again (at least once, never lost). 4xx and a relay outage are
retried with capped exponential backoff; 5xx and too many attempts mark the row ``failed``,
where ``retry()`` can take it back.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

import peewee

from mailticket.config import Outgoing
from mailticket.db import transaction
from mailticket.errors import InvalidRequest, MailticketError, PermanentFailure, TemporaryFailure
from mailticket.models import Outbox, utcnow
from mailticket.transport import RelayUnavailable, Transport

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, HELD = "pending", "sent", "failed", "held"

#: Rows read per query while draining.
CHUNK = 100


class UnknownOutboxRow(MailticketError):
    """An outbox id that does not exist."""

    def __init__(self, outbox_id: int):
        self.outbox_id = outbox_id
        super().__init__(f"no outbox row #{outbox_id}")


class Sender:
    """Delivers due ``pending`` outbox rows, one at a time, in id order."""

    def __init__(self, db: peewee.Database, transport: Transport, outgoing: Outgoing, *,
                 clock: Callable[[], datetime] = utcnow, lease_seconds: float = 120):
        self.db = db
        self.transport = transport
        self.outgoing = outgoing
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)

    # --- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event, wake: threading.Event, idle_seconds: float = 1.0) -> None:
        """Drain, then sleep until ``wake`` is set (mail was queued) or ``idle_seconds`` pass;
        until ``stop`` is set (set ``wake`` too for a prompt stop). Then one last drain of what
        is due, and the transport is closed."""
        try:
            while not stop.is_set():
                wake.clear()
                self._drain_guarded()
                if stop.is_set():
                    break
                wake.wait(idle_seconds)
            self._drain_guarded()
        finally:
            try:
                self.transport.close()
            except Exception:
                log.exception("closing the transport failed")

    def _drain_guarded(self) -> None:
        try:
            self.drain()
        except Exception:
            # The database may be down or locked: nothing was lost, the next pass tries again.
            log.exception("outbox: draining failed; will try again")

    def drain(self, limit: int | None = None) -> int:
        """Deliver the pending rows that are due now (at most ``limit`` attempts); return how
        many were sent. Each row is visited at most once per call."""
        now = self.clock()
        sent = attempted = 0
        last_id = 0
        relay_down: RelayUnavailable | None = None
        while limit is None or attempted < limit:
            size = CHUNK if limit is None else min(CHUNK, limit - attempted)
            ids = [row.id for row in (
                Outbox.select(Outbox.id)
                .where((Outbox.status == PENDING) & (Outbox.next_attempt_at <= now)
                       & (Outbox.id > last_id)
                       & (Outbox.claimed_until.is_null() | (Outbox.claimed_until < now)))
                .order_by(Outbox.id)
                .limit(size))]
            if not ids:
                break
            for outbox_id in ids:
                last_id = outbox_id
                row = self._claim(outbox_id)
                if row is None:
                    continue  # another sender has it, or it is no longer pending
                attempted += 1
                if relay_down is not None:
                    # Every message would fail the same way: defer without knocking again.
                    self._temporary(row, str(relay_down), give_up=False)
                    continue
                delivered, relay_down = self._deliver(row)
                sent += delivered
        return sent

    # --- one row --------------------------------------------------------------------------------

    def _claim(self, outbox_id: int) -> Outbox | None:
        now = self.clock()
        until = now + self.lease
        with transaction(self.db):
            won = (Outbox.update(claimed_until=until)
                   .where((Outbox.id == outbox_id) & (Outbox.status == PENDING)
                          & (Outbox.next_attempt_at <= now)
                          & (Outbox.claimed_until.is_null() | (Outbox.claimed_until < now)))
                   .execute())
            if won != 1:
                return None
            return Outbox.get_by_id(outbox_id)

    def _deliver(self, row: Outbox) -> tuple[bool, RelayUnavailable | None]:
        """Send one claimed row and record the outcome: (sent?, the relay's outage if any)."""
        try:
            refused = self.transport.send(row.envelope_from, list(row.recipients),
                                          bytes(row.content)) or {}
        except PermanentFailure as exc:
            self._failed(row, str(exc))
            return False, None
        except RelayUnavailable as exc:
            self._temporary(row, str(exc), give_up=False)
            return False, exc
        except TemporaryFailure as exc:
            self._temporary(row, str(exc))
            return False, None
        except Exception as exc:
            log.exception("outbox #%d: unexpected error while sending; will retry", row.id)
            self._temporary(row, f"unexpected error: {exc.__class__.__name__}: {exc}")
            return False, None
        self._sent(row, refused)
        return True, None

    def _describe(self, row: Outbox, recipients: list[str] | None = None) -> str:
        to = ", ".join(recipients if recipients is not None else row.recipients)
        ticket = f", ticket {row.ticket_id}" if row.ticket_id is not None else ""
        return f"outbox #{row.id} to {to} ({row.kind}{ticket})"

    def _sent(self, row: Outbox, refused: dict[str, tuple[int, str]]) -> None:
        now = self.clock()
        owed = [r for r, (code, _) in refused.items() if code < 500]
        lost = {r: v for r, v in refused.items() if v[0] >= 500}
        delivered = [r for r in row.recipients if r not in refused]
        log.info("outbox #%d sent to %s (%s%s)", row.id, ", ".join(delivered), row.kind,
                 f", ticket {row.ticket_id}" if row.ticket_id is not None else "")
        note = "; ".join(f"{r}: {code} {text}" for r, (code, text) in refused.items())
        if lost:
            log.warning("outbox #%d: the relay refused %s for good", row.id,
                        "; ".join(f"{r}: {code} {text}" for r, (code, text) in lost.items()))
        if owed:
            # Delivered to some: keep the row pending for the recipients refused with 4xx only.
            log.warning("outbox #%d: will retry for %s (refused for now)", row.id, ", ".join(owed))
            self._temporary(row, f"partly delivered; refused: {note}", recipients=owed)
            return
        self._update(row, status=SENT, sent_at=now, attempts=row.attempts + 1,
                     claimed_until=None, last_error=note or None)

    def _temporary(self, row: Outbox, reason: str, recipients: list[str] | None = None,
                   give_up: bool = True) -> None:
        """Defer the row with backoff. ``give_up=False`` for a relay that cannot be reached at
        all: an outage delays mail however long it lasts, it never fails it; only the relay's
        own 4xx answers count towards ``max_attempts``."""
        attempts = row.attempts + 1
        changes: dict = {"attempts": attempts, "last_error": reason, "claimed_until": None}
        if recipients is not None:
            changes["recipients"] = recipients
        if give_up and attempts >= self.outgoing.max_attempts:
            log.warning("%s failed after %d attempts: %s", self._describe(row, recipients),
                        attempts, reason)
            changes["status"] = FAILED
            changes["last_error"] = f"gave up after {attempts} attempts: {reason}"
        else:
            delay = backoff(attempts, self.outgoing.retry_base, self.outgoing.retry_max)
            changes["next_attempt_at"] = self.clock() + timedelta(seconds=delay)
            log.warning("%s deferred (attempt %d, next in %.0fs): %s",
                        self._describe(row, recipients), attempts, delay, reason)
        self._update(row, **changes)

    def _failed(self, row: Outbox, reason: str) -> None:
        log.warning("%s failed: %s", self._describe(row), reason)
        self._update(row, status=FAILED, attempts=row.attempts + 1, last_error=reason,
                     claimed_until=None)

    def _update(self, row: Outbox, **changes: object) -> None:
        # Only while our lease holds: if it ran out, another sender owns the row now.
        with transaction(self.db):
            done = (Outbox.update(**changes)
                    .where((Outbox.id == row.id) & (Outbox.claimed_until == row.claimed_until))
                    .execute())
        if done != 1:
            log.warning("outbox #%d: lease lost before the outcome was recorded (%s)",
                        row.id, changes.get("status", "pending"))


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: base, 2*base, 4*base... capped."""
    exponent = max(attempts - 1, 0)
    if exponent > 62:
        return cap
    return min(cap, base * 2 ** exponent)


def retry(db: peewee.Database, outbox_id: int) -> None:
    """Put a failed (or held) row back in the queue, due now, with its attempts reset."""
    with transaction(db):
        row = Outbox.get_or_none(Outbox.id == outbox_id)
        if row is None:
            raise UnknownOutboxRow(outbox_id)
        if row.status == SENT:
            raise InvalidRequest(f"outbox #{outbox_id} was already sent at {row.sent_at}")
        now = utcnow()
        if row.status == PENDING:
            # Due now; a claim in progress is left alone so the row is not sent twice.
            Outbox.update(next_attempt_at=now).where(Outbox.id == outbox_id).execute()
        else:
            Outbox.update(status=PENDING, attempts=0, next_attempt_at=now,
                          claimed_until=None).where(Outbox.id == outbox_id).execute()
    log.info("outbox #%d queued again (was %s)", outbox_id, row.status)


def pending_count(db: peewee.Database) -> int:
    """How many rows wait to be sent (due or not)."""
    return Outbox.select().where(Outbox.status == PENDING).count()
