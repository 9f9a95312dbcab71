"""What protects every page: the response headers (CSP without inline script, no framing, no
referrer, nosniff, no caching), the CSRF token every form carries, and the session, which names
the address a followed link proved and the tickets it may see, and dies with a revocation."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from flask import Response, abort, request, session

from mailticket.portal.links import Links

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
# A download is never a page: even an HTML file someone uploaded renders nothing, runs nothing.
DOWNLOAD_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"
EVERYONE = "*"


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["Referrer-Policy"] = "no-referrer"   # links carry tokens
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers.setdefault("Cache-Control", "no-store")  # personal pages stay out of caches
    return response


def csrf_token() -> str:
    """This browser's form token (made on first use, kept in its session cookie)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """Before any POST: the form's token must be this session's, or nothing happens (400).
    A POST no view takes (an unknown path, a page that is only read) runs nothing: its 404 or
    405 is the answer."""
    if request.method != "POST" or request.routing_exception is not None:
        return
    sent = request.form.get("csrf", "")
    token = session.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(sent.encode(), token.encode()):
        abort(400, description="csrf")


@dataclass(frozen=True)
class Viewer:
    """Who this browser is: an address (proved by a link mailed to it) and what it may see."""

    address: str
    everything: bool
    tickets: frozenset[int]

    def may_see(self, number: int) -> bool:
        return self.everything or number in self.tickets


def current_viewer(links: Links) -> Viewer | None:
    """The session's viewer, or None (not signed in, or revoked since: the session is ended)."""
    address = session.get("a")
    if not isinstance(address, str):
        return None
    if session.get("g") != links.generation(address):
        end_session()
        return None
    scope = session.get("t")
    if scope == EVERYONE:
        return Viewer(address, True, frozenset())
    numbers = frozenset(n for n in scope or () if isinstance(n, int))
    return Viewer(address, False, numbers)


def start_session(links: Links, address: str, *, ticket: int | None) -> None:
    """Sign this browser in as ``address``: for every ticket (``ticket`` None) or for one more.
    Another address replaces the session; a new token is issued against fixation."""
    address = address.lower()
    generation = links.generation(address)
    same = session.get("a") == address and session.get("g") == generation
    scope = session.get("t") if same else []
    if ticket is None:
        scope = EVERYONE
    elif scope != EVERYONE:
        scope = sorted({*(n for n in scope or () if isinstance(n, int)), ticket})[-200:]
    session.clear()
    session.permanent = True
    session.update({"a": address, "g": generation, "t": scope,
                    "csrf": secrets.token_urlsafe(32)})


def see_also(ticket: int) -> None:
    """A ticket the viewer just made (a new request, a linked one) joins what it may see."""
    scope = session.get("t")
    if scope != EVERYONE:
        session["t"] = sorted({*(n for n in scope or () if isinstance(n, int)), ticket})[-200:]


def end_session() -> None:
    session.clear()
