"""Templated outgoing mail: Jinja2 templates -> subject, text and HTML parts -> RFC 5322 bytes.

Templates are looked up in the admin's override directory first, then in the shipped
``templates/``. A kind needs ``KIND.subject.j2`` and ``KIND.txt.j2``; ``KIND.html.j2`` adds an
HTML part, rendered with autoescaping. Undefined variables are errors, never empty text. What a
sender wrote only ever reaches a template as a variable's value: it is never itself compiled.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import encode_rfc2231, format_datetime, formataddr
from pathlib import Path
from typing import Any

import jinja2

from mailticket.errors import ConfigError
from mailticket.mail.kinds import KINDS, sample_context

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def shipped_templates() -> Path:
    """The templates that ship with mailticket (source checkout, or the installed data files)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "templates",
        Path(sys.prefix) / "share" / "mailticket" / "templates",
    ]
    for candidate in candidates:
        if (candidate / "ack.txt.j2").is_file():
            return candidate
    return candidates[0]


def one_line(text: str) -> str:
    """Header-safe text: control characters (CR, LF, NUL...) become single spaces."""
    return _CONTROL.sub(" ", text).strip()


def ticket_tag(prefix: str, number: int) -> str:
    return f"[{prefix} #{number}]"


def subject_with_tag(subject: str, tag: str) -> str:
    """The subject always carries the ticket tag so that replies route back, even when an
    admin's template leaves it out."""
    if tag and tag not in subject:
        subject = f"{tag} {subject}"
    return one_line(subject)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class Recipient:
    name: str
    address: str


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class Composer:
    """Renders the mail of each kind; built once at start-up and checked there."""

    def __init__(self, override_dir: Path | None = None):
        search = [str(override_dir)] if override_dir else []
        search.append(str(shipped_templates()))
        self.search_path = search
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            autoescape=_autoescape,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def check(self) -> None:
        """Load, compile and render every template with sample values; raise ConfigError
        naming each problem, so a template that would fail on real mail fails here instead."""
        problems = []
        for kind in KINDS:
            for suffix, required in (("subject", True), ("txt", True), ("html", False)):
                name = f"{kind}.{suffix}.j2"
                try:
                    self.env.get_template(name)
                except jinja2.TemplateNotFound:
                    if required:
                        problems.append(f"templates: {name} not found in {', '.join(self.search_path)}")
                except jinja2.TemplateSyntaxError as exc:
                    problems.append(f"templates: {exc.filename or name}, line {exc.lineno}: {exc.message}")
        if problems:
            raise ConfigError(problems)
        for kind in KINDS:
            try:
                self.render(kind, sample_context(kind))
            except jinja2.TemplateError as exc:
                problems.append(f"templates: {kind}: cannot be rendered: {exc}")
        if problems:
            raise ConfigError(problems)

    def render(self, kind: str, context: dict[str, Any]) -> Rendered:
        subject = self.env.get_template(f"{kind}.subject.j2").render(context)
        text_template = self.env.get_template(f"{kind}.txt.j2")
        text = text_template.render(context)
        html_template = self._html_beside(kind, text_template)
        html = html_template.render(context) if html_template is not None else None
        return Rendered(subject=one_line(subject), text=text, html=html)

    def _html_beside(self, kind: str, text_template: jinja2.Template) -> jinja2.Template | None:
        """The HTML template of a kind, only from the directory its text template came from:
        an admin who rewrote the text must not have the shipped wording sent as HTML beside it
        (most clients show the HTML part)."""
        try:
            html_template = self.env.get_template(f"{kind}.html.j2")
        except jinja2.TemplateNotFound:
            return None
        if Path(html_template.filename or "").parent != Path(text_template.filename or "").parent:
            return None
        return html_template


def deliverable(address: str) -> str:
    """The address as it goes on the wire: an internationalised domain in IDNA form; a
    non-ASCII local part stays UTF-8 (RFC 6531/6532). Raises ValueError for what is no address
    at all, or could smuggle a line break into a header."""
    local, _, domain = address.rpartition("@")
    if (not local or not domain or one_line(address) != address or "<" in address
            or ">" in address or (" " in address and not local.startswith('"'))):
        raise ValueError(f"not a deliverable address: {address!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")  # exämple.de -> xn--exmple-cua.de
        except UnicodeError:
            pass  # left as UTF-8, which a relay with SMTPUTF8 takes
    return f"{local}@{domain}"


def _address(recipient: Recipient) -> str:
    """``Name <local@domain>``, the name quoted or RFC 2047-encoded as needed."""
    address = deliverable(recipient.address)
    if address.isascii():
        return formataddr((one_line(recipient.name), address), charset="utf-8")
    # formataddr refuses a non-ASCII address; the name part is encoded the same way.
    name = formataddr((one_line(recipient.name), "x@x"), charset="utf-8")[:-len("<x@x>")]
    return f"{name}<{address}>"


def _encoded(text: str) -> str:
    """A header value: plain when it is short ASCII, else RFC 2047 words folded at 78."""
    if text.isascii() and len(text) < 900:
        return text
    return Header(text, "utf-8", maxlinelen=78, header_name="Subject").encode(linesep="\r\n")


def _text_part(content: str, subtype: str) -> list[bytes]:
    body = "\n".join(content.splitlines()).encode("utf-8")
    encoded = binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")
    return [f'Content-Type: text/{subtype}; charset="utf-8"'.encode(),
            b"Content-Transfer-Encoding: quoted-printable", b"", encoded]


def build_message(
    rendered: Rendered,
    *,
    sender: Recipient,
    to: Iterable[Recipient],
    cc: Iterable[Recipient] = (),
    message_id: str,
    tag: str,
    ticket: int | None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    automated: bool = True,
    date: datetime | None = None,
    reply_to: Recipient | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """The whole message, ready for the relay (CRLF line ends).

    Written out directly rather than through EmailMessage: the header registry re-parses every
    header we set, which made composing the costliest step of taking a mail in.
    """
    headers = [
        ("From", _address(sender)),
        ("To", ",\r\n ".join(_address(r) for r in to)),
    ]
    cc = list(cc)
    if cc:
        headers.append(("Cc", ",\r\n ".join(_address(r) for r in cc)))
    if reply_to is not None:
        headers.append(("Reply-To", _address(reply_to)))
    headers += [
        ("Subject", _encoded(subject_with_tag(rendered.subject, tag))),
        ("Date", format_datetime(date or datetime.now(UTC))),
        ("Message-ID", one_line(message_id)),
    ]
    # Message-IDs are ASCII by definition; a broken non-ASCII one is better left out.
    refs = [one_line(r) for r in references if r and r.isascii()]
    if in_reply_to and not in_reply_to.isascii():
        in_reply_to = None
    if in_reply_to:
        headers.append(("In-Reply-To", one_line(in_reply_to)))
        if in_reply_to not in refs:
            refs.append(one_line(in_reply_to))
    if refs:
        headers.append(("References", "\r\n ".join(refs[-20:])))
    if automated:
        headers += [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")]
    headers.append(("X-Loop", one_line(sender.address)))
    if ticket is not None:
        headers.append(("X-Mailticket-Ticket", str(ticket)))
    headers.append(("MIME-Version", "1.0"))

    # UTF-8 only where an address has a non-ASCII local part (RFC 6532; the relay then needs
    # SMTPUTF8); names and subjects are RFC 2047-encoded above.
    lines = [f"{name}: {value}".encode() for name, value in headers]
    # "=_" never occurs in quoted-printable or base64 output, so no boundary can clash with it.
    mixed = f"=_mailticket_{secrets.token_hex(12)}" if attachments else None
    if mixed:
        lines += [f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"'.encode(), b"",
                  f"--{mixed}".encode()]
    if rendered.html is None:
        lines += _text_part(rendered.text, "plain")
    else:
        boundary = f"=_mailticket_{secrets.token_hex(12)}"
        lines += [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"'.encode(), b""]
        for content, subtype in ((rendered.text, "plain"), (rendered.html, "html")):
            lines += [f"--{boundary}".encode()] + _text_part(content, subtype)
        lines.append(f"--{boundary}--".encode())
    if mixed:
        for filename, content_type, data in attachments:
            lines += [f"--{mixed}".encode()] + _attachment_part(filename, content_type, data)
        lines.append(f"--{mixed}--".encode())
    return b"\r\n".join(lines) + b"\r\n"


_TOKEN_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def _attachment_part(filename: str, content_type: str, data: bytes) -> list[bytes]:
    """A file, base64-encoded; the name as a sender wrote it can inject nothing: control
    characters, quotes and backslashes go, and a non-ASCII name is RFC 2231-encoded."""
    name = one_line(filename).replace('"', "'").replace("\\", "_")[:200] or "attachment"
    content_type = content_type.lower() if _TOKEN_TYPE.match(content_type.lower()) \
        else "application/octet-stream"
    if name.isascii():
        disposition = f'attachment; filename="{name}"'
    else:
        disposition = f"attachment; filename*={encode_rfc2231(name, 'utf-8')}"
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    return [f"Content-Type: {content_type}".encode(), b"Content-Transfer-Encoding: base64",
            f"Content-Disposition: {disposition}".encode(), b"", encoded]
