"""The structured header fields as values: address lists (From, To, Cc, Reply-To, Sender),
Message-IDs and their lists, Return-Path and Date."""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
from datetime import UTC, datetime

from mailticket.mail.charsets import drop_surrogates, fix_8bit
from mailticket.mail.headertext import FOLD, HeaderText, one_line
from mailticket.mail.notes import UNSAFE_CHARS, Notes, short
from mailticket.mail.parsed import Address

__all__ = ["addresses", "date", "id_list", "message_id", "return_path"]

MAX_IDS = 100                      # In-Reply-To / References entries kept
MAX_MESSAGE_ID = 250
MAX_NAME = 256                     # display names
# The email package's address parser is quadratic in the length of a value (400 KB of To:
# takes 30 s): longer address lists go through the linear legacy parser instead.
MAX_STRUCTURED_HEADER = 8_192

_POLICY = email.policy.default
_WHITESPACE = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>]*)>")
_NULL_PATH = re.compile(r"^\s*<\s*>")
_ANGLE_ADDR = re.compile(r"<([^<>]*)>")
_ADDRESS_AS_NAME = re.compile(r'(^|,)\s*([^\s<>",;:]+@[^\s<>",;:]+)\s*<')
_SIMPLE_MAILBOX = re.compile(
    r"\s*(?:([A-Za-z0-9][A-Za-z0-9 .'-]*?)\s*<([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>"
    r"|<([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>|([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+))\s*(?:,|$)")


# --- addresses -----------------------------------------------------------------------------------
def addresses(header: str, raws: tuple[str, ...], text: HeaderText,
              notes: Notes) -> tuple[Address, ...]:
    """The usable addresses of every ``header`` field in ``raws``, in order."""
    found: list[Address] = []
    for raw in raws:
        for name, addr in _pairs(header, fix_8bit(FOLD.sub("", raw), text.charset_guess),
                                 text, notes):
            address = _make_address(name, addr, header, notes)
            if address is not None:
                found.append(address)
    return tuple(found)


def _pairs(header: str, value: str, text: HeaderText, notes: Notes) -> list[tuple[str, str]]:
    """(display name, address) pairs of one field: the fast path, else the header registry's
    parser, else (long or unreadable values) the legacy parser."""
    pairs = _simple_pairs(value)
    if pairs is None and len(value) <= MAX_STRUCTURED_HEADER:
        pairs = notes.guard(header, lambda: _structured_pairs(header, value, text), None)
    if pairs is not None:
        return pairs
    # The legacy parser reads encoded words as written, so ":", "," or "<" inside one would
    # split the list there ("=?utf-8?q?Ann=0D=0ABcc:_evil@x?= <ann@x>" gave the mailbox
    # "_evil@x?="): it gets them re-encoded in base64, which has none.
    safe = notes.guard(header, lambda: text.normalise_words(header, value), "")
    no_pairs: list[tuple[str, str]] = []
    return [(text(header, name), addr) for name, addr in
            notes.guard(header, lambda: email.utils.getaddresses([safe]), no_pairs)]


def _make_address(name: str, addr: str, header: str, notes: Notes) -> Address | None:
    addr = UNSAFE_CHARS.sub("", addr).strip()
    if not addr or addr == "<>":
        return None
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in domain):
        notes.add(f"{header}: unusable address {short(addr, 60)!r} skipped")
        return None
    return Address(name=one_line(name, MAX_NAME), address=f"{local}@{domain.lower()}")


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    """The common case, ``Ann User <ann@example.org>, bob@example.org``, without the header
    registry's full RFC 5322 parser (the costliest step of parsing an ordinary mail). Anything
    with quotes, comments, groups, encoded words or non-ASCII returns None: the full parser."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        match = _SIMPLE_MAILBOX.match(value, position)
        if match is None or match.end() == position:
            return None
        name, named, bracketed, bare = match.groups()
        pairs.append((" ".join(name.split()) if name else "", named or bracketed or bare))
        position = match.end()
    return pairs or None


def _comment_after(value: str, addr: str) -> str:
    """"jdoe@example.net (John Doe)": the old way of giving a name, as a comment."""
    at = value.find(addr)
    if at < 0:
        return ""
    rest = value[at + len(addr):].lstrip()
    close = rest.find(")")
    if not rest.startswith("(") or close < 0:
        return ""
    return rest[1:close].strip()


def _structured_pairs(header: str, value: str, text: HeaderText) -> list[tuple[str, str]]:
    # "alice@example.com <bob@example.com>": an unquoted address as display name; the parser
    # would take alice, but the mailbox is bob. Quote the name first.
    value = _ADDRESS_AS_NAME.sub(r'\1"\2" <', text.normalise_words(header, value))
    parsed = _POLICY.header_factory(header, value)
    pairs = []
    for group in parsed.groups:  # groups, not .addresses: flattening is done here, safely
        for item in group.addresses:
            if not item.username:
                continue  # "<>", or a group name that the parser took for an address
            local, name = item.username, drop_surrogates(item.display_name or "")
            if any(c.isspace() for c in local) and f'"{local}"' not in value:
                # "Test test@example.com": a name and an address without angle brackets.
                *words, local = local.split()
                name = name or " ".join(words)
                addr = f"{local}@{item.domain}" if item.domain else local
            else:
                addr = item.addr_spec if item.domain else local
            pairs.append((name or _comment_after(value, addr), addr))
    return pairs


# --- identifiers ---------------------------------------------------------------------------------
def message_id(raw_value: str | None, raw: bytes) -> tuple[str, bool]:
    """The Message-ID "<...>", and whether it was synthesized (none, or too long to keep):
    then from a digest of the value, or of the whole message ``raw``."""
    if raw_value is not None:
        value = fix_8bit(FOLD.sub("", raw_value), None)
        match = _MSGID.search(value)
        inner = match.group(1) if match else value
        inner = UNSAFE_CHARS.sub("", _WHITESPACE.sub("", inner))
        if inner:
            msgid = f"<{inner}>"
            if len(msgid) <= MAX_MESSAGE_ID:
                return msgid, False
            digest = hashlib.sha256(msgid.encode("utf-8", "surrogatepass")).hexdigest()[:40]
            return f"<{digest}@long-id.invalid>", True
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@mailticket.invalid>", True


def id_list(raws: tuple[str, ...], keep_root: bool) -> tuple[str, ...]:
    """The Message-IDs of In-Reply-To or References fields, unique, at most MAX_IDS."""
    ids: list[str] = []
    seen: set[str] = set()
    for raw in raws:
        for match in _MSGID.finditer(fix_8bit(FOLD.sub("", raw), None)):
            inner = UNSAFE_CHARS.sub("", _WHITESPACE.sub("", match.group(1)))
            msgid = f"<{inner}>"
            if inner and len(msgid) <= MAX_MESSAGE_ID and msgid not in seen:
                seen.add(msgid)
                ids.append(msgid)
    if len(ids) > MAX_IDS:
        # References lists the thread's root first and the parent last; keep both ends.
        ids = ids[:1] + ids[-(MAX_IDS - 1):] if keep_root else ids[:MAX_IDS]
    return tuple(ids)


def return_path(raw_value: str | None) -> str | None:
    """The Return-Path address; "" for the null path <>, None when there is no field."""
    if raw_value is None:
        return None
    value = UNSAFE_CHARS.sub("", fix_8bit(FOLD.sub("", raw_value), None)).strip()
    if not value or _NULL_PATH.match(value):
        return ""
    match = _ANGLE_ADDR.search(value)
    return (match.group(1) if match else value).strip()


def date(raw_value: str | None, notes: Notes) -> datetime | None:
    """The Date as naive UTC, or None when absent or unreadable (said in ``notes``)."""
    if raw_value is None:
        return None
    value = fix_8bit(FOLD.sub(" ", raw_value), None).strip()
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": zone unknown; the best guess is UTC
            return parsed
        return parsed.astimezone(UTC).replace(tzinfo=None)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, OverflowError on odd dates
        notes.add(f"Date: unparseable {short(value, 60)!r}")
        return None
