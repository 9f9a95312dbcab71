"""The sender: the one loop that drains the outbox table through a transport.

Rows are claimed with a lease before they are sent, so two senders (two daemons, or the daemon
and a CLI process) never send the same row; a sender that dies mid-send leaves a lease that
expires, and the row is sent again (at least once, never lost). A daemon restarted on the same
host hands back at once the claims of its dead predecessor (``release_dead_claims``), so its
acknowledgements do not wait for the lease. 4xx and a relay outage are retried with capped
exponential backoff; 5xx and too many attempts mark the row ``failed``,
where ``retry()`` can take it back.

Write transactions are what a sender pays for (on SQLite each one waits for the single write
lock, which the intake holds a batch at a time), so they are taken per chunk, not per mail:

* one transaction claims up to ``CHUNK`` due rows in id order (selected and leased under the
  write lock; PostgreSQL skips rows another sender has locked);
* the mail is then sent one by one over the transport's persistent connection;
* outcomes are recorded together, one transaction per ``RECORD_EVERY`` outcomes or
  ``RECORD_SECONDS``, whichever comes first, and at the end of each chunk. Each one still
  applies only while our lease holds (``claimed_until`` equal to the value we claimed with).

The trade-off: delivery is at least once, as before, but the window between the relay's 250
and our record of it is now up to ``RECORD_EVERY`` mails (or ``RECORD_SECONDS``) instead of one
mail: a sender that crashes there sends those again once their lease has expired. A chunk's
lease covers the whole chunk, so a sender stops sending from it when half the lease is used
up, hands the unsent rows back and claims afresh: no send starts on a lease about to run out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee

from mailticket import backoff as backoffmod
from mailticket import db as dbmod
from mailticket.config import Outgoing
from mailticket.errors import (
    InvalidRequest,
    MailticketError,
    PermanentFailure,
    TemporaryFailure,
    describe,
)
from mailticket.models import Outbox, utcnow
from mailticket.processes import process_alive, process_identity
from mailticket.transport import RelayUnavailable, Transport
from mailticket.vocabulary import OutboxStatus

log = logging.getLogger(__name__)

#: Rows claimed per write transaction while draining.
CHUNK = 100
#: Outcomes are recorded (one write transaction) after this many sends...
RECORD_EVERY = 10
#: ...or once the oldest unrecorded outcome is this many seconds old, whichever comes first.
RECORD_SECONDS = 0.1


class UnknownOutboxRow(MailticketError):
    """An outbox id that does not exist."""

    def __init__(self, outbox_id: int):
        self.outbox_id = outbox_id
        super().__init__(f"no outbox row #{outbox_id}")


@dataclass
class _Pass:
    """Where one ``drain`` is: what it did, and what it holds that is not recorded yet."""

    sent: int = 0
    attempted: int = 0
    last_id: int = 0  # the highest id visited: the next claim starts above it
    relay_down: RelayUnavailable | None = None
    claimed: list[Outbox] = field(default_factory=list)  # claimed by us, not visited yet
    outcomes: list[tuple[Outbox, dict]] = field(default_factory=list)  # not recorded yet
    oldest: float = 0.0  # time.monotonic() when the first of the outcomes was decided


class Sender:
    """Delivers due ``pending`` outbox rows, one at a time, in id order.

    ``transaction`` opens the write transactions (``mailticket.db.transaction`` unless told)."""

    def __init__(self, db: peewee.Database, transport: Transport, outgoing: Outgoing, *,
                 clock: Callable[[], datetime] = utcnow, lease_seconds: float = 120,
                 transaction: Callable[[peewee.Database], AbstractContextManager] | None = None):
        self.db = db
        self.transport = transport
        self.outgoing = outgoing
        self.clock = clock
        # One send may take a connect and a DATA, each up to the relay timeout; a send starts
        # only with half the lease left, so the lease is at least four timeouts long.
        relay_timeout = outgoing.smtp.timeout if outgoing.smtp is not None else 0.0
        self.lease = timedelta(seconds=max(lease_seconds, 4 * relay_timeout))
        self.transaction = transaction if transaction is not None else dbmod.transaction
        self.owner = process_identity()

    # --- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event, wake: threading.Event, idle_seconds: float = 1.0) -> None:
        """Drain, then sleep until ``wake`` is set (mail was queued) or ``idle_seconds`` pass;
        until ``stop`` is set (set ``wake`` too for a prompt stop). Then one last drain of what
        is due, and the transport is closed."""
        try:
            try:
                self.release_dead_claims()
            except Exception:
                log.exception("outbox: could not release the claims of a dead sender; they "
                              "are sent once their lease has run out")
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
        except (TemporaryFailure, peewee.OperationalError, peewee.InterfaceError) as exc:
            # The database is down or locked: an outage, not a bug. Nothing was lost, the next
            # pass tries again.
            log.warning("outbox: database unavailable (%s); will try again",
                        describe(exc, prefix=False))
        except Exception:
            log.exception("outbox: draining failed; will try again")

    def drain(self, limit: int | None = None) -> int:
        """Deliver the pending rows that are due now (at most ``limit`` attempts); return how
        many were sent. Each row is visited at most once per call.

        Rows are claimed a chunk at a time and their outcomes recorded in bulk (see the module
        docstring for the crash window this opens)."""
        state = _Pass()
        try:
            while limit is None or state.attempted < limit:
                size = CHUNK if limit is None else min(CHUNK, limit - state.attempted)
                chunk, lease_until = self._claim(state.last_id, size)
                if not chunk:
                    break
                # Past this, a send could outlive the lease: hand the rest back, claim afresh.
                self._send_chunk(state, chunk, send_by=lease_until - self.lease / 2)
                self._record(state.outcomes, release=state.claimed)
                state.outcomes, state.claimed = [], []
        finally:
            if state.outcomes or state.claimed:
                # Something failed half-way (the database, most likely): record what was sent
                # if at all possible, so that it is not sent again when the leases run out.
                try:
                    self._record(state.outcomes, release=state.claimed)
                except Exception:
                    log.exception("outbox: could not record %d outcome(s); those rows will be "
                                  "sent again once their lease has run out", len(state.outcomes))
        return state.sent

    def _send_chunk(self, state: _Pass, chunk: list[Outbox], send_by: datetime) -> None:
        """Visit the rows of ``chunk`` in id order until done or ``send_by``; the rows not
        visited stay in ``state.claimed``."""
        state.claimed = list(reversed(chunk))  # popped from the end: lowest id first
        while state.claimed:
            if (state.relay_down is None and len(state.claimed) < len(chunk)
                    and self.clock() >= send_by):
                break
            row = state.claimed.pop()
            state.last_id = row.id
            state.attempted += 1
            if state.relay_down is not None:
                # Every message would fail the same way: defer without knocking again.
                changes = self._temporary(row, str(state.relay_down), give_up=False)
            else:
                delivered, state.relay_down, changes = self._deliver(row)
                state.sent += delivered
            if not state.outcomes:
                state.oldest = time.monotonic()
            state.outcomes.append((row, changes))
            if (len(state.outcomes) >= RECORD_EVERY
                    or time.monotonic() - state.oldest >= RECORD_SECONDS):
                self._record(state.outcomes)
                state.outcomes = []

    # --- claiming and recording ------------------------------------------------------------------

    def release_dead_claims(self) -> int:
        """Hand back rows claimed by a sender on this host whose process is gone (the daemon we
        replace, killed mid-chunk), instead of leaving them until the lease runs out. Claims of
        live processes and of other hosts are left alone. Returns how many rows were released.

        Safe because a dead process cannot be sending: a row it sent but had not recorded is
        sent again, as it would be after the lease (delivery stays at least once)."""
        now = self.clock()
        host = self.owner.partition("/")[0] + "/"
        held = (Outbox.select(Outbox.claimed_by).distinct()
                .where((Outbox.status == OutboxStatus.PENDING) & (Outbox.claimed_until > now)
                       & Outbox.claimed_by.startswith(host) & (Outbox.claimed_by != self.owner)))
        released = 0
        for owner in [row.claimed_by for row in held]:
            if process_alive(owner):
                continue
            with self.transaction(self.db):
                released += (Outbox.update(claimed_until=None, claimed_by=None)
                             .where((Outbox.claimed_by == owner)
                                    & (Outbox.status == OutboxStatus.PENDING))
                             .execute())
        if released:
            log.warning("outbox: %d row(s) claimed by a sender that died were handed back",
                        released)
        return released

    def _due(self, now: datetime) -> peewee.Expression:
        return ((Outbox.status == OutboxStatus.PENDING) & (Outbox.next_attempt_at <= now)
                & (Outbox.claimed_until.is_null() | (Outbox.claimed_until < now)))

    def _claim(self, after_id: int, size: int) -> tuple[list[Outbox], datetime]:
        """Lease up to ``size`` due rows with ids above ``after_id``, in one write transaction;
        return them in id order (all columns, read after the claim) and the lease's end."""
        now = self.clock()
        due = self._due(now) & (Outbox.id > after_id)
        # The lease value identifies this claim; a few random microseconds keep two claims made
        # at the same instant apart.
        until = now + self.lease + timedelta(microseconds=random.randrange(1, 1_000_000))
        first = Outbox.select(Outbox.id).where(due).order_by(Outbox.id).limit(1)
        if not first.exists():
            return [], until  # nothing due: no write transaction (and no write lock) taken
        candidates = Outbox.select(Outbox.id).where(due).order_by(Outbox.id).limit(size)
        if self.db.for_update:
            # PostgreSQL: rows another sender is claiming right now are skipped, not waited for.
            candidates = candidates.for_update(skip_locked=True)
        with self.transaction(self.db):
            # Selected under the write lock (SQLite) or row locks (PostgreSQL): nobody else can
            # claim these between the select and the update.
            ids = [row.id for row in candidates]
            if not ids:
                return [], until
            won = (Outbox.update(claimed_until=until, claimed_by=self.owner)
                   .where(Outbox.id.in_(ids) & self._due(now))
                   .execute())
        if won != len(ids):
            log.warning("outbox: claimed %d of %d rows selected", won, len(ids))
        # Outside the transaction: the rows are ours until the lease runs out.
        rows = list(Outbox.select().where(Outbox.id.in_(ids) & (Outbox.claimed_until == until))
                    .order_by(Outbox.id))
        return rows, until

    def _record(self, outcomes: list[tuple[Outbox, dict]], release: Sequence[Outbox] = ()) -> None:
        """Write ``outcomes`` (and hand back ``release``: claimed, not visited) in one write
        transaction. Each change applies only while our claim holds."""
        if not outcomes and not release:
            return
        lost = []
        with self.transaction(self.db):
            for row, changes in outcomes:
                # One small statement per row; its SQL is built once (peewee would build it anew
                # each time, which cost more than running it).
                names = tuple(changes)
                params = [getattr(Outbox, name).db_value(changes[name]) for name in names]
                params += [row.id, Outbox.claimed_until.db_value(row.claimed_until)]
                if self.db.execute_sql(_outcome_sql(self.db.param, names), params).rowcount != 1:
                    lost.append((row, changes))
            if release:
                (Outbox.update(claimed_until=None)
                 .where(Outbox.id.in_([row.id for row in release])
                        & (Outbox.claimed_until == release[0].claimed_until))
                 .execute())
        for row, changes in lost:
            # The lease ran out and another sender owns the row now: its record stands.
            log.warning("outbox #%d: lease lost before the outcome was recorded (%s)",
                        row.id, changes.get("status", "pending"))

    # --- one row --------------------------------------------------------------------------------

    def _deliver(self, row: Outbox) -> tuple[bool, RelayUnavailable | None, dict]:
        """Send one claimed row: (sent?, the relay's outage if any, the changes to record)."""
        try:
            refused = self.transport.send(row.envelope_from, list(row.recipients),
                                          bytes(row.content)) or {}
        except PermanentFailure as exc:
            return False, None, self._failed(row, str(exc))
        except RelayUnavailable as exc:
            return False, exc, self._temporary(row, str(exc), give_up=False)
        except TemporaryFailure as exc:
            return False, None, self._temporary(row, str(exc))
        except Exception as exc:
            log.exception("outbox #%d: unexpected error while sending; will retry", row.id)
            return False, None, self._temporary(
                row, f"unexpected error: {describe(exc, prefix=True)}")
        return True, None, self._sent(row, refused)

    def _describe(self, row: Outbox, recipients: list[str] | None = None) -> str:
        to = ", ".join(recipients if recipients is not None else row.recipients)
        ticket = f", ticket {row.ticket_id}" if row.ticket_id is not None else ""
        return f"outbox #{row.id} to {to} ({row.kind}{ticket})"

    def _sent(self, row: Outbox, refused: dict[str, tuple[int, str]]) -> dict:
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
            return self._temporary(row, f"partly delivered; refused: {note}", recipients=owed)
        return dict(status=OutboxStatus.SENT, sent_at=now, attempts=row.attempts + 1,
                    claimed_until=None, last_error=note or None)

    def _temporary(self, row: Outbox, reason: str, recipients: list[str] | None = None,
                   give_up: bool = True) -> dict:
        """The changes that defer the row with backoff. ``give_up=False`` for a relay that
        cannot be reached at all: an outage delays mail however long it lasts, it never fails
        it; only the relay's own 4xx answers count towards ``max_attempts``."""
        attempts = row.attempts + 1  # every try: drives the backoff
        changes: dict = {"attempts": attempts, "last_error": reason, "claimed_until": None}
        if recipients is not None:
            changes["recipients"] = recipients
        refusals = row.refusals + 1 if give_up else row.refusals  # the relay's own 4xx answers
        if give_up:
            changes["refusals"] = refusals
        if give_up and refusals >= self.outgoing.max_attempts:
            log.warning("%s failed after %d refusals: %s", self._describe(row, recipients),
                        refusals, reason)
            changes["status"] = OutboxStatus.FAILED
            changes["last_error"] = f"gave up after {refusals} attempts: {reason}"
        else:
            delay = backoff(attempts, self.outgoing.retry_base, self.outgoing.retry_max)
            changes["next_attempt_at"] = self.clock() + timedelta(seconds=delay)
            log.warning("%s deferred (attempt %d, next in %.0fs): %s",
                        self._describe(row, recipients), attempts, delay, reason)
        return changes

    def _failed(self, row: Outbox, reason: str) -> dict:
        log.warning("%s failed: %s", self._describe(row), reason)
        return dict(status=OutboxStatus.FAILED, attempts=row.attempts + 1, last_error=reason,
                    claimed_until=None)


_OUTCOME_SQL: dict[tuple[str, tuple[str, ...]], str] = {}


def _outcome_sql(param: str, names: tuple[str, ...]) -> str:
    """``UPDATE outbox SET <names> WHERE id = ? AND claimed_until = ?`` with the driver's
    parameter marker: an outcome applies only while the claim it was sent under holds."""
    sql = _OUTCOME_SQL.get((param, names))
    if sql is None:
        sets = ", ".join(f'"{getattr(Outbox, name).column_name}" = {param}' for name in names)
        # Model._meta is peewee's documented metadata (tests/test_peewee_pins.py pins it).
        sql = (f'UPDATE "{Outbox._meta.table_name}" SET {sets} '
               f'WHERE "{Outbox.id.column_name}" = {param} '
               f'AND "{Outbox.claimed_until.column_name}" = {param}')
        _OUTCOME_SQL[(param, names)] = sql
    return sql


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 for the first): base, 2*base,
    4*base... capped; ``attempts`` counts tries, ``backoff.delay`` counts retries."""
    return backoffmod.delay(attempts - 1, base, cap)


def retry(db: peewee.Database, outbox_id: int) -> None:
    """Put a failed (or held) row back in the queue, due now, with its attempts reset."""
    with dbmod.transaction(db):
        row = Outbox.get_or_none(Outbox.id == outbox_id)
        if row is None:
            raise UnknownOutboxRow(outbox_id)
        if row.status == OutboxStatus.SENT:
            raise InvalidRequest(f"outbox #{outbox_id} was already sent at {row.sent_at}")
        now = utcnow()
        if row.status == OutboxStatus.PENDING:
            # Due now; a claim in progress is left alone so the row is not sent twice.
            Outbox.update(next_attempt_at=now).where(Outbox.id == outbox_id).execute()
        else:
            Outbox.update(status=OutboxStatus.PENDING, attempts=0, refusals=0,
                          next_attempt_at=now, claimed_until=None
                          ).where(Outbox.id == outbox_id).execute()
    log.info("outbox #%d queued again (was %s)", outbox_id, row.status)
