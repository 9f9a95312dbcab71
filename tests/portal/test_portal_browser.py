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
from mailticket.web import guard
from tests.helpers import make_mail
from tests.servers.browser import axe_violations, format_violations

pytestmark = pytest.mark.browser

ANN = "ann@example.org"
DESK_GROUP = ("ada@desk.example.test", "al@desk.example.test")
LAPTOP = {"width": 1280, "height": 800}
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
        self.policies: list[tuple[str, str | None]] = []  # each HTML page: its CSP header

    def page(self, **context_options) -> Page:
        page = self._new_page(**context_options)
        page.on("console", lambda message: self.console.append(
            f"{page.url}: {message.type}: {message.text}"))
        page.on("response", self._note_policy)
        return page

    def _note_policy(self, response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            self.policies.append((response.url,
                                  response.headers.get("content-security-policy")))

    def csp_reports(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def pages_without_the_policy(self) -> list[str]:
        return [url for url, policy in self.policies if policy != guard.CSP]


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
    assert not browsing.pages_without_the_policy()


def test_a_resolved_ticket_is_closed_from_its_dropdown_when_the_user_says_it_is_fixed(
        portal, browsing):
    number = arrive(portal, "Toner low on floor 3", "It warns about toner.\n")
    desk_does(portal, "resolve", number, "Replaced the toner cartridge.")
    page = browsing.page()
    page.goto(ticket_link(portal, number))
    expect(facts_status(page)).to_have_text("resolved")
    expect(page.get_by_role("region", name="Resolution")).to_contain_text(
        "Replaced the toner cartridge.")

    page.get_by_role("combobox", name="Ticket Status").select_option("It's fixed, close it")
    page.get_by_role("button", name="Update the ticket").click()
    expect(page.get_by_role("status")).to_have_text(f"Ticket #{number} is closed. Thank you!")
    expect(facts_status(page)).to_have_text("closed")
    assert status_of(portal, number) == "closed"
    assert [m.row.ticket_id for m in portal.mails("closed", to=ANN)] == [number]
    assert not browsing.csp_reports(), browsing.csp_reports()


def test_past_the_reopen_window_the_dropdown_opens_a_new_request_linked_to_the_old_one(
        portal, browsing):
    now = portal.clock.now
    portal.clock.now = now - timedelta(days=45)
    old = arrive(portal, "Scanner on floor 2 is offline", "It shows error E42.\n")
    desk_does(portal, "close", old, "Restarted the scanner.")
    portal.clock.now = now - timedelta(days=1)
    desk_does(portal, "reply", old, "For the record: the scanner was replaced.")  # a fresh link
    portal.clock.now = now
    page = browsing.page()
    page.goto(ticket_link(portal, old))
    expect(page.get_by_role("status")).to_contain_text("can no longer be reopened")
    status = page.get_by_role("combobox", name="Ticket Status")
    expect(status).to_have_value("new_linked")

    page.get_by_label("Note (needed to reopen: what is still wrong?)").fill(
        "The new scanner shows E42 too.")
    page.get_by_role("button", name="Update the ticket").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Ticket #{old} cannot be reopened any more, so your note was logged as a new ticket")
    new = int(re.search(r"/tickets/(\d+)$", page.url).group(1))
    assert new != old
    expect(heading(page)).to_contain_text(f"Ticket #{new}")
    expect(page.locator(".timeline")).to_contain_text("The new scanner shows E42 too.")
    assert status_of(portal, old) == "closed"
    with reading(portal.app.db):
        assert Ticket.get_by_id(new).linked_to_id == old
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
    assert not browsing.pages_without_the_policy()


def test_signed_out_a_new_request_is_logged_once_its_mailed_link_is_confirmed(portal, browsing):
    page = browsing.page()
    page.goto(portal.base + "/")
    page.get_by_role("navigation").get_by_role("link", name="New request").click()
    page.get_by_label("Your email address").fill(ANN)
    page.get_by_label("Your name (optional)").fill("Ann Lee")
    page.get_by_label("Subject").fill("A second monitor")
    page.get_by_label("What do you need?").fill("For the new desk by the window.\nThanks")
    page.get_by_label("Attach files (optional)").set_input_files(
        {"name": "floor-plan.txt", "mimeType": "text/plain", "buffer": b"desk 4\n"})
    page.get_by_role("button", name="Mail me a link to confirm").click()
    expect(heading(page)).to_have_text("Check your mail")
    with reading(portal.app.db):
        assert Ticket.select().count() == 0  # nothing is logged before the link is followed

    [confirm] = portal.mails("confirm_request", to=ANN)
    page.goto(confirm.link)
    expect(heading(page)).to_have_text("Confirm your request")
    # The request quoted as it was typed: its lines, and no blank lines the page made up.
    assert page.locator("blockquote").inner_text() == (
        "A second monitor\n\nFor the new desk by the window.\nThanks")
    page.get_by_role("button", name="Log my request").click()
    expect(heading(page)).to_have_text(re.compile(r"Ticket #\d+: A second monitor"))
    number = int(re.search(r"/tickets/(\d+)$", page.url).group(1))
    expect(page.get_by_role("status")).to_contain_text(f"It is ticket #{number}")
    expect(page.get_by_role("link", name="floor-plan.txt")).to_be_visible()
    [ack] = portal.mails("ack", to=ANN)
    assert ack.row.ticket_id == number

    page.goto(confirm.link)  # a second time: used up
    expect(heading(page)).to_have_text("This link was used already")
    assert not browsing.csp_reports(), browsing.csp_reports()


# --- 3. accessibility, phones, the keyboard ------------------------------------------------

LONG_URL = "https://intranet.example.org/wiki/" + "x" * 266  # 300 characters, no break
LONG_SUBJECT = ("Shared drive \\\\fileserver01.corp.example.org\\departments\\finance\\"
                "quarterly-reports-2026-final-approved is read-only for the whole team since "
                "the migration")


class Tour:
    """Every page a user reaches on the way, checked where it stands: axe-core's violations,
    and a page wider than the window (sideways scrolling)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.problems: dict[str, str] = {}

    def check(self, name: str, page: Page) -> None:
        self.seen.append(name)
        found = []
        violations = axe_violations(page)
        if violations:
            found.append(format_violations(violations))
        wide = overflow(page)
        if wide:
            found.append(wide)
        if found:
            self.problems[f"{name} ({page.url})"] = "\n".join(found)

    def report(self) -> str:
        return "\n".join(f"{name}:\n{text}" for name, text in self.problems.items())


def overflow(page: Page) -> str | None:
    """What makes the page scroll sideways, or None when it fits its window."""
    return page.evaluate("""() => {
        const width = window.innerWidth, scroll = document.scrollingElement.scrollWidth;
        if (scroll <= width) return null;
        const wide = [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > width
                           || e.scrollWidth > e.clientWidth + 1)
            .map((e) => e.tagName.toLowerCase() + (e.className ? "." + e.className : ""));
        return `${scroll}px wide in a ${width}px window: ${wide.slice(0, 8).join(", ")}`;
    }""")


def build_every_state(portal) -> dict[str, int]:
    """Ann's tickets, one in each state a user meets, made over the last days (one a day, so
    that their acknowledgements stay within the caps on automatic mail); the closed one past
    the reopen window was closed 40 days ago (its link from then has expired)."""
    now = portal.clock.now
    portal.clock.now = now - timedelta(days=40)
    old = arrive(portal, "Scanner on floor 2 is offline", "It shows error E42.\n")
    desk_does(portal, "close", old, "Restarted the scanner; it is back on the network.")
    portal.clock.now = now - timedelta(days=4)
    new = arrive(portal, "Monitor flickers", "The left one flickers when it warms up.\n")
    portal.clock.now += timedelta(days=1)
    opened = arrive(portal, LONG_SUBJECT, "Since the migration on Friday I cannot save there.\n",
                    attachments=[("error-dialog.txt", "text/plain", b"Access denied\n")])
    desk_does(portal, "reply", opened, "Which folder exactly? Please send its full path.")
    portal.take_in(make_mail(subject=f"Re: [DESK #{opened}] {LONG_SUBJECT}",
                             sender=f"Ann User <{ANN}>",
                             body=f"This one, as the wiki says:\n{LONG_URL}\n"))
    portal.clock.now += timedelta(days=1)
    resolved = arrive(portal, "Toner low on floor 3", "It warns about toner.\n")
    desk_does(portal, "resolve", resolved, "Replaced the toner cartridge.")
    portal.clock.now += timedelta(days=1)
    closed = arrive(portal, "Keyboard missing keys", "The E key fell off.\n")
    desk_does(portal, "close", closed, "Gave you a new keyboard.")
    portal.clock.now = now
    return {"old": old, "new": new, "open": opened, "resolved": resolved, "closed": closed}


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_every_page_a_user_can_reach_passes_axe_fits_the_window_and_keeps_the_csp(
        portal, browsing, viewport):
    numbers = build_every_state(portal)
    old_link = [m for m in portal.mails("ack", to=ANN) if m.row.ticket_id == numbers["old"]][0].link
    new_link = ticket_link(portal, numbers["new"])
    tour = Tour()

    # Signed out: home, signing in, a new request to confirm, links that do not work.
    page = browsing.page(viewport=viewport)
    page.goto(portal.base + "/")
    tour.check("home", page)
    page.get_by_role("navigation").get_by_role("link", name="Sign in").click()
    expect(heading(page)).to_have_text("Sign in")
    expect(page.get_by_label("Your email address")).to_have_accessible_description(
        "We mail you a link that signs you in. No password.")
    tour.check("sign-in", page)
    page.get_by_label("Your email address").fill(ANN)
    page.get_by_role("button", name="Mail me a sign-in link").click()
    expect(heading(page)).to_have_text("Check your mail")
    tour.check("sign-in sent", page)

    page.get_by_role("navigation").get_by_role("link", name="New request").click()
    expect(heading(page)).to_have_text("New request")
    tour.check("new request, signed out", page)
    page.get_by_label("Your email address").fill(ANN)
    page.get_by_label("Subject").fill("   ")  # only spaces: the browser lets it through
    page.get_by_label("What do you need?").fill("A second monitor, please.")
    page.get_by_role("button", name="Mail me a link to confirm").click()
    expect(page.get_by_role("alert")).to_have_text("Give your request a subject.")
    expect(page).to_have_title("Problem: New request - Test Desk")  # heard first
    tour.check("new request re-shown with a problem", page)
    page.get_by_label("Subject").fill("A second monitor")
    page.get_by_role("button", name="Mail me a link to confirm").click()
    expect(heading(page)).to_have_text("Check your mail")
    [confirm] = portal.mails("confirm_request", to=ANN)
    page.goto(confirm.link)
    expect(heading(page)).to_have_text("Confirm your request")
    tour.check("confirm a request", page)

    payload, stamp, signature = new_link.rsplit("/", 1)[1].split(".")
    changed = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    page.goto(f"{portal.base}/t/{payload}.{stamp}.{changed}")
    expect(page.get_by_text("Error 403")).to_be_visible()
    tour.check("403 changed link", page)
    page.goto(old_link)
    expect(page.get_by_text("Error 410")).to_be_visible()
    tour.check("410 expired link", page)
    page.get_by_role("button", name="Send me a new link").click()
    expect(heading(page)).to_have_text("Check your mail")
    assert [m.row.ticket_id for m in portal.mails("ticket_link", to=ANN)] == [numbers["old"]]
    tour.check("new link sent", page)
    page.goto(portal.base + "/no/such/page")
    expect(page.get_by_text("Error 404")).to_be_visible()
    tour.check("404", page)

    page.goto(portal.base + "/sign-in")
    page.context.clear_cookies()  # the session (and its form token) is gone meanwhile
    page.get_by_label("Your email address").fill(ANN)
    page.get_by_role("button", name="Mail me a sign-in link").click()
    expect(page.get_by_text("Error 400")).to_be_visible()
    tour.check("400 form without its token", page)

    # Signed in through the mailed link: every ticket of Ann's, in each state.
    sign_in = portal.mails("sign_in", to=ANN)[-1]
    page.goto(sign_in.link)
    tour.check("sign-in link's button", page)
    page.get_by_role("button", name="Sign in").click()
    expect(heading(page)).to_have_text("My tickets")
    tour.check("My tickets", page)
    for state in ("new", "open", "resolved", "closed", "old"):
        page.get_by_role("navigation").get_by_role("link", name="My tickets").click()
        page.get_by_role("link", name=f"#{numbers[state]}", exact=True).click()
        expect(facts_status(page)).to_have_text("closed" if state == "old" else state)
        if state == "open":  # the long subject, the URL of 300 characters, the attachment
            expect(heading(page)).to_contain_text(LONG_SUBJECT)
            expect(page.locator(".timeline")).to_contain_text(LONG_URL)
            expect(page.get_by_role("link", name="error-dialog.txt")).to_be_visible()
        tour.check(f"ticket, {state}", page)
    expect(page.get_by_role("status")).to_contain_text("can no longer be reopened")
    expect(page.get_by_role("combobox", name="Ticket Status")).to_have_value("new_linked")

    page.goto(f"{portal.base}/tickets/{numbers['closed']}")
    page.get_by_role("button", name="Update the ticket").click()  # Reopen, with no note
    expect(page.get_by_role("alert")).to_contain_text("a note is needed")
    expect(page).to_have_title(f"Problem: Ticket #{numbers['closed']} - Test Desk")
    tour.check("reopen re-shown with a problem", page)
    page.get_by_role("navigation").get_by_role("link", name="New request").click()
    expect(page.get_by_label("Subject")).to_be_visible()
    tour.check("new request, signed in", page)
    page.goto(f"{portal.base}/tickets/{max(numbers.values()) + 1}")
    expect(page.get_by_text("Error 404")).to_be_visible()
    tour.check("404 no such ticket", page)

    assert len(tour.seen) == 21
    assert not tour.problems, tour.report()
    assert not browsing.csp_reports(), "\n".join(browsing.csp_reports())
    assert len(browsing.policies) >= len(tour.seen)
    assert not browsing.pages_without_the_policy()


def focused(page: Page) -> dict:
    """The element that has the focus: what it is, and how its focus shows."""
    return page.evaluate("""() => {
        const e = document.activeElement, style = getComputedStyle(e), box = e.getBoundingClientRect();
        return {tag: e.tagName.toLowerCase(), id: e.id, text: e.textContent.trim(),
                outline: style.outlineStyle, width: parseFloat(style.outlineWidth),
                color: style.outlineColor,
                around: getComputedStyle(document.body).backgroundColor,
                shown: box.width > 0 && box.height > 0 && box.left >= 0 && box.top >= 0
                       && box.right <= innerWidth};
    }""")


def contrast(one: str, two: str) -> float:
    """WCAG's contrast ratio of two CSS colours given as rgb(...)."""
    def luminance(color: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", color)[:3]]
        r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    light, dark = sorted((luminance(one), luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_note_form_works_from_the_keyboard_alone_and_the_focus_is_always_visible(
        portal, browsing):
    number = arrive(portal, "Printer on floor 3 is broken", "It prints blank pages.\n")
    page = browsing.page()
    page.goto(ticket_link(portal, number))
    expect(heading(page)).to_contain_text(f"Ticket #{number}")

    page.keyboard.press("Tab")
    stops = [focused(page)]
    assert stops[0]["text"] == "Skip to the content" and stops[0]["shown"], stops[0]
    page.keyboard.press("Enter")
    for _ in range(20):
        page.keyboard.press("Tab")
        stops.append(focused(page))
        if stops[-1]["id"] == "note":
            break
    assert stops[-1]["id"] == "note", [stop["tag"] + "#" + stop["id"] for stop in stops]
    page.keyboard.type("Typed with the keyboard alone.")
    for _ in range(5):
        page.keyboard.press("Tab")
        stops.append(focused(page))
        if stops[-1]["text"] == "Add note":
            break
    assert stops[-1]["text"] == "Add note", stops[-1]
    page.keyboard.press("Enter")

    expect(page.get_by_role("status")).to_have_text("Your note was added.")
    expect(page.locator(".timeline > li").last).to_contain_text("Typed with the keyboard alone.")
    assert any("Typed with the keyboard alone." in body for body in bodies_of(portal, number))
    # WCAG 2.2 (2.4.13, 1.4.11): a ring at least 2 px thick, at 3:1 against what is around it.
    unseen = [stop for stop in stops if stop["outline"] == "none" or stop["width"] < 2
              or contrast(stop["color"], stop["around"]) < 3]
    assert not unseen, f"focus not visible enough on {unseen}"


# --- 4. the Content-Security-Policy in the real browser -----------------------------------

def test_the_console_check_would_see_a_style_attribute_the_policy_refuses(portal, browsing):
    """The pages' clean consoles above mean something: a style attribute slipped into a page
    (as a template might) is refused by the portal's policy, and Chromium says so on the
    console that Browsing reads."""
    page = browsing.page()

    def with_a_style_attribute(route) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace(
            '<main id="main">', '<main id="main" style="color: rgb(255, 0, 0)">'))

    page.route(portal.base + "/", with_a_style_attribute)
    response = page.goto(portal.base + "/")
    assert response.headers["content-security-policy"] == guard.CSP
    expect(heading(page)).to_have_text("Test Desk")
    expect(page.locator("main")).not_to_have_css("color", "rgb(255, 0, 0)")
    [refused] = browsing.csp_reports()
    assert "inline style violates the following Content Security Policy directive" in refused
