"""The directory as CSV, one row per contact, as a spreadsheet exports it.

A header row names the columns in any order and any case: ``agency``, ``role`` and ``name`` are
required; ``code``, ``county``, ``domains``, ``addresses``, ``email`` and ``phone`` are optional.
A row with an empty agency is a county-level contact; config/directory.example.yaml has the
rest. The same directory in both forms (the tests load both and compare)::

    counties:
      - name: Sangamon
        contacts:
          - {role: registrar, name: Dana Whitfield, email: registrar@sangamon.example.gov,
             phone: "+1 217 555 0142"}
    agencies:
      - name: Springfield Police Department
        code: SPD
        county: Sangamon
        domains: [spd.example.gov]
        addresses: [r.okafor.spd@mail.example.org]
        contacts:
          - {role: sponsor, name: Lt. Ray Okafor, email: rokafor@spd.example.gov}
          - {role: JTAC, name: Sgt. Lena Morales, phone: "+1 217 555 0199"}
      - {name: Lincoln Police Department, code: LPD, county: Logan,
         domains: lincolnpd.example.org}

and::

    agency,code,county,domains,addresses,role,name,email,phone
    ,,Sangamon,,,registrar,Dana Whitfield,registrar@sangamon.example.gov,+1 217 555 0142
    Springfield Police Department,SPD,Sangamon,spd.example.gov,r.okafor.spd@mail.example.org,sponsor,Lt. Ray Okafor,rokafor@spd.example.gov,
    Springfield Police Department,,,,,JTAC,Sgt. Lena Morales,,+1 217 555 0199
    Lincoln Police Department,LPD,Logan,lincolnpd.example.org,,,,,
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
from mailticket.config.directory.entries import Contact, county_key, fold

T = TypeVar("T")

_COLUMNS = ("agency", "code", "county", "domains", "addresses", "role", "name", "email", "phone")
_REQUIRED_COLUMNS = ("agency", "role", "name")
_IGNORED = "?"  # an unknown or repeated column: reported once in the header, not on every row


def read_csv(path: Path, text: str, problems: Problems
             ) -> tuple[list[RawAgency], list[RawCounty]]:
    """The agencies and counties of a CSV directory, each problem added to ``problems``."""
    rows = _rows(path, text, problems)
    if not rows:
        return [], []
    header_line, header = rows[0]
    columns = _columns(path, header_line, header, problems)
    if columns is None:
        return [], []
    agencies: dict[str, RawAgency] = {}
    counties: dict[str, RawCounty] = {}
    for line, cells in rows[1:]:
        values = _csv_row(path, line, columns, cells, header_line, problems)
        if values is not None:
            row = _Row(path, line, values, problems)
            contact = row.contact()
            if values.get("agency", ""):
                _agency_row(row, agencies, contact)
            else:
                _county_row(row, counties, contact)
    return list(agencies.values()), list(counties.values())


def _rows(path: Path, text: str, problems: Problems) -> list[tuple[int, list[str]]]:
    """(first line, cells) of every row that is not blank; [] with a problem on bad CSV."""
    first_line = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first_line:  # Excel writes ';' where ',' is the decimal comma
        delimiter = ";" if ";" in first_line else "\t" if "\t" in first_line else ","
    # strict: an unclosed quote is an error, not the rest of the file swallowed into one cell
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num  # a quoted cell may span lines: report the first
            if any(cell.strip() for cell in cells):
                rows.append((start, cells))
    except csv.Error as exc:
        problems.add(f"{path}, line {end + 1}", f"not valid CSV: {exc}")  # where the row began
        return []
    return rows


def _columns(path: Path, header_line: int, header: list[str],
             problems: Problems) -> list[str | None] | None:
    """Each column's name (None with no header, _IGNORED); None when a required one is missing."""
    columns: list[str | None] = []
    for cell in header:
        name = cell.strip().lower()
        if not name:
            columns.append(None)
        elif name not in _COLUMNS:
            problems.add(f"{path}, line {header_line}: column {cell.strip()!r}",
                         f"unknown column (expected: {', '.join(_COLUMNS)})")
            columns.append(_IGNORED)
        elif name in columns:
            problems.add(f"{path}, line {header_line}: column {cell.strip()!r}", "given twice")
            columns.append(_IGNORED)
        else:
            columns.append(name)
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    for name in missing:
        problems.add(f"{path}, line {header_line}",
                     f"missing column {name!r} (required: {', '.join(_REQUIRED_COLUMNS)})")
    return None if missing else columns


def _csv_row(path: Path, line: int, columns: list[str | None], cells: list[str],
             header_line: int, problems: Problems) -> dict[str, str] | None:
    """The row's cells by column name, or None when the row cannot be read."""
    if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns):]):
        problems.add(f"{path}, line {line}", f"{len(cells)} cells, but the header (line "
                                             f"{header_line}) has {len(columns)} columns")
        return None
    values: dict[str, str] = {}
    for i, (column, cell) in enumerate(zip(columns, cells)):
        if column is None and cell.strip():
            problems.add(f"{path}, line {line}", f"cell {i + 1} has a value, {cell.strip()!r}, "
                                                 f"but its column has no header")
        elif column is not None and column != _IGNORED:
            values[column] = cell.strip()
    return values


class _Row:
    """One row's cells by column, with where its problems are reported."""

    def __init__(self, path: Path, line: int, values: dict[str, str], problems: Problems):
        self.path, self.line, self.values, self.problems = path, line, values, problems
        self.ref = f"line {line}"

    def at(self, column: str) -> str:
        return f"{self.path}, line {self.line}: column {column!r}"

    def get(self, column: str, convert: Callable[[Any], T]) -> T | None:
        raw = self.values.get(column, "")
        return self.problems.check(self.at(column), convert, raw) if raw else None

    def contact(self) -> RawContact | None:
        if not any(self.values.get(c) for c in ("role", "name", "email", "phone")):
            return None
        for column in ("role", "name"):
            if not self.values.get(column):
                self.problems.add(self.at(column), "missing (a contact needs a role and a name)")
        role, name = self.get("role", as_text), self.get("name", as_text)
        email, phone = self.get("email", as_address), self.get("phone", as_phone)
        if role is None or name is None:
            return None
        return RawContact(Contact(role, name, email, phone), f"{self.path}, line {self.line}",
                          self.ref)


def _county_row(row: _Row, counties: dict[str, RawCounty], contact: RawContact | None) -> None:
    """A row with an empty agency: a county-level contact of the county in its county column."""
    for column in ("code", "domains", "addresses"):
        if row.values.get(column):
            row.problems.add(row.at(column), f"must be empty on a county-level row (agency "
                                             f"empty), got {row.values[column]!r}")
    if not row.values.get("county"):
        row.problems.add(row.at("county"), "missing (a row with an empty agency is a "
                                           "county-level contact and needs a county)")
        return
    county_name = row.get("county", as_name)
    if county_name is None:
        return
    county = counties.setdefault(county_key(county_name),
                                 RawCounty(county_name, row.at("county"), row.ref))
    if contact is not None:
        county.contacts.append(contact)


def _agency_row(row: _Row, agencies: dict[str, RawAgency], contact: RawContact | None) -> None:
    """A row of an agency: what it adds to the agency's code, county, domains and contacts."""
    name = row.get("agency", as_name)
    if name is None:
        return
    agency = agencies.setdefault(fold(name), RawAgency(name, row.at("agency"), row.ref))
    for column, convert, same in (("code", as_code, fold), ("county", as_name, county_key)):
        value = row.get(column, convert)
        if value is None:
            continue
        given = getattr(agency, column)
        if given is None:
            setattr(agency, column, Item(value, row.at(column), row.ref))
        elif same(given.value) != same(value):
            row.problems.add(row.at(column), f"{value!r} differs from {given.value!r} given for "
                                             f"{agency.name!r} on {given.ref}")
    for column, convert in (("domains", as_domain), ("addresses", as_address)):
        for part in split_items(row.values.get(column, "")):
            value = row.problems.check(row.at(column), convert, part)
            if value is not None:
                getattr(agency, column).append(Item(value, row.at(column)))
    if contact is not None:
        agency.contacts.append(contact)
