"""Raw bytes -> ParsedMail: the parse stage, the one place where untrusted mail becomes values.

``parse`` never decodes the raw bytes before the email package sees them, and it degrades
instead of raising: whatever could not be read is recorded, in words, in ``ParsedMail.defects``;
whatever was left out on purpose, because it was over one of the ``ParseLimits``, in
``ParsedMail.dropped``. The only refusal is a message with no header at all
(``PermanentFailure``). Everything is bounded: subjects, bodies, attachments and reference lists
have caps, the MIME tree has a depth and a part budget, and no step is quadratic, so a hostile
25 MB message costs seconds.

The steps, each in its module: ``preamble`` (bytes before the header block), ``mime`` (the tree,
with compat32 header handling), ``headertext`` and ``charsets`` (header text), ``fields``
(addresses, Message-IDs, dates), ``body`` and ``attachments``; the values are in ``parsed``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from types import MappingProxyType

from mailticket.errors import PermanentFailure
from mailticket.mail import fields
from mailticket.mail.attachments import attachments
from mailticket.mail.body import MAX_BODY, choose_body, normalise_text
from mailticket.mail.charsets import drop_surrogates
from mailticket.mail.headertext import HeaderText, one_line
from mailticket.mail.mime import Budget, charset_guess, package_defects, parse_tree, walk
from mailticket.mail.notes import Notes
from mailticket.mail.parsed import Address, AttachmentPart, ParsedMail, ParseLimits
from mailticket.mail.preamble import strip_preamble

__all__ = ["Address", "AttachmentPart", "ParseLimits", "ParsedMail", "parse"]

MAX_SUBJECT = 1000

_NON_SPACE = re.compile(rb"\S")


def parse(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMail:
    """Parse one message. Raises PermanentFailure only when there is no header at all.

    What is over one of ``limits`` is left out, and each thing left out is named in
    ``ParsedMail.dropped``: the message itself always parses.
    """
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"parse() takes bytes, not {type(raw).__name__}")
    defects, dropped = Notes(), Notes()
    msg, headers_only, too_deep = _tree(raw, limits, defects, dropped)
    heads = _read_headers(msg, defects)
    text = heads.text
    message_id, synthesized = fields.message_id(heads.first("message-id"), raw)
    senders = (fields.addresses("from", heads.all("from"), text, defects)
               or fields.addresses("sender", heads.all("sender"), text, defects))
    subject = _subject(heads.first("subject"), text, defects)
    content_type, report_type = _content_type(msg, defects)
    files: tuple[AttachmentPart, ...]
    if headers_only:
        body, files = _unparsed_body(msg), ()
    else:
        body, files = _content(msg, too_deep, text, defects, limits, dropped)
    # The fields below are read last: their defects come after those of the body, as always.
    return ParsedMail(
        message_id=message_id, message_id_synthesized=synthesized,
        sender=senders[0] if senders else None,
        reply_to=fields.addresses("reply-to", heads.all("reply-to"), text, defects),
        to=fields.addresses("to", heads.all("to"), text, defects),
        cc=fields.addresses("cc", heads.all("cc"), text, defects),
        subject=subject, date=fields.date(heads.first("date"), defects),
        in_reply_to=fields.id_list(heads.all("in-reply-to"), keep_root=False),
        references=fields.id_list(heads.all("references"), keep_root=True),
        body=body, attachments=files, headers=heads.decoded,
        return_path=fields.return_path(heads.first("return-path")),
        content_type=content_type, report_type=report_type,
        defects=tuple(defects.items), size=len(raw), dropped=tuple(dropped.items),
    )


def _tree(raw: bytes, limits: ParseLimits, defects: Notes,
          dropped: Notes) -> tuple[Message, bool, set[int]]:
    """The MIME tree, whether only its headers were parsed, and the ids of the parts nested
    too deeply to read."""
    data = strip_preamble(raw, defects)
    if not _NON_SPACE.search(data):
        raise PermanentFailure("empty message: no header and no body")
    budget = Budget(limits, dropped, defects)
    msg, headers_only = parse_tree(data, defects, budget)
    return msg, headers_only, budget.parsed()


@dataclass(frozen=True)
class _Headers:
    """The top-level header fields by lower-case name: as written, and decoded."""
    raw: Mapping[str, tuple[str, ...]]
    decoded: Mapping[str, tuple[str, ...]]
    text: HeaderText

    def all(self, name: str) -> tuple[str, ...]:
        return self.raw.get(name, ())

    def first(self, name: str) -> str | None:
        values = self.raw.get(name)
        return values[0] if values else None


def _read_headers(msg: Message, defects: Notes) -> _Headers:
    raw_headers = [(name.lower(), value) for name, value in msg.raw_items()]
    if not raw_headers:
        raise PermanentFailure("no header found: the data does not start with a mail header")
    guess = defects.guard("Content-Type", lambda: charset_guess(msg), None)
    text = HeaderText(guess, defects)
    grouped: dict[str, list[str]] = {}
    decoded: dict[str, list[str]] = {}
    for name, value in raw_headers:
        grouped.setdefault(name, []).append(value)
        value_text = defects.guard(name, lambda: text(name, value), value)
        decoded.setdefault(name, []).append(value_text.replace("\x00", ""))
    return _Headers(raw={name: tuple(values) for name, values in grouped.items()},
                    decoded=MappingProxyType({name: tuple(values)
                                              for name, values in decoded.items()}),
                    text=text)


def _subject(raw_value: str | None, text: HeaderText, defects: Notes) -> str:
    if raw_value is None:
        return ""
    return one_line(defects.guard("subject", lambda: text("subject", raw_value), raw_value),
                    MAX_SUBJECT)


def _content_type(msg: Message, defects: Notes) -> tuple[str, str | None]:
    """The top-level content type, and the report-type parameter of a multipart."""
    content_type = defects.guard("Content-Type", msg.get_content_type, "text/plain")
    if not content_type.startswith("multipart/"):
        return content_type, None
    # Also read on other multipart types: some MTAs send multipart/mixed with report-type.
    param = defects.guard("Content-Type", lambda: msg.get_param("report-type"), None)
    if isinstance(param, str) and param.strip():
        return content_type, param.strip().lower()
    return content_type, None


def _unparsed_body(msg: Message) -> str:
    """The body of a message whose MIME structure was given up: the text after the headers."""
    payload = msg.get_payload()
    body = normalise_text(drop_surrogates(payload if isinstance(payload, str) else ""))
    return body[:MAX_BODY]


def _content(msg: Message, too_deep: set[int], text: HeaderText, defects: Notes,
             limits: ParseLimits, dropped: Notes) -> tuple[str, tuple[AttachmentPart, ...]]:
    """The body and the attachments of a parsed tree, then the email package's defects."""
    parents = {id(part): parent for part, parent in walk(msg)}
    no_body: tuple[str, set[int]] = ("", set())
    body, body_parts = defects.guard("body", lambda: choose_body(msg, parents, defects), no_body)
    no_files: tuple[AttachmentPart, ...] = ()
    files = defects.guard(
        "attachments",
        lambda: attachments(msg, body_parts | too_deep, text, defects, limits, dropped), no_files)
    package_defects(msg, defects)
    return body, files
