"""The typed, frozen settings, each field declaring its key, converter, default and help text
(declare.py); where a new config key is added, with its line in config/mailticket.example.yaml."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import Any

from mailticket.config import values as v
from mailticket.config.declare import Scope, entries, items, section, setting
from mailticket.config.directory import Directory
from mailticket.config.outages import Outages
from mailticket.config.process import Process
from mailticket.config.sla import Reports, Sla


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


def _secret(value: Any) -> Secret:
    return Secret(v.string(value))


_SECURITY = v.choice("ssl", "starttls", "none")


@dataclass(frozen=True)
class DeskSettings:
    name: str = setting(v.string, "Service Desk", in_code=False,
                        help="the display name on every mail we send")
    address: str = setting(v.address, help="the address users write to; our mail comes From it")
    aliases: tuple[str, ...] = items(v.address, what="addresses", kw_only=True,
                                     help="the desk's other addresses (other intake mailboxes)")
    ticket_prefix: str = setting(v.ticket_prefix, "DESK",
                                 help="put before ticket numbers in subjects: [DESK #42]")
    reopen_window_days: int = setting(v.integer(0), 30,
                                      help="days after closing during which a reply reopens")
    # Mail with a ticket's tag from someone not on the ticket and not threaded to our mail:
    # "note" (kept as an unverified note, the desk is told) or "new_ticket" (a new, linked one).
    outsider_mail: str = setting(v.choice("note", "new_ticket"), "note", kw_only=True,
                                 help="what a tagged mail from an outsider becomes")
    alerts_to: tuple[str, ...] = items(v.address, what="addresses", kw_only=True,
                                       help="desk staff told about unverified mail and storms")
    comment_address: str | None = setting(v.address, None, kw_only=True,
                                          help="agents' mail to it is an internal note")
    # Written at the top level of the file (Settings.report_notes_address): mail to it is a note
    # for the next status report.
    report_notes_address: str | None = field(default=None, kw_only=True)

    @property
    def own_addresses(self) -> frozenset[str]:
        own = {self.address.lower(), *(a.lower() for a in self.aliases)}
        for extra in (self.comment_address, self.report_notes_address):
            if extra:
                own.add(extra.lower())
        return frozenset(own)


def _imap_port(scope: Scope) -> int:
    return 993 if scope["security"] == "ssl" else 143


@dataclass(frozen=True)
class ImapMailbox:
    host: str = setting(v.string, help="the IMAP server's host name")
    port: int = setting(v.port, default_from=_imap_port, help="default: 993 with ssl, else 143")
    security: str = setting(_SECURITY, "ssl", first=True, in_code=False,  # the port follows it
                            help="ssl, starttls or none")
    username: str = setting(v.string, help="the login name")
    password: Secret = setting(_secret, first=True, help="the login password")
    folder: str = setting(v.string, "INBOX", help="the folder new mail arrives in")
    processed_folder: str = setting(v.string, "Processed",
                                    help="where a message goes once its ticket is recorded")
    quarantine_folder: str = setting(v.string, "Quarantine",
                                     help="where a message that could not be processed goes")
    idle: bool = setting(v.boolean, True, help="wait for new mail with IMAP IDLE when offered")
    poll_interval: float = setting(v.number(0.1), 60.0, help="seconds between checks, not idling")
    idle_renew: float = setting(v.number(1.0), 600.0, help="seconds after which IDLE restarts")
    batch_size: int = setting(v.integer(1, 10000), 50,
                              help="most messages fetched and committed per round")
    timeout: float = setting(v.number(1.0), 60.0, help="seconds before a silent server is down")

    @property
    def label(self) -> str:
        """A stable name for this mailbox, used in intake keys and logs."""
        return f"imap://{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class SmtpIntake:
    host: str = setting(v.listen, ("127.0.0.1", 8025), key="listen", spread=("host", "port"),
                        in_code=False, help="HOST:PORT to listen on ([::1]:8025 for IPv6)")
    # mypy reads ``= setting(...)`` as a default; with in_code=False it is none, so this order
    # is valid (dataclasses checks it when the class is made).
    port: int  # type: ignore[misc]
    protocol: str = setting(v.choice("smtp", "lmtp"), "smtp", help="smtp or lmtp")

    @property
    def label(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


def _distinct_mailboxes(boxes: tuple[ImapMailbox, ...], scope: Scope) -> str | None:
    if len({b.label for b in boxes}) != len(boxes):
        return "the same mailbox (host, port, username, folder) is listed twice"
    return None


_NO_INTAKE = "no intake configured: give intake.imap, intake.smtp or both"


@dataclass(frozen=True)
class Intake:
    imap: tuple[ImapMailbox, ...] = entries(ImapMailbox, what="mailboxes",
                                            check=_distinct_mailboxes,
                                            help="IMAP mailboxes to take mail from")
    smtp: SmtpIntake | None = section(SmtpIntake, optional=True,
                                      help="take mail handed over by the site's MTA")

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        if not raw.get("imap") and raw.get("smtp") is None:
            yield "", _NO_INTAKE


def _relay_port(scope: Scope) -> int:
    return {"ssl": 465, "starttls": 587, "none": 25}.get(scope["security"], 587)


@dataclass(frozen=True)
class OutgoingSmtp:
    host: str = setting(v.string, help="the relay's host name")
    port: int = setting(v.port, default_from=_relay_port,
                        help="default: 587 with starttls, 465 with ssl, 25 with none")
    security: str = setting(_SECURITY, "starttls", first=True, help="starttls, ssl or none")
    username: str | None = setting(v.string, None, first=True, help="the login name")
    password: Secret | None = setting(_secret, None, first=True, help="the login password")
    timeout: float = setting(v.number(1.0), 60.0, help="seconds before a silent relay is down")

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        if (raw.get("username") is None) != (raw.get("password") is None):
            yield "", "username and password go together: give both or neither"


def _not_below_base(cap: float, scope: Scope) -> str | None:
    base = scope["retry_base"]
    return f"must be at least base_seconds ({base:g})" if base is not None and cap < base else None


@dataclass(frozen=True)
class Outgoing:
    smtp: OutgoingSmtp | None = section(OutgoingSmtp, optional=True, help="an SMTP relay")
    maildir: Path | None = setting(v.path, None, help="instead of smtp: a folder of messages")
    retry_base: float = setting(v.number(0.01), 30.0, key="base_seconds", within="retry",
                                help="seconds before the first retry")
    retry_max: float = setting(v.number(0.01), 3600.0, key="max_seconds", within="retry",
                               check=_not_below_base, help="the longest wait between retries")
    max_attempts: int = setting(v.integer(1), 20, within="retry",
                                help="attempts before a message is marked failed")

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        has_smtp, has_maildir = raw.get("smtp") is not None, raw.get("maildir") is not None
        if not has_smtp and not has_maildir:
            yield "", "give either smtp (a relay) or maildir (a local folder)"
        if has_smtp and has_maildir:
            yield "", "give either smtp or maildir, not both"


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = setting(v.size, 25 * 1024 * 1024, key="max_message_size",
                                     help="the largest incoming message accepted")
    auto_replies_per_recipient_per_hour: int = setting(
        v.integer(0), 5, help="automatic mails (acknowledgements...) to one address an hour")
    auto_replies_per_hour: int = setting(v.integer(0), 1000,
                                         help="the desk-wide breaker for automatic mail")
    max_attachments: int = setting(v.integer(0), 100, help="attachments kept per message")
    max_attachment_bytes: int = setting(v.size, 25 * 1024 * 1024, key="max_attachment_size",
                                        help="the largest single attachment kept")
    max_mime_depth: int = setting(v.integer(1, 1000), 20,
                                  help="MIME parts nested deeper are not read")
    max_header_bytes: int = setting(v.size, 64 * 1024, key="max_header_size",
                                    help="one header field longer than this is cut")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = setting(v.upper(v.choice("debug", "info", "warning", "error")), "INFO",
                         help="debug, info, warning or error")
    file: Path | None = setting(v.path, None, help="a file to log to instead of standard error")


def _base_url(value: Any) -> str:
    url = v.string(value).rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest or any(c in rest for c in "?#\\ "):
        raise v.Invalid(f"expected http://HOST[:PORT][/PATH] or https://..., got {v.show(value)}")
    return url


def _listen_base_url(scope: Scope) -> str | None:
    host, port = scope["host"], scope["port"]
    if host is None:  # listen was invalid, and said so
        return None
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@dataclass(frozen=True)
class Web:
    """The self-service portal (mailticket/web): where it listens, what links in mail point
    to, and how long those links live."""

    host: str = setting(v.listen, ("127.0.0.1", 8080), key="listen", spread=("host", "port"),
                        first=True, in_code=False,
                        help="HOST:PORT the portal listens on (mailticket run)")
    port: int  # type: ignore[misc]
    base_url: str = setting(_base_url, default_from=_listen_base_url,
                            help="what links in mail point to (https://... behind a proxy)")
    # None: the desk's reopen window (a user can act on the ticket as long as a reply could).
    ticket_link_days: int | None = setting(v.integer(1, 3650), None,
                                           help="days a ticket link in a mail stays valid")
    sign_in_minutes: int = setting(v.integer(1, 1440), 15,
                                   help="minutes a sign-in or confirmation link stays valid")
    session_hours: int = setting(v.integer(1, 24 * 90), 12,
                                 help="hours a browser stays signed in")
    requests_per_client_per_hour: int = setting(
        v.integer(1), 10, help="sign-in and confirmation mails one client may ask for an hour")
    trusted_proxies: int = setting(v.integer(0, 5), 0,
                                   help="proxies in front that set X-Forwarded-For/-Proto")
    threads: int = setting(v.integer(1, 256), 8, help="requests served at once (per process)")
    workers: int = setting(v.integer(0, 64), 0,
                           help="portal processes mailticket run starts; 0: in its own process")

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")


def _a_directory(path: Path, scope: Scope) -> str | None:
    return None if path.is_dir() else f"no such directory: {path}"


def _directory(value: Any) -> Directory:
    return Directory.load(v.path(value))


@dataclass(frozen=True)
class Settings:
    path: Path  # the file read (not a key)
    database: str = setting(v.database_url, repr=False,  # may carry a password
                            help="sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")
    desk: DeskSettings = section(DeskSettings, required=True, help="the desk as users see it")
    intake: Intake = section(Intake, when_missing=_NO_INTAKE,
                             help="IMAP mailboxes, an SMTP/LMTP listener, or both")
    outgoing: Outgoing = section(Outgoing, required=True, help="how our mail leaves")
    templates: Path | None = setting(v.path, None, in_code=False, check=_a_directory,
                                     help="a folder of templates that replace the built-in ones")
    storage: Path = setting(v.path, default_from=lambda scope: Path("var/store").absolute(),
                            help="where raw messages and attachments are kept")
    limits: Limits = section(Limits, help="limits that protect the desk")
    logging: LoggingSettings = section(LoggingSettings, help="what is logged, and where")
    process: Process = section(Process, inline=True,
                               help="groups, new_tickets_to, escalation, agent authentication")
    sla: Sla = section(Sla, help="business-hours targets")
    directory: Directory | None = setting(_directory, None, repr=False,
                                          help="the agency and county directory, YAML or CSV")
    report_notes_address: InitVar[str | None] = setting(
        v.address, None, kw_only=True, help="mail to it is a note for the next status report")
    reports: Reports = section(Reports, help="status reports mailed to a distribution list")
    outages: Outages = section(Outages, help="outages: who is told, partners, applications")
    web: Web | None = section(Web, optional=True,
                              help="the self-service portal; absent: no portal, no links in mail")

    def __post_init__(self, report_notes_address: str | None) -> None:
        if report_notes_address and self.desk is not None:  # kept on the desk, with its addresses
            object.__setattr__(self, "desk",
                               replace(self.desk, report_notes_address=report_notes_address))
