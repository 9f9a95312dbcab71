"""Signed, scoped, expiring, revocable links to the portal.

A link's token is signed (itsdangerous, HMAC-SHA1 over the payload and the time it was made)
with the desk's portal key, which the database keeps (schema v5). It is bound to one address
and to one ticket (or to none: a sign-in link, whose nonce names a row that works once, for
one address), and carries the address's *generation*: revoking an address moves its
generation on, so every link and session made before is refused. Changing any character of a
token breaks its signature; a link for ticket 41 names 41 inside what is signed, so no URL
edit reaches 42.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import itsdangerous
import peewee

from mailticket.config import Web
from mailticket.db import Prepared
from mailticket.models import PortalRevocation, portal_key, utcnow

TICKET = "ticket"      # /t/TOKEN: one ticket, for its lifetime
SIGN_IN = "sign-in"    # /s/TOKEN: "my tickets", once, for minutes
CONFIRM = "confirm"    # /c/TOKEN: a new request typed in while not signed in, once


_GENERATION = Prepared(lambda a: PortalRevocation.select(PortalRevocation.generation).where(
    PortalRevocation.address == a), 1)


class LinkRefused(Exception):
    """A link that cannot be followed: ``why`` is invalid, expired or revoked. ``address`` and
    ``ticket`` are what a signed (expired or revoked) link named, so that a new link can be
    mailed to that address; None when the signature did not verify."""

    def __init__(self, why: str, address: str | None = None, ticket: int | None = None):
        super().__init__(why)
        self.why = why
        self.address = address
        self.ticket = ticket


@dataclass(frozen=True)
class Grant:
    """What a followed link proves: the browser reads mail sent to ``address``; ``ticket`` is
    the one ticket it may see (None: every ticket of the address)."""

    address: str
    ticket: int | None
    generation: int


class Links:
    """Makes and reads the portal's links for one database."""

    def __init__(self, web: Web, db: peewee.Database, *, reopen_window_days: int,
                 clock: Callable[[], datetime] = utcnow):
        self.web = web
        self.db = db
        self.clock = clock
        self.ticket_lifetime = timedelta(days=web.ticket_link_days or max(reopen_window_days, 1))
        self.short_lifetime = timedelta(minutes=web.sign_in_minutes)
        self._key: bytes | None = None
        # Links are dated by the desk's clock, so that a job or test "as at" a time agrees
        # with them on what has expired.
        now = clock

        class _Signer(itsdangerous.TimestampSigner):
            def get_timestamp(self) -> int:
                return int(now().replace(tzinfo=UTC).timestamp())

        self._signer = _Signer

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = portal_key(self.db)
        return self._key

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for another use of the portal key (the session cookies)."""
        return hmac.new(self.key, purpose.encode(), hashlib.sha256).digest()

    # --- making links ------------------------------------------------------------------------

    def ticket_link(self, address: str, number: int) -> str:
        address = address.lower()
        return self.url(TICKET, {"a": address, "t": number, "g": self.generation(address)})

    def nonce_link(self, kind: str, nonce: str, address: str) -> str:
        """A sign-in or request link naming its waiting row (``nonce``), for ``address``: it
        carries the address's generation, so that a revocation refuses it too."""
        return self.url(kind, {"n": nonce, "g": self.generation(address)})

    def url(self, kind: str, payload: dict[str, Any]) -> str:
        path = {TICKET: "t", SIGN_IN: "s", CONFIRM: "c"}[kind]
        return f"{self.web.base_url}/{path}/{self._serializer(kind).dumps(payload)}"

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    # --- reading links -----------------------------------------------------------------------

    def read(self, kind: str, token: str) -> dict[str, Any]:
        """The payload of a link of ``kind``; LinkRefused when it is not one, was changed, or
        is past its lifetime. (Revocation is checked by the caller, who knows the address.)"""
        serializer = self._serializer(kind)
        lifetime = self.ticket_lifetime if kind == TICKET else self.short_lifetime
        try:
            payload = serializer.loads(token, max_age=int(lifetime.total_seconds()))
        except itsdangerous.SignatureExpired:
            ok, payload = serializer.loads_unsafe(token)
            if ok and isinstance(payload, dict):
                raise LinkRefused("expired", _address(payload), _number(payload)) from None
            raise LinkRefused("invalid") from None
        except itsdangerous.BadData:
            raise LinkRefused("invalid") from None
        if not isinstance(payload, dict):
            raise LinkRefused("invalid")
        return payload

    def ticket_grant(self, token: str) -> Grant:
        payload = self.read(TICKET, token)
        address, number, generation = _address(payload), _number(payload), payload.get("g")
        if address is None or number is None or not isinstance(generation, int):
            raise LinkRefused("invalid")
        if generation != self.generation(address):
            raise LinkRefused("revoked", address, number)
        return Grant(address, number, generation)

    def check_nonce_link(self, payload: dict[str, Any], address: str) -> None:
        """LinkRefused ("revoked") when ``address``, the one the waiting row of a sign-in or
        request link is for, was revoked since the link was made."""
        # No "g": a link made before links carried it, good until the address's first revocation.
        if payload.get("g", 0) != self.generation(address):
            raise LinkRefused("revoked", address)

    # --- revocation --------------------------------------------------------------------------

    def generation(self, address: str) -> int:
        row = _GENERATION.first(self.db, address.lower())
        return row[0] if row is not None else 0

    def revoke(self, address: str) -> int:
        """Refuse every link and session of ``address`` made so far; the new generation.
        Called inside the caller's transaction."""
        address = address.lower()
        now = self.clock()
        updated = (PortalRevocation.update(generation=PortalRevocation.generation + 1,
                                           revoked_at=now)
                   .where(PortalRevocation.address == address).execute())
        if not updated:
            PortalRevocation.create(address=address, generation=1, revoked_at=now)
        return self.generation(address)

    def _serializer(self, kind: str) -> itsdangerous.URLSafeTimedSerializer:
        return itsdangerous.URLSafeTimedSerializer(self.key, salt=f"mailticket.portal.{kind}",
                                                   signer=self._signer)


def _address(payload: dict[str, Any]) -> str | None:
    value = payload.get("a")
    return value if isinstance(value, str) and "@" in value else None


def _number(payload: dict[str, Any]) -> int | None:
    value = payload.get("t")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
