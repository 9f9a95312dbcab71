"""Every corpus file through parse() and classify(): no crash, automated mail never taken for a
person, and the facts the source projects' own tests assert about a file checked against ours.

Where we differ from a source project on purpose, the file is listed below with the reason; the
lists are strict (an entry that starts to match, or a file that starts to be recognised, fails
the test), so they can only shrink.
"""

from __future__ import annotations

import re
from typing import Callable

import pytest

from mailticket.errors import PermanentFailure
from mailticket.mail.classify import Kind, classify
from mailticket.mail.htmltext import html_to_text
from mailticket.mail.parse import ParsedMail, parse
from tests import corpus

DESK = frozenset({"desk@mailticket.invalid"})
AUTOMATED = ("autoreply/", "bounce/", "report/", "list/")
PERSONAL = ("plain/", "replies/", "forward/", "charset/", "html/", "attachments/")

# Files parse() may refuse (PermanentFailure: no header at all), with the reason. None today.
REFUSED: dict[str, str] = {}

# Automated mail we cannot recognise. None today; a new entry needs a reason.
NOT_RECOGNISED: dict[str, str] = {}

# Files in the "person" folders that are not HUMAN, and why that is right.
NOT_HUMAN: dict[str, tuple[Kind, str]] = {
    "html/flanker-long-links.eml": (
        Kind.BOUNCE, "sent From postmaster@: issue #2 says postmaster senders are never "
        "acknowledged (the mail is still recorded)"),
    "attachments/mmp-m4006.eml": (
        Kind.REPORT, "an Outlook read receipt ('Read: invitation', only winmail.dat): the notes "
        "say so; answering it would loop"),
    "attachments/rt-outlook-rfc822.eml": (
        Kind.AUTO_REPLY, "sent by root@localhost with Return-Path <root@localhost>: a system "
        "account of the sending host"),
    "attachments/spamassassin-BOUNCE_MESSAGE-fp-bug5882-att4300.eml": (
        Kind.AUTO_REPLY, "a Google Calendar invitation carrying Auto-Submitted: auto-generated"),
    "attachments/spamassassin-iso-2022-jp.1.eml": (
        Kind.LIST, "carries Precedence: bulk (RFC 3834: do not answer)"),
    "charset/cpython-msg_32.eml": (Kind.LIST, "carries Precedence: bulk"),
    "charset/spamassassin-big5-base64.1.eml": (
        Kind.LIST, "a post to the SLAT-talk list: List-Id"),
    "charset/zammad-mail098.eml": (
        Kind.AUTO_REPLY, "sent from noreply@example.org: nobody reads the acknowledgement"),
    "html/spamassassin-OBFUSCATING_COMMENT-fp-bug6188-1.eml": (
        Kind.LIST, "a newsletter with Precedence: bulk (the notes say so)"),
    "plain/rubymail-raw_email_trailing_dot.eml": (
        Kind.AUTO_REPLY, "a tracker notification from noreply@rubyforge.org (the notes say so)"),
    "replies/djmailbox-message_with_image_jpg_mimetype.eml": (
        Kind.LIST, "carries Precedence: bulk (the notes say so)"),
    "replies/djmailbox-message_with_utf8_char.eml": (
        Kind.LIST, "carries Precedence: bulk (the notes say so)"),
    "replies/spamassassin-FORGED_MUA_OUTLOOK-fp-5496-2.eml": (
        Kind.LIST, "a list reply with Precedence: bulk and List-Unsubscribe (the notes say so)"),
}

# Where our result differs from what the source project's test asserts, and why.
ZAMMAD_MESSAGE_HTML = "Zammad stores an HTML body as an attachment 'message.html'; we convert it"
DIFFERENCES: dict[tuple[str, str], str] = {
    ("bounce/zammad-mail018.eml", "subject"):
        "Zammad keeps the tabs and leaves the UTF-7 word undecoded; we decode charset "
        "unicode-1-1-utf-7 and collapse white space",
    ("charset/mmp-m1011.eml", "subject"):
        "raw UTF-7 in the Subject header (not an encoded word): only the body declares UTF-7",
    ("charset/rt-russian-subject-no-content-type.eml", "subject"):
        "raw KOI8-R bytes and no charset anywhere: RT guesses from a configured fallback, we "
        "read Latin-1",
    ("charset/zammad-mail046.eml", "subject"):
        "raw GB2312 bytes in a message that declares iso-8859-1: Zammad guesses, we trust the "
        "declaration",
    ("charset/zammad-mail046.eml", "attachment_filenames"):
        "the forwarded message is named after the same raw GB2312 subject (see above)",
    ("charset/zammad-mail046.eml", "from_display_name"):
        "raw GB2312 bytes in the display name under a Latin-1 declaration (see above)",
    ("headers/zammad-mail017.eml", "subject"):
        "Zammad's value starts with a stray quote and is cut; ours is the whole decoded subject",
    ("headers/zammad-mail027.eml", "subject"):
        "the decoded subject starts with CR LF: we remove control characters",
    ("headers/zammad-mail016.eml", "from_email"):
        "no From header: Zammad falls back to Reply-To, we to Sender only (the desk sees "
        "reply_to)",
    ("headers/zammad-mail016.eml", "from_display_name"): "no From header (see from_email)",
    ("headers/zammad-mail019.eml", "from_email"):
        "From is the null address <>: Zammad takes Reply-To, we report no sender",
    ("headers/zammad-mail019.eml", "from_display_name"): "From is <> (see from_email)",
    ("headers/zammad-mail076.eml", "from_email"):
        "Zammad keeps the stray '>'; we keep the valid quoted address",
    ("headers/zammad-mail076.eml", "from_display_name"):
        "Zammad makes a name of the broken address; there is none",
    ("headers/zammad-mail087.eml", "from_email"):
        "'From: Test test@example.com': Zammad keeps the whole string, we split name and address",
    ("headers/zammad-mail087.eml", "from_display_name"): "see from_email: our name is 'Test'",
    ("headers/zammad-mail087.eml", "attachments"):
        "the second part has no Content-Type and no name: it is the text body, not a file",
    ("headers/zammad-mail087.eml", "attachment_filenames"): "see attachments",
    ("headers/phpmmp-m0016.eml", "attachments"):
        "the only text part is inline (with a filename): we take it as the body",
    ("headers/phpmmp-m0016.eml", "attachment_list"): "see attachments",
    ("headers/rt-very-long-subject.eml", "subject"):
        "RT cuts subjects to 200 characters (its column); we keep up to 1000 (all 300 here)",
    ("malformed/mmp-m0018.eml", "attachments"):
        "no Content-Type header at the top: by RFC 2045 the message is text/plain, so the "
        "MIME-looking body is text",
    ("malformed/mailparser-mail_test_17.eml", "from_name"):
        "the display name is an encoded word that decodes to an address; we show it",
    ("attachments/rubymail-attachment_message_rfc822.eml", "attachments"):
        "an attached message is one .eml attachment; we do not pull files out of it",
    ("attachments/zammad-mail080.eml", "attachment_filenames"):
        "an unnamed image: Zammad calls it image.jpg, we attachment-1.jpg",
    ("attachments/zammad-mail102.eml", "attachment_filenames"):
        "Zammad renames a repeated filename; names are display names for us, kept as sent",
    ("bounce/mailparser-mail_malformed_2.eml", "attachments"):
        "we keep the message/delivery-status part as an attachment too",
    ("charset/redmine-invalid_utf8.eml", "body"):
        "an invalid UTF-8 byte becomes U+FFFD for us, '?' for Redmine",
    ("html/redmine-ticket_html_only.eml", "body_starts"):
        "Redmine renders <b> as *...*; we keep the words only",
}

# Expected values that the manifest writes as a description, not literally.
LITERAL: dict[tuple[str, str], str] = {
    ("headers/rt-very-long-subject.eml", "subject"): "0123456789" * 20,
    ("attachments/redmine-thunderbird_with_attachment_iso-8859-1.eml", "attachment_filename"):
        "ÄäÖöÜü" * 11 + ".png",
    ("attachments/rubymail-attachment_with_encoded_name.eml", "attachment_filename"):
        "01 Quien Te Dij\ufffdat. Pitbull.mp3",
    ("malformed/cpython-msg_35.eml", "body_starts"): "counter to RFC 5322",
}


def _words(text: str) -> str:
    return " ".join(text.split())


def _count(value: str) -> int | None:
    match = re.match(r"\s*(\d+)\b", value)
    return int(match.group(1)) if match else None


def _names(mail: ParsedMail) -> str:
    # The manifest writes ";" as "," inside values.
    return ",".join(part.filename.replace(";", ",") for part in mail.attachments)


def _drop_message_html(value: str) -> tuple[str, int]:
    kept = [name for name in value.split(",") if name != "message.html"]
    return ",".join(kept), value.count("message.html")


def _check_subject(mail, value, row):
    if "placeholder" in value:
        return None  # the source project's own text for a missing subject
    return mail.subject == value, mail.subject


def _check_from_email(mail, value, row):
    got = mail.sender.address if mail.sender else None
    if got is None:
        return False, None
    local, _, domain = value.rpartition("@")
    return got == f"{local}@{domain.lower()}", got


def _check_name(mail, value, row):
    got = mail.sender.name if mail.sender else None
    return got == ("" if value == "(empty)" else value), got


def _check_count(mail, value, row):
    expected = _count(value)
    if expected is None:
        return None  # e.g. "smime.sh.txt,smime.p7s": checked as names instead
    if "message.html" in row["expected"].get("attachment_filenames", ""):
        expected -= _drop_message_html(row["expected"]["attachment_filenames"])[1]
    return len(mail.attachments) == expected, len(mail.attachments)


def _check_filename(mail, value, row):
    names = [part.filename for part in mail.attachments]
    return value in names, names


def _check_filenames(mail, value, row):
    expected, _ = _drop_message_html(value)
    return _names(mail) == expected, _names(mail)


def _check_attachment_list(mail, value, row):
    # "noname1(text/calendar)": the source names unnamed parts its own way; check the types.
    types = re.findall(r"\(([^()]+)\)", value)
    got = [part.content_type for part in mail.attachments]
    return got == types, got


def _check_body_contains(mail, value, row):
    body = _words(mail.body)
    return all(_words(piece) in body for piece in value.split(",")), mail.body[:200]


def _check_body(mail, value, row):
    expected = "" if value == "(empty)" else value
    if expected.startswith("<"):
        expected = html_to_text(expected)
    return _words(mail.body) == _words(expected), mail.body[:200]


def _check_body_starts(mail, value, row):
    return _words(mail.body).startswith(_words(value)), mail.body[:200]


def _check_message_id_count(mail, value, row):
    if value == "0":
        return mail.message_id_synthesized, mail.message_id
    return not mail.message_id_synthesized, mail.message_id


def _check_to(mail, value, row):
    got = [address.key for address in mail.to]
    return got == [address.strip().lower() for address in value.split(",")], got


def _check_rfc822_name(mail, value, row):
    names = [p.filename for p in mail.attachments if p.content_type == "message/rfc822"]
    return value in names, names


CHECKS: dict[str, Callable] = {
    "subject": _check_subject,
    "from_email": _check_from_email,
    "from_name": _check_name,
    "from_display_name": _check_name,
    "attachments": _check_count,
    "attachment_filename": _check_filename,
    "attachment_filenames": _check_filenames,
    "attachment_list": _check_attachment_list,
    "rfc822_attachment_filename": _check_rfc822_name,
    "body_contains": _check_body_contains,
    "body": _check_body,
    "body_starts": _check_body_starts,
    "hdr.message_id_count": _check_message_id_count,
    "to": _check_to,
}


def test_corpus_is_present():
    """Without the corpus every parametrized test below is skipped: say so (fail on CI)."""
    corpus.require_corpus()


def test_allow_lists_name_real_files():
    root = corpus.require_corpus()
    listed = [*REFUSED, *NOT_RECOGNISED, *NOT_HUMAN, *(file for file, _ in DIFFERENCES),
              *(file for file, _ in LITERAL)]
    assert [file for file in listed if not (root / file).is_file()] == []


@pytest.mark.parametrize("row", corpus.corpus_params())
def test_corpus_file(row):
    root = corpus.require_corpus()
    name = row["file"]
    raw = (root / name).read_bytes()
    try:
        mail = parse(raw)
    except PermanentFailure:
        assert name in REFUSED, f"{name}: refused but not listed in REFUSED"
        return
    assert name not in REFUSED, f"{name} now parses: remove it from REFUSED"
    verdict = classify(mail, DESK)
    assert verdict.reason

    if name.startswith(AUTOMATED):
        if name in NOT_RECOGNISED:
            assert verdict.kind is Kind.HUMAN, f"{name} is recognised now: unlist it"
        else:
            assert verdict.kind is not Kind.HUMAN, f"{name} taken for a person"
    elif name.startswith(PERSONAL):
        expected_kind = NOT_HUMAN.get(name, (Kind.HUMAN, ""))[0]
        assert verdict.kind is expected_kind, f"{name}: {verdict.kind} ({verdict.reason})"

    mismatches = []
    for key, value in row["expected_items"]:
        check = CHECKS.get(key)
        if check is None:
            continue
        value = LITERAL.get((name, key), value)
        result = check(mail, value, row)
        if result is None:
            continue
        ok, got = result
        if (name, key) in DIFFERENCES:
            assert not ok, f"{name}: {key} matches now: remove it from DIFFERENCES"
        elif not ok:
            mismatches.append(f"{key}: expected {value!r}, got {got!r}")
    assert mismatches == [], name


@pytest.mark.parametrize("name", sorted(NOT_HUMAN))
def test_not_human_entries_are_justified(name):
    kind, reason = NOT_HUMAN[name]
    assert kind is not Kind.HUMAN and len(reason) > 20
