"""The browser test infrastructure itself (tests/servers/browser.py): Debian's Chromium driven by
Playwright against a real loopback HTTP server that sends a strict Content-Security-Policy, and
axe-core finding (or not finding) accessibility violations under that policy."""

from __future__ import annotations

import html
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.servers.browser import axe_violations, format_violations

pytestmark = pytest.mark.browser

CSP = "default-src 'self'; frame-ancestors 'none'"

GOOD_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Contact the desk</title>
<script src="/app.js" defer></script>
</head>
<body>
<main>
<h1>Contact the desk</h1>
<img src="/logo.svg" alt="Mailticket" width="32" height="32">
<form method="post" action="/greet">
<label for="name">Your name</label>
<input id="name" name="name" type="text" autocomplete="name">
<button type="submit">Send</button>
</form>
<p><button type="button" id="counter">Clicked 0 times</button></p>
</main>
</body>
</html>
"""

BAD_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Search</title>
</head>
<body>
<main>
<h1>Search</h1>
<input id="query" name="q" type="text">
<img id="logo" src="/logo.svg" width="32" height="32">
</main>
</body>
</html>
"""

# An external script is allowed by script-src 'self' (through default-src); inline ones are not.
APP_JS = """let clicks = 0;
const counter = document.getElementById("counter");
counter.addEventListener("click", () => {
    clicks += 1;
    counter.textContent = `Clicked ${clicks} times`;
});
"""

LOGO_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
            '<rect width="32" height="32" fill="#036"/></svg>')


def page_saying(title: str, text: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'</head><body><main><h1 id="said">{html.escape(text)}</h1></main></body></html>')


class Handler(BaseHTTPRequestHandler):
    """The two pages, their script and image, a form target and a cookie pair."""

    STATIC = {
        "/good": ("text/html; charset=utf-8", GOOD_PAGE),
        "/bad": ("text/html; charset=utf-8", BAD_PAGE),
        "/app.js": ("text/javascript; charset=utf-8", APP_JS),
        "/logo.svg": ("image/svg+xml", LOGO_SVG),
    }

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path in self.STATIC:
            self.answer(*self.STATIC[url.path])
        elif url.path == "/login":
            user = urllib.parse.parse_qs(url.query)["user"][0]
            cookie = f"user={urllib.parse.quote(user)}; Path=/; HttpOnly; SameSite=Strict"
            self.answer("text/html; charset=utf-8", page_saying("Signed in", f"Signed in as {user}"),
                        headers={"Set-Cookie": cookie})
        elif url.path == "/whoami":
            cookies = dict(part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";")
                           if "=" in part)
            user = urllib.parse.unquote(cookies.get("user", "nobody"))
            self.answer("text/html; charset=utf-8", page_saying("Who", user))
        else:
            self.answer("text/plain; charset=utf-8", "not found", status=404)

    def do_POST(self) -> None:
        if self.path != "/greet":
            self.answer("text/plain; charset=utf-8", "not found", status=404)
            return
        body = self.rfile.read(int(self.headers["Content-Length"])).decode("ascii")
        name = urllib.parse.parse_qs(body).get("name", ["stranger"])[0]
        self.answer("text/html; charset=utf-8", page_saying("Hello", f"Hello, {name}"))

    def answer(self, content_type: str, body: str, status: int = 200,
               headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", CSP)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # pytest shows what matters; a line per request would only bury it


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # The browser drops requests it no longer needs (a favicon when its context closes).
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The base URL of a real HTTP server on a free loopback port, in a thread."""
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def ids(violations: list[dict]) -> set[str]:
    return {violation["id"] for violation in violations}


def test_the_pages_arrive_under_the_strict_policy(browser_page, site):
    response = browser_page.goto(f"{site}/good")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CSP
    assert browser_page.title() == "Contact the desk"


def test_the_policy_is_enforced_so_axe_cannot_come_in_a_script_tag(browser_page, site):
    from playwright.sync_api import Error

    browser_page.goto(f"{site}/good")
    with pytest.raises(Error, match="Content Security Policy"):
        browser_page.add_script_tag(content="window.inlineRan = true")
    assert browser_page.evaluate("window.inlineRan") is None


def test_a_good_page_has_no_violations_until_its_label_goes(browser_page, site):
    browser_page.goto(f"{site}/good")
    violations = axe_violations(browser_page)
    assert violations == [], format_violations(violations)

    # The same page, same policy, same injected axe: take the label away and axe must say so.
    browser_page.locator("label[for=name]").evaluate("label => label.remove()")
    violations = axe_violations(browser_page)
    assert ids(violations) == {"label"}, format_violations(violations)
    assert violations[0]["targets"] == ["#name"]


def test_a_bad_page_has_its_label_and_image_alt_violations(browser_page, site):
    browser_page.goto(f"{site}/bad")
    violations = axe_violations(browser_page)
    assert {"label", "image-alt"} <= ids(violations), format_violations(violations)
    by_id = {violation["id"]: violation for violation in violations}
    assert by_id["label"]["targets"] == ["#query"]
    assert by_id["image-alt"]["targets"] == ["#logo"]
    assert by_id["image-alt"]["impact"] == "critical"

    message = format_violations(violations)
    assert "- image-alt (critical): Images must have alternative text" in message
    assert "    #logo" in message


def test_rules_limit_the_check(browser_page, site):
    browser_page.goto(f"{site}/bad")
    violations = axe_violations(browser_page, rules=["image-alt"])
    assert ids(violations) == {"image-alt"}, format_violations(violations)


def test_a_click_runs_the_page_own_script(browser_page, site):
    browser_page.goto(f"{site}/good")
    counter = browser_page.get_by_role("button", name="Clicked 0 times")
    counter.click()
    counter = browser_page.locator("#counter")
    counter.click()
    assert counter.text_content() == "Clicked 2 times"


def test_a_submitted_form_shows_the_server_answer(browser_page, site):
    browser_page.goto(f"{site}/good")
    browser_page.get_by_label("Your name").fill("Ada <Lovelace>")
    browser_page.get_by_role("button", name="Send").click()
    browser_page.wait_for_url(f"{site}/greet")
    assert browser_page.locator("#said").text_content() == "Hello, Ada <Lovelace>"


def test_each_new_page_is_a_user_of_its_own(new_page, site):
    alice, bob = new_page(), new_page()
    alice.goto(f"{site}/login?user=alice")
    alice.goto(f"{site}/whoami")
    bob.goto(f"{site}/whoami")
    assert alice.locator("#said").text_content() == "alice"
    assert bob.locator("#said").text_content() == "nobody"


def test_a_context_can_bypass_the_policy_when_asked(new_page, site):
    page = new_page(bypass_csp=True)
    page.goto(f"{site}/good")
    page.add_script_tag(content="window.inlineRan = true")
    assert page.evaluate("window.inlineRan") is True


def test_the_network_stays_on_loopback(browser_page):
    from playwright.sync_api import Error

    # .invalid never resolves anywhere; the point is that Chromium hands it to the refusing proxy
    # on loopback instead of looking it up or connecting out.
    with pytest.raises(Error, match="ERR_PROXY_CONNECTION_FAILED"):
        browser_page.goto("http://mailticket.invalid/")
