"""A real headless Chromium for the web tests (a pytest plugin): Debian's chromium driven by
Playwright's sync API, and axe-core's accessibility check on the pages it shows.

Fixtures:
- ``chromium`` (session): a Playwright ``Browser``, launched once: ``$MAILTICKET_CHROMIUM`` or
  ``/usr/bin/chromium`` (Debian's package; ``playwright install`` cannot download its own here).
- ``new_page`` (function): a factory ``new_page(**context_options) -> Page``. Each call opens a new
  browser context (its own cookies and storage: a second user, or ``bypass_csp=True``) with
  Playwright's ``new_context`` options; every context is closed after the test.
- ``browser_page`` (function): ``new_page()``, a page in a fresh context.

Helpers: ``axe_violations(page, *, rules=None) -> list[dict]`` and ``format_violations(violations)``
for the assertion message::

    violations = axe_violations(browser_page)
    assert not violations, format_violations(violations)

The network stays on loopback: every request for a non-loopback address (the page's or Chromium's
own background traffic, which its flags do not wholly stop) goes to a proxy port on 127.0.0.1 that
refuses connections, so it fails at once with ``net::ERR_PROXY_CONNECTION_FAILED``. Loopback
addresses (127.0.0.0/8, localhost, [::1]) bypass proxies in Chromium and are reached directly.

Both tools come from ``scripts/install-test-deps`` (chromium with apt, axe-core with npm into
``var/test-deps/``) and ``pip install -e '.[test]'`` (playwright); without them the tests skip on a
developer's machine and fail on CI.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers import unavailable

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the test extra is not installed: the fixtures skip (or fail on CI)
    sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ENV = "MAILTICKET_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
AXE_JS = ROOT / "var" / "test-deps" / "node_modules" / "axe-core" / "axe.min.js"
INSTALL_HINT = "run scripts/install-test-deps"

# This machine's closed network refuses Chromium's background connections (updates, sync, QUIC
# probes); these flags stop most of them, and the refusing proxy (below) the few left (seen:
# update.googleapis.com and accounts.google.com at start). --no-sandbox: the tests may run as root.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

#: Playwright's timeout for every action and navigation (its own default is 30 s): a page under
#: test answers from loopback, so a wait this long is a failure, better reported soon.
TIMEOUT_MS = 10_000


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses every connection (bound, never listening) while held."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched once per session through Playwright."""
    if sync_playwright is None:
        unavailable("playwright is not installed: pip install -e '.[test]'")
    executable = os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    if not os.access(executable, os.X_OK):
        unavailable(f"{executable} is missing: {INSTALL_HINT} (or set {CHROMIUM_ENV})")
    # Playwright's own proxy option would add "<-loopback>" and so send loopback to the proxy too;
    # the plain flag keeps Chromium's rule that loopback goes direct.
    with refusing_port() as dead_proxy, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--proxy-server=http://127.0.0.1:{dead_proxy}"],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium: Browser) -> Iterator[Callable[..., Page]]:
    """A factory: ``new_page(**context_options)`` opens a page in a new browser context."""
    contexts = []

    def open_page(**context_options: Any) -> Page:
        context = chromium.new_context(**context_options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def browser_page(new_page: Callable[..., Page]) -> Page:
    """A page in a fresh browser context (no cookies), closed after the test."""
    return new_page()


@functools.cache
def _axe_source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# Runs in the page: axe's own result, cut to what an assertion message needs. A node's target is
# one selector per frame level, each a string, or a list of them through shadow roots.
_RUN_AXE = """async (rules) => {
    const options = {resultTypes: ["violations"]};
    if (rules) options.runOnly = {type: "rule", values: rules};
    const results = await axe.run(document, options);
    const selector = (part) => Array.isArray(part) ? part.join(" >>> ") : part;
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.map((node) => node.target.map(selector).join(" >> ")),
    }));
}"""


def axe_violations(page: Page, *, rules: list[str] | None = None) -> list[dict]:
    """Run axe-core on the page as it is now; its violations as dicts with ``id``, ``impact``,
    ``help`` and ``targets`` (one CSS selector per offending node; frames joined by ``" >> "``,
    shadow roots by ``" >>> "``). ``rules`` limits the run to those axe rule ids; by default
    every rule axe runs by default (WCAG A/AA and best practices).

    How axe gets in: its source goes through Playwright's ``evaluate`` into every frame that does
    not have it yet. The pages under test send a Content-Security-Policy without inline script
    (``default-src 'self'``), and it blocks a ``<script>`` element holding axe (Playwright's
    ``add_script_tag`` fails with "violates the following Content Security Policy directive").
    ``evaluate`` runs the source through the DevTools protocol, which the page's CSP does not
    govern; axe itself needs no ``eval``. So the page keeps its real policy while it is checked,
    and no ``bypass_csp`` context is needed, which would also hide a page that the policy breaks.
    tests/test_browser_infra.py checks both halves: the script element is refused, axe runs.
    """
    if not AXE_JS.is_file():
        unavailable(f"axe-core is not installed ({AXE_JS} is missing): {INSTALL_HINT}")
    source = _axe_source(AXE_JS)
    for frame in page.frames:
        if not frame.evaluate("() => typeof window.axe?.run === 'function'"):
            frame.evaluate(source)
    return page.evaluate(_RUN_AXE, rules)


def format_violations(violations: list[dict]) -> str:
    """The violations as lines for an assertion message: rule, impact, help, then each node."""
    if not violations:
        return "no accessibility violations"
    lines = [f"{len(violations)} accessibility violation(s):"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(f"    {target}" for target in violation["targets"])
    return "\n".join(lines)
