"""Amounts of time as the config writes them: business durations ("1 business day 4 hours") and
wall-clock durations ("2 hours"), and the CalendarError both they and the calendar raise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mailticket.config import yamlfile

__all__ = ["BusinessDuration", "CalendarError", "parse_plain_duration"]

class CalendarError(ValueError):
    """A calendar or a duration that cannot be used; each problem names the part that is wrong.

    ``problems`` holds every problem found, e.g. ``hours: expected HH:MM-HH:MM, got '7-17'``; the
    config reader puts its own file and key path in front of each.
    """

    def __init__(self, *problems: str):
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


_show = yamlfile.show


# --- durations ---------------------------------------------------------------------------------

_TOKENS = re.compile(r"\d+|[a-z]+|[^\sa-z\d]", re.ASCII)

_BUSINESS_UNITS = {
    "business day": "days", "business days": "days", "bd": "days",
    "hour": "hours", "hours": "hours", "hr": "hours", "hrs": "hours", "h": "hours",
    "business hour": "hours", "business hours": "hours",
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "m": "minutes",
    "business minute": "minutes", "business minutes": "minutes",
    "second": "seconds", "seconds": "seconds", "sec": "seconds", "secs": "seconds", "s": "seconds",
}
_PLAIN_UNITS = {
    "week": "weeks", "weeks": "weeks", "w": "weeks",
    "day": "days", "days": "days", "d": "days",
    "hour": "hours", "hours": "hours", "hr": "hours", "hrs": "hours", "h": "hours",
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "m": "minutes",
    "second": "seconds", "seconds": "seconds", "sec": "seconds", "secs": "seconds", "s": "seconds",
}
_SEPARATORS = (",", "and")


def _terms(text: Any, units: dict[str, str]) -> dict[str, int] | None:
    """``"1 business day, 4 hours"`` -> ``{"days": 1, "hours": 4}``; None when it does not parse.

    A term is a whole number and a unit; terms may be separated by spaces, commas or "and";
    each unit may appear once.
    """
    if not isinstance(text, str):
        return None
    tokens = _TOKENS.findall(text.lower())
    found: dict[str, int] = {}
    i = 0
    while i < len(tokens):
        if found and tokens[i] in _SEPARATORS and i + 1 < len(tokens):
            i += 1
        number = tokens[i]
        if not (number.isascii() and number.isdigit()) or i + 1 >= len(tokens):
            return None
        unit = tokens[i + 1]
        i += 2
        if unit == "business" and i < len(tokens):
            unit = f"business {tokens[i]}"
            i += 1
        key = units.get(unit)
        if key is None or key in found:
            return None
        found[key] = int(number)
    return found or None


@dataclass(frozen=True)
class BusinessDuration:
    """An amount of business time: whole working days plus hours and minutes (as seconds).

    How long a business day is depends on the calendar (``closes - opens``), so a duration only
    becomes a length of time through ``BusinessCalendar.business_time``.
    """

    days: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for name in ("days", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CalendarError(
                    f"{name}: expected a whole number, 0 or more, got {_show(value)}")

    @classmethod
    def parse(cls, text: str) -> BusinessDuration:
        """``"1 business day"``, ``"3 business days"``, ``"2 hours"``, ``"90 minutes"``,
        ``"1 business day 4 hours"``, ``"4h"``, ``"30m"``.

        A bare "day" is refused: here a day is a working day of opening hours, and saying
        "business day" keeps that from being read as 24 hours.
        """
        terms = _terms(text, _BUSINESS_UNITS)
        if terms is None:
            hint = ""
            if isinstance(text, str) and _terms(text, _PLAIN_UNITS) is not None:
                hint = " (say 'business day': a day here is one working day of opening hours)"
            raise CalendarError(
                "expected a business duration like '1 business day', '4 hours' or "
                f"'1 business day 4 hours'{hint}, got {_show(text)}")
        seconds = (terms.get("hours", 0) * 3600 + terms.get("minutes", 0) * 60
                   + terms.get("seconds", 0))
        return cls(days=terms.get("days", 0), seconds=seconds)

    def __str__(self) -> str:
        parts = []
        if self.days:
            parts.append(_plural(self.days, "business day"))
        hours, rest = divmod(self.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        for count, unit in ((hours, "hour"), (minutes, "minute"), (seconds, "second")):
            if count:
                parts.append(_plural(count, unit))
        return " ".join(parts) or "0 hours"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def parse_plain_duration(text: str) -> timedelta:
    """A wall-clock duration: ``"2 hours"``, ``"30 minutes"``, ``"1 day"``, ``"2 weeks"``,
    ``"1h 30m"``.

    A day here is 24 hours; business time is ``BusinessDuration``'s business.
    """
    terms = _terms(text, _PLAIN_UNITS)
    if terms is None:
        hint = ""
        if isinstance(text, str) and "business" in text.lower():
            hint = " (business time is not allowed here: this is wall-clock time)"
        raise CalendarError(
            f"expected a duration like '2 hours', '30 minutes' or '1 day'{hint}, got {_show(text)}")
    try:
        return timedelta(**terms)
    except OverflowError:
        raise CalendarError(f"duration too long, got {_show(text)}") from None
