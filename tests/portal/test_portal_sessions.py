"""The portal's sessions and the protections on every answer, over HTTP against the portal
served on loopback: the session cookie's flags, a new session on signing in, signing out here
or everywhere, the CSRF token on every form (a POST without this browser's token changes
nothing), the security headers on every kind of page, no token in any log line, 405 and 404
pages, and what users wrote shown escaped."""

from __future__ import annotations

import logging
import re
import time
from email.utils import formataddr

import pytest
import requests

from mailticket.models import Attachment
from mailticket.web.server import PortalServer
from mailticket.wiring import build
from tests.helpers import Clock, make_mail, settings_for
from tests.portal.steps import BOB, held, open_ticket, sign_in, token_of
from tests.servers.portal import Client
from tests.servers.smtpsink import free_port

XSS = ('<script>alert(1)</script>', '"><img src=x onerror=alert(2)>')


def signed_in_as(browser: Client) -> bool:
    return browser.get("/tickets").status_code == 200


def session_cookie(response) -> str:
    [cookie] = [c for c in response.raw.headers.getlist("Set-Cookie")
                if c.startswith("mailticket_session=")]
    return cookie


# --- the session ----------------------------------------------------------------------------

def test_the_session_cookie_is_httponly_and_samesite_lax_and_not_secure_over_http(portal):
    attributes = session_cookie(portal.client().get("/sign-in")).lower().split("; ")
    assert "httponly" in attributes and "samesite=lax" in attributes
    assert "secure" not in attributes and "path=/" in attributes


def test_with_an_https_base_url_the_session_cookie_is_secure(tmp_path, database_url):
    port = free_port()
    settings = settings_for(tmp_path, database_url, extra=(
        f"web: {{listen: '127.0.0.1:{port}', base_url: 'https://desk.example.org/help'}}\n"))
    app = build(settings, clock=Clock())
    server = PortalServer(app, wake=lambda: None)
    server.start()
    try:
        page = Client(f"http://127.0.0.1:{port}").get("/sign-in")
        attributes = session_cookie(page).lower().split("; ")
        assert {"secure", "httponly", "samesite=lax"} <= set(attributes)
    finally:
        server.stop()
        app.close()


def test_signing_in_starts_a_new_session_and_a_cookie_planted_before_stays_signed_out(portal):
    mine, link = open_ticket(portal)
    victim = portal.client()
    before = victim.csrf("/sign-in")
    planted = victim.http.cookies.get("mailticket_session")
    attacker = portal.client()  # holds the cookie it planted in the victim's browser
    attacker.http.cookies.set("mailticket_session", planted)

    victim.get(link)
    by_link = victim.csrf(f"/tickets/{mine}")
    assert by_link != before and victim.http.cookies.get("mailticket_session") != planted
    sign_in(portal, victim, "ann@example.org")
    assert victim.csrf("/tickets") not in (before, by_link)

    assert not signed_in_as(attacker) and attacker.get(f"/tickets/{mine}").status_code == 404
    stale = victim.post(f"/tickets/{mine}/notes", {"csrf": before, "note": "From the attacker"})
    assert stale.status_code == 400


def test_sign_out_ends_this_browsers_session_only(portal):
    mine, link = open_ticket(portal)
    here, elsewhere = portal.client(), portal.client()
    sign_in(portal, here, "ann@example.org")
    sign_in(portal, elsewhere, "ann@example.org")
    out = here.form("/tickets", "/sign-out")
    assert out.status_code == 200 and "You are signed out on this browser" in out.text
    assert not signed_in_as(here) and here.get(f"/tickets/{mine}").status_code == 404
    assert signed_in_as(elsewhere)
    assert portal.client().get(link).status_code == 200  # links still work


def test_sign_out_everywhere_ends_every_link_and_session_of_the_address(portal):
    mine, link = open_ticket(portal, subject="Printer jams")
    bobs, bobs_link = open_ticket(portal, BOB)
    here, by_link, bob = portal.client(), portal.client(), portal.client()
    sign_in(portal, here, "ann@example.org")
    by_link.get(link)
    bob.get(bobs_link)
    pending_sign_in = portal.client()
    pending_sign_in.form("/sign-in", "/sign-in", {"address": "ann@example.org"})
    sign_in_link = portal.mails("sign_in", to="ann@example.org")[-1].link

    out = here.form("/tickets", "/sign-out-everywhere")
    assert out.status_code == 200 and "You are signed out everywhere" in out.text
    for browser in (here, by_link):
        assert not signed_in_as(browser) and browser.get(f"/tickets/{mine}").status_code == 404
    old = portal.client().get(link)
    assert old.status_code == 403 and "This link no longer works" in old.text
    assert "Send me a new link" in old.text
    assert portal.client().get(sign_in_link).status_code == 403
    assert signed_in_as(bob) and portal.client().get(bobs_link).status_code == 200
    newer, newer_link = open_ticket(portal, subject="Scanner too")
    assert portal.client().get(newer_link).url.endswith(f"/tickets/{newer}")


def test_a_stopped_portal_answers_no_one_even_on_a_connection_kept_open(portal):
    browser = portal.client()
    assert signed_in_as(browser) is False  # the browser keeps its connection open
    started = time.monotonic()
    portal.server.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(requests.ConnectionError):
        browser.get("/sign-in")


# --- CSRF -----------------------------------------------------------------------------------

@pytest.fixture
def desk_of_ann(portal):
    """Ann, signed in, with an open, a resolved and a closed ticket, a sign-in link and a
    request to confirm waiting; Bob with a session of his own."""
    from mailticket.db import transaction

    numbers = {}
    for state in ("open", "resolved", "closed"):
        numbers[state], _ = open_ticket(portal, subject=f"The {state} one")
    with transaction(portal.app.db):
        portal.app.desk.resolve(numbers["resolved"], "agent@example.test", "Replaced it.")
        portal.app.desk.close(numbers["closed"], "agent@example.test", "Replaced it too.")
    ann, bob = portal.client(), portal.client()
    sign_in(portal, ann, "ann@example.org")
    sign_in(portal, bob, "bob@example.org")
    portal.client().form("/sign-in", "/sign-in", {"address": "ann@example.org"})
    numbers["sign-in link"] = portal.mails("sign_in", to="ann@example.org")[-1].link
    portal.client().form("/new", "/new", {"address": "ann@example.org", "subject": "Laptop",
                                          "text": "Mine is old."})
    numbers["confirm link"] = portal.mails("confirm_request", to="ann@example.org")[-1].link
    return ann, bob, numbers


FORMS = {  # what a form changes, with this browser's token: (page, action, fields)
    "note": ("/tickets/{open}", "/tickets/{open}/notes", {"note": "More detail"}),
    "close": ("/tickets/{resolved}", "/tickets/{resolved}/status", {"status": "close"}),
    "reopen": ("/tickets/{closed}", "/tickets/{closed}/status",
               {"status": "reopen", "note": "It broke again"}),
    "sign-in": ("/sign-in", "/sign-in", {"address": "ann@example.org"}),
    "new request": ("/new", "/new", {"subject": "Monitor", "text": "Flickers."}),
    "sign-in link": ("{sign-in link}", "{sign-in link}", {}),
    "confirm link": ("{confirm link}", "{confirm link}", {}),
    "sign out": ("/tickets", "/sign-out", {}),
    "sign out everywhere": ("/tickets", "/sign-out-everywhere", {}),
}


@pytest.mark.parametrize("form", FORMS)
def test_a_form_without_this_browsers_token_changes_nothing(portal, desk_of_ann, form):
    ann, bob, numbers = desk_of_ann
    page, action, fields = (x.format_map(numbers) if isinstance(x, str) else x
                            for x in FORMS[form])
    source = ann.get(page)
    assert source.status_code == 200
    nonce = re.search(r'name="nonce" value="([^"]+)"', source.text)
    fields = {**fields, **({"nonce": nonce.group(1)} if nonce else {})}
    before = held(portal), signed_in_as(ann)

    for csrf in (None, "x" * 43, ann.csrf(source)[:-1], bob.csrf("/tickets"),
                 portal.client().csrf("/sign-in")):
        refused = ann.post(action, fields if csrf is None else {**fields, "csrf": csrf})
        assert refused.status_code == 400, (form, csrf)
        assert "This form had expired or did not come from our pages" in refused.text
        assert (held(portal), signed_in_as(ann)) == before, (form, csrf)
    stranger = portal.client()  # no cookie at all, with the token of Ann's page
    assert stranger.post(action, {**fields, "csrf": ann.csrf(source)}).status_code == 400
    assert (held(portal), signed_in_as(ann)) == before

    ann.post(action, {**fields, "csrf": ann.csrf(source)})  # with it, the form does its work
    assert (held(portal), signed_in_as(ann)) != before


def test_every_form_on_every_page_carries_a_token(portal, desk_of_ann):
    ann, _, numbers = desk_of_ann
    pages = [ann.get(path) for path in ("/tickets", "/new", *(
        f"/tickets/{numbers[s]}" for s in ("open", "resolved", "closed")))]
    pages += [portal.client().get(p) for p in ("/", "/sign-in", "/new", numbers["sign-in link"],
                                               numbers["confirm link"], "/nope")]
    forms = 0
    for page in pages:
        for form in re.findall(r"<form\b.*?</form>", page.text, re.S):
            forms += 1
            assert 'method="post"' in form, (page.url, form)
            assert re.search(r'name="csrf" value="[A-Za-z0-9_-]{40,}"', form), (page.url, form)
    assert forms >= 20


# --- headers --------------------------------------------------------------------------------

def assert_protected(response, *, personal: bool = True) -> None:
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    directives = {name: values for name, *values in
                  (part.split() for part in policy.split(";") if part.strip())}
    scripts = directives.get("script-src", directives.get("default-src"))
    where = f"{response.status_code} {response.url}"
    assert scripts and set(scripts) <= {"'none'", "'self'"}, where
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert "waitress" not in headers.get("Server", "").lower(), where
    if personal:
        assert "no-store" in headers.get("Cache-Control", ""), where
    if response.headers.get("Content-Type", "").startswith("text/html"):
        assert "<script" not in response.text and not re.search(r"<[^>]*\son\w+=", response.text)


@pytest.mark.parametrize("portal_web_options", ["requests_per_client_per_hour: 3"])
def test_every_kind_of_page_carries_the_security_headers(portal):
    mine, link = open_ticket(portal, attachments=[("notes.html", "text/html", b"<b>hi</b>")])
    [attachment] = Attachment.select()
    download = f"/tickets/{mine}/files/{attachment.id}"
    signed_out, browser = portal.client(), portal.client()
    answers = {
        "home": signed_out.get("/"), "sign-in": signed_out.get("/sign-in"),
        "new": signed_out.get("/new"), "my tickets, signed out (401)": signed_out.get("/tickets"),
        "link (303)": browser.get(link, follow=False), "ticket": browser.get(link),
        "my tickets": browser.get("/tickets"), "new, signed in": browser.get("/new"),
        "download": browser.get(download), "403": browser.get(link[:-4] + "AAAA"),
        "404": browser.get("/nope"), "404 ticket": browser.get("/tickets/987654"),
        "405": browser.get("/sign-out"),
        "400": browser.post("/sign-in", {"address": "ann@example.org"}),
        "sent": browser.form(f"/tickets/{mine}", "/sign-in", {"address": "ann@example.org"}),
    }
    sign_in_link = portal.mails("sign_in")[-1].link
    answers["sign-in link"] = browser.get(sign_in_link)
    answers["signed in (303)"] = browser.form(None, sign_in_link, follow=False)
    for _ in range(3):
        answers["429"] = browser.form("/sign-in", "/sign-in", {"address": "ann@example.org"})
    store = portal.app.store
    store.path(attachment.sha256).unlink()  # the file store lost it: a failure of ours
    answers["500"] = browser.get(download)
    portal.clock.now = portal.clock.now.replace(year=portal.clock.now.year + 1)
    answers["410"] = portal.client().get(link)

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "home": 200, "sign-in": 200, "new": 200, "my tickets, signed out (401)": 401,
        "link (303)": 303, "ticket": 200, "my tickets": 200, "new, signed in": 200,
        "download": 200, "403": 403, "404": 404, "404 ticket": 404, "405": 405, "400": 400,
        "sent": 200, "sign-in link": 200, "signed in (303)": 303, "429": 429, "500": 500,
        "410": 410}
    for answer in answers.values():
        assert_protected(answer)
    assert "sandbox" in answers["download"].headers["Content-Security-Policy"]
    assert answers["download"].headers["Content-Disposition"].startswith("attachment;")
    assert_protected(portal.client().get("/portal.css"), personal=False)


# --- logs -----------------------------------------------------------------------------------

# The test's own HTTP client logs the URLs it asks for; only what the portal logs counts here.
CLIENT_LOGGERS = ("urllib3", "requests")


def test_no_token_reaches_a_log_line(portal, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: mailticket's, waitress, flask, peewee
    mine, link = open_ticket(portal)
    tokens = [token_of(link)]
    browser = portal.client()
    browser.get(link)
    browser.get(link[:-4] + "AAAA")
    sign_in(portal, browser, "ann@example.org")
    sign_in_link = portal.mails("sign_in")[-1].link
    tokens.append(token_of(sign_in_link))
    portal.client().form(sign_in_link, sign_in_link)  # used already: 410
    portal.client().get(sign_in_link[:-4] + "AAAA")
    asker = portal.client()
    asker.form("/new", "/new", {"address": "carol@example.org", "subject": "Badge",
                                "text": "Lost it."},
               files={"files": ("photo.png", b"\x89PNG not really", "image/png")})
    confirm_link = portal.mails("confirm_request")[-1].link
    tokens.append(token_of(confirm_link))
    for path in portal.app.store.root.rglob("*"):
        if path.is_file() and path.read_bytes() == b"\x89PNG not really":
            path.unlink()  # the store lost the upload: confirming fails on our side
    failed = asker.form(confirm_link, confirm_link)
    assert failed.status_code == 500
    portal.clock.now = portal.clock.now.replace(year=portal.clock.now.year + 1)
    expired = portal.client().get(link)
    assert expired.status_code == 410

    lines = [logging.Formatter("%(name)s %(message)s").format(record)
             for record in caplog.records if not record.name.startswith(CLIENT_LOGGERS)]
    assert any("portal: a request failed" in line and "Traceback" in line for line in lines)
    secrets = tokens + [token.rsplit(".", 1)[1] for token in tokens]
    for line in lines:
        for secret in secrets:
            assert secret not in line


# --- methods, paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/sign-out", {"POST"}),
    ("GET", "/sign-out-everywhere", {"POST"}),
    ("GET", "/renew", {"POST"}),
    ("GET", "/tickets/1/notes", {"POST"}),
    ("PUT", "/sign-in", {"GET", "POST"}),
    ("DELETE", "/tickets/1", {"GET"}),
    ("POST", "/tickets", {"GET"}),
    ("POST", "/portal.css", {"GET"}),
])
def test_a_wrong_method_is_answered_405_with_allow_and_our_page(portal, method, path, allowed):
    browser = portal.client()
    token = browser.csrf("/sign-in")
    for data in (None, {"csrf": token}):  # with this browser's token, and without
        answer = browser.http.request(method, browser.url(path), data=data, timeout=10)
        assert answer.status_code == 405, (method, path, data)
        assert allowed <= {m.strip() for m in answer.headers["Allow"].split(",")}
        assert "Not like this" in answer.text
        assert_protected(answer)


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("GET", "/t/"), ("GET", "/tickets/abc"), ("GET", "/tickets/1/files/x"),
    ("POST", "/nope"), ("GET", "/admin"),
])
def test_an_unknown_path_is_answered_404_with_our_page(portal, method, path):
    answer = portal.client().http.request(method, portal.base + path, timeout=10)
    assert answer.status_code == 404 and "Nothing here" in answer.text
    assert_protected(answer)


# --- escaping -------------------------------------------------------------------------------

def test_what_users_wrote_is_shown_escaped(portal):
    script, tag = XSS
    result = portal.take_in(make_mail(
        subject=f"{tag} {script}", sender=formataddr((script, "mallory@example.org")),
        body=f"Hello {script} {tag}\n", cc="ann@example.org"))
    browser = portal.client()
    sign_in(portal, browser, "ann@example.org")  # Ann is in copy: she sees Mallory's ticket
    pages = [browser.get(f"/tickets/{result.ticket}"), browser.get("/tickets")]
    pages.append(browser.form(pages[0], f"/tickets/{result.ticket}/notes",
                              {"note": f"Me too {script}"}))
    pages.append(browser.form("/new", "/new", {"subject": f"{tag}{script}", "text": ""}))
    pages.append(browser.form("/sign-in", "/sign-in", {"address": f"{tag}{script}"}))
    asker = portal.client()
    asker.form("/new", "/new", {"address": "carol@example.org", "name": script,
                                "subject": f"{tag}{script}", "text": f"{script}{tag}"})
    pages.append(asker.get(portal.mails("confirm_request")[-1].link))

    assert [p.status_code for p in pages] == [200, 200, 200, 400, 400, 200]
    for page in pages:
        assert "<script>" not in page.text and "<img" not in page.text, page.url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, page.url
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in pages[0].text
    assert pages[0].text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # subject, name, body

