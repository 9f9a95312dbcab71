"""The raw bytes before the email package sees them: what may stand before the header block (a
BOM, an mbox "From " line, garbage) is removed, and two header-block faults are mended."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mailticket.mail.notes import Notes

__all__ = ["strip_preamble"]

# Lines we look through for the real header block when a message starts with garbage.
GARBAGE_SCAN_LINES = 40

_UTF8_BOM = b"\xef\xbb\xbf"
# Header field names are printable ASCII except ":" (RFC 5322 section 3.6.8).
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_CONTINUATION_LINE = re.compile(rb"[ \t]+\S")
_MBOX_FROM = re.compile(rb"From (?![ \t]*:)")  # not "From  :" (RFC 2822 obsolete syntax)
_OBSOLETE_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n|\r\r")
# Header names that show a line really is in the header block (for the folding repair).
_KNOWN_HEADER = re.compile(
    rb"(?i)(?:from|to|cc|subject|date|message-id|received|return-path|mime-version|reply-to|"
    rb"references|in-reply-to|sender|content-[a-z-]+|x-[a-z0-9-]+)[ \t]*:")


def _lines(data: bytes, start: int, count: int) -> Iterator[tuple[int, bytes]]:
    """Up to ``count`` (offset, line) pairs from ``start``, without copying the whole input."""
    pos = start
    for _ in range(count):
        if pos >= len(data):
            return
        end = data.find(b"\n", pos)
        cr = data.find(b"\r", pos, end if end >= 0 else len(data))
        if cr >= 0 and (end < 0 or cr < end):
            end = cr + 1 if data[cr + 1:cr + 2] == b"\n" else cr
        stop = len(data) if end < 0 else end + 1
        yield pos, data[pos:stop].rstrip(b"\r\n")
        pos = stop


def strip_preamble(raw: bytes, notes: Notes) -> bytes:
    """Remove what may stand before the header block: a BOM, an mbox "From " line, garbage."""
    data = raw
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
        notes.add("the message starts with a UTF-8 byte order mark")
    if _MBOX_FROM.match(data):
        # An mbox envelope line; the email package would take it too, but not after a BOM.
        newline = data.find(b"\n")
        data = b"" if newline < 0 else data[newline + 1:]
    first = next(_lines(data, 0, 1), None)
    if first is None or _HEADER_LINE.match(first[1]):
        return _repair_header_block(data, notes)
    # The first line is not a header: look a little further for a block that starts like one
    # (a header line followed by another header line or a continuation line).
    candidates = list(_lines(data, 0, GARBAGE_SCAN_LINES + 1))
    for (offset, line), (_, following) in zip(candidates, candidates[1:]):
        if offset and _HEADER_LINE.match(line) and (
                _HEADER_LINE.match(following) or _CONTINUATION_LINE.match(following)):
            notes.add(f"skipped {offset} bytes before the header block")
            return _repair_header_block(data[offset:], notes)
    return data


def _repair_header_block(data: bytes, notes: Notes) -> bytes:
    """Mend two header-block faults the email package would end the headers at, losing From
    and Subject: "Subject  : x" (RFC 2822 obsolete syntax) and continuation lines written
    without their leading white space. Only the header block is copied, and only when needed."""
    end = _HEADER_END.search(data)
    if end is None:
        return data  # no blank line: we cannot tell where the headers end, so do not guess
    head = data[:end.start()]
    repaired = head
    if _OBSOLETE_NAME.search(head):
        notes.add("obsolete header syntax: white space before a colon")
        repaired = _OBSOLETE_NAME.sub(rb"\1:", repaired)
    lines = repaired.split(b"\n")
    last_known = max((i for i, line in enumerate(lines) if _KNOWN_HEADER.match(line)), default=0)
    stray = [i for i in range(1, last_known)
             if not _HEADER_LINE.match(lines[i]) and lines[i][:1] not in (b" ", b"\t")]
    if stray:
        notes.add(f"{len(stray)} header line(s) without leading white space joined to the "
                  "header above")
        for i in stray:
            lines[i] = b" " + lines[i]
        repaired = b"\n".join(lines)
    return data if repaired is head else repaired + data[end.start():]
