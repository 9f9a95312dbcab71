"""The portal in a real browser (Debian's Chromium through Playwright), as its users meet it: the
link in the desk's mail opens their ticket, they add notes and reopen it with the forms, sign in
by mail, send new requests; every page they can reach passes axe-core's accessibility check,
fits a phone's screen, works from the keyboard and runs under the portal's Content-Security-
Policy with nothing refused. The portal is served for real by waitress on loopback
(tests/servers/portal.py); the pages need no JavaScript, and the tests use none in them: they
type, click and choose as a user does."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from mailticket.db import reading, transaction
from mailticket.models import Message, Ticket
from tests.helpers import make_mail
from tests.servers.browser import axe_violations, format_violations

pytestmark = pytest.mark.browser

ANN = "ann@example.org"
DESK_GROUP = ("ada@desk.example.test", "al@desk.example.test")
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def portal_settings_extra() -> str:
    """A desk group, so that a user's reopen has someone to tell (user_reopened)."""
    return ("groups:\n"
            f"  desk: {{level: 1, members: ['Ada <{DESK_GROUP[0]}>', 'Al <{DESK_GROUP[1]}>']}}\n"
            "new_tickets_to: desk\n")


class Browsing:
    """Users' browsers (a new context each: their own cookies) and everything their consoles
    said, where a Content-Security-Policy refusal shows up."""

    def __init__(self, new_page: Callable[..., Page]):
        self._new_page = new_page
        self.console: list[str] = []

    def page(self, **context_options) -> Page:
        page = self._new_page(**context_options)
        page.on("console", lambda message: self.console.append(
            f"{page.url}: {message.type}: {message.text}"))
        return page

    def csp_reports(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]


@pytest.fixture
def browsing(new_page) -> Browsing:
    return Browsing(new_page)


def arrive(portal, subject: str, body: str, *, sender: str = f"Ann User <{ANN}>",
           attachments=()) -> int:
    """A user's mail reaches the desk; its ticket's number."""
    result = portal.take_in(make_mail(subject=subject, body=body, sender=sender,
                                      attachments=list(attachments)))
    assert result.ticket is not None
    return result.ticket


def desk_does(portal, operation: str, number: int, *args) -> None:
    """An agent's operation on the desk, in its own transaction as the CLI runs it."""
    with transaction(portal.app.db):
        getattr(portal.app.desk, operation)(number, "Ada", *args)


def ticket_link(portal, number: int) -> str:
    """The user's link from the newest mail the desk queued for them about ``number``."""
    mail = [m for m in portal.mails(to=ANN) if m.row.ticket_id == number][-1]
    assert mail.link.startswith(portal.base + "/t/")
    return mail.link


def status_of(portal, number: int) -> str:
    with reading(portal.app.db):
        return Ticket.get_by_id(number).status


def bodies_of(portal, number: int) -> list[str]:
    with reading(portal.app.db):
        return [m.body for m in Message.select().where(Message.ticket == number)
                .order_by(Message.id)]


def heading(page: Page):
    return page.get_by_role("heading", level=1)


def facts_status(page: Page):
    return page.locator(".facts .status")


# --- 1. the story: from the acknowledgement to a reopened ticket ----------------------------

def test_from_the_acknowledgements_link_a_user_adds_a_note_and_reopens_the_closed_ticket(
        portal, browsing):
    number = arrive(portal, "Printer on floor 3 is broken", "It prints blank pages.\n")
    [ack] = portal.mails("ack", to=ANN)
    page = browsing.page()

    page.goto(ack.link)
    expect(page).to_have_url(f"{portal.base}/tickets/{number}")  # the token left the address bar
    expect(heading(page)).to_have_text(f"Ticket #{number}: Printer on floor 3 is broken")
    expect(page.locator(".timeline")).to_contain_text("It prints blank pages.")
    expect(facts_status(page)).to_have_text("new")

    page.get_by_label("Your note to the desk").fill("It is the HP in room 3.14.")
    page.get_by_label("Attach files (optional)").set_input_files(
        {"name": "test-page.txt", "mimeType": "text/plain", "buffer": b"blank\n"})
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status")).to_have_text("Your note was added.")
    expect(page.locator(".timeline > li").last).to_contain_text("It is the HP in room 3.14.")
    assert any("It is the HP in room 3.14." in body for body in bodies_of(portal, number))
    with page.expect_download() as download:
        page.get_by_role("link", name="test-page.txt").click()
    assert download.value.suggested_filename == "test-page.txt"
    assert open(download.value.path(), "rb").read() == b"blank\n"

    desk_does(portal, "close", number, "Replaced the fuser unit.")
    [closed] = portal.mails("closed", to=ANN)
    assert f"#{number}" in closed.message["Subject"]
    page.reload()
    expect(facts_status(page)).to_have_text("closed")
    expect(page.get_by_role("heading", name="Resolution")).to_be_visible()
    expect(page.get_by_text("Replaced the fuser unit.").first).to_be_visible()
    expect(page.get_by_label("Your note to the desk")).to_have_count(0)  # closed: reopen instead

    # Reopen with no note: the page says what is missing, and nothing changes.
    page.get_by_role("combobox", name="Ticket Status").select_option("Reopen")
    page.get_by_role("button", name="Update the ticket").click()
    expect(page.get_by_role("alert")).to_contain_text("a note is needed to reopen the ticket")
    assert status_of(portal, number) == "closed"
    assert portal.mails("user_reopened") == []
    expect(facts_status(page)).to_have_text("closed")

    page.get_by_role("combobox", name="Ticket Status").select_option("Reopen")
    page.get_by_label("Note (needed to reopen: what is still wrong?)").fill(
        "It prints blank pages again since Monday.")
    page.get_by_role("button", name="Update the ticket").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Ticket #{number} is open again; the desk was told.")
    expect(facts_status(page)).to_have_text("open")
    expect(page.locator(".timeline")).to_contain_text("It prints blank pages again since Monday.")
    assert status_of(portal, number) == "open"
    assert any("blank pages again since Monday" in body for body in bodies_of(portal, number))
    [notice] = portal.mails("user_reopened")
    assert set(notice.row.recipients) == set(DESK_GROUP)
    assert "It prints blank pages again since Monday." in notice.text
    assert not browsing.csp_reports(), browsing.csp_reports()


# --- 2. signing in, My tickets, a new request -------------------------------------------

def test_a_user_signs_in_by_mail_sees_their_tickets_and_sends_a_new_request(portal, browsing):
    printer = arrive(portal, "Printer on floor 3 is broken", "It prints blank pages.\n")
    vpn = arrive(portal, "VPN drops every hour", "It drops at :00.\n")
    arrive(portal, "Bob's laptop", "Mine.\n", sender="Bob <bob@example.org>")
    page = browsing.page()

    page.goto(portal.base + "/")
    page.get_by_role("navigation").get_by_role("link", name="Sign in").click()
    page.get_by_label("Your email address").fill(ANN)
    page.get_by_role("button", name="Mail me a sign-in link").click()
    expect(heading(page)).to_have_text("Check your mail")

    [sign_in] = portal.mails("sign_in", to=ANN)
    page.goto(sign_in.link)
    expect(page.get_by_text(f"Sign in as {ANN}")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(heading(page)).to_have_text("My tickets")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)  # Ann's two tickets, not Bob's
    expect(rows.nth(0)).to_contain_text("VPN drops every hour")
    expect(rows.nth(1)).to_contain_text("Printer on floor 3 is broken")

    page.get_by_role("link", name=f"#{printer}").click()
    expect(heading(page)).to_have_text(f"Ticket #{printer}: Printer on floor 3 is broken")

    page.get_by_role("navigation").get_by_role("link", name="New request").click()
    page.get_by_label("Subject").fill("Badge does not open door 2")
    page.get_by_label("What do you need?").fill("Since the new badges came.")
    page.get_by_role("button", name="Send the request").click()
    expect(heading(page)).to_have_text(re.compile(r"Ticket #\d+: Badge does not open door 2"))
    new = int(re.search(r"/tickets/(\d+)$", page.url).group(1))
    assert new not in (printer, vpn)
    expect(page.get_by_role("status")).to_contain_text(f"It is ticket #{new}")
    expect(page.locator(".timeline")).to_contain_text("Since the new badges came.")
    acks = [m for m in portal.mails("ack", to=ANN) if m.row.ticket_id == new]
    assert len(acks) == 1 and f"#{new}" in acks[0].message["Subject"]

    page.get_by_role("navigation").get_by_role("link", name="My tickets").click()
    expect(page.locator("table tbody tr")).to_have_count(3)
    assert not browsing.csp_reports(), browsing.csp_reports()
