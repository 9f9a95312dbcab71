"""ParsedMail -> Verdict: is this a person writing to the desk, or mail that must not be answered?

A table of named rules, walked in order; the first rule that recognises the message wins and
its reason (which header or pattern, and on what value) is kept on the verdict for the log and
the message record. Only ``Kind.HUMAN`` is acknowledged: answering auto-replies, bounces, reports
or list traffic makes mail loops and backscatter (RFC 3834, RFC 3464, RFC 5965).

Every pattern here is a literal we wrote; no text from a message ever becomes a regex.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from mailticket.mail.parse import Address, ParsedMail

__all__ = ["Kind", "Verdict", "classify", "RULES"]


class Kind(enum.Enum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    REPORT = "report"
    LIST = "list"
    OWN = "own"


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str          # which rule hit and on what, e.g. "Auto-Submitted: auto-replied"

    @property
    def acknowledge(self) -> bool:
        return self.kind is Kind.HUMAN


Predicate = Callable[[ParsedMail, frozenset[str]], "str | None"]

# --- literals ------------------------------------------------------------------------------
DSN_REPORT_TYPES = frozenset({"delivery-status", "global-delivery-status"})
OTHER_REPORT_TYPES = frozenset({"disposition-notification", "global-disposition-notification",
                                 "feedback-report"})
DSN_PART_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
REPORT_PART_TYPES = frozenset({"message/disposition-notification",
                               "message/global-disposition-notification",
                               "message/feedback-report"})
DAEMON_LOCAL_PARTS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "mdaemon"})
POSTMASTER_LOCAL_PARTS = frozenset({"postmaster"})

# Subjects that MTAs put on non-delivery reports. Anchored at the start: a person's
# "Re: Undeliverable: ..." or "undeliverable mails since Monday" must still reach the desk.
BOUNCE_SUBJECTS = re.compile(
    r"^(?:"
    r"undelivered mail returned to sender"
    r"|undeliver(?:able|ed)(?: mail| message)?\s*(?::|$|\()"
    r"|delivery status notification"
    r"|delivery notification: delivery has failed"
    r"|mail delivery failed"
    r"|delivery failure"
    r"|failure notice"
    r"|returned mail:"
    r"|mail system error - returned mail"
    r"|non[- ]?delivery(?: report| notification)?:"
    r"|message delivery failure"
    r"|warning: message \S+ delayed"
    r"|warning: could not send message"
    r"|message delayed"
    r"|delayed mail"
    r"|mail delivery status report"
    r"|unzustellbar:"
    r"|nicht zustellbar:"
    r"|benachrichtung zum \u00fcbermittlungsstatus"
    r"|benachrichtigung zum \u00fcbermittlungsstatus"
    r"|non remis\s*:"
    r"|onbestelbaar:"
    r"|no se puede entregar:"
    r"|non recapitabile:"
    r")",
    re.IGNORECASE)

AUTO_REPLY_SUBJECTS = re.compile(
    r"^(?:"
    r"auto(?:matic)?[- ]?reply\b"
    r"|auto(?:matic)?[- ]?response\b"
    r"|autorespons"
    r"|auto:"
    r"|out of (?:the )?office\b"
    r"|vacation(?: reply| notice| message| auto[- ]?reply)?\s*:"
    r"|away from (?:the |my )?office"
    r"|automatische antwort"
    r"|abwesenheitsnotiz"
    r"|r\u00e9ponse automatique"
    r"|risposta automatica"
    r"|respuesta autom\u00e1tica"
    r"|resposta autom\u00e1tica"
    r"|automatisch antwoord"
    r"|automatyczna odpowied\u017a"
    r"|automatick\u00e1 odpov\u011b\u010f"
    r"|\u81ea\u52a8\u56de\u590d"                      # Chinese "automatic reply"
    r"|\u81ea\u52d5\u5fdc\u7b54"                      # Japanese "automatic reply"
    r")",
    re.IGNORECASE)

CHALLENGE_SUBJECTS = re.compile(
    r"^(?:your (?:e-?mail|message) requires verification"
    r"|please (?:confirm|verify) your (?:e-?mail|message)"
    r"|(?:sender )?verification required"
    r"|confirm your (?:e-?mail|message) (?:address )?to)",
    re.IGNORECASE)

READ_RECEIPT_SUBJECTS = re.compile(
    r"^(?:read|gelesen|lu|letto|le\u00eddo|lido|gelezen|przeczytane|odczytano)\s*:",
    re.IGNORECASE)
READ_RECEIPT_BODY = re.compile(
    r"\bwas read on\b|\bwurde am .* gelesen\b|\bhas been displayed\b|^Disposition:\s",
    re.IGNORECASE | re.MULTILINE)

# Robot senders: "no-reply", "noreply-calendar", "bugzilla-daemon", list owners.
ROBOT_LOCAL_PART = re.compile(
    r"(?:^|[-_.+])(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:$|[-_.+])"
    r"|(?:^|-)daemon$"
    r"|^(?:owner|owner-.+|.+-owner|listserv|majordomo|bounces?|.+-bounces?)$",
    re.IGNORECASE)
# Envelope senders of system accounts: cron jobs and scripts.
SYSTEM_LOCAL_PARTS = frozenset({"root", "daemon", "nobody", "cron", "www-data", "apache",
                                "httpd", "nginx"})
LIST_HOST_DOMAINS = frozenset({"yahoogroups.com", "egroups.com", "googlegroups.com", "groups.io",
                               "freelists.org"})

NEGATIVE_VALUES = frozenset({"no", "false", "0", "none", ""})
SUPPRESS_TOKENS = frozenset({"all", "oof", "autoreply"})
LIST_PRECEDENCE = frozenset({"bulk", "list", "junk"})


# --- helpers -------------------------------------------------------------------------------------
def _values(mail: ParsedMail, name: str) -> tuple[str, ...]:
    return mail.headers.get(name, ())


def _first_token(value: str) -> str:
    """"auto-generated (failure)" -> "auto-generated"; "Bulk; x" -> "bulk"."""
    return re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower()


def _local_part(address: Address | None) -> str:
    return address.key.rpartition("@")[0] if address else ""


def _address_in(value: str) -> str:
    match = re.search(r"<([^<>]*)>", value)
    return (match.group(1) if match else value).strip().lower()


def _show(value: str, limit: int = 80) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _part_types(mail: ParsedMail) -> frozenset[str]:
    return frozenset(part.content_type for part in mail.attachments)


# --- rules ---------------------------------------------------------------------------------------
def is_own(mail: ParsedMail, desk: frozenset[str]) -> str | None:
    if mail.sender is not None and mail.sender.key in desk:
        return f"From is a desk address: {mail.sender.key}"
    for value in _values(mail, "x-loop"):
        if _address_in(value) in desk:
            return f"X-Loop: {_show(value)}"
    if _values(mail, "x-mailticket-ticket"):
        return "X-Mailticket-Ticket header present"
    return None


def _report_marker(mail: ParsedMail, report_types: frozenset[str],
                   part_types: frozenset[str]) -> str | None:
    """A multipart/report of one of these report-types, or a part of one of these types."""
    if mail.report_type in report_types:
        return f"{mail.content_type}; report-type={mail.report_type}"
    parts = _part_types(mail) & part_types
    return f"{min(parts)} part" if parts else None


def is_bounce(mail: ParsedMail, desk: frozenset[str]) -> str | None:
    marker = _report_marker(mail, DSN_REPORT_TYPES, DSN_PART_TYPES)
    if marker:
        return marker
    if mail.report_type in OTHER_REPORT_TYPES:
        return None  # a read receipt or feedback report from a postmaster is still a report
    local = _local_part(mail.sender)
    if mail.sender is not None and local in DAEMON_LOCAL_PARTS | POSTMASTER_LOCAL_PARTS:
        # Issue #2: mailer-daemon and postmaster senders are never answered. A mail admin who
        # writes from postmaster@ is still recorded, just not acknowledged.
        return f"From: {mail.sender.key}"
    if mail.sender is None:
        # "MAILER DAEMON <>": the name is all that is left.
        for value in _values(mail, "from"):
            if re.search(r"mailer[- ]?daemon|mail delivery (?:sub)?system", value, re.IGNORECASE):
                return f"From: {_show(value)}"
    if BOUNCE_SUBJECTS.search(mail.subject):
        return f"bounce subject: {_show(mail.subject)}"
    return None


def is_report(mail: ParsedMail, desk: frozenset[str]) -> str | None:
    marker = _report_marker(mail, OTHER_REPORT_TYPES, REPORT_PART_TYPES)
    if marker:
        return marker
    if READ_RECEIPT_SUBJECTS.search(mail.subject):
        # Outlook sends read receipts as a TNEF blob (winmail.dat) and no text; others say
        # "was read on" in the body. Either, or a null return path, marks a receipt.
        only_tnef = not mail.body.strip() and any(
            part.content_type in ("application/ms-tnef", "application/vnd.ms-tnef")
            for part in mail.attachments)
        if only_tnef or mail.return_path == "" or READ_RECEIPT_BODY.search(mail.body[:5000]):
            return f"read receipt: {_show(mail.subject)}"
    return None


def is_auto_reply(mail: ParsedMail, desk: frozenset[str]) -> str | None:
    reason = _auto_reply_header(mail)
    return reason if reason is not None else _auto_reply_sender(mail)


def _auto_reply_header(mail: ParsedMail) -> str | None:
    """A header field that says the mail was sent automatically (RFC 3834 and the rest)."""
    for value in _values(mail, "auto-submitted"):
        if _first_token(value) not in NEGATIVE_VALUES:
            return f"Auto-Submitted: {_show(value)}"
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated", "x-auto-reply",
                 "x-autoreply-from", "x-mail-autoreply", "x-fc-machinegenerated",
                 "x-boxtrapper", "x-cron-env"):
        for value in _values(mail, name):
            if _first_token(value) not in NEGATIVE_VALUES or not value.strip():
                return f"{name}: {_show(value)}"
    for value in _values(mail, "x-auto-response-suppress"):
        tokens = {token.strip().lower() for token in value.split(",")}
        if tokens & SUPPRESS_TOKENS:
            return f"X-Auto-Response-Suppress: {_show(value)}"
    for name in ("precedence", "x-precedence"):
        for value in _values(mail, name):
            if _first_token(value) in ("auto_reply", "auto-reply", "autoreply"):
                return f"Precedence: {_show(value)}"
    return None


def _auto_reply_sender(mail: ParsedMail) -> str | None:
    """A null envelope, an auto-reply subject or a robot sender."""
    if mail.return_path == "":
        return "null Return-Path <> (RFC 3834)"
    if AUTO_REPLY_SUBJECTS.search(mail.subject):
        return f"auto-reply subject: {_show(mail.subject)}"
    if CHALLENGE_SUBJECTS.search(mail.subject):
        return f"challenge-response subject: {_show(mail.subject)}"
    local = _local_part(mail.sender)
    if local and ROBOT_LOCAL_PART.search(local):
        return f"robot sender: {mail.sender.key}" if mail.sender else None
    if mail.return_path and mail.sender is not None:
        # Sent by a system account of the sender's own host: cron jobs, scanners, scripts.
        # (Not any root@ envelope: local re-delivery by root rewrites it on human mail too.)
        envelope_local, _, envelope_domain = mail.return_path.lower().rpartition("@")
        if (envelope_local in SYSTEM_LOCAL_PARTS
                and envelope_domain == mail.sender.key.rpartition("@")[2]):
            return f"sent by a system account: Return-Path <{_show(mail.return_path)}>"
    return None


def is_list(mail: ParsedMail, desk: frozenset[str]) -> str | None:
    for name in ("list-id", "list-post", "mailing-list", "x-mailman-version", "x-beenthere",
                 "x-mailing-list", "x-ml-name", "x-list"):
        values = _values(mail, name)
        if values:
            return f"{name}: {_show(values[0])}"
    if _values(mail, "list-unsubscribe") and any(
            _values(mail, name) for name in ("list-subscribe", "list-help", "list-owner",
                                             "list-archive")):
        return "List-Unsubscribe with other List-* headers"
    for name in ("precedence", "x-precedence"):
        for value in _values(mail, name):
            if _first_token(value) in LIST_PRECEDENCE:
                return f"Precedence: {_show(value)}"
    for value in _values(mail, "sender"):
        local = _address_in(value).rpartition("@")[0]
        if local.endswith(("-bounces", "-admin", "-request")) or local.startswith("owner-"):
            return f"Sender is a list address: {_show(value)}"
    if mail.sender is not None:
        domain = mail.sender.key.rpartition("@")[2]
        if domain in LIST_HOST_DOMAINS:
            return f"From a list host: {domain}"
    return None


RULES: tuple[tuple[str, Predicate], ...] = (
    ("own", is_own),
    ("bounce", is_bounce),
    ("report", is_report),
    ("auto_reply", is_auto_reply),
    ("list", is_list),
)
_KINDS = {"own": Kind.OWN, "bounce": Kind.BOUNCE, "report": Kind.REPORT,
          "auto_reply": Kind.AUTO_REPLY, "list": Kind.LIST}


def classify(mail: ParsedMail, desk_addresses: frozenset[str]) -> Verdict:
    """The kind of ``mail`` and why. ``desk_addresses`` are the desk's own addresses."""
    desk = frozenset(address.strip().lower() for address in desk_addresses)
    for name, predicate in RULES:
        reason = predicate(mail, desk)
        if reason:
            return Verdict(_KINDS[name], reason)
    return Verdict(Kind.HUMAN, "no automated-mail marker")
