"""Outages on the portal, over HTTP against the portal served on loopback: while one is open
every page carries its banner and the status page (no sign-in) lists it, with the text the desk
has now; a resolved one shows as resolved for a day, then drops off; never its internal log,
tickets or users; hostile titles and texts are escaped; the status page may be cached only when
it is the same for everyone."""

from __future__ import annotations

import html
from datetime import timedelta

from mailticket.db import transaction
from mailticket.desk.outages import resolve
from mailticket.web import guard
from tests.portal.desk_steps import act, new_ticket, sign_in
from tests.portal.steps import open_ticket

BANNER = 'aria-labelledby="outages-heading"'


def banner_of(page_text: str) -> str:
    """The banner's markup ("" when the page has none)."""
    start = page_text.find('<section class="outages"')
    return page_text[start:page_text.index("</section>", start)] if start >= 0 else ""


def open_outage(portal, title="Records system down", text="Searches fail since 08:00.",
                application="records"):
    with transaction(portal.app.db):
        return portal.app.desk.open_outage("ada", title, applications=[application],
                                           public_text=text)


def every_page(portal):
    """One page of each kind a user meets: signed out, signed in, a ticket, an error."""
    number, link = open_ticket(portal, subject="Printer jams")
    anonymous = portal.client()
    signed_in = sign_in(portal, "ann@example.org")
    pages = {
        "home": anonymous.get("/"),
        "sign-in": anonymous.get("/sign-in"),
        "new request": anonymous.get("/new"),
        "not found": anonymous.get("/tickets/987654"),
        "my tickets": signed_in.get("/tickets"),
        "ticket": signed_in.get(f"/tickets/{number}"),
        "new request, signed in": signed_in.get("/new"),
    }
    return pages


def test_no_banner_without_an_outage_and_the_status_page_says_so(portal):
    pages = every_page(portal)
    assert all(banner_of(p.text) == "" for p in pages.values())
    assert all('href="/status"' in p.text for p in pages.values())  # the header links it
    status = portal.client().get("/status")
    assert status.status_code == 200 and "No problems known" in status.text


def test_an_open_outage_is_on_every_page_and_on_the_status_page_without_sign_in(portal):
    outage = open_outage(portal)
    pages = every_page(portal)
    for name, page in pages.items():
        banner = banner_of(page.text)
        assert page.status_code in (200, 404), name
        assert 'role="region"' in banner and BANNER in banner, name
        assert '<h2 id="outages-heading">Known problems</h2>' in banner, name
        assert "Records system down" in banner and "Searches fail since 08:00." in banner, name
        assert "Ongoing" in banner, name
        assert page.headers["Cache-Control"] == "no-store", name
        assert page.headers["Content-Security-Policy"] == guard.CSP, name
    assert "service status" in pages["home"].text.lower()

    status = portal.client().get("/status")
    assert status.status_code == 200 and status.url.endswith("/status")
    assert banner_of(status.text) == ""  # the page is the list; no banner above it
    assert "<h1>Service status</h1>" in status.text
    assert "Records system down" in status.text and "Affects: records" in status.text
    assert status.headers["Content-Security-Policy"] == guard.CSP
    assert status.headers["Cache-Control"] == "public, max-age=60"
    assert "Cookie" in status.headers["Vary"] and "Set-Cookie" not in status.headers
    # Signed in, the page names the viewer: it stays out of shared caches.
    mine = sign_in(portal, "bob@example.org").get("/status")
    assert "Records system down" in mine.text and mine.headers["Cache-Control"] == "no-store"

    # The desk changes the text: the next page shows it.
    act(portal, "update_outage", outage.number, "ada", "Fixed for most searches; exports next.")
    again = portal.client().get("/sign-in")
    assert "Fixed for most searches; exports next." in banner_of(again.text)
    assert "Searches fail since 08:00." not in again.text


def test_a_resolved_outage_shows_as_resolved_for_a_day_then_drops_off(portal):
    outage = open_outage(portal)
    other = open_outage(portal, "Mail is slow", "Delays of minutes.", "mail")
    resolve(portal.app.desk, portal.app.db, outage.number, "ada", "The index was rebuilt.")
    browser = portal.client()
    banner = banner_of(browser.get("/").text)
    assert "Mail is slow" in banner and "Ongoing" in banner
    assert "Records system down" in banner and "Resolved" in banner
    assert "The index was rebuilt." in banner and "Searches fail" not in banner
    assert banner.index("Mail is slow") < banner.index("Records system down")  # open first

    portal.clock.now += timedelta(hours=23)
    assert "The index was rebuilt." in browser.get("/status").text
    resolve(portal.app.desk, portal.app.db, other.number, "ada", "Queues drained.")
    assert "Problems fixed today" in banner_of(browser.get("/").text)

    portal.clock.now += timedelta(hours=2)  # records: 25 h since resolved; mail: 2 h
    status = browser.get("/status").text
    assert "Records system down" not in status and "Queues drained." in status
    portal.clock.now += timedelta(hours=23)
    assert banner_of(browser.get("/").text) == ""
    assert "No problems known" in browser.get("/status").text


def test_the_internal_log_tickets_and_users_are_never_shown(portal):
    number = new_ticket(portal, "Records system is down", sender="Carol <carol@example.net>")
    outage = open_outage(portal)
    act(portal, "link_tickets", outage.number, "ada", [number])
    act(portal, "note_outage", outage.number, "lee", "INTERNAL: vendor ticket VX-99 raised")
    greeted = new_ticket(portal, "RMS down", sender="Dan <dan@example.net>",
                         body="The records search fails.\n")
    pages = [portal.client().get("/status").text, portal.client().get("/").text,
             *(p.text for p in every_page(portal).values())]
    for text in pages:
        assert "Records system down" in text
        for secret in ("INTERNAL", "VX-99", "carol@", "dan@", "Carol", f"#{number}",
                       f"#{greeted}", "linked ticket", "automatically", "lee", "ada@"):
            assert secret not in banner_of(text) + (text if "Service status</h1>" in text
                                                    else ""), secret


def test_hostile_titles_and_texts_are_escaped(portal):
    title = '<script>alert("t")</script> & "RMS"'
    text = '<img src=x onerror=alert(1)> <a href="javascript:alert(2)">click</a>'
    open_outage(portal, title=title, text=text)
    for path in ("/", "/status", "/sign-in"):
        page = portal.client().get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert 'href="javascript:' not in page
        assert html.escape(title, quote=False).replace('"', "&#34;") in page \
            or html.escape(title) in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_an_outage_is_public_once_the_desk_gives_it_a_public_text(portal):
    outage = open_outage(portal, title="Ann Smith cannot open RMS", text="")
    assert banner_of(portal.client().get("/").text) == ""
    assert "Ann Smith" not in portal.client().get("/status").text
    act(portal, "update_outage", outage.number, "ada", "Searches fail.")
    with transaction(portal.app.db):
        portal.app.desk.update_outage(outage.number, "ada", None, title="Records system down")
    banner = banner_of(portal.client().get("/").text)
    assert "Records system down" in banner and "Searches fail." in banner
    assert "Ann Smith" not in banner
