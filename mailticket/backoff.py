"""Capped exponential backoff: how long a retry loop waits before its next try."""

from __future__ import annotations

from collections.abc import Callable

#: Past this many doublings the delay is the cap (for any base the config allows), and
#: 2**exponent is not computed: a float times a huge int overflows.
MAX_EXPONENT = 62


def delay(retry: int, base: float, cap: float, *,
          rand: Callable[[], float] | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first): base, 2*base,
    4*base..., at most ``cap``. With ``rand`` (``random.random``), jittered: between half of
    that and all of it, so that clients that failed together do not retry together."""
    exponent = max(retry, 0)
    ceiling = cap if exponent > MAX_EXPONENT else min(cap, base * 2 ** exponent)
    if rand is None:
        return ceiling
    return ceiling / 2 + rand() * ceiling / 2
