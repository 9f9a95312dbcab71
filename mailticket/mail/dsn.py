"""Standard delivery status notifications (RFC 3464): the per-recipient fields of a
``message/delivery-status`` part as FailedRecipient values, and the header blocks a bounce
embeds or quotes."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["DSN_TYPES", "HEADER_TYPES", "ID_FIELDS", "MAX_IDS", "MAX_LINE", "MAX_RECIPIENTS",
           "MAX_TEXT", "ORIGINAL_TYPES", "FailedRecipient", "delivery_status_text", "dsn_blocks",
           "header_block", "ids_in", "one_line", "part_text", "recipient_of", "status_in"]


@dataclass(frozen=True)
class FailedRecipient:
    address: str        # lower-cased address the mail did not reach
    status: str         # enhanced status code "5.1.1" when known, else ""
    detail: str         # the diagnostic, one line, <= MAX_DETAIL characters, "" if none
    temporary: bool     # a delay warning (Action: delayed, 4.x.x), not a final failure


# --- limits --------------------------------------------------------------------------------------
MAX_TEXT = 64 * 1024        # characters of any body or part text that are read
MAX_LINE = 1000             # characters of one line that are searched
MAX_DETAIL = 300
MAX_RECIPIENTS = 100
MAX_IDS = 10                # Message-IDs of the original reported, and read from a text
MAX_ADDRESS = 254

# --- part types ----------------------------------------------------------------------------------
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global"})
HEADER_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers",
                          "message/global-headers", "text/rfc822-header"})

# Header fields, in a header block or quoted in text, that hold the original's Message-ID.
ID_FIELDS = frozenset({"message-id", "x-original-message-id", "original-message-id",
                       "x-ms-exchange-original-message-id"})
# The per-recipient fields of a delivery-status part (RFC 3464 section 2.3, and two X- ones).
RECIPIENT_FIELDS = frozenset({"original-recipient", "final-recipient", "action", "status",
                              "diagnostic-code", "remote-mta", "last-attempt-date",
                              "will-retry-until", "final-log-id", "x-actual-recipient",
                              "x-display-name"})
# Per-message fields: whatever came before one of them was not a recipient.
_MESSAGE_FIELDS = ("reporting-mta", "received-from-mta", "arrival-date", "original-envelope-id")

_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,248})>")
_FIELD = re.compile(r"^([!-9;-~]{1,80})[ \t]*:[ \t]*(.*)$")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


# --- small helpers -------------------------------------------------------------------------------
def part_text(data: bytes) -> str:
    """Part bytes as text: UTF-8 where it is, Latin-1 for the rest (fields we read are ASCII)."""
    data = data[:MAX_TEXT]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def one_line(value: str, limit: int = MAX_DETAIL) -> str:
    """A diagnostic on one line, without control characters, at most ``limit`` long."""
    value = _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()
    return value if len(value) <= limit else value[: limit - 3].rstrip() + "..."


def status_in(value: str) -> str:
    """The first enhanced status code ("5.1.1") in ``value``, or ""."""
    match = _ENHANCED_STATUS.search(value[:MAX_LINE])
    return ".".join(match.groups()) if match else ""


def ids_in(value: str) -> list[str]:
    """The Message-IDs "<...>" in a field value."""
    return [f"<{found}>" for found in _MESSAGE_ID.findall(value[:MAX_LINE])]


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


# --- header fields -------------------------------------------------------------------------------
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


def header_block(text: str) -> list[tuple[str, str]]:
    """The fields of the header block at the start of ``text`` (up to the first blank line)."""
    fields: list[tuple[str, str]] = []
    for item in _unfolded_fields(text.split("\n", 2000)[:2000]):
        if item is None:
            if fields:
                break
            continue
        fields.append(item)
    return fields


# --- the per-recipient fields of a DSN -----------------------------------------------------------
def delivery_status_text(data: bytes) -> str:
    """The text of a delivery-status part, decoded from base64 when it was sent so."""
    text = part_text(data)
    if ":" not in text[:2000] and _BASE64_TEXT.match(data[:MAX_TEXT]):
        # A delivery-status part sent base64-encoded: the email package left it encoded.
        try:
            text = part_text(base64.b64decode(data[:MAX_TEXT], validate=False))
        except (binascii.Error, ValueError):
            pass
    return text


def dsn_blocks(text: str) -> list[dict[str, str]]:
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
        elif name in _MESSAGE_FIELDS:
            close()
        if len(blocks) >= MAX_RECIPIENTS:
            break
    close()
    return blocks


def recipient_of(block: dict[str, str]) -> FailedRecipient | None:
    """The failure a block reports, or None when the block is no failure (delivered etc.)."""
    address = (_clean_address(block.get("original-recipient", ""))
               or _clean_address(block.get("final-recipient", "")))
    if not address:
        return None
    status_field = block.get("status", "")
    diagnostic = block.get("diagnostic-code", "")
    status = status_in(status_field) or status_in(diagnostic)
    temporary = _temporary(block.get("action", "").strip().lower(), status)
    if temporary is None:
        return None
    kind, semicolon, rest = diagnostic.partition(";")
    if semicolon and " " not in kind.strip():
        diagnostic = rest
    detail = one_line(diagnostic)
    if not detail:
        comment = status_field.partition("(")[2].rpartition(")")[0]
        detail = one_line(comment)
    return FailedRecipient(address, status, detail, temporary)


def _temporary(action: str, status: str) -> bool | None:
    """Whether the Action (else the status) says delayed; None when it is no failure."""
    if action.startswith(("deliver", "relay", "expand")):
        return None
    if action.startswith("delay"):
        return True
    if action.startswith("fail"):
        return False
    if status.startswith("2"):
        return None
    return status.startswith("4")
