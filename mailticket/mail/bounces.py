"""ParsedMail of a bounce -> BounceReport: which of our mails bounced, and for which recipients.

A pure reading of a delivery status notification, standard (RFC 3464 ``message/delivery-status``)
or not (qmail, exim, Exchange, GroupWise and the "simple match" text styles). The original
mail is named by the Message-IDs of the embedded original (``message/rfc822`` part, headers
part, or headers quoted in the text), then by the bounce's own In-Reply-To/References; the
failed recipients come from the per-recipient DSN fields, or else from the text patterns in
``TEXT_INTROS`` and ``LINE_PATTERNS``.

Precision matters more than recall: a wrong address would be marked as bounced in our outbox.
So text is read only before the quoted copy of the original, only near a sentence that says
delivery failed, and the bounce's own From/To and the original's sender are never reported.
Everything is bounded (``MAX_TEXT`` characters of any text, ``MAX_LINE`` of a line), and
``analyse`` never raises: on an unexpected error it logs and reports nothing. Every pattern
here is a literal we wrote; no text from a message ever becomes a regex.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from mailticket.mail.parse import ParsedMail, parse

__all__ = ["BounceReport", "FailedRecipient", "analyse"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedRecipient:
    address: str        # lower-cased address the mail did not reach
    status: str         # enhanced status code "5.1.1" when known, else ""
    detail: str         # the diagnostic, one line, <= MAX_DETAIL characters, "" if none
    temporary: bool     # a delay warning (Action: delayed, 4.x.x), not a final failure


@dataclass(frozen=True)
class BounceReport:
    original_ids: tuple[str, ...]             # Message-IDs "<...>" of the bounced mail, best first
    recipients: tuple[FailedRecipient, ...]   # no duplicates by address

    @property
    def permanent(self) -> tuple[FailedRecipient, ...]:
        return tuple(recipient for recipient in self.recipients if not recipient.temporary)


EMPTY = BounceReport((), ())

# --- limits --------------------------------------------------------------------------------------
MAX_TEXT = 64 * 1024        # characters of any body or part text that are read
MAX_LINE = 1000             # characters of one line that are searched
MAX_TEXT_LINES = 1000       # lines of a text bounce searched for recipients
MAX_DETAIL = 300
MAX_RECIPIENTS = 100
MAX_IDS = 10
MAX_ID_LENGTH = 250
MAX_ADDRESS = 254
MAX_NESTING = 1            # a DSN embedded in a bounce is read; one embedded in that is not
MAX_NESTED_BYTES = 4 * MAX_TEXT   # of an embedded DSN: what is parsed of it
SECTION_LINES = 25          # lines after a "delivery failed to the following" sentence

# --- part types ----------------------------------------------------------------------------------
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global"})
HEADER_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers",
                          "message/global-headers", "text/rfc822-header"})

# --- literals ------------------------------------------------------------------------------------
# An address in free text: bounded pieces, so a long run of letters costs linear time.
_TEXT_ADDRESS = re.compile(
    r"(?<![\w.+-])"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9-])")
# The start of a line that names a recipient: optional label ("Recipient address:", "To:"),
# then the address, bare, in <...>, or in quotes.
_LINE_ADDRESS = re.compile(
    r"^\s*(?:(?P<label>[A-Za-z][A-Za-z -]{0,30}):\s*)?[\"'<(]{0,2}"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9-])")
# Exchange 5.5 X.400 style: "c=US;a= ;p=IKON;o=Nexus2;dda:SMTP=DJBENNETT@IKON.COM; on ..."
_SMTP_EQUALS = re.compile(
    r"\bSMTP[=:]\s*<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})",
    re.IGNORECASE)
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,248})>")
_FIELD = re.compile(r"^([!-9;-~]{1,80})[ \t]*:[ \t]*(.*)$")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")

# Header fields, in a header block or quoted in text, that hold the original's Message-ID.
ID_FIELDS = frozenset({"message-id", "x-original-message-id", "original-message-id",
                       "x-ms-exchange-original-message-id"})
# Fields of the original that name its sender: never a failed recipient.
SENDER_FIELDS = frozenset({"from", "sender", "return-path", "reply-to"})
# Labels in front of an address that say it is not the recipient ("From: desk@...").
NOT_RECIPIENT_LABELS = frozenset({"from", "sender", "reply-to", "return-path", "subject",
                                  "message-id", "date", "received", "envelope-from"})
# Local parts that are mail system roles, never the person a mail failed to reach.
SYSTEM_LOCAL_PARTS = frozenset({"postmaster", "mailer-daemon", "mailerdaemon", "mail-daemon",
                                "abuse", "hostmaster", "webmaster", "noc", "root"})

# Where the copy of the original starts in a text bounce: recipients are read only above it.
_COPY_MARKER = re.compile(
    r"below this line is a copy|below the next line is a copy|this is a copy of (?:the|your)"
    r"|copy of the original message|original message follows|returned message follows"
    r"|returned mail follows|start of returned message|unsent message below"
    r"|original message headers|headers of the original message|message headers follow"
    r"|^\s*-{3,}\s*returned message\s*-{3,}"
    r"|^-{3,}\s*original message\s*-{3,}|\u539f\u4fe1\u4ef6",      # Chinese "original letter"
    re.IGNORECASE)
_HEADER_START = re.compile(r"^(?:return-path|received)\s*:", re.IGNORECASE)

# Sentences that introduce the list of failed recipients (read on the lines that follow,
# and on the rest of the sentence's own line). The flag says whether they announce a delay.
TEXT_INTROS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"has not yet been delivered|still awaiting delivery|has been delayed"
                r"|delivery (?:to the following recipients? )?(?:has been|is) delayed"
                r"|delay(?:ed)? (?:in|for) delivery|temporarily (?:deferred|unable)"
                r"|will (?:continue|keep) (?:trying|to try)", re.IGNORECASE), True),
    (re.compile(r"following address(?:\(es\)|es)? failed"
                r"|following (?:recipients?|address(?:\(es\)|es)?|users?|destinations?)"
                r"(?:\(s\))? (?:failed|could not|couldn't|was not|were not|had permanent)"
                r"|delivery to the following recipients? (?:failed|was aborted|has failed)"
                r"|delivery has failed to these recipients"
                r"|did not reach the following recipient"
                r"|(?:could not|couldn't|cannot|can't|was not|wasn't|were not|not able to"
                r"|unable to|failed to|impossible to) (?:be )?deliver(?:ed)?"
                r"(?: (?:your|the|this) (?:message|mail|e-?mail))?"
                r" (?:to )?(?:one or more|all|the following|these|following)"
                r"|(?:could not|couldn't|cannot|can't|was not|wasn't) (?:be )?delivered to\s*:"
                r"|permanent fatal errors|permanent error"
                r"|following (?:recipients?|address(?:\(es\)|es)?)(?:\(s\))?\s*:\s*$"
                r"|following recipients? (?:was|were) rejected|failure reasons"
                r"|\u65e0\u6cd5\u53d1\u9001|\u65e0\u6cd5\u9001\u8fbe"   # Chinese "cannot send"
                r"|\u043d\u0435\u0432\u043e\u0437\u043c\u043e\u0436\u043d\u043e "  # Russian
                r"\u0434\u043e\u0441\u0442\u0430\u0432\u0438\u0442\u044c"        # "cannot deliver"
                r"|\u043d\u0435 \u043c\u043e\u0436\u0435\u0442 \u0431\u044b\u0442\u044c "
                r"\u0434\u043e\u0441\u0442\u0430\u0432\u043b\u0435\u043d\u043e",  # delivered
                re.IGNORECASE), False),
)
# Lines that name a failed recipient wherever they are (above the copy of the original), each
# with whether the whole line is the diagnostic (else the rest of the line, or the lines below).
_QMAIL_LINE = re.compile(r"^(\s{0,4})<([^<>\s@]{1,64}@[^<>\s@]{1,255})>\s*:")
LINE_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = (
    # qmail, Postfix text part, sina, newmail.ru: "<user@example.org>:" at the start of a line
    (_QMAIL_LINE, False),
    # "Your message to user@example.org couldn't be delivered." (Office 365)
    (re.compile(r"your message to\s+<?()([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s+(?:couldn't"
                r"|could not|wasn't|was not|has not|cannot) be", re.IGNORECASE), True),
    # mail.ru and exim filters: "Local mailbox user@example.org is unavailable"
    (re.compile(r"\bmailbox\s+<?()([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s+(?:is unavailable"
                r"|does not exist|is full|unavailable)", re.IGNORECASE), True),
    # "Delivery failed 10 attempts: user@example.org", "User mailbox exceeds allowed size: ..."
    (re.compile(r"^(\s*)(?=[^:]{0,80}(?:fail|unknown|exceed|not exist|unavailable|reject|invalid"
                r"|undeliverable|quota|not found))[^:@<>]{3,80}:\s*"
                r"<?([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s*\.?\s*$", re.IGNORECASE), True),
)
# A line that is only an address: a recipient when a failure sentence is somewhere above the
# copy of the original and nothing better was found (Lotus Notes, EZweb).
_LONE_ADDRESS = re.compile(
    r"^\s*<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})>?\s*$")
_REPLY_CODE = re.compile(r"\b[245]\d\d\b")
_DELAY_SUBJECT = re.compile(r"\bdelay|\bwarning\b|still being retried|not yet been delivered",
                            re.IGNORECASE)


# --- small helpers -------------------------------------------------------------------------------
def _text(data: bytes) -> str:
    """Part bytes as text: UTF-8 where it is, Latin-1 for the rest (fields we read are ASCII)."""
    data = data[:MAX_TEXT]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _one_line(value: str, limit: int = MAX_DETAIL) -> str:
    value = _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()
    return value if len(value) <= limit else value[: limit - 3].rstrip() + "..."


def _status_in(value: str) -> str:
    match = _ENHANCED_STATUS.search(value[:MAX_LINE])
    return ".".join(match.groups()) if match else ""


def _clean_address(value: str) -> str:
    """A DSN address value ("rfc822; <User@Example.org>") as "user@example.org", or ""."""
    value = value.strip()
    kind, semicolon, rest = value.partition(";")
    if semicolon and "@" not in kind:
        value = rest.strip()
    value = value.strip().strip("<>").strip().strip('"').strip()
    if value.lower().startswith(("rfc822:", "smtp:")):
        value = value.partition(":")[2].strip().strip("<>")
    local, at, domain = value.rpartition("@")
    if (not at or not local or not domain or len(value) > MAX_ADDRESS
            or any(char.isspace() or char in "<>,;()[]\\" for char in domain)
            or any(char.isspace() or char in "<>,;" for char in local)):
        return ""
    return value.lower()


def _text_address(value: str) -> str:
    return value.strip(".").lower()


def _unfolded_fields(lines: Iterable[str]) -> Iterator[tuple[str, str] | None]:
    """(name, value) per field with folded lines joined; None for a blank line (a block end).
    Lines that are neither fields nor continuations are skipped."""
    name: str | None = None
    value: list[str] = []
    for line in lines:
        if not line.strip():
            if name is not None:
                yield name, " ".join(value)
                name, value = None, []
            yield None
            continue
        if line[0] in " \t":
            if name is not None and len(value) < 20:
                value.append(line.strip())
            continue
        match = _FIELD.match(line[:MAX_LINE])
        if name is not None:
            yield name, " ".join(value)
            name, value = None, []
        if match:
            name, value = match.group(1).lower(), [match.group(2).strip()]
    if name is not None:
        yield name, " ".join(value)


def _header_block(text: str) -> list[tuple[str, str]]:
    """The fields of the header block at the start of ``text`` (up to the first blank line)."""
    fields = []
    for item in _unfolded_fields(text.split("\n", 2000)[:2000]):
        if item is None:
            if fields:
                break
            continue
        fields.append(item)
    return fields


def _ids_in(value: str) -> list[str]:
    return [f"<{found}>" for found in _MESSAGE_ID.findall(value[:MAX_LINE])]


# --- the per-recipient fields of a DSN -----------------------------------------------------------
RECIPIENT_FIELDS = frozenset({"original-recipient", "final-recipient", "action", "status",
                              "diagnostic-code", "remote-mta", "last-attempt-date",
                              "will-retry-until", "final-log-id", "x-actual-recipient",
                              "x-display-name"})


def _dsn_blocks(text: str) -> list[dict[str, str]]:
    """The per-recipient blocks of a delivery-status text, each as {field: first value}.

    Blocks end at a blank line; some MTAs leave those out, so a recipient field seen again (or
    an Original-Recipient after a complete Final-Recipient block) also starts a new block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}

    def close() -> None:
        nonlocal current
        if "final-recipient" in current or "original-recipient" in current:
            blocks.append(current)
        current = {}

    for item in _unfolded_fields(text.split("\n")):
        if item is None:
            close()
            continue
        name, value = item
        if name in RECIPIENT_FIELDS:
            if name in current or (name == "original-recipient" and "final-recipient" in current
                                   and ("action" in current or "status" in current)):
                close()
            current[name] = value
        elif name in ("reporting-mta", "received-from-mta", "arrival-date", "original-envelope-id"):
            close()  # a per-message field: whatever came before it was not a recipient
        if len(blocks) >= MAX_RECIPIENTS:
            break
    close()
    return blocks


def _recipient_of(block: dict[str, str]) -> FailedRecipient | None:
    """The failure a block reports, or None when the block is no failure (delivered etc.)."""
    address = (_clean_address(block.get("original-recipient", ""))
               or _clean_address(block.get("final-recipient", "")))
    if not address:
        return None
    action = block.get("action", "").strip().lower()
    status_field = block.get("status", "")
    diagnostic = block.get("diagnostic-code", "")
    status = _status_in(status_field) or _status_in(diagnostic)
    if action.startswith(("deliver", "relay", "expand")):
        return None
    if action.startswith("delay"):
        temporary = True
    elif action.startswith("fail"):
        temporary = False
    elif status.startswith("2"):
        return None
    else:
        temporary = status.startswith("4")
    kind, semicolon, rest = diagnostic.partition(";")
    if semicolon and " " not in kind.strip():
        diagnostic = rest
    detail = _one_line(diagnostic)
    if not detail:
        comment = status_field.partition("(")[2].rpartition(")")[0]
        detail = _one_line(comment)
    return FailedRecipient(address, status, detail, temporary)


def _delivery_status_text(data: bytes) -> str:
    text = _text(data)
    if ":" not in text[:2000] and _BASE64_TEXT.match(data[:MAX_TEXT]):
        # A delivery-status part sent base64-encoded: the email package left it encoded.
        try:
            text = _text(base64.b64decode(data[:MAX_TEXT], validate=False))
        except (binascii.Error, ValueError):
            pass
    return text


# --- text bounces --------------------------------------------------------------------------------
def _text_region(body: str) -> tuple[list[str], int]:
    """The lines of a text bounce above the copy of the original, and where that copy starts."""
    lines = body[:MAX_TEXT].split("\n", MAX_TEXT_LINES)[:MAX_TEXT_LINES]
    for number, line in enumerate(lines):
        if number and (_COPY_MARKER.search(line[:MAX_LINE]) or _HEADER_START.match(line)):
            return lines[:number], number
    return lines, len(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _detail_after(lines: list[str], number: int) -> str:
    """The diagnostic below an address line: the next lines up to a blank line or the next
    recipient at the same indentation (exim indents its diagnostics under the address)."""
    pieces = []
    indent = _indent(lines[number])
    for line in lines[number + 1: number + 7]:
        line = line[:MAX_LINE]
        if not line.strip() or (_indent(line) <= indent and (
                _QMAIL_LINE.match(line) or _LINE_ADDRESS.match(line))):
            break
        pieces.append(line.strip())
    return _one_line(" ".join(pieces))


def _text_recipients(body: str, subject: str) -> list[FailedRecipient]:
    """Failed recipients named in the text of a bounce without a delivery-status part."""
    lines, _ = _text_region(body)
    found: list[FailedRecipient] = []
    delay_subject = bool(_DELAY_SUBJECT.search(subject))
    section_left = 0
    section_temporary = False
    first_intro: bool | None = None      # the delay flag of the first failure sentence
    lone: list[tuple[str, int]] = []

    def add(address: str, number: int, temporary: bool, rest: str = "") -> None:
        rest = _one_line(rest.strip(" \t>\"':)"))
        if not _TEXT_ADDRESS.sub("", rest).strip(" <>\"'():;,."):
            rest = ""  # only the address again
        detail = rest if _REPLY_CODE.search(rest) else (_detail_after(lines, number) or rest)
        found.append(FailedRecipient(_text_address(address), _status_in(detail), detail,
                                     temporary))

    for number, full_line in enumerate(lines):
        if len(found) >= MAX_RECIPIENTS:
            break
        line = full_line[:MAX_LINE]
        intro = next(((match, temporary) for pattern, temporary in TEXT_INTROS
                      for match in [pattern.search(line)] if match), None)
        if intro is not None:
            match, section_temporary = intro
            if first_intro is None:
                first_intro = section_temporary
            section_left = SECTION_LINES
            # "... could not be delivered to: user@example.org"
            for address in _TEXT_ADDRESS.findall(line[match.end():]):
                add(address, number, section_temporary)
            continue
        temporary = section_temporary if section_left else (
            delay_subject and not (first_intro is False))
        hit = False
        for pattern, whole_line in LINE_PATTERNS:
            match = pattern.search(line)
            if match:
                address = _TEXT_ADDRESS.fullmatch(match.group(2).strip())
                if address:
                    add(address.group(1), number, temporary,
                        line if whole_line else line[match.end():])
                    hit = True
                break
        if hit:
            continue
        lone_match = _LONE_ADDRESS.match(line)
        if lone_match:
            lone.append((lone_match.group(1), number))
        if not section_left:
            continue
        section_left -= 1
        start = _LINE_ADDRESS.match(line) or _SMTP_EQUALS.search(line)
        label = (start.groupdict().get("label") or "") if start else ""
        if start and label.strip().lower() not in NOT_RECIPIENT_LABELS:
            address = start.group(start.re.groups)  # the last group, after any label
            add(address, number, section_temporary, line[start.end():])
    if not found and first_intro is not None:
        for address, number in lone[:MAX_RECIPIENTS]:
            add(address, number, first_intro)
    return found


def _quoted_ids(body: str) -> list[str]:
    """Message-IDs of original headers quoted in the text ("Message-ID: <...>" lines)."""
    ids: list[str] = []
    for line in body[:MAX_TEXT].split("\n"):
        stripped = line[:MAX_LINE].strip().lstrip(">").strip()
        name, colon, value = stripped.partition(":")
        if colon and name.strip().lower() in ID_FIELDS:
            ids.extend(_ids_in(value))
            if len(ids) >= MAX_IDS:
                break
    return ids


# --- the stage -----------------------------------------------------------------------------------
def analyse(mail: ParsedMail) -> BounceReport:
    """Which mail bounced (its Message-IDs, best first) and for whom. Never raises."""
    try:
        return _analyse(mail)
    except Exception:  # noqa: BLE001 - a bounce we cannot read is reported as naming nothing
        log.warning("could not analyse bounce %s", getattr(mail, "message_id", "?"),
                    exc_info=True)
        return EMPTY


def _analyse(mail: ParsedMail, depth: int = 0) -> BounceReport:
    ids: list[str] = []
    not_recipients: set[str] = set()
    dsn_recipients: list[FailedRecipient] = []
    dsn_seen = False
    for address in (mail.sender, *mail.to, *mail.reply_to):
        if address is not None:
            not_recipients.add(address.key)
    if mail.return_path:
        not_recipients.add(mail.return_path.strip().lower())

    # Embedded originals first: their own Message-ID is the best name of the bounced mail.
    for types in (ORIGINAL_TYPES, HEADER_TYPES):
        for part in mail.attachments:
            if part.content_type not in types:
                continue
            text = _text(part.data)
            if part.content_type in ORIGINAL_TYPES and depth < MAX_NESTING and _is_dsn(text):
                # A relay that wraps the DSN it got in a message of its own (flufl dsn_15):
                # the embedded report names the original, not its own Message-ID.
                inner = _nested(part.data, depth + 1)
                if inner is not None:
                    ids.extend(inner.original_ids)
                    if inner.recipients:
                        dsn_seen = True
                        dsn_recipients.extend(inner.recipients)
                    continue
            _read_original(text, ids, not_recipients)
    for part in mail.attachments:
        if part.content_type not in DSN_TYPES:
            continue
        text = _delivery_status_text(part.data)
        blocks = _dsn_blocks(text)
        if blocks:
            dsn_seen = True
            for block in blocks:
                recipient = _recipient_of(block)
                if recipient is not None:
                    dsn_recipients.append(recipient)
        else:
            # Some MTAs put the original's headers where the delivery status should be.
            _read_original(text, ids, not_recipients)
        for name, value in _header_block(text):
            if name in ID_FIELDS - {"message-id"}:
                ids.extend(_ids_in(value))
    embedded = len(ids)  # ids so far were read from the embedded original or report
    ids.extend(_quoted_ids(mail.body))
    for part in mail.attachments:
        if part.content_type == "text/plain":
            ids.extend(_quoted_ids(_text(part.data)))
    ids.extend(mail.in_reply_to)
    ids.extend(reversed(mail.references))

    if dsn_seen:
        recipients = dsn_recipients
    else:
        recipients = _text_recipients(mail.body, mail.subject)
        for value in mail.headers.get("x-failed-recipients", ()):
            for address in _TEXT_ADDRESS.findall(value[:MAX_LINE * 4]):
                recipients.append(FailedRecipient(_text_address(address), "", "", False))
    return BounceReport(_unique_ids(ids, embedded, mail),
                        _unique_recipients(recipients, not_recipients))


def _is_dsn(text: str) -> bool:
    """Whether a header block is that of a delivery status notification."""
    return any(name == "content-type" and "delivery-status" in value.lower()
               for name, value in _header_block(text))


def _nested(data: bytes, depth: int) -> BounceReport | None:
    try:
        return _analyse(parse(data[:MAX_NESTED_BYTES]), depth)
    except Exception:  # noqa: BLE001 - PermanentFailure or worse: read it as plain headers
        return None


def _read_original(text: str, ids: list[str], not_recipients: set[str]) -> None:
    for name, value in _header_block(text):
        if name in ID_FIELDS:
            ids.extend(_ids_in(value))
        elif name in SENDER_FIELDS:
            not_recipients.update(_text_address(found) for found in
                                  _TEXT_ADDRESS.findall(value[:MAX_LINE]))


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
