"""analyse(): which of our mails a bounce names, and for which recipients.

Hand-written bounces first (standard DSNs with the original as message/rfc822 or
text/rfc822-headers, a delay, a positive DSN, text bounces), then the corpus: every bounce whose
manifest names its failed recipients must give them, and every corpus file of every category
must go through without the analysis failing. Misses we accept are listed in KNOWN_MISSES with
the reason; the list is strict (an entry that starts to match fails), so it can only shrink.
"""

from __future__ import annotations

import logging
import re

import pytest

from mailticket.errors import PermanentFailure
from mailticket.mail.bounces import BounceReport, FailedRecipient, analyse
from mailticket.mail.parse import parse
from tests import corpus
from tests.mail.test_corpus_mail import REFUSED

OURS = "<mt.42.5f1c0a9e3b7d.9a1e2b3c4d5e6f708192@desk.example.org>"
DESK = "help@desk.example.org"

# Corpus bounces whose manifest expectation we do not meet, with the reason. None today.
KNOWN_MISSES: dict[str, str] = {}


def report_of(raw: str | bytes) -> BounceReport:
    return analyse(parse(raw.encode() if isinstance(raw, str) else raw))


def dsn(per_recipient: str, original: str, original_type: str = "message/rfc822",
        headers: str = "") -> str:
    """A multipart/report DSN from the desk's MTA back to the desk."""
    return f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.desk.example.org>
To: {DESK}
Subject: Undelivered Mail Returned to Sender
Message-ID: <20240301101500.ABC123@mx.desk.example.org>
Auto-Submitted: auto-replied
{headers}MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.desk.example.org.
I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.desk.example.org
Arrival-Date: Fri,  1 Mar 2024 10:14:58 +0100

{per_recipient}
--B
Content-Type: {original_type}

{original}
--B--
"""


ORIGINAL = f"""\
From: Help Desk <{DESK}>
To: Ann User <ann@example.com>, bob@example.net
Subject: [DESK #42] laptop
Message-ID: {OURS}
In-Reply-To: <CAF00ann@mail.example.com>

Your laptop is ready.
"""

FAILED_ANN = """\
Final-Recipient: rfc822; Ann@Example.com
Original-Recipient: rfc822;ann@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected:
    User unknown in local recipient table
"""


# --- hand-written bounces --------------------------------------------------------------------
def test_dsn_with_original_message():
    report = report_of(dsn(FAILED_ANN, ORIGINAL))
    assert report.original_ids[0] == OURS
    assert "<CAF00ann@mail.example.com>" not in report.original_ids  # the original's parent
    assert "<20240301101500.ABC123@mx.desk.example.org>" not in report.original_ids  # its own
    assert report.recipients == (FailedRecipient(
        address="ann@example.com", status="5.1.1",
        detail="550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown in local "
               "recipient table",
        temporary=False),)
    assert report.permanent == report.recipients


def test_dsn_with_original_headers_only():
    headers_only = ORIGINAL.split("\n\n", 1)[0] + "\n"
    report = report_of(dsn(FAILED_ANN, headers_only, original_type="text/rfc822-headers"))
    assert report.original_ids == (OURS,)
    assert [r.address for r in report.permanent] == ["ann@example.com"]


def test_delayed_dsn_is_temporary():
    delayed = """\
Final-Recipient: rfc822; bob@example.net
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.1]:25: Connection timed out
Will-Retry-Until: Tue, 5 Mar 2024 10:14:58 +0100
"""
    report = report_of(dsn(delayed, ORIGINAL))
    assert report.original_ids == (OURS,)
    assert report.recipients == (FailedRecipient(
        "bob@example.net", "4.4.1",
        "connect to mx.example.net[192.0.2.1]:25: Connection timed out", True),)
    assert report.permanent == ()


def test_positive_dsn_names_no_failure():
    delivered = """\
Final-Recipient: rfc822; ann@example.com
Action: delivered
Status: 2.0.0
Diagnostic-Code: smtp; 250 2.0.0 OK queued as 4Tm1
"""
    report = report_of(dsn(delivered, ORIGINAL))
    assert report.original_ids == (OURS,)
    assert report.recipients == ()


def test_blocks_without_blank_lines_and_mixed_actions():
    blocks = """\
Final-Recipient: RFC822;<ann@example.com>
Action: failed
Status: 5.2.2 (mailbox full)
Final-Recipient: rfc822;bob@example.net
Action: delayed
Status: 4.2.2
Original-Recipient: rfc822;carol@example.org
Final-Recipient: rfc822;carol.smith@mail.example.org
Action: relayed
Status: 2.0.0
Final-Recipient: rfc822;dave@example.org
Action: expanded
"""
    report = report_of(dsn(blocks, ORIGINAL))
    assert [(r.address, r.status, r.temporary) for r in report.recipients] == [
        ("ann@example.com", "5.2.2", False), ("bob@example.net", "4.2.2", True)]
    assert report.recipients[0].detail == "mailbox full"


def test_in_reply_to_when_nothing_is_embedded():
    raw = f"""\
From: postmaster@example.com
To: {DESK}
Subject: Delivery Status Notification (Failure)
Message-ID: <own.1@mx.example.com>
In-Reply-To: {OURS}
References: <first@example.com> {OURS}
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; ann@example.com
Action: failed
Status: 5.0.0
--B--
"""
    report = report_of(raw)
    assert report.original_ids == (OURS, "<first@example.com>")
    assert [r.address for r in report.permanent] == ["ann@example.com"]


def test_text_bounce_quoting_the_original():
    raw = f"""\
From: MAILER-DAEMON@mail.example.com
To: {DESK}
Subject: failure notice
Message-ID: <own.2@mail.example.com>

Hi. This is the qmail-send program at mail.example.com.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<Ann@example.com>:
192.0.2.7 does not like recipient.
Remote host said: 550 5.1.1 <ann@example.com>... User unknown
Giving up on 192.0.2.7.

--- Below this line is a copy of the message.

Return-Path: <{DESK}>
From: Help Desk <{DESK}>
To: ann@example.com, bob@example.net
Message-ID: {OURS}
Subject: [DESK #42] laptop

Your laptop is ready. Write to {DESK} or bob@example.net.
"""
    report = report_of(raw)
    assert report.original_ids == (OURS,)
    assert len(report.recipients) == 1
    ann = report.recipients[0]
    assert (ann.address, ann.status, ann.temporary) == ("ann@example.com", "5.1.1", False)
    assert ann.detail.startswith("192.0.2.7 does not like recipient. Remote host said: 550")


def test_exim_text_bounce_and_delay_warning():
    failed = f"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: {DESK}
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: bob@example.net

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bob@example.net
    host mx.example.net [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<bob@example.net>:
    550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

Message-ID: {OURS}
From: {DESK}
"""
    report = report_of(failed)
    assert report.original_ids == (OURS,)
    assert [(r.address, r.status, r.temporary) for r in report.recipients] == [
        ("bob@example.net", "5.1.1", False)]
    assert "550 5.1.1 No such user here" in report.recipients[0].detail

    delayed = f"""\
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: {DESK}
Subject: Warning: message 1rFXjV-0004Zq-2k delayed 24 hours

This message was created automatically by mail delivery software.

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.net.

The message identifier is:     1rFXjV-0004Zq-2k
The subject of the message is: [DESK #42] laptop

The address to which the message has not yet been delivered is:

  bob@example.net
    Delay reason: SMTP error from remote mail server after RCPT TO:<bob@example.net>:
    451 4.2.2 Mailbox full

No action is required on your part.
"""
    report = report_of(delayed)
    assert [(r.address, r.status, r.temporary) for r in report.recipients] == [
        ("bob@example.net", "4.2.2", True)]
    assert report.permanent == ()


def test_senders_and_system_addresses_are_never_failed_recipients():
    raw = f"""\
From: Postmaster <postmaster@example.com>
To: {DESK}
Subject: Undeliverable: [DESK #42] laptop

Delivery to the following recipients failed.

       {DESK}
       postmaster@example.com
       From: carol@example.org
       ann@example.com
"""
    assert [r.address for r in report_of(raw).recipients] == ["ann@example.com"]


def test_nothing_to_read():
    raw = "From: MAILER-DAEMON@example.com\nSubject: Undelivered Mail\n\nsome test\n"
    assert report_of(raw) == BounceReport((), ())


@pytest.mark.parametrize("raw", [
    b"Subject: x\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
    b"--B\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
    b"////\n--B\nContent-Type: message/rfc822\n\n\xff\xfe\x00:\n--B--\n",
    b"Subject: x\n\n" + b"a" * 200_000 + b"@" + b"b." * 50_000,
    b"Subject: x\n\nThe following address(es) failed:\n\n" + b"  x@example.com:\n" * 5000,
    b"Subject: x\n\n" + b"Message-ID: <" + b"i" * 300 + b"@x>\n" + b"Message-ID: <>\n",
    b"Subject: x\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
    b"--B\nContent-Type: message/rfc822\n\nContent-Type: multipart/report; "
    b"report-type=delivery-status; boundary=C\n\n--C\nContent-Type: message/delivery-status\n\n"
    b"Final-Recipient: rfc822;ann@example.com\nAction: failed\n--C--\n--B--\n",
])
def test_odd_input_is_bounded_and_never_fails(raw, caplog):
    with caplog.at_level(logging.WARNING, logger="mailticket.mail.bounces"):
        report = report_of(raw)
    assert not caplog.records
    check_shape(report)
    assert len(report.recipients) <= 100 and len(report.original_ids) <= 10


def test_not_a_parsed_mail_gives_an_empty_report(caplog):
    with caplog.at_level(logging.WARNING, logger="mailticket.mail.bounces"):
        assert analyse(None) == BounceReport((), ())  # type: ignore[arg-type]
    assert caplog.records  # the failure is logged, not silent


# --- the corpus ----------------------------------------------------------------------------------
def check_shape(report: BounceReport) -> None:
    assert len(set(i.lower() for i in report.original_ids)) == len(report.original_ids)
    for message_id in report.original_ids:
        assert re.fullmatch(r"<[^<>\s]+>", message_id), message_id
    addresses = [r.address for r in report.recipients]
    assert len(set(addresses)) == len(addresses)
    for recipient in report.recipients:
        assert recipient.address == recipient.address.lower() and "@" in recipient.address
        assert re.fullmatch(r"(?:[245]\.\d{1,3}\.\d{1,3})?", recipient.status)
        assert len(recipient.detail) <= 300 and "\n" not in recipient.detail


def expectation(row: dict) -> tuple[set[str], bool | None, str] | None:
    """(addresses, temporary or None, status or "") the manifest gives, or None."""
    expected = row["expected"]
    addresses = expected.get("failed_recipients") or expected.get("final_recipient") or ""
    status = expected.get("dsn_status", "")
    if not addresses and not status:
        return None
    temporary = None
    if "temporary" in expected:
        temporary = expected["temporary"] == "true"
    elif "dsn_action" in expected:
        temporary = expected["dsn_action"] == "delayed"
    wanted = {a.strip().lower() for a in addresses.split(",") if a.strip()}
    return wanted, temporary, status


def meets(report: BounceReport, wanted: set[str], temporary: bool | None, status: str) -> bool:
    found = {r.address: r for r in report.recipients}
    if not wanted <= found.keys():
        return False
    if temporary is not None and any(found[a].temporary is not temporary for a in wanted):
        return False
    if status and not any(r.status == status for r in report.recipients):
        return False
    return True


BOUNCE_ROWS = [row for row in corpus.manifest_rows()
               if row["file"].startswith("bounce/") and expectation(row) is not None]


def test_corpus_is_present():
    corpus.require_corpus()
    assert len(BOUNCE_ROWS) >= 15, "the manifest names failed recipients for too few bounces"


def test_known_misses_name_real_files():
    root = corpus.require_corpus()
    for name, reason in KNOWN_MISSES.items():
        assert (root / name).is_file(), name
        assert reason.strip(), name


@pytest.mark.parametrize("row", [pytest.param(row, id=row["file"]) for row in BOUNCE_ROWS])
def test_corpus_bounce_names_its_failed_recipients(row):
    root = corpus.require_corpus()
    report = analyse(parse((root / row["file"]).read_bytes()))
    check_shape(report)
    hit = meets(report, *expectation(row))
    if row["file"] in KNOWN_MISSES:
        assert not hit, f"{row['file']} is met now: remove it from KNOWN_MISSES"
    else:
        assert hit, (row["expected_text"], report)


@pytest.mark.parametrize("row", corpus.corpus_params())
def test_corpus_file_goes_through(row, caplog):
    root = corpus.require_corpus()
    try:
        mail = parse((root / row["file"]).read_bytes())
    except PermanentFailure:
        # Quarantined before any bounce reading (tests/mail/test_corpus_mail.py lists why).
        assert row["file"] in REFUSED, f"{row['file']}: refused but not listed in REFUSED"
        return
    with caplog.at_level(logging.WARNING, logger="mailticket.mail.bounces"):
        report = analyse(mail)
    assert not caplog.records, caplog.records[0].exc_text if caplog.records else ""
    check_shape(report)
    if row["file"].startswith("bounce/") and mail.message_id_synthesized is False:
        # the bounce's own Message-ID only where the embedded original carries it too
        # (cpython-msg_43: AMaViS gave its bounce the original's Message-ID)
        if mail.message_id in report.original_ids:
            assert row["file"] == "bounce/cpython-msg_43.eml"
