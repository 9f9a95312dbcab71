"""What the portal's behaviour tests do again and again: a desk with groups and agents, mail
arriving from users and agents, agents' operations (as the CLI runs them, one transaction each),
and users opening their links or signing in on the portal served for real (``tests.servers.portal``).
"""

from __future__ import annotations

import re
from typing import Any

from mailticket.db import transaction
from mailticket.intake.items import Result
from mailticket.models import Message, Ticket
from tests.helpers import make_mail
from tests.servers.portal import Client, PortalUnderTest, QueuedMail

ANN = "ann@example.org"
BOB = "bob@example.org"          # on Ann's tickets in copy
ADA = "ada@desk.example.test"    # level 1 agent
NORA = "nora@desk.example.test"  # level 2 agent
NETWORK = "network@desk.example.test"  # level 2 group's own address
LEE = "lee@desk.example.test"    # the service lead (level 3)
COMMENT = "desk-comment@example.test"
ALERTS = "alerts@desk.example.test"
AGENT_ADDRESSES = (ADA, NORA, NETWORK, LEE, COMMENT, ALERTS)

GROUPS = """\
groups:
  desk:    {level: 1, members: ["Ada Lovelace <ada@desk.example.test>"]}
  network: {level: 2, members: ["Nora Net <nora@desk.example.test>"],
            address: network@desk.example.test}
  lead:    {level: 3, members: ["Lee <lee@desk.example.test>"]}
new_tickets_to: desk
escalation: {desk: [network], network: [lead]}
"""
DESK_OPTIONS = f"comment_address: {COMMENT}\nalerts_to: [{ALERTS}]\n"

def tag(number: int) -> str:
    return f"[DESK #{number}]"


def mail_in(portal: PortalUnderTest, **mail: Any) -> Result:
    """A mail arrives at the desk (``tests.helpers.make_mail``'s keywords)."""
    return portal.take_in(make_mail(**mail))


def new_ticket(portal: PortalUnderTest, subject: str = "Printer on floor 3 is broken",
               sender: str = f"Ann User <{ANN}>", **mail: Any) -> int:
    result = mail_in(portal, subject=subject, sender=sender, **mail)
    assert result.ticket is not None, result
    return result.ticket


def reply_to(portal: PortalUnderTest, number: int, sender: str, body: str, **mail: Any) -> Result:
    """A reply about ticket ``number`` (its tag in the subject), as a mail client sends it."""
    subject = mail.pop("subject", f"Re: {tag(number)} {Ticket.get_by_id(number).subject}")
    return mail_in(portal, subject=subject, sender=sender, body=body, **mail)


def act(portal: PortalUnderTest, method: str, *args: Any) -> Any:
    """An agent's operation, in its own transaction (as the CLI runs it)."""
    with transaction(portal.app.db):
        return getattr(portal.app.desk, method)(*args)


def latest(portal: PortalUnderTest, kind: str, to: str) -> QueuedMail:
    found = portal.mails(kind, to=to)
    assert found, f"no {kind} mail to {to}"
    return found[-1]


def open_link(portal: PortalUnderTest, link: str, client: Client | None = None) -> Client:
    """A browser that followed ``link`` from a mail (and is on the ticket's page)."""
    client = client or portal.client()
    page = client.open_link(link)
    assert page.status_code == 200, page.text
    return client


def sign_in(portal: PortalUnderTest, address: str, client: Client | None = None) -> Client:
    """Sign in as a user does: ask for a link, read the sign-in mail, follow it, press the
    button."""
    client = client or portal.client()
    asked = client.form("/sign-in", "/sign-in", {"address": address})
    assert asked.status_code == 200, asked.text
    link = latest(portal, "sign_in", address.lower()).link
    button = client.get(link)
    assert button.status_code == 200, button.text
    signed_in = client.form(button, link)
    assert signed_in.status_code == 200 and signed_in.url.endswith("/tickets"), signed_in.text
    return client


def listed(page_text: str) -> list[int]:
    """The ticket numbers a "My tickets" page lists."""
    return [int(n) for n in re.findall(r'href="/tickets/(\d+)">#', page_text)]


def messages(number: int) -> list[Message]:
    return list(Message.select().where(Message.ticket == number).order_by(Message.id))
