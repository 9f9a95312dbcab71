"""Look-ups in the directory: the agency of an address, and who to ask about an address, agency
or county (the order is in config/directory.example.yaml)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from email.utils import parseaddr
from pathlib import Path
from typing import TypeVar

from mailticket.config.directory.entries import (
    Agency,
    Answer,
    County,
    county_key,
    fold,
    unique_contacts,
)
from mailticket.config.directory.files import read

T = TypeVar("T")


class Directory:
    """The agencies and counties of one directory file, indexed for look-ups.

    Build one with ``Directory.load(path)``, which checks the file. The constructor takes
    already-valid values (tests, code that builds a directory itself); it makes the counties that
    agencies name but that are not given, and raises ValueError if two agencies claim one name,
    code, domain or address.
    """

    def __init__(self, agencies: Iterable[Agency] = (), counties: Iterable[County] = ()):
        agencies = sorted(agencies, key=lambda a: fold(a.name))
        self._county: dict[str, County] = {}
        for county in counties:
            _claim(self._county, county_key(county.name), county, "county")
        for agency in agencies:
            if agency.county and county_key(agency.county) not in self._county:
                self._county[county_key(agency.county)] = County(agency.county, ())
        self._agencies = tuple(agencies)
        self._counties = tuple(sorted(self._county.values(), key=lambda c: fold(c.name)))
        self._by_name: dict[str, Agency] = {}
        self._by_code: dict[str, Agency] = {}
        self._by_domain: dict[str, Agency] = {}
        self._by_address: dict[str, Agency] = {}
        for agency in agencies:
            _claim(self._by_name, fold(agency.name), agency, "the name")
            if agency.code:
                _claim(self._by_code, fold(agency.code), agency, "the code")
            for domain in agency.domains:
                _claim(self._by_domain, domain, agency, "the domain")
            for address in agency.addresses:
                _claim(self._by_address, address, agency, "the address")
        # Sorted folded names, for the agencies whose name starts with a query: O(log n + hits).
        self._name_keys = [fold(a.name) for a in agencies]

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        """Read and check a .yaml/.yml or .csv file; raise DirectoryError listing every problem."""
        agencies, counties = read(Path(path))
        return cls(agencies, counties)

    def agencies(self) -> tuple[Agency, ...]:
        """Every agency, by name (any case)."""
        return self._agencies

    def counties(self) -> tuple[County, ...]:
        """Every county, those only named by an agency too, by name (any case)."""
        return self._counties

    def agency_of(self, address: str) -> Agency | None:
        """The agency of a user's address: the address itself, else the longest domain it is in."""
        local, at, domain = address.strip().strip("<>").lower().rpartition("@")
        if not at:
            return None
        domain = domain.rstrip(".")
        found = self._by_address.get(f"{local}@{domain}")
        if found is not None:
            return found
        labels = domain.split(".")
        for i in range(len(labels) - 1):  # longest first; a bare top-level label is no domain
            found = self._by_domain.get(".".join(labels[i:]))
            if found is not None:
                return found
        return None

    def whois(self, query: str) -> Answer:
        """Who to ask about an address, agency or county (the order is in config/directory.example.yaml)."""
        text = query.strip()
        if not text:
            return Answer(query)
        if "@" in text:
            address = parseaddr(text)[1] if "<" in text else text
            agency = self.agency_of(address)
            return self._answer(query, agency) if agency else Answer(query)
        key = fold(text)
        agency = self._by_name.get(key) or self._by_code.get(key)
        if agency is not None:
            return self._answer(query, agency)
        county = self._county.get(county_key(text))
        if county is not None:
            return Answer(query, (), county, unique_contacts(county.contacts))
        start = bisect.bisect_left(self._name_keys, key)
        end = start
        while end < len(self._name_keys) and self._name_keys[end].startswith(key):
            end += 1
        if end - start == 1:
            return self._answer(query, self._agencies[start])
        return Answer(query, self._agencies[start:end])

    def _answer(self, query: str, agency: Agency) -> Answer:
        county = self._county.get(county_key(agency.county)) if agency.county else None
        contacts = agency.contacts + (county.contacts if county else ())
        return Answer(query, (agency,), county, unique_contacts(contacts))


def _claim(index: dict[str, T], key: str, value: T, what: str) -> None:
    held = index.setdefault(key, value)
    if held is not value:
        raise ValueError(f"{what} {key!r} is given twice")

