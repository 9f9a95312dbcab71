"""The intake pipeline: raw bytes -> parse -> classify -> route -> desk, inside ONE transaction
per batch with a savepoint per message, so one bad message never rolls back the others.

A message that fails anywhere is quarantined (raw bytes and error kept) in its own savepoint and
the batch goes on. Every message leaves an intake key, so a message handed over again after a
crash is recognised and not re-applied. Sources acknowledge (IMAP move, SMTP 250) only after
``process_batch`` has returned, i.e. after the commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import peewee

from mailticket.config import Agent, Settings
from mailticket.db import Prepared, savepoint, transaction
from mailticket.desk.tickets import Arrival, Desk
from mailticket.errors import InvalidRequest, MailticketError, TemporaryFailure, describe
from mailticket.intake.apply import apply
from mailticket.intake.items import Cursor, Outcome, RawMail, Result
from mailticket.intake.route import Action, route, tag_pattern
from mailticket.mail import bounces
from mailticket.mail.authres import vouched_by
from mailticket.mail.classify import Kind, classify
from mailticket.mail.parse import ParsedMail, ParseLimits, parse
from mailticket.models import IntakeKey, MailboxState, Message, Quarantine, utcnow
from mailticket.vocabulary import PORTAL_SOURCE, QuarantineStatus

log = logging.getLogger(__name__)
decisions = logging.getLogger("mailticket.decisions")

# The two lookups made for every message, prepared once (see db.Prepared).
_SEEN_KEY = Prepared(lambda source, key: IntakeKey.select(IntakeKey.outcome, Message.ticket)
    .join(Message, peewee.JOIN.LEFT_OUTER, on=(IntakeKey.message == Message.id)).where(
    (IntakeKey.source == source) & (IntakeKey.key == key)), 2)
_EARLIER_MESSAGE = Prepared(lambda message_id: Message.select(
    Message.id, Message.ticket, Message.sender, Message.subject).where(
        Message.message_id == message_id), 1)

# Failures of our own machinery rather than of the message: the database, the file store (disk
# full, permissions). Quarantining every message would be wrong; the batch is abandoned instead.
_SYSTEMIC_FAILURES = (peewee.OperationalError, peewee.ProgrammingError, peewee.InterfaceError,
                      peewee.InternalError, peewee.NotSupportedError, OSError)

@dataclass(frozen=True)
class Taken:
    """What became of one message, as its intake key, the decision log and the source see it."""

    outcome: Outcome
    reason: str
    message_id: str = ""
    verdict: str = "-"          # mail.classify.Kind, when it got that far
    action: str = "-"           # route.Action, or what stopped it first (seen, duplicate, error)
    ticket: int | None = None
    message_ref: int | None = None  # the Message row it made (or duplicates)


class Pipeline:
    def __init__(self, db: peewee.Database, settings: Settings, desk: Desk, *,
                 clock: Callable[[], datetime] = utcnow,
                 after_commit: Callable[[], None] | None = None):
        self.db = db
        self.settings = settings
        self.desk = desk
        self.clock = clock
        self.after_commit = after_commit
        self.tag = tag_pattern(settings.desk.ticket_prefix)
        self.reopen_window = timedelta(days=settings.desk.reopen_window_days)
        # The desk's staff may touch any ticket: the agents of its groups, the groups' own
        # addresses, and whoever it sends alerts to.
        process = settings.process
        self.agents = frozenset(
            [a.address for a in process.agents]
            + [g.address for g in process.groups if g.address]
            + [a.lower() for a in settings.desk.alerts_to])
        limits = settings.limits
        self.parse_limits = ParseLimits(
            max_attachments=limits.max_attachments,
            max_attachment_bytes=limits.max_attachment_bytes,
            max_depth=limits.max_mime_depth,
            max_header_bytes=limits.max_header_bytes)

    # --- what sources call ---------------------------------------------------------------------

    def load_cursor(self, source: str) -> Cursor | None:
        state = MailboxState.get_or_none(MailboxState.source == source)
        return Cursor(source, state.uidvalidity, state.last_uid) if state else None

    def outcomes_of(self, source: str, keys: list[str]) -> dict[str, Outcome]:
        found: dict[str, Outcome] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for row in IntakeKey.select(IntakeKey.key, IntakeKey.outcome).where(
                    IntakeKey.source == source, IntakeKey.key.in_(chunk)):
                found[row.key] = Outcome(row.outcome)
        return found

    def process_batch(self, items: list[RawMail], cursor: Cursor | None = None) -> list[Result]:
        """Record every item and the cursor in one transaction; return after the commit.

        Raises TemporaryFailure when the batch could not be committed: then nothing of it was
        recorded and the source must keep the mail and try again later.
        """
        queued_before = self.desk.mailer.queued
        try:
            with transaction(self.db):
                results = [self._guarded(item) for item in items]
                if cursor is not None:
                    self._save_cursor(cursor)
                self.desk.store.sync()  # the files the batch refers to, before it commits
        except TemporaryFailure:
            raise
        except (peewee.DatabaseError, peewee.InterfaceError, OSError) as exc:
            raise TemporaryFailure(f"could not commit a batch of {len(items)}: {exc}") from exc
        if self.after_commit is not None and self.desk.mailer.queued != queued_before:
            self.after_commit()
        return results

    def retry_quarantined(self, quarantine_id: int) -> Result:
        """Run a quarantined message through the pipeline again (``quarantine retry``)."""
        with transaction(self.db):
            held = Quarantine.get_or_none(Quarantine.id == quarantine_id)
            if held is None:
                raise InvalidRequest(f"no quarantined message #{quarantine_id}")
            if held.status != QuarantineStatus.HELD:
                raise InvalidRequest(f"quarantined message #{quarantine_id} was already released")
            item = RawMail(source=held.source, key=f"quarantine/{held.id}", raw=bytes(held.raw))
            try:
                with savepoint(self.db):
                    result = self._process(item)
            except Exception as exc:  # noqa: BLE001 - the whole point is to keep it
                held.error = describe(exc)
                held.save()
                log.warning("quarantine #%d still fails: %s", held.id, held.error)
                return self._settle(item, Taken(Outcome.QUARANTINED, held.error, action="error"),
                                    record=False)
            if result.outcome is Outcome.QUARANTINED:
                held.error = result.detail
                held.save()
                return result
            held.status = QuarantineStatus.RELEASED
            held.released_at = self.clock()
            held.ticket = result.ticket
            held.save()
            self.desk.store.sync()
        if self.after_commit is not None:
            self.after_commit()
        return result

    # --- one message -------------------------------------------------------------------------

    def _guarded(self, item: RawMail) -> Result:
        seen = _SEEN_KEY.first(self.db, item.source, item.key)
        if seen is not None:
            outcome = Outcome(seen[0])
            if outcome is Outcome.RECORDED:
                outcome = Outcome.DUPLICATE
            # With the ticket it went to, as for a Message-ID seen before: the portal takes
            # the user to it when a form is sent twice.
            return self._settle(item, Taken(outcome, "already taken in from this source",
                                            action="seen", ticket=seen[1]), record=False)
        failure: Exception | None = None
        for _attempt in (1, 2):
            try:
                with savepoint(self.db):
                    return self._process(item)
            except peewee.IntegrityError as exc:
                # Another daemon may have recorded the same Message-ID between our check and
                # our insert: the second attempt then finds it and answers DUPLICATE.
                failure = exc
            except TemporaryFailure:
                raise
            except _SYSTEMIC_FAILURES as exc:
                raise TemporaryFailure(describe(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - any other failure quarantines this message
                failure = exc
                break
        assert failure is not None
        if not isinstance(failure, MailticketError):
            log.error("message %s from %s failed; quarantining it", item.key, item.source,
                      exc_info=failure)
        with savepoint(self.db):
            return self._quarantine(item, Taken(Outcome.QUARANTINED, describe(failure),
                                                action="error"))

    def _process(self, item: RawMail) -> Result:
        """parse -> (duplicate?) -> classify -> (bounce analysis) -> route -> the desk."""
        mail = self._parse(item)
        mail, earlier = self._identify(mail)
        if earlier is not None:
            return self._settle(item, Taken(
                Outcome.DUPLICATE, "same Message-ID seen before", mail.message_id,
                action="duplicate", ticket=earlier[1], message_ref=earlier[0]))
        verdict = classify(mail, self.desk.own_addresses)
        # What a user typed on the portal is a user's, whoever the address belongs to: no
        # agent commands run from a web form.
        agent = None if item.source == PORTAL_SOURCE else self._agent_of(mail)
        decision = route(mail, verdict, self.desk, tag=self.tag,
                         reopen_window=self.reopen_window, now=self.clock(),
                         thread_key=self.desk.mailer.thread_key,
                         outsider_mail=self.settings.desk.outsider_mail,
                         bounce=bounces.analyse(mail) if verdict.kind is Kind.BOUNCE else None,
                         agents=self.agents, from_agent=agent is not None,
                         report_notes_address=self.settings.desk.report_notes_address or "",
                         comment_address=self.settings.desk.comment_address or "")
        action = decision.action.value
        if decision.action is Action.QUARANTINE:
            return self._quarantine(item, Taken(Outcome.QUARANTINED, decision.reason,
                                                mail.message_id, verdict.kind.value, action))
        # An oversized message's whole bytes are kept in the store when we have them (not in
        # the database); when the source took only the header, the original stays with it.
        arrival = Arrival(mail, verdict, decision.recorded, decision.reason,
                          raw_sha256=self.desk.store.put(item.raw), source=item.source)
        message = apply(self.desk, decision, arrival, agent)
        # Oversized: its original stays with the source (only its header was taken) and goes
        # to the source's quarantine (IMAP: quarantine_folder), though its ticket was made.
        taken = Taken(Outcome.QUARANTINED if item.oversized else Outcome.RECORDED,
                      decision.reason, mail.message_id, verdict.kind.value, action,
                      message.ticket_id, message.id)
        if item.oversized:
            return self._settle(item, taken, detail=(
                f"{action}; over limits.max_message_size: the ticket was made from its header, "
                "the original is kept aside"))
        return self._settle(item, taken, detail=action)

    def _parse(self, item: RawMail) -> ParsedMail:
        limit = self.settings.limits.max_message_bytes
        oversized = item.oversized or (len(item.raw) if len(item.raw) > limit else 0)
        if oversized:
            return self._parse_oversized(item, oversized, limit)
        return parse(item.raw, limits=self.parse_limits)

    def _identify(self, mail: ParsedMail) -> tuple[ParsedMail, tuple | None]:
        """The mail, and the earlier message it duplicates (id, ticket) if it was seen before.
        Some robots reuse one Message-ID for different mails: such a mail is kept as its own,
        under an id made from what stays the same on every route."""
        earlier = _EARLIER_MESSAGE.first(self.db, mail.message_id)
        if earlier is not None and not _same_mail(mail, earlier):
            mail = replace(mail, message_id=_reused_id(mail), message_id_synthesized=True,
                           defects=mail.defects + (f"Message-ID {mail.message_id} was already "
                                                   "used by a different message",))
            earlier = _EARLIER_MESSAGE.first(self.db, mail.message_id)
        return mail, earlier

    def _settle(self, item: RawMail, taken: Taken, *, detail: str | None = None,
                record: bool = True, quarantine: Quarantine | None = None) -> Result:
        """The one end of every message's way through: its intake key recorded (unless it has
        one), one decision-log line, and the result for the source."""
        if record:
            IntakeKey.create(source=item.source, key=item.key, message_id=taken.message_id,
                             outcome=taken.outcome, message=taken.message_ref,
                             quarantine=quarantine, at=self.clock())
        decisions.info("%s source=%s key=%s verdict=%s action=%s ticket=%s outcome=%s (%s)",
                       taken.message_id or "-", item.source, item.key, taken.verdict,
                       taken.action, taken.ticket if taken.ticket is not None else "-",
                       taken.outcome, taken.reason)
        return Result(item.key, taken.outcome, ticket=taken.ticket,
                      detail=taken.reason if detail is None else detail)

    def _agent_of(self, mail: ParsedMail) -> Agent | None:
        """The configured agent who sent ``mail``; with agents_require_authentication, only when
        a trusted server vouches for the From address. Otherwise the mail is a user's."""
        process = self.settings.process
        agent = process.agent(mail.sender.address) if mail.sender is not None else None
        if agent is None or not process.agents_require_authentication:
            return agent
        if vouched_by(mail, process.trusted_authserv_ids) is None:
            log.info("%s from agent %s without a trusted DKIM/SPF pass: a user's mail",
                     mail.message_id, agent.address)
            return None
        return agent

    def _parse_oversized(self, item: RawMail, size: int, limit: int) -> ParsedMail:
        """A message over limits.max_message_size still makes its ticket, from its header:
        the sender is answered and the agent sees what was not read."""
        end = item.raw.find(b"\r\n\r\n")
        end = item.raw.find(b"\n\n") if end < 0 else end
        header = item.raw[:end if end >= 0 else min(len(item.raw), 256 * 1024)][:256 * 1024]
        mail = parse(header + b"\r\n\r\n", limits=self.parse_limits)
        where = ("the original was left in the mailbox's quarantine folder" if item.oversized
                 else "the original is kept in the message store")
        note = (f"the message is {_mib(size)}, over the {_mib(limit)} limit "
                f"(limits.max_message_size): only its header was read, its text and "
                f"attachments were not kept; {where}")
        return replace(mail, dropped=mail.dropped + (note,),
                       body=mail.body or "(not read: the message was over the size limit)")

    def _quarantine(self, item: RawMail, taken: Taken) -> Result:
        held = None
        if not item.key.startswith("quarantine/"):  # a retry's row exists already
            held = Quarantine.create(source=item.source, source_key=item.key, raw=item.raw,
                                     error=taken.reason, message_id=taken.message_id,
                                     created_at=self.clock())
            log.warning("quarantined message %s from %s as #%d: %s", item.key, item.source,
                        held.id, taken.reason)
        return self._settle(item, taken, record=held is not None, quarantine=held)

    def _save_cursor(self, cursor: Cursor) -> None:
        updated = (MailboxState.update(uidvalidity=cursor.uidvalidity, last_uid=cursor.last_uid,
                                       updated_at=self.clock())
                   .where(MailboxState.source == cursor.source).execute())
        if not updated:
            MailboxState.create(source=cursor.source, uidvalidity=cursor.uidvalidity,
                                last_uid=cursor.last_uid, updated_at=self.clock())


def _same_mail(mail: ParsedMail, earlier: tuple) -> bool:
    """The same mail again (another desk address, another mailbox, a re-delivery) has the same
    sender and subject; its headers above them differ by the route it took."""
    sender = mail.sender.address if mail.sender else ""
    return (earlier[2], earlier[3]) == (sender, mail.subject)


def _reused_id(mail: ParsedMail) -> str:
    """An id for a mail whose Message-ID was taken, from what stays the same on every route."""
    parts = [mail.message_id, mail.sender.address if mail.sender else "", mail.subject,
             mail.date.isoformat() if mail.date else "", mail.body[:100_000]]
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"<{digest[:40]}@reused-id.invalid>"


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"
