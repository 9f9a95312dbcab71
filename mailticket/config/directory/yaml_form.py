"""The directory as YAML: two lists, ``agencies`` and ``counties``, read into the checks' entries
(the keys are documented in config/directory.example.yaml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mailticket.config import yamlfile
from mailticket.config.directory.checks import (
    Item,
    Problems,
    RawAgency,
    RawContact,
    RawCounty,
    as_address,
    as_code,
    as_domain,
    as_name,
    as_phone,
    as_text,
    split_items,
)
from mailticket.config.directory.entries import Contact

T = TypeVar("T")

_show = yamlfile.show

_TOP_KEYS = ("agencies", "counties")
_AGENCY_KEYS = ("name", "code", "county", "domains", "addresses", "contacts")
_COUNTY_KEYS = ("name", "contacts")
_CONTACT_KEYS = ("role", "name", "email", "phone")


class _YamlReader:
    def __init__(self, path: Path, problems: Problems):
        self.path = path
        self.problems = problems

    def at(self, key: str) -> str:
        return f"{self.path}: {key}"

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[Any, Any] | None:
        if not isinstance(value, dict):
            self.problems.add(self.at(key), f"expected a mapping, got {_show(value)}")
            return None
        for name, problem in yamlfile.unknown_keys(value, allowed):
            self.problems.add(self.at(f"{key}.{name}"), problem)
        return value

    def list_of(self, value: Any, key: str, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.add(self.at(key), f"expected a list of {what}, got {_show(value)}")
            return []
        return value

    def field(self, entry: Mapping[Any, Any], key: str, name: str, convert: Callable[[Any], T],
              required: bool = False) -> T | None:
        raw = entry.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.problems.add(self.at(f"{key}.{name}"), "missing (required)")
            return None
        return self.problems.check(self.at(f"{key}.{name}"), convert, raw)

    def items(self, entry: Mapping[Any, Any], key: str, name: str,
              convert: Callable[[Any], str]) -> list[Item]:
        """A list, or one string of items split at spaces, ',' or ';'."""
        raw = entry.get(name)
        where = f"{key}.{name}"
        if isinstance(raw, str):
            pairs = [(self.at(where), part) for part in split_items(raw)]
        else:
            what = "domains" if name == "domains" else "addresses"
            pairs = [(self.at(f"{where}[{i}]"), part)
                     for i, part in enumerate(self.list_of(raw, where, what))]
        found = []
        for at, part in pairs:
            value = self.problems.check(at, convert, part)
            if value is not None:
                found.append(Item(value, at))
        return found

    def contacts(self, entry: Mapping[Any, Any], key: str) -> list[RawContact]:
        found = []
        for i, raw in enumerate(self.list_of(entry.get("contacts"), f"{key}.contacts", "contacts")):
            where = f"{key}.contacts[{i}]"
            contact = self.mapping(raw, where, _CONTACT_KEYS)
            if contact is None:
                continue
            role = self.field(contact, where, "role", as_text, required=True)
            name = self.field(contact, where, "name", as_text, required=True)
            email = self.field(contact, where, "email", as_address)
            phone = self.field(contact, where, "phone", as_phone)
            if role is not None and name is not None:
                found.append(RawContact(Contact(role, name, email, phone), self.at(where), where))
        return found


def read_yaml(path: Path, text: str, problems: Problems
              ) -> tuple[list[RawAgency], list[RawCounty]]:
    """The agencies and counties of a YAML directory, each problem added to ``problems``."""
    try:
        top = yamlfile.load(text, fast=True)
    except yaml.YAMLError as exc:
        position, reason = yamlfile.where_and_why(exc)
        where = f", line {position[0]}, column {position[1]}" if position else ""
        problems.add(f"{path}{where}", f"not valid YAML: {reason}")
        return [], []
    if top is None:
        return [], []
    if not isinstance(top, dict):
        problems.add(str(path), f"the top level must be a mapping with agencies and counties, "
                                f"got {_show(top)}")
        return [], []
    r = _YamlReader(path, problems)
    for name, problem in yamlfile.unknown_keys(top, _TOP_KEYS):
        problems.add(r.at(str(name)), problem)
    counties = _counties(r, top.get("counties"))  # first: problems in the order of the file
    return _agencies(r, top.get("agencies")), counties


def _counties(r: _YamlReader, raw_list: Any) -> list[RawCounty]:
    counties = []
    for i, raw in enumerate(r.list_of(raw_list, "counties", "counties")):
        key = f"counties[{i}]"
        entry = r.mapping(raw, key, _COUNTY_KEYS)
        if entry is None:
            continue
        name = r.field(entry, key, "name", as_name, required=True)
        contacts = r.contacts(entry, key)
        if name is not None:
            counties.append(RawCounty(name, r.at(f"{key}.name"), key, contacts))
    return counties


def _agencies(r: _YamlReader, raw_list: Any) -> list[RawAgency]:
    agencies = []
    for i, raw in enumerate(r.list_of(raw_list, "agencies", "agencies")):
        key = f"agencies[{i}]"
        entry = r.mapping(raw, key, _AGENCY_KEYS)
        if entry is None:
            continue
        name = r.field(entry, key, "name", as_name, required=True)
        code = r.field(entry, key, "code", as_code)
        county = r.field(entry, key, "county", as_name)
        agency = RawAgency(
            name=name or "", at=r.at(f"{key}.name"), ref=key,
            code=Item(code, r.at(f"{key}.code")) if code is not None else None,
            county=Item(county, r.at(f"{key}.county")) if county is not None else None,
            domains=r.items(entry, key, "domains", as_domain),
            addresses=r.items(entry, key, "addresses", as_address),
            contacts=r.contacts(entry, key),
        )
        if name is not None:
            agencies.append(agency)
    return agencies
