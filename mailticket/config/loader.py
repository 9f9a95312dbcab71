"""The YAML config file turned into typed, frozen settings, checked before anything runs.

Every problem names the file, the key path and what is wrong, e.g.
``config/mailticket.yaml: intake.imap[0].port: expected an integer, got 'abc'``.
All problems in a file are reported at once. ``${VAR}`` in a string value is replaced by the
environment variable VAR; a missing variable is a problem naming it. Relative paths are resolved
against the working directory the daemon starts in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from mailticket.desk.calendar import (BusinessCalendar, BusinessDuration, CalendarError,
                                      parse_plain_duration)
from mailticket.directory import Directory, DirectoryError
from mailticket import yamlfile
from mailticket.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/mailticket.yaml")
CONFIG_ENV_VAR = "MAILTICKET_CONFIG"

T = TypeVar("T")


class Secret:
    """A password or token: usable as ``.value``, shown as ``***`` everywhere else."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


@dataclass(frozen=True)
class DeskSettings:
    name: str
    address: str
    ticket_prefix: str
    reopen_window_days: int
    aliases: tuple[str, ...] = ()  # the desk's other addresses (other intake mailboxes)
    # Mail with a ticket's tag from someone not on the ticket and not threaded to our mail:
    # "note" (kept as an unverified note, the desk is told) or "new_ticket" (a new, linked one).
    outsider_mail: str = "note"
    alerts_to: tuple[str, ...] = ()  # desk staff told about unverified mail and mail storms
    comment_address: str | None = None  # agents' mail to it is an internal note
    report_notes_address: str | None = None  # mail to it is a note for the next status report

    @property
    def own_addresses(self) -> frozenset[str]:
        own = {self.address.lower(), *(a.lower() for a in self.aliases)}
        for extra in (self.comment_address, self.report_notes_address):
            if extra:
                own.add(extra.lower())
        return frozenset(own)


@dataclass(frozen=True)
class ImapMailbox:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str
    password: Secret
    folder: str
    processed_folder: str
    quarantine_folder: str
    idle: bool
    poll_interval: float
    idle_renew: float
    batch_size: int
    timeout: float

    @property
    def label(self) -> str:
        """A stable name for this mailbox, used in intake keys and logs."""
        return f"imap://{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class SmtpIntake:
    host: str
    port: int
    protocol: str  # smtp | lmtp

    @property
    def label(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Intake:
    imap: tuple[ImapMailbox, ...] = ()
    smtp: SmtpIntake | None = None


@dataclass(frozen=True)
class OutgoingSmtp:
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str | None
    password: Secret | None
    timeout: float


@dataclass(frozen=True)
class Outgoing:
    smtp: OutgoingSmtp | None
    maildir: Path | None
    retry_base: float
    retry_max: float
    max_attempts: int


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 25 * 1024 * 1024
    auto_replies_per_recipient_per_hour: int = 5   # acknowledgements and the like, per address
    auto_replies_per_hour: int = 1000              # the desk-wide breaker
    max_attachments: int = 100
    max_attachment_bytes: int = 25 * 1024 * 1024
    max_mime_depth: int = 20
    max_header_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Agent:
    name: str       # as the admin wrote it; may be ""
    address: str    # lower case

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass(frozen=True)
class Group:
    """A support group: level 1 is the service desk, 2 the support groups, 3 the service lead."""

    name: str                       # the admin's key, e.g. "network"
    level: int
    members: tuple[Agent, ...]
    address: str | None = None      # the group's own address, when it has one

    @property
    def recipients(self) -> tuple[str, ...]:
        """Where mail for the group goes: its address, else every member."""
        return (self.address,) if self.address else tuple(m.address for m in self.members)


@dataclass(frozen=True)
class Process:
    """The desk's procedure: its groups, where new tickets go and who escalates to whom."""

    groups: tuple[Group, ...] = ()
    new_tickets_to: str | None = None
    escalation: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Mail from an agent's address counts as the agent's only with a DKIM/SPF/DMARC pass in an
    # Authentication-Results header of one of these servers (mail/authres.py).
    agents_require_authentication: bool = False
    trusted_authserv_ids: frozenset[str] = frozenset()

    def agent(self, address: str) -> Agent | None:
        return self._agents_by_address.get(address.lower())

    @cached_property
    def _agents_by_address(self) -> dict[str, Agent]:
        """Asked for every incoming mail: built once."""
        return {a.address: a for a in self.agents}

    def group(self, name: str) -> Group | None:
        wanted = name.strip().lower()
        return next((g for g in self.groups if g.name.lower() == wanted), None)

    def escalates_to(self, name: str) -> tuple[str, ...]:
        """The groups ``name`` may escalate to: as configured, else every higher level."""
        for source, targets in self.escalation:
            if source == name:
                return targets
        source = self.group(name)
        if source is None:
            return ()
        return tuple(g.name for g in self.groups if g.level > source.level)

    @cached_property
    def agents(self) -> tuple[Agent, ...]:
        seen: dict[str, Agent] = {}
        for group in self.groups:
            for member in group.members:
                seen.setdefault(member.address, member)
        return tuple(seen.values())

    def groups_of(self, address: str) -> tuple[Group, ...]:
        address = address.lower()
        return tuple(g for g in self.groups if any(m.address == address for m in g.members))

    def find_agents(self, query: str) -> tuple[Agent, ...]:
        """Agents named by ``query``: an address, a local part or a name (any case)."""
        q = query.strip().lower()
        if "@" in q:
            return tuple(a for a in self.agents if a.address == q)
        exact = tuple(a for a in self.agents
                      if a.address.partition("@")[0] == q or a.name.lower() == q)
        if exact:
            return exact
        return tuple(a for a in self.agents if a.name.lower().split()[:1] == [q])


@dataclass(frozen=True)
class Sla:
    """Business-hours targets: the first response (first agent reply) within ``first_response``
    of business time on ``calendar``; the ticket's group is warned ``warn_before`` it is due."""

    first_response: BusinessDuration = BusinessDuration(days=1)
    calendar: BusinessCalendar = BusinessCalendar()
    warn_before: timedelta = timedelta(hours=2)
    verify_close_after: BusinessDuration = BusinessDuration(days=3)  # resolved -> closed


@dataclass(frozen=True)
class ReportSchedule:
    """One status report: when (local time ``at`` on ``days`` in ``timezone``), to whom."""

    name: str
    at: time
    days: frozenset[int]              # Monday=0
    to: tuple[str, ...]
    title: str
    timezone: str
    agency: str | None = None         # only this agency's tickets


@dataclass(frozen=True)
class Reports:
    schedules: tuple[ReportSchedule, ...] = ()
    grace: timedelta = timedelta(hours=2)   # a slot missed by less is sent late; more: skipped
    old_ticket_days: int = 7

    def get(self, name: str) -> ReportSchedule | None:
        return next((s for s in self.schedules if s.name == name), None)


@dataclass(frozen=True)
class LoggingSettings:
    level: str
    file: Path | None


@dataclass(frozen=True)
class Settings:
    path: Path
    database: str = field(repr=False)  # may carry a password (postgresql://user:pw@host/db)
    desk: DeskSettings
    intake: Intake
    outgoing: Outgoing
    templates: Path | None
    storage: Path
    limits: Limits
    logging: LoggingSettings = field(default_factory=lambda: LoggingSettings("INFO", None))
    process: Process = field(default_factory=Process)
    sla: Sla = field(default_factory=Sla)
    directory: Directory | None = field(default=None, repr=False)
    reports: Reports = field(default_factory=Reports)


# --- reading -----------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_MISSING = object()


class _Reader:
    """Walks the parsed YAML, collecting every problem with its key path."""

    def __init__(self, path: Path, environ: dict[str, str]):
        self.path = path
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def expand(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if name not in self.environ:
                self.problem(key, f"environment variable {name} is not set")
                return ""
            return self.environ[name]

        return _ENV_REF.sub(substitute, value)

    def section(self, parent: dict[str, Any], key: str, name: str, required: bool = True,
                allowed: tuple[str, ...] = ()) -> dict[str, Any] | None:
        value = parent.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.problem(key, "missing (a mapping is required)")
            return None
        if not isinstance(value, dict):
            self.problem(key, f"expected a mapping, got {_show(value)}")
            return None
        self.unknown_keys(key, value, allowed)
        return value

    def unknown_keys(self, key: str, mapping: dict[str, Any], allowed: tuple[str, ...]) -> None:
        if not allowed:
            return
        for name in mapping:
            if name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                self.problem(where, f"unknown key (expected one of: {', '.join(allowed)})")

    def value(self, mapping: dict[str, Any], key: str, name: str, convert: Callable[[Any], T],
              default: Any = _MISSING) -> T:
        raw = mapping.get(name, _MISSING) if mapping is not None else _MISSING
        if raw is _MISSING or raw is None:
            if default is _MISSING:
                self.problem(key, "missing (required)")
                return None  # type: ignore[return-value]
            return default
        before = len(self.problems)
        raw = self.expand(key, raw)
        if len(self.problems) > before:
            return None  # type: ignore[return-value]  # the missing variable is the problem
        try:
            return convert(raw)
        except _Invalid as exc:
            self.problem(key, str(exc))
            return None  # type: ignore[return-value]


class _Invalid(ValueError):
    pass


_show = yamlfile.show


def _string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid(f"expected a string, got {_show(value)}")
    text = str(value).strip()
    if not text:
        raise _Invalid("expected a non-empty string")
    return text


def _integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise _Invalid(f"expected an integer, got {_show(value)}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _Invalid(f"expected an integer, got {_show(value)}") from None
        if not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_show(value)}")
        if minimum is not None and value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise _Invalid(f"must be at most {maximum}, got {value}")
        return value
    return convert


def _number(minimum: float = 0.0) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool):
            raise _Invalid(f"expected a number, got {_show(value)}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _Invalid(f"expected a number, got {_show(value)}") from None
        if not isinstance(value, (int, float)):
            raise _Invalid(f"expected a number, got {_show(value)}")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum:g}, got {value:g}")
        return float(value)
    return convert


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.strip().lower() in ("true", "yes", "on")
    raise _Invalid(f"expected true or false, got {_show(value)}")


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _string(value).lower()
        if text not in options:
            raise _Invalid(f"expected one of {', '.join(options)}, got {_show(value)}")
        return text
    return convert


def _address(value: Any) -> str:
    text = _string(value)
    if not _EMAIL.match(text):
        raise _Invalid(f"expected an email address like desk@example.org, got {_show(value)}")
    return text.lower()


def _port(value: Any) -> int:
    return _integer(1, 65535)(value)


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(_string(value))).absolute()


def _database_url(value: Any) -> str:
    text = _string(value)
    if text.startswith("sqlite:///"):
        target = text[len("sqlite:///"):]
        if target != ":memory:" and not target.startswith("/"):
            target = str(Path(target).absolute())
        return "sqlite:///" + target
    if re.match(r"^(postgres|postgresql)://", text):
        return text
    raise _Invalid(f"expected sqlite:///PATH or postgresql://USER@HOST/DB, got {_show(value)}")


def _ticket_prefix(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,19}", text):
        raise _Invalid("expected letters, digits, '-' or '_' (starting with a letter, at most 20), "
                       f"got {_show(value)}")
    return text


def _listen(value: Any) -> tuple[str, int]:
    text = _string(value)
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d+)", text)
    if not match:
        raise _Invalid(f"expected HOST:PORT such as 127.0.0.1:8025, got {_show(value)}")
    return match.group(1), _port(match.group(2))


def _size(value: Any) -> int:
    """An integer byte count or a string such as '25 MB'."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", value)
        if not match:
            raise _Invalid(f"expected a size such as 25 MB, got {_show(value)}")
        factor = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[match.group(2).lower()]
        size = int(float(match.group(1)) * factor)
        if size < 1:
            raise _Invalid(f"must be at least 1 byte, got {_show(value)}")
        return size
    return _integer(1)(value)


# --- the sections ------------------------------------------------------------------------------

_TOP_KEYS = ("database", "desk", "intake", "outgoing", "templates", "storage", "limits", "logging",
             "groups", "new_tickets_to", "escalation", "agents_require_authentication",
             "trusted_authserv_ids", "sla", "directory", "report_notes_address", "reports")
_REPORT_KEYS = ("at", "days", "to", "title", "timezone", "agency")
_REPORTS_SETTINGS = ("grace", "old_ticket_days")
_SLA_KEYS = ("first_response", "calendar", "warn_before", "verify_close_after")
_CALENDAR_KEYS = ("timezone", "days", "hours", "holidays")
_GROUP_KEYS = ("level", "members", "address")
_DESK_KEYS = ("name", "address", "aliases", "ticket_prefix", "reopen_window_days",
              "outsider_mail", "alerts_to", "comment_address")
_IMAP_KEYS = ("host", "port", "security", "username", "password", "folder", "processed_folder",
              "quarantine_folder", "idle", "poll_interval", "idle_renew", "batch_size", "timeout")
_SMTP_IN_KEYS = ("listen", "protocol")
_OUT_KEYS = ("smtp", "maildir", "retry")
_OUT_SMTP_KEYS = ("host", "port", "security", "username", "password", "timeout")
_RETRY_KEYS = ("base_seconds", "max_seconds", "max_attempts")
_LIMIT_KEYS = ("max_message_size", "auto_replies_per_recipient_per_hour", "auto_replies_per_hour",
               "max_attachments", "max_attachment_size", "max_mime_depth", "max_header_size")
_LOG_KEYS = ("level", "file")


def _read_desk(r: _Reader, top: dict[str, Any]) -> DeskSettings | None:
    desk = r.section(top, "desk", "desk", allowed=_DESK_KEYS)
    if desk is None:
        return None
    return DeskSettings(
        name=r.value(desk, "desk.name", "name", _string, "Service Desk"),
        aliases=_address_list(r, desk, "desk", "aliases"),
        alerts_to=_address_list(r, desk, "desk", "alerts_to"),
        outsider_mail=r.value(desk, "desk.outsider_mail", "outsider_mail",
                              _choice("note", "new_ticket"), "note"),
        comment_address=r.value(desk, "desk.comment_address", "comment_address", _address, None),
        address=r.value(desk, "desk.address", "address", _address),
        ticket_prefix=r.value(desk, "desk.ticket_prefix", "ticket_prefix", _ticket_prefix, "DESK"),
        reopen_window_days=r.value(desk, "desk.reopen_window_days", "reopen_window_days",
                                   _integer(0), 30),
    )


def _address_list(r: _Reader, section: dict[str, Any], where: str, key: str) -> tuple[str, ...]:
    raw = section.get(key) or []
    if not isinstance(raw, list):
        r.problem(f"{where}.{key}", f"expected a list of addresses, got {_show(raw)}")
        return ()
    found: list[str] = []
    for i, item in enumerate(raw):
        address = r.value({"item": item}, f"{where}.{key}[{i}]", "item", _address)
        if address:
            found.append(address)
    return tuple(found)


def _agent(value: Any) -> Agent:
    """ "Ada Lovelace <ada@example.org>" or a bare address."""
    text = _string(value)
    name, address = parseaddr(text)
    if not address or not _EMAIL.match(address) or ("<" in text and ">" not in text):
        raise _Invalid(f"expected an agent like 'Ada Lovelace <ada@example.org>', got {_show(value)}")
    return Agent(name.strip(), address.lower())


def _read_process(r: _Reader, top: dict[str, Any]) -> Process:
    groups_raw = r.section(top, "groups", "groups", required=False) or {}
    groups: list[Group] = []
    owner_of_address: dict[str, str] = {}
    for name, entry in groups_raw.items():
        key = f"groups.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", name):
            r.problem(key, "a group name is a letter, then up to 39 letters, digits, '-' or '_'")
            continue
        if not isinstance(entry, dict):
            r.problem(key, f"expected a mapping (level, members, address), got {_show(entry)}")
            continue
        r.unknown_keys(key, entry, _GROUP_KEYS)
        level = r.value(entry, f"{key}.level", "level", _integer(1, 3))
        members: list[Agent] = []
        members_raw = entry.get("members") or []
        if not isinstance(members_raw, list):
            r.problem(f"{key}.members", f"expected a list of agents, got {_show(members_raw)}")
            members_raw = []
        for i, item in enumerate(members_raw):
            agent = r.value({"m": item}, f"{key}.members[{i}]", "m", _agent)
            if agent is not None:
                members.append(agent)
        address = r.value(entry, f"{key}.address", "address", _address, None)
        if address is not None:
            if address in owner_of_address:
                r.problem(f"{key}.address", f"{address} is already the address of group "
                                            f"{owner_of_address[address]}")
            owner_of_address[address] = name
        if not members and address is None:
            r.problem(key, "a group needs members or an address (or both)")
        groups.append(Group(name, level, tuple(members), address))
    names = {g.name for g in groups}
    levels = {g.name: g.level for g in groups}

    new_to = r.value(top, "new_tickets_to", "new_tickets_to", _string, None)
    if new_to is not None and new_to not in names:
        r.problem("new_tickets_to",
                  f"no such group: {new_to!r} (groups: {', '.join(sorted(names)) or 'none'})")
    if new_to is None:
        first = [g.name for g in groups if g.level == 1]
        new_to = first[0] if first else None

    escalation: list[tuple[str, tuple[str, ...]]] = []
    esc_raw = r.section(top, "escalation", "escalation", required=False) or {}
    for source, targets in esc_raw.items():
        key = f"escalation.{source}"
        if source not in names:
            r.problem(key, f"no such group: {source!r}")
            continue
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list):
            r.problem(key, f"expected a list of groups, got {_show(targets)}")
            continue
        good: list[str] = []
        for i, target in enumerate(targets):
            if target not in names:
                r.problem(f"{key}[{i}]", f"no such group: {target!r}")
            elif target == source:
                r.problem(f"{key}[{i}]", "a group cannot escalate to itself")
            elif levels[target] < levels[source]:
                r.problem(f"{key}[{i}]", f"escalation goes up: {target} is level "
                                         f"{levels[target]}, {source} level {levels[source]}")
            else:
                good.append(target)
        escalation.append((source, tuple(good)))
    require_auth = r.value(top, "agents_require_authentication", "agents_require_authentication",
                           _boolean, False)
    ids_raw = top.get("trusted_authserv_ids") or []
    if not isinstance(ids_raw, list) or not all(isinstance(i, str) and i.strip() and " " not in
                                                i.strip() for i in ids_raw):
        r.problem("trusted_authserv_ids", f"expected a list of server ids like mx.example.org, "
                                          f"got {_show(ids_raw)}")
        ids_raw = []
    trusted = frozenset(i.strip().lower() for i in ids_raw)
    if require_auth and not trusted:
        r.problem("agents_require_authentication",
                  "true needs trusted_authserv_ids: the servers whose Authentication-Results count")
    return Process(tuple(groups), new_to, tuple(escalation), bool(require_auth), trusted)


def _calendar_checked(parse: Callable[[str], T]) -> Callable[[Any], T]:
    """A converter from a calendar parser: its CalendarError becomes a config problem."""
    def convert(value: Any) -> T:
        try:
            return parse(str(value))
        except CalendarError as exc:
            raise _Invalid(str(exc)) from None
    return convert


_business_duration = _calendar_checked(BusinessDuration.parse)
_plain_duration = _calendar_checked(parse_plain_duration)


def _calendar_problems(r: _Reader, where: str, exc: CalendarError) -> None:
    """Each of the calendar's problems ("days: ...") under the key path it belongs to."""
    for problem in exc.problems:
        part, _, message = problem.partition(": ")
        r.problem(f"{where}.{part}", message)


def _read_sla(r: _Reader, top: dict[str, Any]) -> Sla:
    raw = r.section(top, "sla", "sla", required=False, allowed=_SLA_KEYS) or {}
    defaults = Sla()
    first = r.value(raw, "sla.first_response", "first_response", _business_duration,
                    defaults.first_response)
    warn = r.value(raw, "sla.warn_before", "warn_before", _plain_duration, defaults.warn_before)
    verify = r.value(raw, "sla.verify_close_after", "verify_close_after", _business_duration,
                     defaults.verify_close_after)
    calendar = defaults.calendar
    cal_raw = r.section(raw, "sla.calendar", "calendar", required=False, allowed=_CALENDAR_KEYS)
    if cal_raw:
        values = {k: r.expand(f"sla.calendar.{k}", v) for k, v in cal_raw.items()
                  if k in _CALENDAR_KEYS}
        try:
            calendar = BusinessCalendar.from_config(**values)
        except CalendarError as exc:
            _calendar_problems(r, "sla.calendar", exc)
    return Sla(first, calendar, warn, verify)


def _read_reports(r: _Reader, top: dict[str, Any], calendar_zone: str) -> Reports:
    raw = r.section(top, "reports", "reports", required=False) or {}
    defaults = Reports()
    grace = r.value(raw, "reports.grace", "grace", _plain_duration, defaults.grace)
    old_days = r.value(raw, "reports.old_ticket_days", "old_ticket_days", _integer(1, 3650),
                       defaults.old_ticket_days)
    schedules: list[ReportSchedule] = []
    for name, entry in raw.items():
        if name in _REPORTS_SETTINGS:
            continue
        key = f"reports.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", name):
            r.problem(key, "a report name is a letter, then up to 39 letters, digits, '-' or '_'")
            continue
        if not isinstance(entry, dict):
            r.problem(key, f"expected a mapping (at, days, to, title), got {_show(entry)}")
            continue
        r.unknown_keys(key, entry, _REPORT_KEYS)
        at = r.value(entry, f"{key}.at", "at", _clock_time)
        zone = r.value(entry, f"{key}.timezone", "timezone", _string, calendar_zone)
        try:
            calendar = BusinessCalendar.from_config(timezone=zone, days=entry.get("days",
                                                                               "mon-fri"))
        except CalendarError as exc:
            _calendar_problems(r, key, exc)
            continue
        to = _address_list(r, entry, key, "to")
        if not to:
            r.problem(f"{key}.to", "missing (a list of addresses is required)")
        title = r.value(entry, f"{key}.title", "title", _string, name.replace("_", " ").title())
        agency = r.value(entry, f"{key}.agency", "agency", _string, None)
        if at is not None:
            schedules.append(ReportSchedule(name, at, calendar.days, to, title, zone, agency))
    return Reports(tuple(schedules), grace, old_days)


def _clock_time(value: Any) -> time:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 07:30 as the base-60 number 450.
        return time(value // 60, value % 60)
    text = _string(value)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise _Invalid(f"expected a time of day like '07:30', got {_show(value)}")
    return time(int(match.group(1)), int(match.group(2)))


def _read_directory(r: _Reader, top: dict[str, Any]) -> Directory | None:
    path = r.value(top, "directory", "directory", _path, None)
    if path is None:
        return None
    try:
        return Directory.load(path)
    except DirectoryError as exc:
        r.problems.extend(exc.problems)
        return None


def _read_imap(r: _Reader, intake: dict[str, Any]) -> tuple[ImapMailbox, ...]:
    raw = intake.get("imap")
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        r.problem("intake.imap", f"expected a list of mailboxes, got {_show(raw)}")
        return ()
    boxes = []
    for i, entry in enumerate(raw):
        key = f"intake.imap[{i}]"
        if not isinstance(entry, dict):
            r.problem(key, f"expected a mapping, got {_show(entry)}")
            continue
        r.unknown_keys(key, entry, _IMAP_KEYS)
        security = r.value(entry, f"{key}.security", "security", _choice("ssl", "starttls", "none"),
                           "ssl")
        default_port = 993 if security == "ssl" else 143
        password = r.value(entry, f"{key}.password", "password", _string)
        boxes.append(ImapMailbox(
            host=r.value(entry, f"{key}.host", "host", _string),
            port=r.value(entry, f"{key}.port", "port", _port, default_port),
            security=security,
            username=r.value(entry, f"{key}.username", "username", _string),
            password=Secret(password) if password is not None else None,  # type: ignore[arg-type]
            folder=r.value(entry, f"{key}.folder", "folder", _string, "INBOX"),
            processed_folder=r.value(entry, f"{key}.processed_folder", "processed_folder", _string,
                                     "Processed"),
            quarantine_folder=r.value(entry, f"{key}.quarantine_folder", "quarantine_folder",
                                      _string, "Quarantine"),
            idle=r.value(entry, f"{key}.idle", "idle", _boolean, True),
            poll_interval=r.value(entry, f"{key}.poll_interval", "poll_interval", _number(0.1), 60.0),
            idle_renew=r.value(entry, f"{key}.idle_renew", "idle_renew", _number(1.0), 600.0),
            batch_size=r.value(entry, f"{key}.batch_size", "batch_size", _integer(1, 10000), 50),
            timeout=r.value(entry, f"{key}.timeout", "timeout", _number(1.0), 60.0),
        ))
    if len({b.label for b in boxes}) != len(boxes):
        r.problem("intake.imap", "the same mailbox (host, port, username, folder) is listed twice")
    return tuple(boxes)


_NO_INTAKE = "no intake configured: give intake.imap, intake.smtp or both"


def _read_intake(r: _Reader, top: dict[str, Any]) -> Intake:
    intake = r.section(top, "intake", "intake", required=False, allowed=("imap", "smtp"))
    if intake is None:
        if top.get("intake") is None:
            r.problem("intake", _NO_INTAKE)
        return Intake()
    if not intake.get("imap") and intake.get("smtp") is None:
        r.problem("intake", _NO_INTAKE)
    smtp = None
    smtp_raw = r.section(intake, "intake.smtp", "smtp", required=False, allowed=_SMTP_IN_KEYS)
    if smtp_raw is not None:
        listen = r.value(smtp_raw, "intake.smtp.listen", "listen", _listen, ("127.0.0.1", 8025))
        protocol = r.value(smtp_raw, "intake.smtp.protocol", "protocol", _choice("smtp", "lmtp"),
                           "smtp")
        if listen:
            smtp = SmtpIntake(host=listen[0], port=listen[1], protocol=protocol)
    return Intake(imap=_read_imap(r, intake), smtp=smtp)


def _read_outgoing(r: _Reader, top: dict[str, Any]) -> Outgoing:
    out = r.section(top, "outgoing", "outgoing", allowed=_OUT_KEYS)
    if out is None:
        return Outgoing(None, None, 30.0, 3600.0, 20)
    smtp = None
    smtp_raw = r.section(out, "outgoing.smtp", "smtp", required=False, allowed=_OUT_SMTP_KEYS)
    if smtp_raw is not None:
        security = r.value(smtp_raw, "outgoing.smtp.security", "security",
                           _choice("ssl", "starttls", "none"), "starttls")
        default_port = {"ssl": 465, "starttls": 587, "none": 25}.get(security, 587)
        username = r.value(smtp_raw, "outgoing.smtp.username", "username", _string, None)
        password = r.value(smtp_raw, "outgoing.smtp.password", "password", _string, None)
        if (smtp_raw.get("username") is None) != (smtp_raw.get("password") is None):
            r.problem("outgoing.smtp", "username and password go together: give both or neither")
        smtp = OutgoingSmtp(
            host=r.value(smtp_raw, "outgoing.smtp.host", "host", _string),
            port=r.value(smtp_raw, "outgoing.smtp.port", "port", _port, default_port),
            security=security,
            username=username,
            password=Secret(password) if password is not None else None,
            timeout=r.value(smtp_raw, "outgoing.smtp.timeout", "timeout", _number(1.0), 60.0),
        )
    maildir = r.value(out, "outgoing.maildir", "maildir", _path, None)
    has_smtp, has_maildir = out.get("smtp") is not None, out.get("maildir") is not None
    if not has_smtp and not has_maildir:
        r.problem("outgoing", "give either smtp (a relay) or maildir (a local folder)")
    if has_smtp and has_maildir:
        r.problem("outgoing", "give either smtp or maildir, not both")
    retry = r.section(out, "outgoing.retry", "retry", required=False, allowed=_RETRY_KEYS) or {}
    base = r.value(retry, "outgoing.retry.base_seconds", "base_seconds", _number(0.01), 30.0)
    cap = r.value(retry, "outgoing.retry.max_seconds", "max_seconds", _number(0.01), 3600.0)
    if base is not None and cap is not None and cap < base:
        r.problem("outgoing.retry.max_seconds", f"must be at least base_seconds ({base:g})")
    return Outgoing(
        smtp=smtp, maildir=maildir, retry_base=base, retry_max=cap,
        max_attempts=r.value(retry, "outgoing.retry.max_attempts", "max_attempts", _integer(1), 20),
    )


def load(path: str | os.PathLike[str] | None = None,
         environ: dict[str, str] | None = None) -> Settings:
    """Read, expand and check the config file; raise ConfigError listing every problem."""
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        top = yamlfile.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}not valid YAML: {reason}") from None
    if top is None:
        top = {}
    if not isinstance(top, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {_show(top)}")

    r = _Reader(path, environ)
    r.unknown_keys("", top, _TOP_KEYS)
    database = r.value(top, "database", "database", _database_url)
    desk = _read_desk(r, top)
    notes_address = r.value(top, "report_notes_address", "report_notes_address", _address, None)
    if desk is not None and notes_address:
        desk = replace(desk, report_notes_address=notes_address)
    intake = _read_intake(r, top)
    outgoing = _read_outgoing(r, top)
    templates = r.value(top, "templates", "templates", _path, None)
    if templates is not None and not templates.is_dir():
        r.problem("templates", f"no such directory: {templates}")
    storage = r.value(top, "storage", "storage", _path, Path("var/store").absolute())
    limits_raw = r.section(top, "limits", "limits", required=False, allowed=_LIMIT_KEYS) or {}
    def limit(key: str, kind: Callable[[Any], int], default: int) -> int:
        return r.value(limits_raw, f"limits.{key}", key, kind, default)

    limits = Limits(
        max_message_bytes=limit("max_message_size", _size, Limits.max_message_bytes),
        auto_replies_per_recipient_per_hour=limit("auto_replies_per_recipient_per_hour",
                                                  _integer(0), 5),
        auto_replies_per_hour=limit("auto_replies_per_hour", _integer(0), 1000),
        max_attachments=limit("max_attachments", _integer(0), Limits.max_attachments),
        max_attachment_bytes=limit("max_attachment_size", _size, Limits.max_attachment_bytes),
        max_mime_depth=limit("max_mime_depth", _integer(1, 1000), Limits.max_mime_depth),
        max_header_bytes=limit("max_header_size", _size, Limits.max_header_bytes),
    )
    log_raw = r.section(top, "logging", "logging", required=False, allowed=_LOG_KEYS) or {}
    logging_settings = LoggingSettings(
        level=(r.value(log_raw, "logging.level", "level",
                       _choice("debug", "info", "warning", "error"), "info") or "").upper(),
        file=r.value(log_raw, "logging.file", "file", _path, None),
    )
    process = _read_process(r, top)
    sla = _read_sla(r, top)
    directory = _read_directory(r, top)
    reports = _read_reports(r, top, sla.calendar.timezone)
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        path=path, database=database, desk=desk, intake=intake,  # type: ignore[arg-type]
        outgoing=outgoing, templates=templates, storage=storage, limits=limits,
        logging=logging_settings, process=process, sla=sla, directory=directory,
        reports=reports,
    )
