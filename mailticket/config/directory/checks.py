"""The directory's checks, the same for YAML and CSV: each value, then what spans entries
(names, codes, domains and addresses claimed twice); every problem is collected, none stops."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mailticket.config import yamlfile
from mailticket.config.addresses import valid_address, valid_domain
from mailticket.config.directory.entries import Agency, Contact, County, county_key, fold
from mailticket.errors import ConfigError

T = TypeVar("T")


class DirectoryError(ConfigError):
    """The directory file is missing, unreadable or invalid; ``problems`` lists every problem."""


# --- values ------------------------------------------------------------------------------------

class Invalid(ValueError):
    pass


_SPLIT = re.compile(r"[\s,;]+")
_CODE = re.compile(r"[^\s@]{1,32}")
_SPREADSHEET_NUMBER = re.compile(r"\d(?:[.,]\d+)?[eE]\+?\d+")


_show = yamlfile.show


def as_text(value: Any) -> str:
    """A non-empty string, spaces collapsed. YAML numbers and booleans are refused rather than
    turned back into text: ``phone: 0217555`` has already been read as an octal number."""
    if isinstance(value, bool):
        raise Invalid(f"expected text, but YAML read {_show(value)} (put it in quotes)")
    if isinstance(value, (int, float)):
        raise Invalid(f"expected text, but YAML read the number {value!r} (put it in quotes)")
    if not isinstance(value, str):
        raise Invalid(f"expected text, got {_show(value)}")
    return " ".join(value.split())


def as_name(value: Any) -> str:
    text = as_text(value)
    if "@" in text:  # a query with '@' is an address, so such a name could never be looked up
        raise Invalid(f"a name cannot contain '@', got {text!r}")
    return text


def as_code(value: Any) -> str:
    text = as_text(value)
    if not _CODE.fullmatch(text):
        raise Invalid(f"expected a short code like SPD (at most 32 characters, no spaces or "
                       f"'@'), got {text!r}")
    return text


def as_domain(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a mail domain like example.org, got {_show(value)}")
    text = value.strip().lower().rstrip(".")
    if valid_domain(text):
        return text
    hint = ""
    if "@" in text:
        hint = " (addresses go under addresses)"
    elif text.startswith("*."):
        hint = " (subdomains match without '*.')"
    raise Invalid(f"expected a mail domain like example.org, got {value.strip()!r}{hint}")


def as_address(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected an email address like ann@example.org, got {_show(value)}")
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    address = f"{local}@{domain.strip().rstrip('.')}"
    if at and valid_address(address, routable=True):
        return address
    hint = " (domains go under domains)" if not at and valid_domain(text) else ""
    raise Invalid(f"expected an email address like ann@example.org, got {value.strip()!r}{hint}")


def as_phone(value: Any) -> str:
    text = as_text(value)
    if _SPREADSHEET_NUMBER.fullmatch(text):
        raise Invalid(f"looks like a number a spreadsheet reformatted (format the column as "
                       f"text), got {text!r}")
    return text


def split_items(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text) if part]


# --- what both formats are read into -----------------------------------------------------------

class Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, at: str, message: str) -> None:
        self.lines.append(f"{at}: {message}")

    def check(self, at: str, convert: Callable[[Any], T], value: Any) -> T | None:
        try:
            return convert(value)
        except Invalid as exc:
            self.add(at, str(exc))
            return None


@dataclass
class Item:
    value: str
    at: str          # where problems about it are reported: "FILE: key.path" or "FILE, line N: ..."
    ref: str = ""    # how another problem refers to it: "agencies[0].code", "line 4"


@dataclass
class RawContact:
    contact: Contact
    at: str
    ref: str         # how another problem refers to it: "agencies[0].contacts[1]", "line 4"


@dataclass
class RawAgency:
    name: str
    at: str          # where problems about its name are reported
    ref: str         # "agencies[0]", "line 4"
    code: Item | None = None
    county: Item | None = None
    domains: list[Item] = field(default_factory=list)
    addresses: list[Item] = field(default_factory=list)
    contacts: list[RawContact] = field(default_factory=list)


@dataclass
class RawCounty:
    name: str
    at: str
    ref: str
    contacts: list[RawContact] = field(default_factory=list)


def build(agencies: list[RawAgency], counties: list[RawCounty],
          problems: Problems) -> tuple[list[Agency], list[County]]:
    """The checks that span entries, the same for both formats; then the entries themselves."""
    county_by_key = _distinct_counties(counties, problems)
    _distinct_names_and_codes(agencies, problems)
    for kind in ("domain", "address"):
        _claimed_once(agencies, kind, problems)
    made = {key: County(county.name, unique_raw_contacts(county.contacts, problems))
            for key, county in county_by_key.items()}
    result = [_agency(agency, made, problems) for agency in agencies]
    if problems.lines:
        return [], []
    return result, list(made.values())


def _distinct_counties(counties: list[RawCounty], problems: Problems) -> dict[str, RawCounty]:
    county_by_key: dict[str, RawCounty] = {}
    for county in counties:
        first = county_by_key.setdefault(county_key(county.name), county)
        if first is not county:
            problems.add(county.at, f"county {county.name!r} is already listed ({first.ref})")
    return county_by_key


def _distinct_names_and_codes(agencies: list[RawAgency], problems: Problems) -> None:
    by_name: dict[str, RawAgency] = {}
    by_code: dict[str, RawAgency] = {}
    for agency in agencies:
        first = by_name.setdefault(fold(agency.name), agency)
        if first is not agency:
            problems.add(agency.at, f"agency {agency.name!r} is already listed ({first.ref})")
        if agency.code is not None:
            first = by_code.setdefault(fold(agency.code.value), agency)
            if first is not agency:
                problems.add(agency.code.at, f"code {agency.code.value!r} is already the code of "
                                             f"{first.name!r} ({first.ref})")
    for key, agency in by_code.items():
        named = by_name.get(key)
        if named is not None and named is not agency and agency.code is not None:
            problems.add(agency.code.at, f"code {agency.code.value!r} is the name of another "
                                         f"agency ({named.ref}), so it would never find this one")


def _claimed_once(agencies: list[RawAgency], kind: str, problems: Problems) -> None:
    """Each domain (or address) belongs to one agency, else routing would be ambiguous."""
    article, hint = (("a", " (list the users of a shared domain under addresses)")
                     if kind == "domain" else ("an", ""))
    owner: dict[str, RawAgency] = {}
    for agency in agencies:
        for item in agency.domains if kind == "domain" else agency.addresses:
            first = owner.setdefault(item.value, agency)
            if first is not agency:
                problems.add(item.at, f"{kind} {item.value} is claimed by both {first.name!r} "
                                      f"({first.ref}) and {agency.name!r}; {article} {kind} "
                                      f"belongs to one agency{hint}")


def _agency(agency: RawAgency, counties: dict[str, County], problems: Problems) -> Agency:
    """The checked agency; a county it names but that is not listed is made, with no contacts."""
    county_name = None
    if agency.county is not None:
        key = county_key(agency.county.value)
        county_name = counties.setdefault(key, County(agency.county.value, ())).name
    return Agency(
        name=agency.name,
        code=agency.code.value if agency.code else None,
        county=county_name,
        domains=tuple(dict.fromkeys(i.value for i in agency.domains)),
        addresses=tuple(dict.fromkeys(i.value for i in agency.addresses)),
        contacts=unique_raw_contacts(agency.contacts, problems),
    )


def unique_raw_contacts(raw: list[RawContact], problems: Problems) -> tuple[Contact, ...]:
    seen: dict[tuple[str, str], RawContact] = {}
    for item in raw:
        first = seen.setdefault((fold(item.contact.role), fold(item.contact.name)), item)
        if first is not item:
            problems.add(item.at, f"{item.contact.role} {item.contact.name!r} is listed twice "
                                  f"(first at {first.ref})")
    return tuple(item.contact for item in seen.values())

