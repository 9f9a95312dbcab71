"""ParsedMail of a bounce -> BounceReport: which of our mails bounced, and for which recipients.

A pure reading of a delivery status notification, standard (RFC 3464, read in ``dsn``) or not
(the text heuristics of ``bouncetext``). The original mail is named by the Message-IDs of the
embedded original (``message/rfc822`` part, headers part, or headers quoted in the text), then
by the bounce's own In-Reply-To/References; the failed recipients come from the per-recipient
DSN fields, or else from the text.

Precision matters more than recall: a wrong address would be marked as bounced in our outbox.
So the bounce's own From/To and the original's sender are never reported, nor are mail system
roles (postmaster...). Everything is bounded (``dsn.MAX_TEXT`` characters of any text,
``dsn.MAX_LINE`` of a line), and ``analyse`` never raises: on an unexpected error it logs and
reports nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailticket.mail.bouncetext import TEXT_ADDRESS, quoted_ids, text_address, text_recipients
from mailticket.mail.dsn import (
    DSN_TYPES,
    HEADER_TYPES,
    ID_FIELDS,
    MAX_IDS,
    MAX_LINE,
    MAX_RECIPIENTS,
    MAX_TEXT,
    ORIGINAL_TYPES,
    FailedRecipient,
    delivery_status_text,
    dsn_blocks,
    header_block,
    ids_in,
    part_text,
    recipient_of,
)
from mailticket.mail.parse import ParsedMail, parse

__all__ = ["BounceReport", "FailedRecipient", "analyse"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BounceReport:
    original_ids: tuple[str, ...]             # Message-IDs "<...>" of the bounced mail, best first
    recipients: tuple[FailedRecipient, ...]   # no duplicates by address

    @property
    def permanent(self) -> tuple[FailedRecipient, ...]:
        return tuple(recipient for recipient in self.recipients if not recipient.temporary)


EMPTY = BounceReport((), ())

MAX_ID_LENGTH = 250
MAX_NESTING = 1            # a DSN embedded in a bounce is read; one embedded in that is not
MAX_NESTED_BYTES = 4 * MAX_TEXT   # of an embedded DSN: what is parsed of it

# Fields of the original that name its sender: never a failed recipient.
SENDER_FIELDS = frozenset({"from", "sender", "return-path", "reply-to"})
# Local parts that are mail system roles, never the person a mail failed to reach.
SYSTEM_LOCAL_PARTS = frozenset({"postmaster", "mailer-daemon", "mailerdaemon", "mail-daemon",
                                "abuse", "hostmaster", "webmaster", "noc", "root"})


def analyse(mail: ParsedMail) -> BounceReport:
    """Which mail bounced (its Message-IDs, best first) and for whom. Never raises."""
    try:
        return _analyse(mail)
    except Exception:  # noqa: BLE001 - a bounce we cannot read is reported as naming nothing
        log.warning("could not analyse bounce %s", getattr(mail, "message_id", "?"),
                    exc_info=True)
        return EMPTY


@dataclass
class _Found:
    """What the parts of one bounce said so far."""
    not_recipients: set[str]
    ids: list[str] = field(default_factory=list)
    dsn_recipients: list[FailedRecipient] = field(default_factory=list)
    dsn_seen: bool = False   # a delivery-status part named recipients: the text is not read


def _analyse(mail: ParsedMail, depth: int = 0) -> BounceReport:
    found = _Found(_own_addresses(mail))
    # Embedded originals first: their own Message-ID is the best name of the bounced mail.
    _read_embedded(mail, depth, found)
    _read_delivery_status(mail, found)
    embedded = len(found.ids)  # ids so far were read from the embedded original or report
    found.ids.extend(quoted_ids(mail.body))
    for part in mail.attachments:
        if part.content_type == "text/plain":
            found.ids.extend(quoted_ids(part_text(part.data)))
    found.ids.extend(mail.in_reply_to)
    found.ids.extend(reversed(mail.references))
    recipients = found.dsn_recipients if found.dsn_seen else _text_failures(mail)
    return BounceReport(_unique_ids(found.ids, embedded, mail),
                        _unique_recipients(recipients, found.not_recipients))


def _own_addresses(mail: ParsedMail) -> set[str]:
    """The bounce's own From, To, Reply-To and Return-Path: never failed recipients."""
    addresses = {address.key for address in (mail.sender, *mail.to, *mail.reply_to)
                 if address is not None}
    if mail.return_path:
        addresses.add(mail.return_path.strip().lower())
    return addresses


def _read_embedded(mail: ParsedMail, depth: int, found: _Found) -> None:
    """The embedded originals (message/rfc822), then the embedded original headers."""
    for types in (ORIGINAL_TYPES, HEADER_TYPES):
        for part in mail.attachments:
            if part.content_type not in types:
                continue
            text = part_text(part.data)
            if part.content_type in ORIGINAL_TYPES and depth < MAX_NESTING and _is_dsn(text):
                # A relay that wraps the DSN it got in a message of its own (flufl dsn_15):
                # the embedded report names the original, not its own Message-ID.
                inner = _nested(part.data, depth + 1)
                if inner is not None:
                    found.ids.extend(inner.original_ids)
                    if inner.recipients:
                        found.dsn_seen = True
                        found.dsn_recipients.extend(inner.recipients)
                    continue
            _read_original(text, found)


def _read_delivery_status(mail: ParsedMail, found: _Found) -> None:
    for part in mail.attachments:
        if part.content_type not in DSN_TYPES:
            continue
        text = delivery_status_text(part.data)
        blocks = dsn_blocks(text)
        if blocks:
            found.dsn_seen = True
            for block in blocks:
                recipient = recipient_of(block)
                if recipient is not None:
                    found.dsn_recipients.append(recipient)
        else:
            # Some MTAs put the original's headers where the delivery status should be.
            _read_original(text, found)
        for name, value in header_block(text):
            if name in ID_FIELDS - {"message-id"}:
                found.ids.extend(ids_in(value))


def _text_failures(mail: ParsedMail) -> list[FailedRecipient]:
    """The failed recipients of a bounce without a delivery-status part: from its text, and
    from X-Failed-Recipients (exim)."""
    recipients = text_recipients(mail.body, mail.subject)
    for value in mail.headers.get("x-failed-recipients", ()):
        for address in TEXT_ADDRESS.findall(value[:MAX_LINE * 4]):
            recipients.append(FailedRecipient(text_address(address), "", "", False))
    return recipients


def _is_dsn(text: str) -> bool:
    """Whether a header block is that of a delivery status notification."""
    return any(name == "content-type" and "delivery-status" in value.lower()
               for name, value in header_block(text))


def _nested(data: bytes, depth: int) -> BounceReport | None:
    try:
        return _analyse(parse(data[:MAX_NESTED_BYTES]), depth)
    except Exception:  # noqa: BLE001 - PermanentFailure or worse: read it as plain headers
        return None


def _read_original(text: str, found: _Found) -> None:
    for name, value in header_block(text):
        if name in ID_FIELDS:
            found.ids.extend(ids_in(value))
        elif name in SENDER_FIELDS:
            found.not_recipients.update(text_address(address) for address in
                                        TEXT_ADDRESS.findall(value[:MAX_LINE]))


def _unique_ids(ids: list[str], embedded: int, mail: ParsedMail) -> tuple[str, ...]:
    """The ids in order without repeats. The bounce's own Message-ID is left out, except where
    the embedded original has it too: some MTAs (AMaViS) give their bounce the original's."""
    own = mail.message_id.lower()
    seen: set[str] = set()
    kept: list[str] = []
    for number, message_id in enumerate(ids):
        key = message_id.lower()
        if (key == own and number >= embedded) or key in seen or len(message_id) > MAX_ID_LENGTH:
            continue
        seen.add(key)
        kept.append(message_id)
        if len(kept) >= MAX_IDS:
            break
    return tuple(kept)


def _unique_recipients(recipients: list[FailedRecipient],
                       not_recipients: set[str]) -> tuple[FailedRecipient, ...]:
    """One entry per address (the first, completed by later ones), without the senders."""
    kept: dict[str, FailedRecipient] = {}
    for recipient in recipients:
        address = recipient.address
        if address in not_recipients or address.partition("@")[0] in SYSTEM_LOCAL_PARTS:
            continue
        earlier = kept.get(address)
        if earlier is None:
            if len(kept) < MAX_RECIPIENTS:
                kept[address] = recipient
        elif not earlier.status and not earlier.detail and (recipient.status or recipient.detail):
            kept[address] = FailedRecipient(address, recipient.status, recipient.detail,
                                            earlier.temporary and recipient.temporary)
    return tuple(kept.values())
