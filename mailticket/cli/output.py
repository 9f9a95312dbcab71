"""How the command line shows things: terminal-safe text, times, JSON."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def safe(text: str | None) -> str:
    """Text a sender wrote, made harmless for a terminal: no escape sequences, no bells."""
    return _UNPRINTABLE.sub("\ufffd", text or "")


def when(value: datetime | None) -> str:
    """A naive UTC time for people: ``2026-12-01 09:00 UTC``, or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def iso(value: datetime | None) -> str | None:
    """A naive UTC time for machines: ``2026-12-01T09:00:00Z``, or None."""
    return value.isoformat(timespec="seconds") + "Z" if value else None


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
