"""Email address syntax, checked one way for the config, the directory and any layer that asks."""

from __future__ import annotations

import re

__all__ = ["valid_address", "valid_domain"]

_BARE = re.compile(r"[^@\s<>]+@[^@\s<>]+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_LOCAL = re.compile(r"[^\s@<>()\[\],;:\"\\]+")


def valid_address(text: str, *, routable: bool = False) -> bool:
    """Whether ``text`` is one bare address, ``local@domain`` with no spaces or angle brackets.

    ``routable`` asks for more, as the directory does, which routes by domain: a local part with
    no special characters or stray dots, and a lower-case domain that ``valid_domain`` accepts.
    """
    if not _BARE.fullmatch(text):
        return False
    if not routable:
        return True
    local, _, domain = text.rpartition("@")
    return (bool(_LOCAL.fullmatch(local)) and not local.startswith(".")
            and not local.endswith(".") and ".." not in local and valid_domain(domain))


def valid_domain(text: str) -> bool:
    """Whether ``text`` is a lower-case mail domain like example.org (two labels or more, not an
    IP address)."""
    return (len(text) <= 253 and bool(_DOMAIN.fullmatch(text))
            and not text.rpartition(".")[2].isdigit())
