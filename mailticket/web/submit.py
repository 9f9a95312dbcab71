"""What a user submits on the portal, as the mail it stands for: a note on a ticket, a reopen or
a new request is written as a message from the user to the desk and handed to the intake
pipeline (source ``portal``), so every rule that applies to mail (routing, the reopen window,
attachments and their limits, loop caps, duplicates, history events) applies to it unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from mailticket.intake.items import RawMail, Result
from mailticket.intake.pipeline import Pipeline
from mailticket.mail.compose import ticket_tag
from mailticket.models import utcnow
from mailticket.vocabulary import PORTAL_SOURCE


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def portal_mail(*, sender: str, name: str, desk_address: str, subject: str, text: str,
                files: Sequence[Upload] = ()) -> bytes:
    """The message a portal submission stands for. Its Message-ID is made up here (our domain,
    a random part); it carries no token of ours, so nothing takes it for our own mail."""
    message = EmailMessage()
    message["From"] = formataddr((name, sender)) if name else sender
    message["To"] = desk_address
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow().replace(tzinfo=UTC))
    domain = desk_address.rpartition("@")[2]
    message["Message-ID"] = f"<portal.{secrets.token_hex(12)}@{domain}>"
    message["X-Mailticket-Source"] = PORTAL_SOURCE
    message.set_content(text or "")
    for upload in files:
        maintype, _, subtype = (upload.content_type or "application/octet-stream").partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(upload.data, maintype=maintype, subtype=subtype,
                               filename=upload.filename)
    return message.as_bytes()


def note_subject(prefix: str, number: int, subject: str) -> str:
    """The subject of a note on ticket ``number``: its tag routes it, as in a reply."""
    return f"Re: {ticket_tag(prefix, number)} {subject}".strip()


def hand_in(pipeline: Pipeline, key: str, raw: bytes) -> Result:
    """Run one portal submission through intake; ``key`` (the form's nonce) makes a form sent
    twice count once. Raises TemporaryFailure when it could not be recorded."""
    [result] = pipeline.process_batch([RawMail(source=PORTAL_SOURCE, key=key, raw=raw)])
    return result
