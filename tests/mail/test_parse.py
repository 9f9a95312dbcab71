"""parse(): bytes in, ParsedMail out. Fixture mails are ours (tests/fixtures/mail/), the rest are
inline bytes; every case says what it is about."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailticket.errors import PermanentFailure
from mailticket.mail.parse import Address, ParsedMail, ParseLimits, parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"


def fixture(name: str) -> ParsedMail:
    return parse((FIXTURES / name).read_bytes())


def names(mail: ParsedMail) -> list[str]:
    return [part.filename for part in mail.attachments]


# --- subjects ------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw_subject, expected", [
    (b"plain words", "plain words"),
    (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
    (b"=?utf-8?b?R3LDvMOfZQ==?=", "Grüße"),
    (b"=?ISO-8859-1?Q?caf=E9?= au lait", "café au lait"),
    # white space between adjacent encoded words is not text (RFC 2047 6.2)
    (b"=?utf-8?q?te?= =?utf-8?q?st?=", "test"),
    # a character split across two words is joined before decoding
    (b"=?utf-8?b?5pel?= =?utf-8?b?5pys?=", "日本"),
    (b"=?utf-8?b?5pc=?= =?utf-8?b?pQ==?=", "日"),
    # folded white space collapses to one space
    (b"a\n  folded\n\tsubject", "a folded subject"),
    # labels Python lacks or reads too narrowly
    (b"=?gb2312?B?g8iRqg==?=", "內應"),
    (b"=?ks_c_5601-1987?B?xde9usau?=", "테스트"),
    (b"=?iso-8859-8-i?B?7vLw5A==?=", "מענה"),
    # ISO-2022-JP with Windows (CP932) extensions: NEC circled digit
    (b"=?iso-2022-jp?B?GyRCLSEbKEI=?=", "①"),
    # raw UTF-8 (RFC 6532)
    ("Säying Hello".encode(), "Säying Hello"),
    # an encoded word in an unknown charset: UTF-8 if it decodes, else Latin-1
    (b"=?x-unknown?q?caf=C3=A9?=", "café"),
    (b"=?x-unknown?q?caf=E9?=", "café"),
    # broken base64 degrades, never raises
    (b"=?utf-8?b?!!!?=", ""),
], ids=lambda value: repr(value)[:40])
def test_subject_decoding(raw_subject, expected):
    mail = parse(b"From: a@example.com\nSubject: " + raw_subject + b"\n\nbody\n")
    assert mail.subject == expected


def test_encoded_subject_fixture_in_lf_and_crlf():
    for name in ("encoded_subject.eml", "encoded_subject_crlf.eml"):
        mail = fixture(name)
        assert mail.subject == "Kennwort läuft ab für VPN"
        assert mail.sender == Address("Jörg Müller", "Joerg.Mueller@example.org")
        assert mail.body == "Mein Passwort für das VPN ist gesperrt.\n"
        assert mail.date == datetime(2024, 3, 5, 8, 15)


def test_crlf_injection_in_subject_is_neutralised():
    mail = fixture("crlf_injection.eml")
    assert "\r" not in mail.subject and "\n" not in mail.subject and "\x00" not in mail.subject
    assert "\u2028" not in mail.subject and "\u202e" not in mail.subject
    assert mail.subject == "Hello Bcc: victim@example.com there endgnp.exe"


def test_subject_is_capped_and_absent_subject_is_empty():
    long = parse(b"From: a@example.com\nSubject: " + b"x" * 5000 + b"\n\nbody")
    assert len(long.subject) == 1000
    assert parse(b"From: a@example.com\n\nbody").subject == ""


# --- identifiers ---------------------------------------------------------------------------------
def test_missing_message_id_is_synthesized_from_the_bytes():
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    mail = parse(raw)
    assert mail.message_id_synthesized
    assert mail.message_id == f"<{hashlib.sha256(raw).hexdigest()[:40]}@mailticket.invalid>"
    assert parse(raw).message_id == mail.message_id  # stable: a re-delivery is recognised


@pytest.mark.parametrize("header, expected", [
    (b"Message-ID: <abc@example.com>", "<abc@example.com>"),
    (b"Message-ID:   <abc@example.com>  (comment)", "<abc@example.com>"),
    (b"Message-Id: abc@example.com", "<abc@example.com>"),
    (b"Message-ID: <abc\n @example.com>", "<abc@example.com>"),
])
def test_message_id_normalised(header, expected):
    mail = parse(b"From: a@example.com\n" + header + b"\n\nbody")
    assert (mail.message_id, mail.message_id_synthesized) == (expected, False)


@pytest.mark.parametrize("header", [b"Message-ID:", b"Message-ID: <>", b"Message-ID:    "])
def test_empty_message_id_is_synthesized(header):
    mail = parse(b"From: a@example.com\n" + header + b"\n\nbody")
    assert mail.message_id_synthesized and mail.message_id.endswith("@mailticket.invalid>")


def test_overlong_message_id_maps_to_a_stable_short_one():
    long_id = b"<" + b"x" * 300 + b"@example.com>"
    one = parse(b"From: a@example.com\nMessage-ID: " + long_id + b"\n\none")
    two = parse(b"From: b@example.com\nMessage-ID: " + long_id + b"\n\ntwo")
    assert one.message_id == two.message_id
    assert one.message_id.endswith("@long-id.invalid>") and one.message_id_synthesized
    assert len(one.message_id) <= 250


def test_references_and_in_reply_to():
    mail = parse(b"From: a@example.com\nIn-Reply-To: garbage <p@x> more <q@x>\n"
                 b"References: <r1@x>\n <r2@x> junk <r2@x> <>  <r 3@x>\n\nbody")
    assert mail.in_reply_to == ("<p@x>", "<q@x>")
    assert mail.references == ("<r1@x>", "<r2@x>", "<r3@x>")


def test_references_keep_the_root_and_the_latest_hundred():
    refs = b" ".join(b"<m%d@x>" % i for i in range(500))
    mail = parse(b"From: a@example.com\nReferences: " + refs + b"\n\nbody")
    assert len(mail.references) == 100
    assert mail.references[0] == "<m0@x>" and mail.references[-1] == "<m499@x>"


# --- addresses -----------------------------------------------------------------------------------
def test_group_addresses_are_flattened_and_empty_groups_ignored():
    mail = fixture("group_address.eml")
    assert mail.to == ()
    assert [a.address for a in mail.cc] == ["gina@example.com", "hank@example.com",
                                           "ivy@example.com"]
    assert mail.cc[0].name == "Gina"
    assert mail.reply_to == (Address("Frank (work)", "frank.w@example.com"),)


@pytest.mark.parametrize("from_header, expected", [
    (b"From: Ann <Ann@Example.COM>", Address("Ann", "Ann@example.com")),
    (b"From: <>", None),
    (b"From: \"MAILER DAEMON\" <>", None),
    (b"From: <>\nSender: Bot <bot@example.com>", Address("Bot", "bot@example.com")),
    (b"From: bob@example.com (Bob Smith)", Address("Bob Smith", "bob@example.com")),
    (b"From: alice@example.com <bob@example.com>", Address("alice@example.com",
                                                           "bob@example.com")),
    (b"From: Test test@example.com", Address("Test", "test@example.com")),
    (b"From: =?utf-8?b?Rm9vLCBCYXI=?= <fb@example.com>", Address("Foo, Bar", "fb@example.com")),
    (b"From: <>, LTD <ly@example.com>", Address("LTD", "ly@example.com")),
    (b"From: root", None),
    (b"To: x@example.com", None),
    ("From: jdöe@mächine.example".encode(), Address("", "jdöe@mächine.example")),
])
def test_sender(from_header, expected):
    assert parse(from_header + b"\nSubject: s\n\nbody").sender == expected


def test_unparseable_group_header_does_not_raise():
    # 'Group' object has no attribute 'local_part' inside the email package's address parser
    mail = parse(b"From: a@example.com\nTo: unlisted-recipients:; (no To-header on input)\n\nb")
    assert mail.to == () and mail.sender == Address("", "a@example.com")


def test_huge_address_list_is_read_in_linear_time():
    to = b", ".join(b"=?utf-8?q?N=C3=A4me_%d?= <u%d@example.com>" % (i, i) for i in range(20000))
    started = time.monotonic()
    mail = parse(b"From: a@example.com\nTo: " + to + b"\n\nbody",
                 ParseLimits(max_header_bytes=1 << 20))
    assert time.monotonic() - started < 10
    assert len(mail.to) == 20000 and mail.to[5] == Address("Näme 5", "u5@example.com")


# --- bodies --------------------------------------------------------------------------------------
def test_html_only_body_is_converted():
    mail = fixture("html_only.eml")
    assert mail.content_type == "text/html"
    assert mail.body == ("The printer on floor 3 says:\n\n- paper jam\n- toner émpty\n\n"
                         "See the wiki (https://wiki.example.com/printers) or https://example.com.")
    assert mail.attachments == ()


def test_plain_part_preferred_and_empty_plain_falls_back_to_html():
    alternative = (b"From: a@example.com\nContent-Type: multipart/alternative; boundary=x\n\n"
                   b"--x\nContent-Type: text/plain\n\n%s\n--x\nContent-Type: text/html\n\n"
                   b"<p>The html part.</p>\n--x--\n")
    assert parse(alternative % b"The text part.").body == "The text part."
    assert parse(alternative % b"  ").body == "The html part."


def test_unknown_charset_falls_back_to_utf8_then_latin1():
    mail = fixture("unknown_charset.eml")
    assert mail.body == "café in UTF-8 under an unknown label"
    assert mail.subject == "Qaplaé"
    assert any("unknown charset 'x-klingon'" in defect for defect in mail.defects)
    [notes] = mail.attachments
    assert notes.data == b"caf\xe9 in Latin-1"  # attachments keep their bytes
    latin = parse(b"From: a@example.com\nContent-Type: text/plain; charset=bogus\n\ncaf\xe9\n")
    assert latin.body == "café\n"


def test_invalid_bytes_in_a_known_charset_are_replaced():
    mail = parse(b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\nbad \xff here")
    assert mail.body == "bad \ufffd here"
    assert mail.defects


def test_line_endings_and_nul_are_normalised():
    mail = parse(b"From: a@example.com\r\n\r\none\r\ntwo\rthree\x00\r\n")
    assert mail.body == "one\ntwo\nthree\n"


def test_body_is_capped():
    mail = parse(b"From: a@example.com\n\n" + b"0123456789" * 150_000)
    assert len(mail.body) == 1_000_000
    assert any("cut" in defect for defect in mail.defects)


def test_inline_text_parts_around_an_image_make_one_body():
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n"
           b"--x\nContent-Type: text/plain\n\nfirst\n--x\nContent-Type: image/png\n"
           b"Content-Disposition: inline; filename=a.png\n\nPNG\n"
           b"--x\nContent-Type: text/plain\n\nsecond\n--x--\n")
    mail = parse(raw)
    assert mail.body == "first\n\nsecond"
    assert names(mail) == ["a.png"]


# --- attachments ---------------------------------------------------------------------------------
def test_attachment_names_never_leave_the_directory():
    mail = fixture("traversal_attachment.eml")
    assert names(mail) == ["passwd", "boot.ini", "bashrc", "attachment-4.png"]
    assert [part.content_type for part in mail.attachments] == [
        "application/octet-stream", "application/octet-stream", "text/plain", "image/png"]
    assert mail.attachments[3].data.startswith(b"\x89PNG")
    # empty.pdf has no bytes: skipped
    assert mail.body == "See attached."


def test_rfc2231_filenames():
    mail = fixture("rfc2231_filename.eml")
    assert names(mail) == ["€ rates 2024.pdf", "Grüße aus Köln.csv"]


@pytest.mark.parametrize("disposition, expected", [
    (b'attachment; filename="=?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?="', "This is a test.pdf"),
    (b"attachment; filename==?utf-8?B?VGhpcyBpcyBhIHRlc3QucGRm?=", "This is a test.pdf"),
    (b"attachment; filename=This is a test.pdf", "This is a test.pdf"),
    ('attachment; filename="Erklärung.pdf"'.encode(), "Erklärung.pdf"),      # raw 8-bit
    (b'attachment; filename="a\x01b\tc.pdf"', "abc.pdf"),
    (b'attachment; filename="' + b"n" * 300 + b'.pdf"', "n" * 196 + ".pdf"),
    (b'attachment; filename="C:\\\\Users\\\\x\\\\report.pdf"', "report.pdf"),
    (b'attachment; filename="/"', "attachment-1.pdf"),
    (b"attachment", "attachment-1.pdf"),
])
def test_filename_decoding_and_sanitising(disposition, expected):
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\nbody\n"
           b"--x\nContent-Type: application/pdf\nContent-Disposition: " + disposition +
           b"\n\n%PDF\n--x--\n")
    assert names(parse(raw)) == [expected]


def test_forwarded_message_is_an_eml_attachment_named_after_its_subject():
    mail = fixture("forwarded_message.eml")
    [forwarded] = mail.attachments
    assert forwarded.filename == "Verify - your account.eml"
    assert forwarded.content_type == "message/rfc822"
    assert b"Message-ID: <phish-1@evil.example>" in forwarded.data
    assert mail.body == "Is this real?"


def test_whole_message_attachment_and_calendar_invite():
    image = parse(b"From: a@example.com\nContent-Type: image/png\nContent-Transfer-Encoding: "
                  b"base64\n\niVBORw0KGgo=\n")
    assert image.body == "" and names(image) == ["attachment-1.png"]
    invite = parse(b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\n"
                   b"hi\n--x\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\n"
                   b"--x--\n")
    assert names(invite) == ["attachment-1.ics"]


def test_many_attachments_are_capped():
    parts = b"".join(b"--x\nContent-Type: image/png; name=a%d.png\n\nPNG\n" % i
                     for i in range(1200))
    mail = parse(b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n" + parts
                 + b"--x--\n")
    assert len(mail.attachments) == 100
    assert any("attachments over the limit of 100" in line for line in mail.dropped)


# --- headers, reports, misc ----------------------------------------------------------------------
def test_headers_mapping_is_read_only_lowercased_and_keeps_duplicates():
    mail = parse(b"From: a@example.com\nX-Tag: one\nx-tag: =?utf-8?q?zw=C3=B6lf?=\n"
                 b"Return-Path: <>\nReturn-path: <other@example.com>\n\nbody")
    assert mail.headers["x-tag"] == ("one", "zwölf")
    assert mail.header("X-TAG") == "one" and mail.header("missing") is None
    assert mail.return_path == ""
    with pytest.raises(TypeError):
        mail.headers["x-tag"] = ("changed",)  # type: ignore[index]


@pytest.mark.parametrize("header, expected", [
    (b"", None), (b"Return-Path: <>\n", ""), (b"Return-Path: < >\n", ""),
    (b"Return-Path: <bounce@example.com>\n", "bounce@example.com"),
])
def test_return_path(header, expected):
    assert parse(header + b"From: a@example.com\n\nbody").return_path == expected


def test_dsn_fields():
    mail = fixture("dsn.eml")
    assert (mail.content_type, mail.report_type) == ("multipart/report", "delivery-status")
    assert [p.content_type for p in mail.attachments] == ["message/delivery-status",
                                                          "message/rfc822"]
    assert mail.attachments[1].filename == "[Ticket #12] received.eml"


@pytest.mark.parametrize("date, expected", [
    (b"Tue, 05 Mar 2024 09:15:00 +0100", datetime(2024, 3, 5, 8, 15)),
    (b"5 Mar 2024 09:15:00 -0000", datetime(2024, 3, 5, 9, 15)),
    (b"Fri, 21 Nov 1997 09(comment):   55  :  06 -0600", None),
    (b"yesterday", None),
    (b"Tue, 05 Mar 99999 09:15:00 +0100", None),
])
def test_dates_are_naive_utc_or_none(date, expected):
    mail = parse(b"From: a@example.com\nDate: " + date + b"\n\nbody")
    assert mail.date == expected


@pytest.mark.parametrize("prefix", [
    b"From sender@example.com Mon Jan  1 00:00:00 2024\n",   # mbox envelope line
    b"\xef\xbb\xbf",                                          # UTF-8 BOM
    b"---- Original email message ----\n",                    # garbage line
    b"\xef\xbb\xbfFrom sender@example.com Mon Jan  1 00:00:00 2024\n",
])
def test_what_stands_before_the_headers_is_skipped(prefix):
    mail = parse(prefix + b"From: a@example.com\nSubject: hello\nTo: desk@example.org\n\nbody\n")
    assert (mail.sender.address, mail.subject, mail.body) == ("a@example.com", "hello", "body\n")


def test_bare_cr_line_endings():
    mail = parse(b"From: a@example.com\rSubject: mac\rTo: b@example.com\r\rline one\rline two\r")
    assert (mail.subject, mail.body) == ("mac", "line one\nline two\n")


def test_broken_folding_and_obsolete_syntax_keep_the_headers():
    unfolded = parse(b"Received: from a\nby b with SMTP\nFrom: a@example.com\nSubject: kept\n\nx")
    assert (unfolded.sender.address, unfolded.subject) == ("a@example.com", "kept")
    obsolete = parse(b"From  : a@example.com\r\nSubject    : obsolete\r\n\r\nx")
    assert (obsolete.sender.address, obsolete.subject) == ("a@example.com", "obsolete")


def test_deep_nesting_degrades_to_headers_and_raw_text():
    depth = 3000
    raw = b"From: a@example.com\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n\n"
    raw += b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
                    for i in range(1, depth))
    raw += b"--b%d\nContent-Type: text/plain\n\nhello\n" % (depth - 1)
    raw += b"".join(b"--b%d--\n" % i for i in reversed(range(depth)))
    started = time.monotonic()
    mail = parse(raw)
    assert time.monotonic() - started < 10
    assert mail.subject == "deep" and "hello" in mail.body
    assert any("nested too deeply" in defect for defect in mail.defects)


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\xef\xbb\xbf", b"no header here at all",
                                 b"\n\nFrom: a@example.com\n"])
def test_no_header_at_all_is_a_permanent_failure(raw):
    with pytest.raises(PermanentFailure):
        parse(raw)


def test_size_and_type_check():
    raw = b"From: a@example.com\n\nbody"
    assert parse(raw).size == len(raw)
    assert parse(bytearray(raw)).size == len(raw)
    with pytest.raises(TypeError):
        parse("From: a@example.com\n\nbody")  # type: ignore[arg-type]


# --- robustness ----------------------------------------------------------------------------------
HEADERY = st.sampled_from([
    b"From: ", b"To: ", b"Subject: ", b"Content-Type: ", b"multipart/mixed; boundary=", b"--",
    b"Content-Transfer-Encoding: base64", b"quoted-printable", b"=?utf-8?q?", b"?=", b"=?x?b?",
    b"\r\n", b"\n", b"\r", b" ", b":", b";", b"<", b">", b"@", b"\"", b"=", b"\xff", b"\xc3",
    b"message/rfc822", b"text/html", b"<a href=x>", b"filename*0*=", b"''", b"%E2",
    b"Content-Disposition: attachment; filename=", b"charset=", b"Date: ", b"Message-ID: ",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(HEADERY, st.binary(max_size=8)), max_size=60))
def test_parse_never_raises_except_permanent_failure(chunks):
    raw = b"From: a@example.com\n" + b"".join(chunks)
    try:
        mail = parse(raw)
    except PermanentFailure:
        return
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert all(part.filename and "/" not in part.filename and "\\" not in part.filename
               for part in mail.attachments)
    assert "\n" not in mail.subject and "\r" not in mail.body


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(raw):
    try:
        parse(raw)
    except PermanentFailure:
        pass


@pytest.mark.parametrize("header, expected", [
    ("Ann User <ann@Example.org>", [("Ann User", "ann@example.org")]),
    ("a@b.example, Bob  Smith <b@c.example>", [("", "a@b.example"), ("Bob Smith", "b@c.example")]),
    ('"Smith, Bob" <b@c.example>', [("Smith, Bob", "b@c.example")]),
    ("alice@x.example <bob@y.example>", [("alice@x.example", "bob@y.example")]),
    ("<a@b.example", None),
])
def test_address_lists_simple_and_not(header, expected):
    """The fast path for plain lists and the full parser for the rest agree with each other."""
    mail = parse(f"From: x@y.example\r\nTo: {header}\r\nSubject: s\r\n\r\nbody\r\n".encode())
    got = [(a.name, a.address) for a in mail.to]
    if expected is None:
        assert all("<" not in a for _, a in got)
    else:
        assert got == expected
