"""The attachments of a MIME tree: which parts are files, their content and a safe display name
for each, within the ParseLimits on their number and size."""

from __future__ import annotations

import email.policy
import mimetypes
import re
import unicodedata
from email.message import Message

from mailticket.mail.charsets import drop_surrogates, fix_8bit
from mailticket.mail.headertext import FOLD, HeaderText, one_line
from mailticket.mail.mime import children, is_attachment, payload_bytes, walk
from mailticket.mail.notes import UNSAFE_CHARS, Notes, short, size
from mailticket.mail.parsed import AttachmentPart, ParseLimits

__all__ = ["attachments"]

MAX_FILENAME = 200
MAX_DROPPED_NAMES = 5              # names listed when attachments over the count are dropped

_POLICY = email.policy.default
_GENERATE_POLICY = email.policy.compat32  # re-serializes parsed parts with their bytes as written
_WHITESPACE = re.compile(r"\s+")
_PATH_SEPARATORS = re.compile(r"[/\\]")
# filename=/name= whose value is not quoted (and not RFC 2231 "filename*=").
_UNQUOTED_PARAM = {
    param: re.compile(rf'(?:^|;)\s*{param}\s*=\s*(?!["\s])([^;]*)', re.IGNORECASE)
    for param in ("filename", "name")
}
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/csv": ".csv",
    "text/x-vcard": ".vcf", "text/vcard": ".vcf", "text/rfc822-headers": ".txt",
    "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png",
    "image/gif": ".gif", "application/pdf": ".pdf", "application/octet-stream": ".bin",
    "application/ms-tnef": ".dat", "application/vnd.ms-tnef": ".dat",
    "application/pgp-signature": ".asc", "application/pgp-encrypted": ".asc",
    "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m", "application/x-pkcs7-mime": ".p7m",
    "message/rfc822": ".eml", "message/global": ".eml",
}
_MIME_TYPES = mimetypes.MimeTypes()  # built-in table only: the same names on every machine


def attachments(msg: Message, skip: set[int], text: HeaderText, defects: Notes,
                limits: ParseLimits, dropped: Notes) -> tuple[AttachmentPart, ...]:
    """The attachments of ``msg``, leaving out the parts whose ids are in ``skip`` (the body's,
    those nested too deeply); what is over ``limits`` is named in ``dropped``."""
    found = _Found(text, defects, limits, dropped)
    for part, _ in walk(msg):
        if id(part) in skip:
            continue
        content_type = _attachment_type(part)
        if content_type is not None:
            found.add(part, content_type)
    return found.done()


class _Found:
    """The attachments of one message as they are met, and those over the count."""

    def __init__(self, text: HeaderText, defects: Notes, limits: ParseLimits,
                 dropped: Notes) -> None:
        self.text = text
        self.defects = defects
        self.limits = limits
        self.dropped = dropped
        self.kept: list[AttachmentPart] = []
        self.number = 0                      # attachments met so far, kept or not: default names
        self.over_count: list[str] = []      # names of the first attachments over max_attachments
        self.over_count_total = 0

    def add(self, part: Message, content_type: str) -> None:
        if len(self.kept) >= self.limits.max_attachments:
            # Not decoded: counted, and the first few named, for the note in ``dropped``.
            if _has_content(part):
                self.number += 1
                self.over_count_total += 1
                if len(self.over_count) < MAX_DROPPED_NAMES:
                    self.over_count.append(short(self._name_of(part, content_type), 60))
            return
        data = self._data(part, content_type)
        if not data:
            return  # zero-length attachments are not worth keeping (nor are empty parts)
        self.number += 1
        name = self._name_of(part, content_type)
        limit = self.limits.max_attachment_bytes
        if len(data) > limit:
            self.dropped.add(f'attachment "{name}" ({size(len(data))}) is over the '
                             f"{size(limit)} limit for one attachment: not kept")
            return
        self.kept.append(AttachmentPart(filename=name, content_type=content_type,
                                        data=bytes(data)))

    def done(self) -> tuple[AttachmentPart, ...]:
        total = self.over_count_total
        if total:
            more = ", ..." if total > len(self.over_count) else ""
            self.dropped.add(f"{total} attachment{'s' if total > 1 else ''} over the limit of "
                             f"{self.limits.max_attachments}: not kept "
                             f"({', '.join(self.over_count)}{more})")
        return tuple(self.kept)

    def _data(self, part: Message, content_type: str) -> bytes | None:
        guard = self.defects.guard
        maintype = part.get_content_maintype()
        if maintype == "multipart":
            empty: bytes | None = b""
            data = guard("multipart part", lambda: payload_bytes(part), empty)
            return data if data and data.strip() else None
        if maintype == "message":
            return guard(f"{content_type} part", lambda: _message_bytes(part), b"")
        nothing: bytes | None = b""
        return guard(f"{content_type} part", lambda: payload_bytes(part), nothing)

    def _name_of(self, part: Message, content_type: str) -> str:
        name = self.defects.guard(
            "attachment name",
            lambda: _attachment_name(part, content_type, self.number, self.text), "")
        return name or f"attachment-{self.number}{_extension(content_type)}"


def _attachment_type(part: Message) -> str | None:
    """The content type an attachment made of this part would have, or None when the part is
    no attachment (a container, an inline rendering of the text)."""
    content_type = part.get_content_type()
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        # A multipart without boundaries not used as the body: its text, if any, is kept.
        return None if part.is_multipart() else "text/plain"
    if maintype == "text" and part.get_content_subtype() in ("plain", "html") and not (
            is_attachment(part) or part.get_filename()):
        return None  # an alternative or inline rendering of the text, not a file
    return content_type


def _has_content(part: Message) -> bool:
    """Whether a part has any content, without decoding it."""
    payload = part.get_payload()
    return bool(payload.strip()) if isinstance(payload, str) else bool(payload)


def _message_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list):
        # message/rfc822 holds one message; delivery-status holds one block per recipient.
        return b"\n".join(sub.as_bytes(policy=_GENERATE_POLICY) for sub in children(part))
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


# --- names ---------------------------------------------------------------------------------------
def _extension(content_type: str) -> str:
    return (_EXTENSIONS.get(content_type)
            or (".txt" if content_type.startswith(("text/", "message/")) else None)
            or _MIME_TYPES.guess_extension(content_type, strict=False)
            or ".bin")


def _safe_filename(name: str, keep_path_as_name: bool = False) -> str:
    """A display name: no directories, no control characters, no leading dots, bounded."""
    name = UNSAFE_CHARS.sub("", unicodedata.normalize("NFC", name))
    if keep_path_as_name:
        name = _PATH_SEPARATORS.sub("-", name)
    else:
        name = _PATH_SEPARATORS.split(name)[-1]
    name = _WHITESPACE.sub(" ", name).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_FILENAME].rstrip()
    return name


def _attachment_name(part: Message, content_type: str, number: int, text: HeaderText) -> str:
    name = _safe_filename(_raw_filename(part, text))
    if name or content_type not in ("message/rfc822", "message/global"):
        return name
    # A forwarded message without a filename: name it after its subject, as RT does.
    inner = next(iter(children(part)), None) if part.is_multipart() else None
    subject = next((raw for key, raw in inner.raw_items() if key.lower() == "subject"), None) \
        if inner is not None else None
    if subject:
        name = _safe_filename(one_line(text("subject", subject), 150), keep_path_as_name=True)
    return f"{name}.eml" if name else f"message-{number}.eml"


def _raw_filename(part: Message, text: HeaderText) -> str:
    """The filename as sent: Content-Disposition filename, else Content-Type name, decoded
    (RFC 2231, encoded words, raw 8-bit UTF-8)."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = next((raw for key, raw in part.raw_items() if key.lower() == header), None)
        if value is None:
            continue
        found = _param(header, param, fix_8bit(FOLD.sub("", value), text.charset_guess))
        if found:
            found = drop_surrogates(str(found))
            return text(header, found) if "=?" in found else found
    legacy = part.get_filename()  # the legacy path copes with broken RFC 2231 syntax
    if legacy:
        legacy = fix_8bit(str(legacy), text.charset_guess)
        return text("filename", legacy) if "=?" in legacy else legacy
    return ""


def _param(header: str, param: str, value: str) -> object:
    """The ``param`` parameter of a Content-Disposition or Content-Type value, or None."""
    unquoted = _UNQUOTED_PARAM[param].search(value)
    if unquoted and unquoted.group(1).strip():
        # Not valid MIME (a token cannot hold spaces or "=?"), but common: "name=a b.pdf",
        # "name==?utf-8?B?...?=". The header parser would keep only the first word.
        return unquoted.group(1).strip()
    try:
        return _POLICY.header_factory(header, value).params.get(param)
    except Exception:  # noqa: BLE001 - the legacy parser below copes with more
        return None
