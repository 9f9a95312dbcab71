"""Bounces without a delivery-status part (qmail, exim, Exchange, GroupWise, Lotus Notes, the
"simple match" styles): the failed recipients named in their text, and the Message-IDs of the
original's headers quoted there.

Precision matters more than recall: text is read only above the quoted copy of the original,
and addresses only near a sentence that says delivery failed (``TEXT_INTROS``) or on a line of
a known shape (``LINE_PATTERNS``). Every pattern here is a literal we wrote; no text from a
message ever becomes a regex.
"""

from __future__ import annotations

import re

from mailticket.mail.dsn import (
    ID_FIELDS,
    MAX_IDS,
    MAX_LINE,
    MAX_RECIPIENTS,
    MAX_TEXT,
    FailedRecipient,
    ids_in,
    one_line,
    status_in,
)

__all__ = ["LINE_PATTERNS", "TEXT_ADDRESS", "TEXT_INTROS", "quoted_ids", "text_address",
           "text_recipients"]

MAX_TEXT_LINES = 1000       # lines of a text bounce searched for recipients
SECTION_LINES = 25          # lines after a "delivery failed to the following" sentence

# An address in free text: bounded pieces, so a long run of letters costs linear time.
TEXT_ADDRESS = re.compile(
    r"(?<![\w.+-])"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9-])")
# The start of a line that names a recipient: optional label ("Recipient address:", "To:"),
# then the address, bare, in <...>, or in quotes.
_LINE_ADDRESS = re.compile(
    r"^\s*(?:(?P<label>[A-Za-z][A-Za-z -]{0,30}):\s*)?[\"'<(]{0,2}"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9-])")
# Exchange 5.5 X.400 style: "c=US;a= ;p=IKON;o=Nexus2;dda:SMTP=DJBENNETT@IKON.COM; on ..."
_SMTP_EQUALS = re.compile(
    r"\bSMTP[=:]\s*<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})",
    re.IGNORECASE)
# Labels in front of an address that say it is not the recipient ("From: desk@...").
NOT_RECIPIENT_LABELS = frozenset({"from", "sender", "reply-to", "return-path", "subject",
                                  "message-id", "date", "received", "envelope-from"})

# Where the copy of the original starts in a text bounce: recipients are read only above it.
_COPY_MARKER = re.compile(
    r"below this line is a copy|below the next line is a copy|this is a copy of (?:the|your)"
    r"|copy of the original message|original message follows|returned message follows"
    r"|returned mail follows|start of returned message|unsent message below"
    r"|original message headers|headers of the original message|message headers follow"
    r"|^\s*-{3,}\s*returned message\s*-{3,}"
    r"|^-{3,}\s*original message\s*-{3,}|\u539f\u4fe1\u4ef6",      # Chinese "original letter"
    re.IGNORECASE)
_HEADER_START = re.compile(r"^(?:return-path|received)\s*:", re.IGNORECASE)

# Sentences that introduce the list of failed recipients (read on the lines that follow,
# and on the rest of the sentence's own line). The flag says whether they announce a delay.
TEXT_INTROS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"has not yet been delivered|still awaiting delivery|has been delayed"
                r"|delivery (?:to the following recipients? )?(?:has been|is) delayed"
                r"|delay(?:ed)? (?:in|for) delivery|temporarily (?:deferred|unable)"
                r"|will (?:continue|keep) (?:trying|to try)", re.IGNORECASE), True),
    (re.compile(r"following address(?:\(es\)|es)? failed"
                r"|following (?:recipients?|address(?:\(es\)|es)?|users?|destinations?)"
                r"(?:\(s\))? (?:failed|could not|couldn't|was not|were not|had permanent)"
                r"|delivery to the following recipients? (?:failed|was aborted|has failed)"
                r"|delivery has failed to these recipients"
                r"|did not reach the following recipient"
                r"|(?:could not|couldn't|cannot|can't|was not|wasn't|were not|not able to"
                r"|unable to|failed to|impossible to) (?:be )?deliver(?:ed)?"
                r"(?: (?:your|the|this) (?:message|mail|e-?mail))?"
                r" (?:to )?(?:one or more|all|the following|these|following)"
                r"|(?:could not|couldn't|cannot|can't|was not|wasn't) (?:be )?delivered to\s*:"
                r"|permanent fatal errors|permanent error"
                r"|following (?:recipients?|address(?:\(es\)|es)?)(?:\(s\))?\s*:\s*$"
                r"|following recipients? (?:was|were) rejected|failure reasons"
                r"|\u65e0\u6cd5\u53d1\u9001|\u65e0\u6cd5\u9001\u8fbe"   # Chinese "cannot send"
                r"|\u043d\u0435\u0432\u043e\u0437\u043c\u043e\u0436\u043d\u043e "  # Russian
                r"\u0434\u043e\u0441\u0442\u0430\u0432\u0438\u0442\u044c"        # "cannot deliver"
                r"|\u043d\u0435 \u043c\u043e\u0436\u0435\u0442 \u0431\u044b\u0442\u044c "
                r"\u0434\u043e\u0441\u0442\u0430\u0432\u043b\u0435\u043d\u043e",  # delivered
                re.IGNORECASE), False),
)
# Lines that name a failed recipient wherever they are (above the copy of the original), each
# with whether the whole line is the diagnostic (else the rest of the line, or the lines below).
_QMAIL_LINE = re.compile(r"^(\s{0,4})<([^<>\s@]{1,64}@[^<>\s@]{1,255})>\s*:")
LINE_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = (
    # qmail, Postfix text part, sina, newmail.ru: "<user@example.org>:" at the start of a line
    (_QMAIL_LINE, False),
    # "Your message to user@example.org couldn't be delivered." (Office 365)
    (re.compile(r"your message to\s+<?()([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s+(?:couldn't"
                r"|could not|wasn't|was not|has not|cannot) be", re.IGNORECASE), True),
    # mail.ru and exim filters: "Local mailbox user@example.org is unavailable"
    (re.compile(r"\bmailbox\s+<?()([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s+(?:is unavailable"
                r"|does not exist|is full|unavailable)", re.IGNORECASE), True),
    # "Delivery failed 10 attempts: user@example.org", "User mailbox exceeds allowed size: ..."
    (re.compile(r"^(\s*)(?=[^:]{0,80}(?:fail|unknown|exceed|not exist|unavailable|reject|invalid"
                r"|undeliverable|quota|not found))[^:@<>]{3,80}:\s*"
                r"<?([^<>\s@]{1,64}@[^<>\s@]{1,255}?)>?\s*\.?\s*$", re.IGNORECASE), True),
)
# A line that is only an address: a recipient when a failure sentence is somewhere above the
# copy of the original and nothing better was found (Lotus Notes, EZweb).
_LONE_ADDRESS = re.compile(
    r"^\s*<?([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63})>?\s*$")
_REPLY_CODE = re.compile(r"\b[245]\d\d\b")
_DELAY_SUBJECT = re.compile(r"\bdelay|\bwarning\b|still being retried|not yet been delivered",
                            re.IGNORECASE)


def text_address(value: str) -> str:
    """An address found in free text, as reported: lower case, no trailing dot."""
    return value.strip(".").lower()


def quoted_ids(body: str) -> list[str]:
    """Message-IDs of original headers quoted in the text ("Message-ID: <...>" lines)."""
    ids: list[str] = []
    for line in body[:MAX_TEXT].split("\n"):
        stripped = line[:MAX_LINE].strip().lstrip(">").strip()
        name, colon, value = stripped.partition(":")
        if colon and name.strip().lower() in ID_FIELDS:
            ids.extend(ids_in(value))
            if len(ids) >= MAX_IDS:
                break
    return ids


def text_recipients(body: str, subject: str) -> list[FailedRecipient]:
    """Failed recipients named in the text of a bounce without a delivery-status part."""
    lines = _text_region(body)
    reader = _Reader(lines, bool(_DELAY_SUBJECT.search(subject)))
    for number, full_line in enumerate(lines):
        if len(reader.found) >= MAX_RECIPIENTS:
            break
        reader.read(number, full_line[:MAX_LINE])
    return reader.done()


def _text_region(body: str) -> list[str]:
    """The lines of a text bounce above the copy of the original."""
    lines = body[:MAX_TEXT].split("\n", MAX_TEXT_LINES)[:MAX_TEXT_LINES]
    for number, line in enumerate(lines):
        if number and (_COPY_MARKER.search(line[:MAX_LINE]) or _HEADER_START.match(line)):
            return lines[:number]
    return lines


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _detail_after(lines: list[str], number: int) -> str:
    """The diagnostic below an address line: the next lines up to a blank line or the next
    recipient at the same indentation (exim indents its diagnostics under the address)."""
    pieces = []
    indent = _indent(lines[number])
    for line in lines[number + 1: number + 7]:
        line = line[:MAX_LINE]
        if not line.strip() or (_indent(line) <= indent and (
                _QMAIL_LINE.match(line) or _LINE_ADDRESS.match(line))):
            break
        pieces.append(line.strip())
    return one_line(" ".join(pieces))


class _Reader:
    """The failed recipients of one text bounce, read line by line: a failure sentence opens a
    section of SECTION_LINES lines in which addresses at the start of a line are recipients."""

    def __init__(self, lines: list[str], delay_subject: bool) -> None:
        self.lines = lines
        self.delay_subject = delay_subject
        self.found: list[FailedRecipient] = []
        self.section_left = 0
        self.section_temporary = False
        self.first_intro: bool | None = None      # the delay flag of the first failure sentence
        self.lone: list[tuple[str, int]] = []     # lines that are only an address

    def read(self, number: int, line: str) -> None:
        if self._intro(number, line) or self._known_line(number, line):
            return
        lone_match = _LONE_ADDRESS.match(line)
        if lone_match:
            self.lone.append((lone_match.group(1), number))
        if self.section_left:
            self.section_left -= 1
            self._section_line(number, line)

    def done(self) -> list[FailedRecipient]:
        if not self.found and self.first_intro is not None:
            for address, number in self.lone[:MAX_RECIPIENTS]:
                self._add(address, number, self.first_intro)
        return self.found

    def _intro(self, number: int, line: str) -> bool:
        """A failure sentence: it opens a section; addresses after it on its line count."""
        intro = next(((match, temporary) for pattern, temporary in TEXT_INTROS
                      for match in [pattern.search(line)] if match), None)
        if intro is None:
            return False
        match, self.section_temporary = intro
        if self.first_intro is None:
            self.first_intro = self.section_temporary
        self.section_left = SECTION_LINES
        # "... could not be delivered to: user@example.org"
        for address in TEXT_ADDRESS.findall(line[match.end():]):
            self._add(address, number, self.section_temporary)
        return True

    def _known_line(self, number: int, line: str) -> bool:
        """A line of one of the LINE_PATTERNS shapes that names a recipient."""
        temporary = self.section_temporary if self.section_left else (
            self.delay_subject and self.first_intro is not False)
        for pattern, whole_line in LINE_PATTERNS:
            match = pattern.search(line)
            if match:
                address = TEXT_ADDRESS.fullmatch(match.group(2).strip())
                if not address:
                    return False
                self._add(address.group(1), number, temporary,
                          line if whole_line else line[match.end():])
                return True
        return False

    def _section_line(self, number: int, line: str) -> None:
        start = _LINE_ADDRESS.match(line) or _SMTP_EQUALS.search(line)
        label = (start.groupdict().get("label") or "") if start else ""
        if start and label.strip().lower() not in NOT_RECIPIENT_LABELS:
            address = start.group(start.re.groups)  # the last group, after any label
            self._add(address, number, self.section_temporary, line[start.end():])

    def _add(self, address: str, number: int, temporary: bool, rest: str = "") -> None:
        rest = one_line(rest.strip(" \t>\"':)"))
        if not TEXT_ADDRESS.sub("", rest).strip(" <>\"'():;,."):
            rest = ""  # only the address again
        detail = rest if _REPLY_CODE.search(rest) else (_detail_after(self.lines, number) or rest)
        self.found.append(FailedRecipient(text_address(address), status_in(detail), detail,
                                          temporary))
