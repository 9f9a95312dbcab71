"""Steps the portal's HTTP-level tests share: a ticket opened by mail and the link its
acknowledgement carries, signing in through a mailed link, and what the desk holds (to show
that a refused request changed nothing)."""

from __future__ import annotations

from email.utils import parseaddr

import requests

from mailticket.models import Message, Outbox, PortalRequest, PortalRevocation, Ticket
from tests.helpers import make_mail
from tests.servers.portal import Client, PortalUnderTest

ANN = "Ann User <ann@example.org>"
BOB = "Bob Other <bob@example.org>"


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def open_ticket(portal: PortalUnderTest, sender: str = ANN, subject: str = "Printer jams",
                body: str = "It jams on every page.\n", **kwargs) -> tuple[int, str]:
    """A ticket opened by mail from ``sender``: its number, and the link in the sender's
    acknowledgement."""
    result = portal.take_in(make_mail(subject=subject, sender=sender, body=body, **kwargs))
    assert result.ticket is not None, result
    address = parseaddr(sender)[1]
    [ack] = [m for m in portal.mails("ack", to=address)
             if f"#{result.ticket}" in str(m.message["Subject"])]
    return result.ticket, ack.link


def sign_in(portal: PortalUnderTest, browser: Client, address: str) -> requests.Response:
    """Ask for a sign-in link on the form, open it from the mail and press its button: the
    "My tickets" page."""
    before = len(portal.mails("sign_in", to=address))
    sent = browser.form("/sign-in", "/sign-in", {"address": address})
    assert sent.status_code == 200, sent.text
    mails = portal.mails("sign_in", to=address)
    assert len(mails) == before + 1
    link = mails[-1].link
    page = browser.get(link)
    assert page.status_code == 200, page.text
    signed_in = browser.form(page, link)
    assert signed_in.status_code == 200 and signed_in.url.endswith("/tickets"), signed_in.text
    return signed_in


def held(portal: PortalUnderTest) -> tuple:
    """What the desk holds: tickets and their status, messages, outbox rows, revocations and
    the portal's waiting sign-ins and requests (used or not)."""
    return (
        sorted((t.number, t.status) for t in Ticket.select()),
        Message.select().count(),
        sorted((o.id, o.kind, o.status) for o in Outbox.select()),
        sorted((r.address, r.generation) for r in PortalRevocation.select()),
        sorted((r.id, r.used_at is not None) for r in PortalRequest.select()),
    )
