"""Templated outgoing mail: Jinja2 templates -> subject, text and HTML parts -> RFC 5322 bytes.

Templates are looked up in the admin's override directory first, then in the shipped
``templates/``. A kind needs ``KIND.subject.j2`` and ``KIND.txt.j2``; ``KIND.html.j2`` adds an
HTML part, rendered with autoescaping. Undefined variables are errors, never empty text. What a
sender wrote only ever reaches a template as a variable's value: it is never itself compiled.
"""

from __future__ import annotations

import binascii
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Iterable

import jinja2

from mailticket.errors import ConfigError

KINDS = ("ack", "reply", "closed", "reopened")

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


def new_message_id(domain: str, ticket: int | None) -> str:
    token = secrets.token_hex(8)
    middle = f"t{ticket}." if ticket is not None else ""
    return f"<mailticket.{middle}{token}@{domain}>"


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
    return bool(name) and name.endswith(".html.j2")


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
        """Load and compile every template we will need; raise ConfigError naming each problem."""
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

    def render(self, kind: str, context: dict[str, Any]) -> Rendered:
        subject = self.env.get_template(f"{kind}.subject.j2").render(context)
        text = self.env.get_template(f"{kind}.txt.j2").render(context)
        try:
            html_template = self.env.get_template(f"{kind}.html.j2")
        except jinja2.TemplateNotFound:
            html = None
        else:
            html = html_template.render(context)
        return Rendered(subject=one_line(subject), text=text, html=html)


def _address(recipient: Recipient) -> str:
    """``Name <local@domain>``: the name quoted or RFC 2047-encoded as needed, the local part
    quoted when it must be; control characters cannot survive into the header."""
    addr_spec = recipient.address
    local, _, domain = addr_spec.rpartition("@")
    if (not local or not domain or one_line(addr_spec) != addr_spec or "<" in addr_spec
            or ">" in addr_spec or (" " in addr_spec and not local.startswith('"'))):
        raise ValueError(f"not a deliverable address: {recipient.address!r}")
    return formataddr((one_line(recipient.name), addr_spec), charset="utf-8")


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
    headers += [
        ("Subject", _encoded(subject_with_tag(rendered.subject, tag))),
        ("Date", format_datetime(date or datetime.now(timezone.utc))),
        ("Message-ID", one_line(message_id)),
    ]
    refs = [one_line(r) for r in references if r]
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

    lines = [f"{name}: {value}".encode("ascii") for name, value in headers]
    if rendered.html is None:
        lines += _text_part(rendered.text, "plain")
    else:
        # "=_" never occurs in quoted-printable output, so the boundary cannot clash with it.
        boundary = f"=_mailticket_{secrets.token_hex(12)}"
        lines += [f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"'.encode(), b""]
        for content, subtype in ((rendered.text, "plain"), (rendered.html, "html")):
            lines += [f"--{boundary}".encode()] + _text_part(content, subtype)
        lines.append(f"--{boundary}--".encode())
    return b"\r\n".join(lines) + b"\r\n"
