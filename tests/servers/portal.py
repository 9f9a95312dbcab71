"""The portal served for real on loopback (a pytest plugin): a wired app on the test's database
(SQLite, and PostgreSQL when it is switched on) with a clock the test sets, and waitress serving
``web.make_app`` in a thread on a free port, exactly as ``mailticket run`` does.

Fixtures:
- ``portal`` (function): a ``PortalUnderTest``. Mail arrives through ``take_in(raw)`` (the
  intake pipeline, as the SMTP and IMAP sources call it); what the desk queued is read back from
  the outbox with ``mails(kind, to=...)``, each a parsed ``email`` message with ``text`` and the
  ``link`` it carries; ``client()`` is a new browser without JavaScript (its own cookies).
- ``portal_web_options`` (function, override in a module): more keys of the ``web`` section
  (``"requests_per_client_per_hour: 2"``); ``portal_desk_options``: more keys of the ``desk``
  section, as YAML lines (``"comment_address: ..."``); ``portal_settings_extra``: more
  top-level YAML for the config (groups, limits...).

The browser tests (Chromium) point at ``portal.base``; HTTP-level tests use ``client()``, whose
``form(page_path_or_response, action, data, files)`` posts a form with the CSRF token of the page
it came from, as a browser would.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from mailticket.intake.items import RawMail, Result
from mailticket.models import Outbox
from mailticket.web.server import PortalServer
from mailticket.wiring import App, build
from tests.helpers import Clock, settings_for
from tests.servers.smtpsink import free_port

_keys = itertools.count(1)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class QueuedMail:
    """One mail the desk queued, as its recipient would read it."""

    row: Outbox
    message: EmailMessage

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else None

    @property
    def links(self) -> list[str]:
        return re.findall(r"https?://\S+/[tsc]/[A-Za-z0-9._-]+", self.text)

    @property
    def link(self) -> str:
        [link] = self.links
        return link


class Client:
    """A browser with cookies and no JavaScript, talking HTTP to the portal. Redirects are not
    followed unless asked (``follow=True``), so tests see each status and Location."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.last: requests.Response | None = None

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def get(self, path: str, *, follow: bool = True, **kwargs: Any) -> requests.Response:
        self.last = self.http.get(self.url(path), allow_redirects=follow, timeout=10, **kwargs)
        return self.last

    def post(self, path: str, data: dict[str, Any] | None = None, *, follow: bool = True,
             **kwargs: Any) -> requests.Response:
        self.last = self.http.post(self.url(path), data=data, allow_redirects=follow,
                                   timeout=10, **kwargs)
        return self.last

    def csrf(self, page: requests.Response | str | None = None) -> str:
        """The CSRF token of a page (a response, a path to fetch, or the last page)."""
        if isinstance(page, str):
            page = self.get(page)
        page = page if page is not None else self.last
        assert page is not None, "no page fetched yet"
        found = _CSRF.search(page.text)
        assert found, f"no CSRF token on {page.url}"
        return found.group(1)

    def form(self, page: requests.Response | str | None, action: str,
             data: dict[str, Any] | None = None, *, files: Any = None,
             follow: bool = True) -> requests.Response:
        """Post ``data`` to ``action`` with the CSRF token (and nonce, if any) of ``page``."""
        # Not ``page or self.last``: a response with an error status is falsy.
        source = self.get(page) if isinstance(page, str) else (
            page if page is not None else self.last)
        assert source is not None
        fields = {"csrf": self.csrf(source)}
        nonce = re.search(r'name="nonce" value="([^"]+)"', source.text)
        if nonce:
            fields["nonce"] = nonce.group(1)
        fields.update(data or {})
        return self.post(action, fields, files=files, follow=follow)

    def open_link(self, link: str) -> requests.Response:
        """Follow a link from a mail (its address part replaced by this portal's)."""
        return self.get(link)


@dataclass
class PortalUnderTest:
    app: App
    server: PortalServer
    clock: Clock
    base: str
    woken: list[int] = field(default_factory=list)

    def take_in(self, raw: bytes, *, source: str = "smtp") -> Result:
        """A mail arrives at the desk (committed when this returns)."""
        [result] = self.app.pipeline.process_batch(
            [RawMail(source=source, key=f"test/{next(_keys)}", raw=raw)])
        return result

    def mails(self, kind: str | None = None, *, to: str | None = None) -> list[QueuedMail]:
        """What the desk queued so far, oldest first (``kind`` and a recipient to filter)."""
        query = Outbox.select().order_by(Outbox.id)
        if kind is not None:
            query = query.where(Outbox.kind == kind)
        found = []
        for row in query:
            if to is not None and to.lower() not in [r.lower() for r in row.recipients]:
                continue
            message = email.message_from_bytes(bytes(row.content), policy=email.policy.default)
            found.append(QueuedMail(row, message))
        return found

    def client(self) -> Client:
        return Client(self.base)


@pytest.fixture
def portal_settings_extra() -> str:
    """Extra config YAML for the ``portal`` fixture (a module may override this fixture)."""
    return ""


@pytest.fixture
def portal_web_options() -> str:
    """More keys of the ``web`` section, as YAML flow items (a module may override this)."""
    return ""


@pytest.fixture
def portal_desk_options() -> str:
    """More keys of the ``desk`` section, as YAML lines (a module may override this)."""
    return ""


@pytest.fixture
def portal(tmp_path, database_url, portal_web_options, portal_desk_options,
           portal_settings_extra) -> Iterator[PortalUnderTest]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(tmp_path, database_url, desk=portal_desk_options, extra=(
        f"web: {{listen: '127.0.0.1:{port}', base_url: '{base}'"
        + (f", {portal_web_options}" if portal_web_options else "") + "}\n"
        + portal_settings_extra))
    clock = Clock()
    app = build(settings, clock=clock)
    woken: list[int] = []
    server = PortalServer(app, wake=lambda: woken.append(1))
    server.start()
    try:
        yield PortalUnderTest(app, server, clock, base, woken)
    finally:
        try:
            server.stop()
        finally:  # whatever stop met, the next test gets the database free
            app.close()
