"""Who can see what on the portal, over HTTP against the portal served on loopback: a link
shows its one ticket and nothing else whatever is changed in the URL, a changed link is
refused, links expire by the desk's clock and can be renewed only by mail, sign-in links work
once and only by their button, revocation ends every earlier link and session of one address,
and the sign-in form tells nobody whether an address has tickets (within the caps on mail and
the limit per client)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from mailticket import cli
from mailticket.models import Attachment, Outbox, PortalRequest, Ticket
from mailticket.vocabulary import OutboxStatus
from tests.portal.steps import BOB, held, open_ticket, sign_in, token_of

NOWHERE = 987654


def not_found_bodies(browser, paths: list[str]) -> list[str]:
    pages = [browser.get(path) for path in paths]
    assert [p.status_code for p in pages] == [404] * len(pages), paths
    return [p.text for p in pages]


def signed_in_as(browser) -> bool:
    return browser.get("/tickets").status_code == 200


def sign_in_form_on(page) -> bool:
    return 'action="/sign-in"' in page.text and 'name="address"' in page.text


# --- a link shows its ticket, and nothing else ------------------------------------------------

def test_a_ticket_link_shows_its_one_ticket_and_no_other_whatever_the_url_says(portal):
    mine, link = open_ticket(portal, subject="Printer jams")
    also_mine, _ = open_ticket(portal, subject="Mouse is dead")
    bobs, _ = open_ticket(portal, BOB, subject="Bob's payroll question",
                          attachments=[("payslip.txt", "text/plain", b"bob's salary")])
    [bobs_file] = [a.id for a in Attachment.select()]
    browser = portal.client()

    page = browser.get(link)
    assert page.status_code == 200 and page.url.endswith(f"/tickets/{mine}")
    assert "Printer jams" in page.text and token_of(link) not in page.url

    # Someone else's ticket, the same address's other ticket (this link grants only its own),
    # another ticket's file under this ticket's number, and absurd numbers: all answered as a
    # ticket that does not exist.
    nowhere, *refused = not_found_bodies(browser, [
        f"/tickets/{NOWHERE}", f"/tickets/{bobs}", f"/tickets/{also_mine}",
        f"/tickets/{bobs}/files/{bobs_file}", f"/tickets/{mine}/files/{bobs_file}",
        "/tickets/99999999999", f"/tickets/{mine}/files/99999999999"])
    assert all(body == nowhere for body in refused)
    assert "Bob's payroll" not in "".join(refused) and "Mouse is dead" not in "".join(refused)
    listed = browser.get("/tickets")
    assert "Printer jams" in listed.text and "Mouse is dead" not in listed.text
    assert browser.get(f"/tickets/{mine}").status_code == 200


def test_a_sign_in_link_shows_every_ticket_of_the_address_and_no_one_elses(portal):
    mine, _ = open_ticket(portal, subject="Printer jams")
    copied, _ = open_ticket(portal, BOB, subject="Shared drive is full", cc="ann@example.org")
    bobs, _ = open_ticket(portal, BOB, subject="Bob's payroll question")
    browser = portal.client()

    listed = sign_in(portal, browser, "Ann@Example.org")
    assert "Printer jams" in listed.text and "Shared drive is full" in listed.text
    assert "Bob's payroll" not in listed.text
    assert browser.get(f"/tickets/{mine}").status_code == 200
    assert browser.get(f"/tickets/{copied}").status_code == 200
    nowhere, bobs_page = not_found_bodies(browser, [f"/tickets/{NOWHERE}", f"/tickets/{bobs}"])
    assert bobs_page == nowhere


def test_a_changed_or_spliced_link_is_refused_with_the_sign_in_form(portal):
    mine, link = open_ticket(portal, subject="Printer jams")
    _, other = open_ticket(portal, subject="Mouse is dead")
    base, token = link.rsplit("/", 1)
    payload, stamp, signature = token.split(".")
    other_payload, other_stamp, other_signature = token_of(other).split(".")
    sign_in_token = token_of(_sign_in_link(portal, "ann@example.org"))

    def changed(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]

    tampered = [
        f"{changed(payload, 5)}.{stamp}.{signature}",
        f"{payload}.{changed(stamp, 2)}.{signature}",
        f"{payload}.{stamp}.{changed(signature, 10)}",
        f"{other_payload}.{stamp}.{signature}",            # another ticket's payload, A's seal
        f"{payload}.{other_stamp}.{other_signature}",      # A's payload, another's seal
        f"{payload}.{stamp}",
        "not-a-token",
    ]
    browser = portal.client()
    for bad in tampered:
        page = browser.get(f"{base}/{bad}")
        assert page.status_code == 403, bad
        assert "This link does not work" in page.text and sign_in_form_on(page)
        assert "Printer jams" not in page.text and "Send me a new link" not in page.text
    for kind in ("s", "c"):
        page = browser.get(f"/{kind}/{changed(sign_in_token, len(sign_in_token) - 8)}")
        assert page.status_code == 403 and sign_in_form_on(page)
    assert not signed_in_as(browser)
    assert browser.get(f"/tickets/{mine}").status_code == 404
    assert browser.get(link).status_code == 200  # the real one still works


# --- expiry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("portal_web_options, lifetime", [
    ("", timedelta(days=30)),                       # the desk's reopen window
    ("ticket_link_days: 3", timedelta(days=3)),
])
def test_an_expired_ticket_link_offers_a_new_one_by_mail_only(portal, lifetime):
    mine, link = open_ticket(portal, subject="Printer jams")
    portal.clock.now += lifetime - timedelta(hours=1)
    assert portal.client().get(link).status_code == 200
    portal.clock.now += timedelta(hours=2)

    browser = portal.client()
    page = browser.get(link)
    assert page.status_code == 410 and "This link has expired" in page.text
    assert "Printer jams" not in page.text and "Send me a new link" in page.text
    assert browser.get(f"/tickets/{mine}").status_code == 404
    before = len(portal.mails("ticket_link"))
    sent = browser.form(page, "/renew", {"token": token_of(link)})
    assert sent.status_code == 200 and "Check your mail" in sent.text

    [fresh] = portal.mails("ticket_link")[before:]
    assert fresh.row.recipients == ["ann@example.org"]
    assert token_of(fresh.link) not in sent.text and token_of(fresh.link) != token_of(link)
    opened = portal.client().get(fresh.link)
    assert opened.status_code == 200 and "Printer jams" in opened.text


def test_renewing_a_link_that_is_not_ours_mails_nothing_and_says_the_same(portal):
    _, link = open_ticket(portal)
    portal.clock.now += timedelta(days=31)
    browser = portal.client()
    page = browser.get(link)
    before = len(portal.mails())
    forged = browser.form(page, "/renew", {"token": token_of(link)[:-3] + "xyz"})
    assert forged.status_code == 200 and "Check your mail" in forged.text
    assert len(portal.mails()) == before


@pytest.mark.parametrize("portal_web_options, minutes", [("", 15), ("sign_in_minutes: 5", 5)])
def test_a_sign_in_link_expires_after_sign_in_minutes(portal, minutes):
    open_ticket(portal)
    link = _sign_in_link(portal, "ann@example.org")
    portal.clock.now += timedelta(minutes=minutes - 1)
    browser = portal.client()
    page = browser.get(link)
    assert page.status_code == 200
    portal.clock.now += timedelta(minutes=2)
    late = browser.form(page, link)
    assert late.status_code == 410 and sign_in_form_on(late)
    assert not signed_in_as(browser)
    assert browser.get(link).status_code == 410


def test_a_sign_in_link_is_used_by_its_button_only_and_only_once(portal):
    open_ticket(portal, subject="Printer jams")
    link = _sign_in_link(portal, "ann@example.org")
    scanner = portal.client()
    for _ in range(3):  # a mail scanner fetching the link does not use it up
        fetched = scanner.get(link)
        assert fetched.status_code == 200 and "Printer jams" not in fetched.text
    assert not signed_in_as(scanner)

    browser = portal.client()
    page = browser.get(link)
    assert "Printer jams" in browser.form(page, link).text
    again = portal.client()
    used = again.get(link)
    assert used.status_code == 410 and "used already" in used.text
    second = again.form(used, link)
    assert second.status_code == 410 and not signed_in_as(again)
    # The scanner's page was fetched before the link was used; its form is refused too.
    late = scanner.form(fetched, link)
    assert late.status_code == 410 and not signed_in_as(scanner)


# --- revocation -----------------------------------------------------------------------------

def revoke(portal, address: str, capsys) -> None:
    """``mailticket portal revoke ADDRESS``, run as an admin would, on the portal's config."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = cli.main(["--config", str(portal.app.settings.path), "portal", "revoke", address])
    finally:  # the command sets up its own logging; the tests' capture is given back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert code == cli.EXIT_OK
    assert "revoked every portal link and session of ann@example.org" in capsys.readouterr().out


def test_revoking_an_address_ends_its_links_and_sessions_and_no_one_elses(portal, capsys):
    mine, link = open_ticket(portal, subject="Printer jams")
    bobs, bobs_link = open_ticket(portal, BOB, subject="Bob's payroll question")
    by_link, by_sign_in, bob = portal.client(), portal.client(), portal.client()
    by_link.get(link)
    sign_in(portal, by_sign_in, "ann@example.org")
    bob.get(bobs_link)

    revoke(portal, "ANN@example.org", capsys)

    for browser in (by_link, by_sign_in):
        assert browser.get(f"/tickets/{mine}").status_code == 404
        assert not signed_in_as(browser)
    page = portal.client().get(link)
    assert page.status_code == 403 and "This link no longer works" in page.text
    assert "Send me a new link" in page.text and "Printer jams" not in page.text
    assert bob.get(f"/tickets/{bobs}").status_code == 200
    assert portal.client().get(bobs_link).status_code == 200

    # New mail carries working links: a new ticket's acknowledgement, and a renewed link.
    newer, newer_link = open_ticket(portal, subject="Scanner too")
    assert portal.client().get(newer_link).url.endswith(f"/tickets/{newer}")
    browser = portal.client()
    browser.form(browser.get(link), "/renew", {"token": token_of(link)})
    renewed = portal.mails("ticket_link", to="ann@example.org")[-1].link
    assert "Printer jams" in portal.client().get(renewed).text
    assert portal.client().get(link).status_code == 403


def test_a_sign_in_or_confirm_link_mailed_before_a_revocation_no_longer_works(portal, capsys):
    open_ticket(portal, subject="Printer jams")
    sign_in_link = _sign_in_link(portal, "ann@example.org")
    asker = portal.client()
    asker.form("/new", "/new", {"address": "ann@example.org", "subject": "New laptop",
                                "text": "Mine is five years old."})
    confirm_link = portal.mails("confirm_request", to="ann@example.org")[-1].link
    opened = {}  # each link's page, opened before the revocation, and its browser
    for link in (sign_in_link, confirm_link):
        browser = portal.client()
        opened[link] = browser, browser.get(link)
        assert opened[link][1].status_code == 200

    revoke(portal, "ann@example.org", capsys)

    before = held(portal)
    for link, (browser, page) in opened.items():
        fresh = portal.client()
        for answer in (browser.form(page, link), fresh.get(link), fresh.form(None, link)):
            assert answer.status_code == 403 and "no longer works" in answer.text, link
        assert not signed_in_as(browser) and not signed_in_as(fresh)
    assert held(portal) == before  # no ticket logged, no link used up
    assert signed_in_as(_signed_in(portal, "ann@example.org"))  # a new one works


# --- the sign-in form -----------------------------------------------------------------------

def test_the_sign_in_form_answers_alike_whether_the_address_has_tickets_or_not(portal):
    open_ticket(portal)
    browser = portal.client()
    answers = {address: browser.form("/sign-in", "/sign-in", {"address": address})
               for address in ("ann@example.org", "nobody@example.org")}
    assert [a.status_code for a in answers.values()] == [200, 200]
    assert "sign-in link is on its way" in answers["ann@example.org"].text
    bodies = {a.text.replace(address, "ADDRESS") for address, a in answers.items()}
    assert len(bodies) == 1
    for address in answers:  # both are mailed a link: only the mailbox's owner learns more
        assert len(portal.mails("sign_in", to=address)) == 1


@pytest.mark.parametrize("portal_settings_extra", [
    "limits: {auto_replies_per_recipient_per_hour: 2}\n"])
def test_sign_in_mails_over_the_cap_per_recipient_are_held_and_the_page_says_the_same(portal):
    browser = portal.client()
    pages = [browser.form("/sign-in", "/sign-in", {"address": "carol@example.org"}).text
             for _ in range(3)]
    assert len(set(pages)) == 1
    assert [m.row.status for m in portal.mails("sign_in", to="carol@example.org")] == [
        OutboxStatus.PENDING, OutboxStatus.PENDING, OutboxStatus.HELD]
    browser.form("/sign-in", "/sign-in", {"address": "dave@example.org"})
    assert [m.row.status for m in portal.mails("sign_in", to="dave@example.org")] == [
        OutboxStatus.PENDING]


@pytest.mark.parametrize("portal_web_options", ["requests_per_client_per_hour: 2"])
def test_a_client_over_its_hourly_limit_is_answered_429_and_nothing_is_queued(portal):
    _, link = open_ticket(portal)
    portal.clock.now += timedelta(days=31)  # the link expired: it offers a new one
    browser = portal.client()
    for address in ("ann@example.org", "nobody@example.org"):
        assert browser.form("/sign-in", "/sign-in", {"address": address}).status_code == 200
    before = held(portal)
    too_many = browser.form("/sign-in", "/sign-in", {"address": "carol@example.org"})
    assert too_many.status_code == 429 and "Too many requests" in too_many.text
    new_request = browser.form("/new", "/new", {"address": "carol@example.org",
                                                "subject": "Hi", "text": "Hello"})
    assert new_request.status_code == 429
    expired = browser.get(link)
    assert expired.status_code == 410
    assert browser.form(expired, "/renew", {"token": token_of(link)}).status_code == 429
    assert held(portal) == before
    assert not portal.mails("sign_in", to="carol@example.org")

    portal.clock.now += timedelta(hours=1, minutes=1)  # an hour later, it may ask again
    assert browser.form("/sign-in", "/sign-in", {"address": "carol@example.org"}).status_code == 200
    assert len(portal.mails("sign_in", to="carol@example.org")) == 1


@pytest.mark.parametrize("address", ["", "ann", "ann@", "@example.org", "ann example@x.org",
                                     "ann@example.org, bob@example.org",
                                     "ann@example.org\r\nBcc: eve@example.org"])
def test_an_address_that_is_none_is_answered_400_and_nothing_is_mailed(portal, address):
    browser = portal.client()
    before = Outbox.select().count(), PortalRequest.select().count()
    page = browser.form("/sign-in", "/sign-in", {"address": address})
    assert page.status_code == 400
    assert "That is not an email address" in page.text and sign_in_form_on(page)
    assert (Outbox.select().count(), PortalRequest.select().count()) == before


# --- helpers --------------------------------------------------------------------------------

def _sign_in_link(portal, address: str) -> str:
    portal.client().form("/sign-in", "/sign-in", {"address": address})
    return portal.mails("sign_in", to=address)[-1].link


def _signed_in(portal, address: str):
    browser = portal.client()
    sign_in(portal, browser, address)
    return browser



def test_a_confirmation_that_could_not_be_filed_keeps_its_link_for_another_try(portal):
    """The stored upload of a request is unreadable when its link is pressed (a disk fault):
    the page says so, and once the file is back the same link logs the request, once."""
    asker = portal.client()
    asker.form("/new", "/new", {"address": "ann@example.org", "subject": "New laptop",
                                "text": "Mine is five years old."},
               files={"files": ("specs.txt", b"16 GB, please", "text/plain")})
    link = portal.mails("confirm_request", to="ann@example.org")[-1].link
    [stored] = [p for p in (portal.app.settings.storage).rglob("*") if p.is_file()
                and p.read_bytes() == b"16 GB, please"]
    stored.rename(stored.with_suffix(".away"))
    browser = portal.client()
    failed = browser.form(browser.get(link), link)
    assert failed.status_code == 500 and Ticket.select().count() == 0

    stored.with_suffix(".away").rename(stored)
    logged = browser.form(browser.get(link), link)
    assert logged.status_code == 200 and "New laptop" in logged.text
    [ticket] = Ticket.select()
    assert ticket.requester == "ann@example.org"
    again = portal.client()
    assert again.get(link).status_code == 410
    assert Ticket.select().count() == 1
