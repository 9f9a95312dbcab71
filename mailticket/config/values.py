"""The converters from a YAML value to a setting's value; each raises Invalid saying what is wrong."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar

from mailticket.config import yamlfile
from mailticket.config.addresses import valid_address
from mailticket.config.calendar import BusinessCalendar
from mailticket.config.durations import BusinessDuration, CalendarError, parse_plain_duration

T = TypeVar("T")
show = yamlfile.show


class Invalid(ValueError):
    """A value a converter refuses; the message says what is wrong (the reader adds the key)."""


def string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(f"expected a string, got {show(value)}")
    text = str(value).strip()
    if not text:
        raise Invalid("expected a non-empty string")
    return text


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Invalid(f"expected an integer, got {show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {show(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise Invalid(f"must be at most {maximum}, got {value}")
        return value
    return convert


def number(minimum: float = 0.0) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Invalid(f"expected a number, got {show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {show(value)}")
        if value < minimum:
            raise Invalid(f"must be at least {minimum:g}, got {value:g}")
        return float(value)
    return convert


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.strip().lower() in ("true", "yes", "on")
    raise Invalid(f"expected true or false, got {show(value)}")


def choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = string(value).lower()
        if text not in options:
            raise Invalid(f"expected one of {', '.join(options)}, got {show(value)}")
        return text
    return convert


def upper(convert: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda value: convert(value).upper()


def address(value: Any) -> str:
    text = string(value)
    if not valid_address(text):
        raise Invalid(f"expected an email address like desk@example.org, got {show(value)}")
    return text.lower()


def agent(value: Any) -> tuple[str, str]:
    """ "Ada Lovelace <ada@example.org>" or a bare address: (name, lower-case address)."""
    text = string(value)
    name, found = parseaddr(text)
    if not found or not valid_address(found) or ("<" in text and ">" not in text):
        raise Invalid(f"expected an agent like 'Ada Lovelace <ada@example.org>', got {show(value)}")
    return name.strip(), found.lower()


def port(value: Any) -> int:
    return integer(1, 65535)(value)


def path(value: Any) -> Path:
    return Path(os.path.expanduser(string(value))).absolute()


def database_url(value: Any) -> str:
    text = string(value)
    if text.startswith("sqlite:///"):
        target = text[len("sqlite:///"):]
        if target != ":memory:" and not target.startswith("/"):
            target = str(Path(target).absolute())
        return "sqlite:///" + target
    if re.match(r"^(postgres|postgresql)://", text):
        return text
    raise Invalid(f"expected sqlite:///PATH or postgresql://USER@HOST/DB, got {show(value)}")


def ticket_prefix(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,19}", text):
        raise Invalid("expected letters, digits, '-' or '_' (starting with a letter, at most 20), "
                      f"got {show(value)}")
    return text


def listen(value: Any) -> tuple[str, int]:
    text = string(value)
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d+)", text)
    if not match:
        raise Invalid(f"expected HOST:PORT such as 127.0.0.1:8025, got {show(value)}")
    return match.group(1), port(match.group(2))


def size(value: Any) -> int:
    """An integer byte count or a string such as '25 MB'."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", value)
        if not match:
            raise Invalid(f"expected a size such as 25 MB, got {show(value)}")
        factor = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[match.group(2).lower()]
        count = int(float(match.group(1)) * factor)
        if count < 1:
            raise Invalid(f"must be at least 1 byte, got {show(value)}")
        return count
    return integer(1)(value)


def clock_time(value: Any) -> time:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 07:30 as the base-60 number 450.
        return time(value // 60, value % 60)
    text = string(value)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise Invalid(f"expected a time of day like '07:30', got {show(value)}")
    return time(int(match.group(1)), int(match.group(2)))


def server_ids(value: Any) -> frozenset[str]:
    """A list of authserv-ids (RFC 8601), lower case."""
    items = value or []
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() and " " not in
                                              i.strip() for i in items):
        raise Invalid(f"expected a list of server ids like mx.example.org, got {show(value)}")
    return frozenset(i.strip().lower() for i in items)


def _calendar_checked(parse: Callable[[str], T]) -> Callable[[Any], T]:
    """A converter from a calendar parser: its CalendarError becomes Invalid."""
    def convert(value: Any) -> T:
        try:
            return parse(str(value))
        except CalendarError as exc:
            raise Invalid(str(exc)) from None
    return convert


business_duration = _calendar_checked(BusinessDuration.parse)
plain_duration = _calendar_checked(parse_plain_duration)


def calendar_part(part: str) -> Callable[[Any], Any]:
    """One part of a calendar (``days``, ``timezone``), checked as the calendar checks it."""
    def convert(value: Any) -> Any:
        try:
            return getattr(BusinessCalendar.from_config(**{part: value}), part)
        except CalendarError as exc:
            raise Invalid("; ".join(p.partition(": ")[2] for p in exc.problems)) from None
    return convert
