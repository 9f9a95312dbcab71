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
from pathlib import Path
from typing import Any, Callable, TypeVar

from mailticket.config.directory.checks import (Item, Problems, RawAgency, RawContact, RawCounty,
                                                as_address, as_code, as_domain, as_name, as_phone,
                                                as_text, split_items)
from mailticket.config.directory.entries import Contact, county_key, fold

T = TypeVar("T")

_COLUMNS = ("agency", "code", "county", "domains", "addresses", "role", "name", "email", "phone")
_REQUIRED_COLUMNS = ("agency", "role", "name")
_IGNORED = "?"  # an unknown or repeated column: reported once in the header, not on every row


def read_csv(path: Path, text: str, problems: Problems
              ) -> tuple[list[RawAgency], list[RawCounty]]:
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
        return [], []
    if not rows:
        return [], []

    header_line, header = rows[0]
    columns: list[str | None] = []  # a column's name, None with no header, _IGNORED
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
    if missing:
        return [], []

    agencies: dict[str, RawAgency] = {}
    counties: dict[str, RawCounty] = {}
    for line, cells in rows[1:]:
        values = _csv_row(path, line, columns, cells, header_line, problems)
        if values is not None:
            _csv_entry(path, line, values, agencies, counties, problems)
    return list(agencies.values()), list(counties.values())


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


def _csv_entry(path: Path, line: int, values: dict[str, str], agencies: dict[str, RawAgency],
               counties: dict[str, RawCounty], problems: Problems) -> None:
    def at(column: str) -> str:
        return f"{path}, line {line}: column {column!r}"

    def get(column: str, convert: Callable[[Any], T]) -> T | None:
        raw = values.get(column, "")
        return problems.check(at(column), convert, raw) if raw else None

    contact = None
    if any(values.get(c) for c in ("role", "name", "email", "phone")):
        for column in ("role", "name"):
            if not values.get(column):
                problems.add(at(column), "missing (a contact needs a role and a name)")
        role, name = get("role", as_text), get("name", as_text)
        email, phone = get("email", as_address), get("phone", as_phone)
        if role is not None and name is not None:
            contact = RawContact(Contact(role, name, email, phone), f"{path}, line {line}",
                                  f"line {line}")

    agency_name = values.get("agency", "")
    if not agency_name:
        for column in ("code", "domains", "addresses"):
            if values.get(column):
                problems.add(at(column), f"must be empty on a county-level row (agency empty), "
                                         f"got {values[column]!r}")
        if not values.get("county"):
            problems.add(at("county"), "missing (a row with an empty agency is a county-level "
                                       "contact and needs a county)")
            return
        county_name = get("county", as_name)
        if county_name is None:
            return
        county = counties.setdefault(county_key(county_name),
                                     RawCounty(county_name, at("county"), f"line {line}"))
        if contact is not None:
            county.contacts.append(contact)
        return

    name = get("agency", as_name)
    if name is None:
        return
    agency = agencies.setdefault(fold(name), RawAgency(name, at("agency"), f"line {line}"))
    for column, convert, same in (("code", as_code, fold), ("county", as_name, county_key)):
        value = get(column, convert)
        if value is None:
            continue
        given = getattr(agency, column)
        if given is None:
            setattr(agency, column, Item(value, at(column), f"line {line}"))
        elif same(given.value) != same(value):
            problems.add(at(column), f"{value!r} differs from {given.value!r} given for "
                                     f"{agency.name!r} on {given.ref}")
    for column, convert in (("domains", as_domain), ("addresses", as_address)):
        for part in split_items(values.get(column, "")):
            value = problems.check(at(column), convert, part)
            if value is not None:
                getattr(agency, column).append(Item(value, at(column)))
    if contact is not None:
        agency.contacts.append(contact)
