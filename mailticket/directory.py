"""The agency and county directory: who the sponsor, registrar or JTAC is for a user or county.

Level 1 of the desk answers "who is the sponsor (registrar, JTAC...) for this user, county or
agency" from one file the admin keeps: YAML written by hand, or CSV exported from a spreadsheet
(the suffix says which: ``.yaml``/``.yml`` or ``.csv``). The file maps agencies and counties to
their contacts, and agencies to the mail domains and addresses of their users. This module reads
and checks that file and answers look-ups; it knows nothing of tickets or the database.

Look-ups (``Directory.whois``), in this order, the first hit winning:

1. a query with ``@`` is an address: the agency that lists the address itself, else the agency
   with the longest domain the address is in (``ann@mail.spd.example.gov`` is in
   ``spd.example.gov``, and in ``spd.example.gov`` rather than ``example.gov`` when two agencies
   hold those). ``Ann Lee <ann@spd.example.gov>`` and ``@spd.example.gov`` work too;
2. an agency's name, then an agency's code (any case, spaces collapsed);
3. a county's name, with or without " County" (``Sangamon``, ``sangamon county``);
4. the start of exactly one agency's name (``springfield pol``). When the start fits several
   agencies the answer lists them all with no county and no contacts (``Answer.ambiguous``):
   the desk should ask again with more of the name or the code, never be handed the contacts
   of an agency picked at random.

An agency's answer carries its contacts, then its county's (each role and name once); a county's
answer carries the county's contacts. Nothing found: no agencies, no county, no contacts.

YAML: two lists, ``agencies`` and ``counties``; every key below is all there is::

    # Counties with county-level contacts. An agency may name a county not listed here:
    # the county then exists with no contacts of its own.
    counties:
      - name: Sangamon                         # required; "Sangamon County" is the same county
        contacts:
          - role: registrar                    # required: the admin's word, any case
            name: Dana Whitfield               # required
            email: registrar@sangamon.example.gov
            phone: "+1 217 555 0142"           # text: quote it, or YAML may read a number
    agencies:
      - name: Springfield Police Department    # required, unique (any case)
        code: SPD                              # optional, unique, no spaces
        county: Sangamon                       # optional
        domains: [spd.example.gov]             # users' mail domains; subdomains match too
        addresses: [r.okafor.spd@mail.example.org]  # users on a shared domain
        contacts:
          - role: sponsor
            name: Lt. Ray Okafor
            email: rokafor@spd.example.gov
          - {role: JTAC, name: Sgt. Lena Morales, phone: "+1 217 555 0199"}
      - name: Lincoln Police Department
        code: LPD
        county: Logan                          # not under counties: made with no contacts
        domains: lincolnpd.example.org         # a string: items split at spaces, ',' or ';'

CSV: one row per contact, with a header row naming the columns in any order and any case.
``agency``, ``role`` and ``name`` are required columns; ``code``, ``county``, ``domains``,
``addresses``, ``email`` and ``phone`` are optional. Domains and addresses are separated by
spaces, ``;`` or ``,``. An agency's code, county, domains and addresses may be on every one of
its rows or on one; where given on several rows, code and county must agree, and the domains and
addresses of all its rows are taken together. A row with an empty agency is a county-level contact
of the county in its ``county`` column. A row with an agency but no role or name just lists the
agency (domains with no contacts, say). Blank rows are skipped; a UTF-8 byte order mark (Excel's
"CSV UTF-8") is fine, and so are ``;`` or tab as separators when the header uses them. The same
directory as above::

    agency,code,county,domains,addresses,role,name,email,phone
    ,,Sangamon,,,registrar,Dana Whitfield,registrar@sangamon.example.gov,+1 217 555 0142
    Springfield Police Department,SPD,Sangamon,spd.example.gov,r.okafor.spd@mail.example.org,sponsor,Lt. Ray Okafor,rokafor@spd.example.gov,
    Springfield Police Department,,,,,JTAC,Sgt. Lena Morales,,+1 217 555 0199
    Lincoln Police Department,LPD,Logan,lincolnpd.example.org,,,,,

Checks, all reported at once as a ``DirectoryError`` whose lines name the file and the key path
(``config/directory.yaml: agencies[2].domains[0]: ...``) or the CSV line and column
(``directory.csv, line 7: column 'email': ...``): unknown keys or columns, missing names and
roles, malformed domains and addresses, agency names and codes given twice (a code may not be
another agency's name either), a contact given twice for one agency or county, and a domain or
address claimed by two agencies, which would make routing ambiguous (a domain inside another
agency's domain is fine: the longer one wins). Look-ups are dictionary look-ups (a sorted list
for name prefixes), so a directory of thousands of agencies answers at once.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import yaml

from mailticket import yamlfile
from mailticket.errors import ConfigError

T = TypeVar("T")


class DirectoryError(ConfigError):
    """The directory file is missing, unreadable or invalid; ``problems`` lists every problem."""


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
        wanted = _fold(role)
        return tuple(c for c in self.contacts if _fold(c.role) == wanted)


class Directory:
    """The agencies and counties of one directory file, indexed for look-ups.

    Build one with ``Directory.load(path)``, which checks the file. The constructor takes
    already-valid values (tests, code that builds a directory itself); it makes the counties that
    agencies name but that are not given, and raises ValueError if two agencies claim one name,
    code, domain or address.
    """

    def __init__(self, agencies: Iterable[Agency] = (), counties: Iterable[County] = ()):
        agencies = sorted(agencies, key=lambda a: _fold(a.name))
        self._county: dict[str, County] = {}
        for county in counties:
            _claim(self._county, _county_key(county.name), county, "county")
        for agency in agencies:
            if agency.county and _county_key(agency.county) not in self._county:
                self._county[_county_key(agency.county)] = County(agency.county, ())
        self._agencies = tuple(agencies)
        self._counties = tuple(sorted(self._county.values(), key=lambda c: _fold(c.name)))
        self._by_name: dict[str, Agency] = {}
        self._by_code: dict[str, Agency] = {}
        self._by_domain: dict[str, Agency] = {}
        self._by_address: dict[str, Agency] = {}
        for agency in agencies:
            _claim(self._by_name, _fold(agency.name), agency, "the name")
            if agency.code:
                _claim(self._by_code, _fold(agency.code), agency, "the code")
            for domain in agency.domains:
                _claim(self._by_domain, domain, agency, "the domain")
            for address in agency.addresses:
                _claim(self._by_address, address, agency, "the address")
        # Sorted folded names, for the agencies whose name starts with a query: O(log n + hits).
        self._name_keys = [_fold(a.name) for a in agencies]

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        """Read and check a .yaml/.yml or .csv file; raise DirectoryError listing every problem."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".csv"):
            raise DirectoryError(f"{path}: expected a .yaml, .yml or .csv file "
                                 f"(the suffix says which format it is in)")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DirectoryError(f"{path}: no such directory file") from None
        except OSError as exc:
            raise DirectoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise DirectoryError(f"{path}, line {line}: not UTF-8 text; save the file as UTF-8 "
                                 f"(in Excel: CSV UTF-8)") from None
        problems = _Problems()
        if suffix == ".csv":
            agencies, counties = _read_csv(path, text, problems)
        else:
            agencies, counties = _read_yaml(path, text, problems)
        if not agencies and not counties and not problems.lines:
            problems.add(str(path), "lists no agencies and no counties")
        directory = _build(agencies, counties, problems)
        if problems.lines:
            raise DirectoryError(problems.lines)
        return directory

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
        """Who to ask about an address, agency or county (the order is in the module docstring)."""
        text = query.strip()
        if not text:
            return Answer(query)
        if "@" in text:
            address = parseaddr(text)[1] if "<" in text else text
            agency = self.agency_of(address)
            return self._answer(query, agency) if agency else Answer(query)
        key = _fold(text)
        agency = self._by_name.get(key) or self._by_code.get(key)
        if agency is not None:
            return self._answer(query, agency)
        county = self._county.get(_county_key(text))
        if county is not None:
            return Answer(query, (), county, _unique_contacts(county.contacts))
        start = bisect.bisect_left(self._name_keys, key)
        end = start
        while end < len(self._name_keys) and self._name_keys[end].startswith(key):
            end += 1
        if end - start == 1:
            return self._answer(query, self._agencies[start])
        return Answer(query, self._agencies[start:end])

    def _answer(self, query: str, agency: Agency) -> Answer:
        county = self._county.get(_county_key(agency.county)) if agency.county else None
        contacts = agency.contacts + (county.contacts if county else ())
        return Answer(query, (agency,), county, _unique_contacts(contacts))


def _claim(index: dict[str, T], key: str, value: T, what: str) -> None:
    held = index.setdefault(key, value)
    if held is not value:
        raise ValueError(f"{what} {key!r} is given twice")


def _unique_contacts(contacts: Iterable[Contact]) -> tuple[Contact, ...]:
    """Each role and name once (any case), the first kept: the agency's before the county's."""
    seen: dict[tuple[str, str], Contact] = {}
    for contact in contacts:
        seen.setdefault((_fold(contact.role), _fold(contact.name)), contact)
    return tuple(seen.values())


def _fold(text: str) -> str:
    """The form names are compared in: any case, runs of spaces as one."""
    return " ".join(text.split()).casefold()


def _county_key(name: str) -> str:
    key = _fold(name)
    return key[:-len(" county")] if key.endswith(" county") else key


# --- values ------------------------------------------------------------------------------------

class _Invalid(ValueError):
    pass


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_LOCAL = re.compile(r"[^\s@<>()\[\],;:\"\\]+")
_SPLIT = re.compile(r"[\s,;]+")
_CODE = re.compile(r"[^\s@]{1,32}")
_SPREADSHEET_NUMBER = re.compile(r"\d(?:[.,]\d+)?[eE]\+?\d+")


_show = yamlfile.show


def _text(value: Any) -> str:
    """A non-empty string, spaces collapsed. YAML numbers and booleans are refused rather than
    turned back into text: ``phone: 0217555`` has already been read as an octal number."""
    if isinstance(value, bool):
        raise _Invalid(f"expected text, but YAML read {_show(value)} (put it in quotes)")
    if isinstance(value, (int, float)):
        raise _Invalid(f"expected text, but YAML read the number {value!r} (put it in quotes)")
    if not isinstance(value, str):
        raise _Invalid(f"expected text, got {_show(value)}")
    return " ".join(value.split())


def _name(value: Any) -> str:
    text = _text(value)
    if "@" in text:  # a query with '@' is an address, so such a name could never be looked up
        raise _Invalid(f"a name cannot contain '@', got {text!r}")
    return text


def _code(value: Any) -> str:
    text = _text(value)
    if not _CODE.fullmatch(text):
        raise _Invalid(f"expected a short code like SPD (at most 32 characters, no spaces or "
                       f"'@'), got {text!r}")
    return text


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a mail domain like example.org, got {_show(value)}")
    text = value.strip().lower().rstrip(".")
    if len(text) <= 253 and _DOMAIN.fullmatch(text) and not text.rpartition(".")[2].isdigit():
        return text
    hint = ""
    if "@" in text:
        hint = " (addresses go under addresses)"
    elif text.startswith("*."):
        hint = " (subdomains match without '*.')"
    raise _Invalid(f"expected a mail domain like example.org, got {value.strip()!r}{hint}")


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected an email address like ann@example.org, got {_show(value)}")
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if (at and _LOCAL.fullmatch(local) and not local.startswith(".") and not local.endswith(".")
            and ".." not in local):
        try:
            return f"{local}@{_domain(domain)}"
        except _Invalid:
            pass
    hint = " (domains go under domains)" if not at and _DOMAIN.fullmatch(text) else ""
    raise _Invalid(f"expected an email address like ann@example.org, got {value.strip()!r}{hint}")


def _phone(value: Any) -> str:
    text = _text(value)
    if _SPREADSHEET_NUMBER.fullmatch(text):
        raise _Invalid(f"looks like a number a spreadsheet reformatted (format the column as "
                       f"text), got {text!r}")
    return text


def _items(text: str) -> list[str]:
    return [part for part in _SPLIT.split(text) if part]


# --- what both formats are read into -----------------------------------------------------------

class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, at: str, message: str) -> None:
        self.lines.append(f"{at}: {message}")

    def check(self, at: str, convert: Callable[[Any], T], value: Any) -> T | None:
        try:
            return convert(value)
        except _Invalid as exc:
            self.add(at, str(exc))
            return None


@dataclass
class _Item:
    value: str
    at: str          # where problems about it are reported: "FILE: key.path" or "FILE, line N: ..."
    ref: str = ""    # how another problem refers to it: "agencies[0].code", "line 4"


@dataclass
class _RawContact:
    contact: Contact
    at: str
    ref: str         # how another problem refers to it: "agencies[0].contacts[1]", "line 4"


@dataclass
class _RawAgency:
    name: str
    at: str          # where problems about its name are reported
    ref: str         # "agencies[0]", "line 4"
    code: _Item | None = None
    county: _Item | None = None
    domains: list[_Item] = field(default_factory=list)
    addresses: list[_Item] = field(default_factory=list)
    contacts: list[_RawContact] = field(default_factory=list)


@dataclass
class _RawCounty:
    name: str
    at: str
    ref: str
    contacts: list[_RawContact] = field(default_factory=list)


def _build(agencies: list[_RawAgency], counties: list[_RawCounty],
           problems: _Problems) -> Directory:
    """The checks that span entries, the same for both formats; then the Directory."""
    county_by_key: dict[str, _RawCounty] = {}
    for county in counties:
        first = county_by_key.setdefault(_county_key(county.name), county)
        if first is not county:
            problems.add(county.at, f"county {county.name!r} is already listed ({first.ref})")
    by_name: dict[str, _RawAgency] = {}
    by_code: dict[str, _RawAgency] = {}
    for agency in agencies:
        first = by_name.setdefault(_fold(agency.name), agency)
        if first is not agency:
            problems.add(agency.at, f"agency {agency.name!r} is already listed ({first.ref})")
        if agency.code is not None:
            first = by_code.setdefault(_fold(agency.code.value), agency)
            if first is not agency:
                problems.add(agency.code.at, f"code {agency.code.value!r} is already the code of "
                                             f"{first.name!r} ({first.ref})")
    for key, agency in by_code.items():
        named = by_name.get(key)
        if named is not None and named is not agency and agency.code is not None:
            problems.add(agency.code.at, f"code {agency.code.value!r} is the name of another "
                                         f"agency ({named.ref}), so it would never find this one")
    for kind, items_of in (("domain", lambda a: a.domains), ("address", lambda a: a.addresses)):
        owner: dict[str, _RawAgency] = {}
        for agency in agencies:
            for item in items_of(agency):
                first = owner.setdefault(item.value, agency)
                if first is not agency:
                    article, hint = (("a", " (list the users of a shared domain under "
                                            "addresses)") if kind == "domain" else ("an", ""))
                    problems.add(item.at, f"{kind} {item.value} is claimed by both {first.name!r} "
                                          f"({first.ref}) and {agency.name!r}; {article} {kind} "
                                          f"belongs to one agency{hint}")

    made: dict[str, County] = {}
    for key, county in county_by_key.items():
        made[key] = County(county.name, _contacts(county.contacts, problems))
    result: list[Agency] = []
    for agency in agencies:
        county_name = None
        if agency.county is not None:
            key = _county_key(agency.county.value)
            county_name = made.setdefault(key, County(agency.county.value, ())).name
        result.append(Agency(
            name=agency.name,
            code=agency.code.value if agency.code else None,
            county=county_name,
            domains=tuple(dict.fromkeys(i.value for i in agency.domains)),
            addresses=tuple(dict.fromkeys(i.value for i in agency.addresses)),
            contacts=_contacts(agency.contacts, problems),
        ))
    if problems.lines:
        return Directory()
    return Directory(result, made.values())


def _contacts(raw: list[_RawContact], problems: _Problems) -> tuple[Contact, ...]:
    seen: dict[tuple[str, str], _RawContact] = {}
    for item in raw:
        first = seen.setdefault((_fold(item.contact.role), _fold(item.contact.name)), item)
        if first is not item:
            problems.add(item.at, f"{item.contact.role} {item.contact.name!r} is listed twice "
                                  f"(first at {first.ref})")
    return tuple(item.contact for item in seen.values())


# --- YAML --------------------------------------------------------------------------------------

_TOP_KEYS = ("agencies", "counties")
_AGENCY_KEYS = ("name", "code", "county", "domains", "addresses", "contacts")
_COUNTY_KEYS = ("name", "contacts")
_CONTACT_KEYS = ("role", "name", "email", "phone")


class _YamlReader:
    def __init__(self, path: Path, problems: _Problems):
        self.path = path
        self.problems = problems

    def at(self, key: str) -> str:
        return f"{self.path}: {key}"

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[Any, Any] | None:
        if not isinstance(value, dict):
            self.problems.add(self.at(key), f"expected a mapping, got {_show(value)}")
            return None
        for name in value:
            if name not in allowed:
                self.problems.add(self.at(f"{key}.{name}"),
                                  f"unknown key (expected one of: {', '.join(allowed)})")
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
              convert: Callable[[Any], str]) -> list[_Item]:
        """A list, or one string of items split at spaces, ',' or ';'."""
        raw = entry.get(name)
        where = f"{key}.{name}"
        if isinstance(raw, str):
            pairs = [(self.at(where), part) for part in _items(raw)]
        else:
            what = "domains" if name == "domains" else "addresses"
            pairs = [(self.at(f"{where}[{i}]"), part)
                     for i, part in enumerate(self.list_of(raw, where, what))]
        found = []
        for at, part in pairs:
            value = self.problems.check(at, convert, part)
            if value is not None:
                found.append(_Item(value, at))
        return found

    def contacts(self, entry: Mapping[Any, Any], key: str) -> list[_RawContact]:
        found = []
        for i, raw in enumerate(self.list_of(entry.get("contacts"), f"{key}.contacts", "contacts")):
            where = f"{key}.contacts[{i}]"
            contact = self.mapping(raw, where, _CONTACT_KEYS)
            if contact is None:
                continue
            role = self.field(contact, where, "role", _text, required=True)
            name = self.field(contact, where, "name", _text, required=True)
            email = self.field(contact, where, "email", _address)
            phone = self.field(contact, where, "phone", _phone)
            if role is not None and name is not None:
                found.append(_RawContact(Contact(role, name, email, phone), self.at(where), where))
        return found


def _read_yaml(path: Path, text: str, problems: _Problems
               ) -> tuple[list[_RawAgency], list[_RawCounty]]:
    try:
        top = yamlfile.load(text, fast=True)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.add(f"{path}{where}", f"not valid YAML: {reason}")
        return [], []
    if top is None:
        return [], []
    if not isinstance(top, dict):
        problems.add(str(path), f"the top level must be a mapping with agencies and counties, "
                                f"got {_show(top)}")
        return [], []
    r = _YamlReader(path, problems)
    for name in top:
        if name not in _TOP_KEYS:
            problems.add(r.at(str(name)), f"unknown key (expected one of: {', '.join(_TOP_KEYS)})")

    counties = []
    for i, raw in enumerate(r.list_of(top.get("counties"), "counties", "counties")):
        key = f"counties[{i}]"
        entry = r.mapping(raw, key, _COUNTY_KEYS)
        if entry is None:
            continue
        name = r.field(entry, key, "name", _name, required=True)
        contacts = r.contacts(entry, key)
        if name is not None:
            counties.append(_RawCounty(name, r.at(f"{key}.name"), key, contacts))

    agencies = []
    for i, raw in enumerate(r.list_of(top.get("agencies"), "agencies", "agencies")):
        key = f"agencies[{i}]"
        entry = r.mapping(raw, key, _AGENCY_KEYS)
        if entry is None:
            continue
        name = r.field(entry, key, "name", _name, required=True)
        code = r.field(entry, key, "code", _code)
        county = r.field(entry, key, "county", _name)
        agency = _RawAgency(
            name=name or "", at=r.at(f"{key}.name"), ref=key,
            code=_Item(code, r.at(f"{key}.code")) if code is not None else None,
            county=_Item(county, r.at(f"{key}.county")) if county is not None else None,
            domains=r.items(entry, key, "domains", _domain),
            addresses=r.items(entry, key, "addresses", _address),
            contacts=r.contacts(entry, key),
        )
        if name is not None:
            agencies.append(agency)
    return agencies, counties


# --- CSV ---------------------------------------------------------------------------------------

_COLUMNS = ("agency", "code", "county", "domains", "addresses", "role", "name", "email", "phone")
_REQUIRED_COLUMNS = ("agency", "role", "name")
_IGNORED = "?"  # an unknown or repeated column: reported once in the header, not on every row


def _read_csv(path: Path, text: str, problems: _Problems
              ) -> tuple[list[_RawAgency], list[_RawCounty]]:
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

    agencies: dict[str, _RawAgency] = {}
    counties: dict[str, _RawCounty] = {}
    for line, cells in rows[1:]:
        values = _csv_row(path, line, columns, cells, header_line, problems)
        if values is not None:
            _csv_entry(path, line, values, agencies, counties, problems)
    return list(agencies.values()), list(counties.values())


def _csv_row(path: Path, line: int, columns: list[str | None], cells: list[str],
             header_line: int, problems: _Problems) -> dict[str, str] | None:
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


def _csv_entry(path: Path, line: int, values: dict[str, str], agencies: dict[str, _RawAgency],
               counties: dict[str, _RawCounty], problems: _Problems) -> None:
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
        role, name = get("role", _text), get("name", _text)
        email, phone = get("email", _address), get("phone", _phone)
        if role is not None and name is not None:
            contact = _RawContact(Contact(role, name, email, phone), f"{path}, line {line}",
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
        county_name = get("county", _name)
        if county_name is None:
            return
        county = counties.setdefault(_county_key(county_name),
                                     _RawCounty(county_name, at("county"), f"line {line}"))
        if contact is not None:
            county.contacts.append(contact)
        return

    name = get("agency", _name)
    if name is None:
        return
    agency = agencies.setdefault(_fold(name), _RawAgency(name, at("agency"), f"line {line}"))
    for column, convert, same in (("code", _code, _fold), ("county", _name, _county_key)):
        value = get(column, convert)
        if value is None:
            continue
        given = getattr(agency, column)
        if given is None:
            setattr(agency, column, _Item(value, at(column), f"line {line}"))
        elif same(given.value) != same(value):
            problems.add(at(column), f"{value!r} differs from {given.value!r} given for "
                                     f"{agency.name!r} on {given.ref}")
    for column, convert in (("domains", _domain), ("addresses", _address)):
        for part in _items(values.get(column, "")):
            value = problems.check(at(column), convert, part)
            if value is not None:
                getattr(agency, column).append(_Item(value, at(column)))
    if contact is not None:
        agency.contacts.append(contact)
