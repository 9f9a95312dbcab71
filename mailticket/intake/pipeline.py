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
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable

import peewee

from mailticket.config import Agent, Settings
from mailticket.db import Prepared, savepoint, transaction
from mailticket.desk.tickets import Arrival, Desk
from mailticket.errors import InvalidRequest, MailticketError, TemporaryFailure
from mailticket.intake.items import Cursor, Outcome, RawMail, Result
from mailticket.intake.route import Action, Decision, route, tag_pattern
from mailticket.mail import bounces
from mailticket.mail.authres import vouched_by
from mailticket.mail.classify import Kind, classify
from mailticket.mail.parse import ParsedMail, ParseLimits, parse
from mailticket.models import IntakeKey, MailboxState, Message, Quarantine, utcnow

log = logging.getLogger(__name__)
decisions = logging.getLogger("mailticket.decisions")

# The two lookups made for every message, prepared once (see db.Prepared).
_SEEN_KEY = Prepared(lambda source, key: IntakeKey.select(IntakeKey.outcome).where(
    (IntakeKey.source == source) & (IntakeKey.key == key)), 2)
_EARLIER_MESSAGE = Prepared(lambda message_id: Message.select(
    Message.id, Message.ticket, Message.sender, Message.subject).where(
        Message.message_id == message_id), 1)

# Failures of our own machinery rather than of the message: the database, the file store (disk
# full, permissions). Quarantining every message would be wrong; the batch is abandoned instead.
_SYSTEMIC_FAILURES = (peewee.OperationalError, peewee.ProgrammingError, peewee.InterfaceError,
                      peewee.InternalError, peewee.NotSupportedError, OSError)

_OUTCOME_OF_KEY = {"recorded": Outcome.RECORDED, "duplicate": Outcome.DUPLICATE,
                   "quarantined": Outcome.QUARANTINED}


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
                found[row.key] = _OUTCOME_OF_KEY[row.outcome]
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
            if held.status != "held":
                raise InvalidRequest(f"quarantined message #{quarantine_id} was already released")
            item = RawMail(source=held.source, key=f"quarantine/{held.id}", raw=bytes(held.raw))
            try:
                with savepoint(self.db):
                    result = self._process(item)
            except Exception as exc:  # noqa: BLE001 - the whole point is to keep it
                held.error = _describe(exc)
                held.save()
                log.warning("quarantine #%d still fails: %s", held.id, held.error)
                return Result(item.key, Outcome.QUARANTINED, detail=held.error)
            if result.outcome is Outcome.QUARANTINED:
                held.error = result.detail
                held.save()
                return result
            held.status = "released"
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
            outcome = _OUTCOME_OF_KEY[seen[0]]
            if outcome is Outcome.RECORDED:
                outcome = Outcome.DUPLICATE
            return Result(item.key, outcome, detail="already taken in from this source")
        failure: Exception | None = None
        for attempt in (1, 2):
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
                raise TemporaryFailure(f"{exc.__class__.__name__}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - any other failure quarantines this message
                failure = exc
                break
        assert failure is not None
        if not isinstance(failure, MailticketError):
            log.error("message %s from %s failed; quarantining it", item.key, item.source,
                      exc_info=failure)
        with savepoint(self.db):
            return self._quarantine(item, _describe(failure))

    def _process(self, item: RawMail) -> Result:
        limit = self.settings.limits.max_message_bytes
        oversized = item.oversized or (len(item.raw) if len(item.raw) > limit else 0)
        if oversized:
            mail = self._parse_oversized(item, oversized, limit)
        else:
            mail = parse(item.raw, limits=self.parse_limits)
        earlier = _EARLIER_MESSAGE.first(self.db, mail.message_id)
        if earlier is not None and not _same_mail(mail, earlier):
            # Some robots reuse one Message-ID for different mails: keep this one as its own.
            mail = replace(mail, message_id=_reused_id(mail), message_id_synthesized=True,
                           defects=mail.defects + (f"Message-ID {mail.message_id} was already "
                                                   "used by a different message",))
            earlier = _EARLIER_MESSAGE.first(self.db, mail.message_id)
        if earlier is not None:
            earlier_id, ticket = earlier[0], earlier[1]
            IntakeKey.create(source=item.source, key=item.key, message_id=mail.message_id,
                             outcome="duplicate", message=earlier_id, at=self.clock())
            decisions.info("%s duplicate of message %d (ticket %s)", mail.message_id, earlier_id,
                           ticket)
            return Result(item.key, Outcome.DUPLICATE, ticket=ticket,
                          detail="same Message-ID seen before")
        verdict = classify(mail, self.desk.own_addresses)
        notes = self.settings.desk.report_notes_address
        if notes and verdict.acknowledge and self._addressed_to(mail, notes):
            # Notes for the status report (application support...): kept, not a ticket, not
            # answered; the next report of each kind includes them.
            arrival = Arrival(mail, verdict, "report_note", f"mail to {notes}",
                              raw_sha256=self.desk.store.put(item.raw), source=item.source)
            message = self.desk.keep(arrival)
            IntakeKey.create(source=item.source, key=item.key, message_id=mail.message_id,
                             outcome="recorded", message=message, at=self.clock())
            decisions.info("%s from=%s decision=report_note", mail.message_id,
                           mail.sender.address if mail.sender else "-")
            return Result(item.key, Outcome.RECORDED, detail="report_note")
        agent = self._agent_of(mail)
        report = bounces.analyse(mail) if verdict.kind is Kind.BOUNCE else None
        decision = route(mail, verdict, self.desk, tag=self.tag,
                         reopen_window=self.reopen_window, now=self.clock(),
                         thread_key=self.desk.mailer.thread_key,
                         outsider_mail=self.settings.desk.outsider_mail,
                         about=report.original_ids if report else (),
                         agents=self.agents, from_agent=agent is not None)
        if decision.action is Action.QUARANTINE:
            decisions.info("%s verdict=%s decision=quarantine (%s)", mail.message_id,
                           verdict.kind.value, decision.reason)
            return self._quarantine(item, decision.reason, message_id=mail.message_id)
        # An oversized message's whole bytes are kept in the store when we have them (not in
        # the database); when the source took only the header, the original stays with it.
        arrival = Arrival(mail, verdict, decision.action.value, decision.reason,
                          raw_sha256=self.desk.store.put(item.raw), source=item.source)
        if report is not None and decision.action in (Action.ATTACH, Action.IGNORE):
            message = self.desk.bounced(decision.ticket, arrival, report)
        else:
            message = self._apply(decision, arrival, agent)
        # A message whose original stays with the source (only its header was taken) goes to the
        # source's quarantine (IMAP: quarantine_folder), though its ticket was made.
        kept_aside = bool(item.oversized)
        IntakeKey.create(source=item.source, key=item.key, message_id=mail.message_id,
                         outcome="quarantined" if kept_aside else "recorded", message=message,
                         at=self.clock())
        decisions.info("%s from=%s verdict=%s (%s) decision=%s (%s) ticket=%s",
                       mail.message_id, mail.sender.address if mail.sender else "-",
                       verdict.kind.value, verdict.reason, decision.action.value, decision.reason,
                       message.ticket_id)
        if kept_aside:
            return Result(item.key, Outcome.QUARANTINED, ticket=message.ticket_id,
                          detail=f"{decision.action.value}; over limits.max_message_size: the "
                                 "ticket was made from its header, the original is kept aside")
        return Result(item.key, Outcome.RECORDED, ticket=message.ticket_id,
                      detail=decision.action.value)

    def _agent_of(self, mail: ParsedMail) -> Agent | None:
        """The configured agent who sent ``mail``; with agents_require_authentication, only when
        a trusted server vouches for the From address. Otherwise the mail is a user's."""
        process = self.settings.process
        agent = process.agent(mail.sender.address) if mail.sender is not None else None
        if agent is None or not process.agents_require_authentication:
            return agent
        if vouched_by(mail, process.trusted_authserv_ids) is None:
            decisions.info("%s from agent %s without a trusted DKIM/SPF pass: a user's mail",
                           mail.message_id, agent.address)
            return None
        return agent

    def _to_comment_address(self, mail: ParsedMail) -> bool:
        comment = self.settings.desk.comment_address
        return bool(comment) and self._addressed_to(mail, comment)

    @staticmethod
    def _addressed_to(mail: ParsedMail, address: str) -> bool:
        """Whether ``mail`` was sent to ``address``: To, Cc, or the envelope recipient the MTA
        recorded (Delivered-To, X-Original-To)."""
        address = address.lower()
        if any(a.key == address for a in mail.to + mail.cc):
            return True
        return any(address in value.lower() for name in ("delivered-to", "x-original-to")
                   for value in mail.headers.get(name, ()))

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

    def _apply(self, decision: Decision, arrival: Arrival, agent: Agent | None) -> Message:
        action, desk = decision.action, self.desk
        if action is Action.NEW_TICKET:
            return desk.open_ticket(arrival, unknown_tag=decision.unknown_tag,
                                    acknowledge=decision.acknowledge)
        if action is Action.NEW_LINKED:
            return desk.open_ticket(arrival, linked_to=decision.ticket,
                                    acknowledge=decision.acknowledge)
        if action is Action.FOLLOW_UP:
            return desk.follow_up(decision.ticket, arrival)
        if action is Action.REOPEN:
            return desk.reopen_by_mail(decision.ticket, arrival)
        if action is Action.ATTACH:
            return desk.attach(decision.ticket, arrival)
        if action is Action.UNVERIFIED:
            return desk.unverified(decision.ticket, arrival)
        if action is Action.AGENT:
            assert agent is not None  # route decides AGENT only for an agent's mail
            return desk.agent_mail(decision.ticket, arrival, agent,
                                   comment=self._to_comment_address(arrival.mail))
        return desk.keep(arrival)

    def _quarantine(self, item: RawMail, error: str, message_id: str = "") -> Result:
        if item.key.startswith("quarantine/"):
            return Result(item.key, Outcome.QUARANTINED, detail=error)  # a retry: row exists
        held = Quarantine.create(source=item.source, source_key=item.key, raw=item.raw,
                                 error=error, message_id=message_id, created_at=self.clock())
        IntakeKey.create(source=item.source, key=item.key, message_id=message_id,
                         outcome="quarantined", quarantine=held, at=self.clock())
        log.warning("quarantined message %s from %s as #%d: %s", item.key, item.source, held.id,
                    error)
        return Result(item.key, Outcome.QUARANTINED, detail=error)

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


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if not isinstance(exc, MailticketError):
        text = f"{exc.__class__.__name__}: {text}"
    return text[:2000]
