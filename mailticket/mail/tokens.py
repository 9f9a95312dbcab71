"""Keyed tokens in the Message-IDs of the mail we send.

``<mt.42.5f1c0a9e3b7d.9a1e...@desk.example.org>`` names ticket 42, and its last part is an HMAC
of the rest under the desk's secret key. A reply threaded to our mail (In-Reply-To/References)
carries it back, which proves the writer saw mail we sent about that ticket; a "[DESK #42]"
typed into a subject proves nothing. Without the key nobody can make a token that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = ["message_id", "ticket_of"]

_TOKEN = re.compile(r"^<mt\.(\d{1,12})\.([0-9a-f]{12})\.([0-9a-f]{20})@[^<>\s]+>$")


def _mac(key: bytes, number: int, nonce: str) -> str:
    return hmac.new(key, f"{number}.{nonce}".encode(), hashlib.sha256).hexdigest()[:20]


def message_id(key: bytes, domain: str, ticket: int | None) -> str:
    """A new Message-ID for mail about ``ticket`` (0 stands for mail about no ticket)."""
    number = ticket or 0
    nonce = secrets.token_hex(6)
    return f"<mt.{number}.{nonce}.{_mac(key, number, nonce)}@{domain}>"


def ticket_of(key: bytes, message_id: str) -> int | None:
    """The ticket a Message-ID of ours names, when its token verifies under ``key``."""
    match = _TOKEN.match(message_id.strip().lower())
    if match is None:
        return None
    number, nonce, mac = int(match.group(1)), match.group(2), match.group(3)
    if number == 0 or not hmac.compare_digest(mac, _mac(key, number, nonce)):
        return None
    return number
