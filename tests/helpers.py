"""Small builders shared by tests: a config file for a given database, mails as bytes."""

from __future__ import annotations

import textwrap
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from pathlib import Path

from mailticket import config as configmod

DESK = "desk@example.test"


def write_config(tmp_path: Path, database_url: str, extra: str = "", intake: str | None = None,
                 outgoing: str | None = None, desk: str = "") -> Path:
    """A config file in ``tmp_path``; ``desk``: more keys of the desk section (YAML lines),
    ``extra``: more top-level YAML."""
    intake = intake or "smtp: {listen: '127.0.0.1:18025'}"
    outgoing = outgoing or f"maildir: {tmp_path / 'sent'}"
    text = (f"database: {database_url}\n"
            "desk:\n"
            "  name: Test Desk\n"
            f"  address: {DESK}\n"
            "  aliases: [desk2@example.test]\n"
            "  ticket_prefix: DESK\n"
            "  reopen_window_days: 30\n"
            + "".join(f"  {line}\n" for line in textwrap.dedent(desk).splitlines()) +
            "intake:\n"
            f"  {intake}\n"
            "outgoing:\n"
            f"  {outgoing}\n"
            f"storage: {tmp_path / 'store'}\n") + textwrap.dedent(extra)
    path = tmp_path / "mailticket.yaml"
    path.write_text(text)
    return path


def settings_for(tmp_path: Path, database_url: str, **kwargs) -> configmod.Settings:
    return configmod.load(write_config(tmp_path, database_url, **kwargs), environ={})


def make_mail(subject: str = "Printer on floor 3 is broken", sender: str = "Ann User <ann@example.org>",
              body: str = "It prints blank pages.\n", to: str = DESK, cc: str | None = None,
              message_id: str | None = None, in_reply_to: str | None = None,
              references: str | None = None, headers: dict[str, str] | None = None,
              attachments: list[tuple[str, str, bytes]] = ()) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="example.org")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


class Clock:
    """A clock the test sets: ``clock.now = ...``; naive UTC like the rest of mailticket."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime(2026, 11, 24, 9, 0)

    def __call__(self) -> datetime:
        return self.now
