"""What a directory holds: agencies, counties, their contacts, and the answer to a look-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Contact:
    role: str            # the admin's word: "sponsor", "registrar", "JTAC"... (matched in any case)
    name: str
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class Agency:
    name: str                        # "Springfield Police Department"
    code: str | None                 # short id, e.g. "SPD"
    county: str | None               # the County's name as the directory spells it
    domains: tuple[str, ...]         # users' mail domains, lower case; subdomains match too
    addresses: tuple[str, ...]       # single users' addresses, lower case (shared domains)
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class County:
    name: str
    contacts: tuple[Contact, ...]    # county-level contacts (e.g. the county's registrar)


@dataclass(frozen=True)
class Answer:
    query: str
    agencies: tuple[Agency, ...] = ()  # what matched; several only when a name prefix was ambiguous
    county: County | None = None       # the county the query names or the agency lies in
    contacts: tuple[Contact, ...] = ()  # the agency's contacts, then the county's, each once

    @property
    def ambiguous(self) -> bool:
        """The query was the start of several agencies' names: ``agencies`` lists them."""
        return len(self.agencies) > 1

    def by_role(self, role: str) -> tuple[Contact, ...]:
        """The contacts with this role, compared in any case ("jtac" finds "JTAC")."""
        wanted = fold(role)
        return tuple(c for c in self.contacts if fold(c.role) == wanted)


def unique_contacts(contacts: Iterable[Contact]) -> tuple[Contact, ...]:
    """Each role and name once (any case), the first kept: the agency's before the county's."""
    seen: dict[tuple[str, str], Contact] = {}
    for contact in contacts:
        seen.setdefault((fold(contact.role), fold(contact.name)), contact)
    return tuple(seen.values())


def fold(text: str) -> str:
    """The form names are compared in: any case, runs of spaces as one."""
    return " ".join(text.split()).casefold()


def county_key(name: str) -> str:
    key = fold(name)
    return key[:-len(" county")] if key.endswith(" county") else key

