"""What a parse says in words about what it could not read or left out: the capped, deduplicated
``Notes``, and the short clean text its lines are made of."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["MAX_NOTES", "UNSAFE_CHARS", "Notes", "short", "size"]

MAX_NOTES = 100  # lines kept in ``ParsedMail.defects``, and in ``ParsedMail.dropped``

# Characters never kept in one-line text: C0/C1 controls, line and paragraph separators,
# and the bidi embedding/override/isolate controls (they make a name display as another).
# Lone surrogates (a UTF-7 decoder can make them) cannot be stored or encoded at all.
UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

T = TypeVar("T")


class Notes:
    """Human-readable notes about what could not be read, deduplicated and capped."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()

    def add(self, text: str) -> None:
        if text in self._seen or len(self.items) >= MAX_NOTES:
            return
        self._seen.add(text)
        self.items.append(text)

    def guard(self, what: str, func: Callable[[], T], default: T) -> T:
        """Run one extraction step; on an unexpected error record it and use ``default``.

        The email package is written to record defects, not raise, but its corners do raise
        (IndexError, AttributeError on groups, LookupError on charsets); one bad field must
        never cost us the whole message.
        """
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            self.add(f"{what}: could not be read ({type(exc).__name__}: {short(str(exc))})")
            return default


def short(text: str, limit: int = 80) -> str:
    """``text`` safe to quote in a note: control characters blanked, at most ``limit`` long."""
    text = UNSAFE_CHARS.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def size(count: int) -> str:
    """"31.2 MB", "64 KB", "12 bytes" (binary units, as the limits are given)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"
