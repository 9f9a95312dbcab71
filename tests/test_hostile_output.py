"""What a sender writes never becomes structure in what we produce: no header of theirs in mail
we send (CR/LF and control characters, also hidden in encoded words), no markup of theirs in our
HTML part, no template code of theirs evaluated, no file of theirs outside the store, and no
script or style text of theirs in the text we make of their HTML."""

from __future__ import annotations

import email
import re
from email.policy import default

import pytest

from mailticket.intake.items import Outcome, RawMail
from mailticket.mail import compose, kinds
from mailticket.mail.htmltext import html_to_text
from mailticket.mail.parse import parse
from mailticket.models import Attachment, Outbox, Ticket
from mailticket.wiring import build
from tests.helpers import DESK, make_mail, settings_for

# Subjects and display names that try to end the header line: raw control characters (as a
# value may carry them after decoding) and the same hidden in RFC 2047 encoded words.
HOSTILE_TEXT = [
    "a\r\nBcc: x@evil.example",
    "a\rBcc: x@evil.example",
    "a\nBcc: x@evil.example",
    "a\r\n\r\n<html>body of our choosing",
    "a\x00b\x0bc\x0cd\x1be\x7ff",
    "a\u2028Bcc: x@evil.example\u2029",
    "a\x85Bcc: x@evil.example",
    "ü\r\nBcc: x@evil.example",
    "x" * 1200 + "\r\nBcc: x@evil.example",
]
ENCODED_SUBJECTS = [
    b"=?utf-8?q?a=0D=0ABcc:_x@evil?=",
    b"=?utf-8?b?YQ0KQmNjOiB4QGV2aWw=?=",                         # the same in base64
    b"=?utf-8?q?a=0D=0A=0D=0A<script>x</script>?=",
    b"=?iso-8859-1?q?a=0ABcc:_x@evil?= tail",
    b"=?utf-8?q?a=E2=80=A8Bcc:_x@evil?=",                          # U+2028
    b"=?utf-8?q?a=C2=85Bcc:_x@evil?=",                             # NEL
]
ENCODED_NAMES = [
    b"=?utf-8?q?Ann=0D=0ABcc:_evil@x.example?=",
    b"=?utf-8?q?Ann=0ATo:_evil@x.example,?=",
    b"=?utf-8?b?QW5uDQpCY2M6IGV2aWxAeC5leGFtcGxl?=",
    b"=?utf-8?q?=3Cevil@x.example=3E?=",
    b"=?utf-8?q?a,_b@evil.example?=",
]
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TEMPLATE_CODE = "{{ 7*191 }} {% for x in [1,2] %}L{{ x }}{% endfor %} {# c #} {{ config }}"
EVALUATED = ("1337", "L1L2", "L1", "<Config")  # what evaluating it would have written


@pytest.fixture
def app(tmp_path, database_url):
    application = build(settings_for(tmp_path, database_url))
    yield application
    application.close()


def feed(app, raw: bytes, key: str = "1"):
    [result] = app.pipeline.process_batch([RawMail("hostile", key, raw)])
    return result


def ack_bytes() -> bytes:
    [ack] = Outbox.select().where(Outbox.kind == "ack")
    return bytes(ack.content)


def header_names(raw: bytes) -> list[str]:
    return [name.lower() for name in email.message_from_bytes(raw, policy=default).keys()]


def hostile_mail(subject: bytes, name: bytes = b"Ann User") -> bytes:
    return (b"From: " + name + b" <ann@example.org>\r\nTo: " + DESK.encode() + b"\r\n"
            b"Subject: " + subject + b"\r\nMessage-ID: <hostile@example.org>\r\n\r\nhello\r\n")


# --- headers of mail we send ---------------------------------------------------------------------
def check_no_injection(sent: bytes, expected_names: list[str]) -> None:
    msg = email.message_from_bytes(sent, policy=default)
    assert header_names(sent) == expected_names
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@example.org"]
    assert "\r" not in str(msg["Subject"]) and "\n" not in str(msg["Subject"])
    # Every header line of ours is a field or a continuation of one.
    head = sent.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert line[:1] in (b" ", b"\t") or re.match(rb"[A-Za-z-]+: ", line), line
    assert b"\r" not in sent.replace(b"\r\n", b"") and b"\n" not in sent.replace(b"\r\n", b"")
    # Our own parser reads it back the same way.
    back = parse(sent)
    assert back.sender.address == "desk@example.test"
    assert [a.address for a in back.to] == ["ann@example.org"] and back.cc == ()


@pytest.mark.parametrize("subject", ENCODED_SUBJECTS, ids=range(len(ENCODED_SUBJECTS)))
def test_encoded_control_characters_in_a_subject_set_no_header(app, subject):
    feed(app, make_mail(subject="plain"), key="benign")
    expected = header_names(bytes(Outbox.get().content))
    Outbox.delete().execute()
    result = feed(app, hostile_mail(subject))
    assert result.outcome is Outcome.RECORDED
    check_no_injection(ack_bytes(), expected)


@pytest.mark.parametrize("name", ENCODED_NAMES, ids=range(len(ENCODED_NAMES)))
def test_encoded_control_characters_in_a_name_set_no_header_nor_recipient(app, name):
    feed(app, make_mail(subject="plain"), key="benign")
    expected = header_names(bytes(Outbox.get().content))
    Outbox.delete().execute()
    result = feed(app, hostile_mail(b"printer", name=name))
    # The mailbox is ann's: what the name holds never becomes a recipient.
    assert Ticket.get(Ticket.number == result.ticket).requester == "ann@example.org"
    check_no_injection(ack_bytes(), expected)


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=range(len(HOSTILE_TEXT)))
def test_build_message_sets_only_our_headers_whatever_the_values(text):
    # What parse already cleans is not relied on: raw values straight into the composer.
    composer = compose.Composer()
    context = kinds.sample_context("ack")
    context["ticket"] = {**context["ticket"], "subject": text, "requester_name": text}
    rendered = composer.render("ack", context)
    common = dict(sender=compose.Recipient("Desk", "desk@example.test"),
                  message_id="<ours@example.test>", tag="[DESK #42]", ticket=42)
    benign = compose.build_message(
        composer.render("ack", kinds.sample_context("ack")),
        to=[compose.Recipient("Ann", "ann@example.org")],
        in_reply_to="<theirs@example.org>", references=["<root@example.org>"], **common)
    sent = compose.build_message(
        rendered, to=[compose.Recipient(text, "ann@example.org")],
        in_reply_to="<theirs@example.org>" + text, references=["<root@example.org>" + text],
        **common)
    msg = email.message_from_bytes(sent, policy=default)
    # Ours, once each; a reference that is not ASCII after all is left out, nothing is added.
    names = header_names(sent)
    assert len(names) == len(set(names)) and set(names) <= set(header_names(benign))
    assert {"from", "to", "subject", "message-id", "auto-submitted"} <= set(names)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@example.org"]
    assert not msg.defects and all(not msg[name].defects for name in msg.keys()
                                   if name.lower() not in ("in-reply-to", "references"))
    head = sent.split(b"\r\n\r\n", 1)[0]
    assert all(line[:1] in (b" ", b"\t") or re.match(rb"[A-Za-z-]+: ", line)
               for line in head.split(b"\r\n"))


# --- what we render ------------------------------------------------------------------------------
def hostile_context(kind: str, value: str) -> dict:
    """The sample context of a kind with every text a person could have written replaced."""
    def replace(node):
        if isinstance(node, dict):
            return {key: replace(item) for key, item in node.items()}
        return value if isinstance(node, str) else node
    context = kinds.sample_context(kind)
    return {key: (item if key in ("desk", "tag") else replace(item))
            for key, item in context.items()}


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_html_part_escapes_what_a_person_wrote(kind):
    rendered = compose.Composer().render(kind, hostile_context(kind, MARKUP + " & \"q\" 'q'"))
    if rendered.html is not None:
        assert "<script" not in rendered.html.lower() and "<img" not in rendered.html.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_template_code_written_by_a_sender_is_never_evaluated(kind):
    rendered = compose.Composer().render(kind, hostile_context(kind, TEMPLATE_CODE))
    everything = rendered.subject + rendered.text + (rendered.html or "")
    assert not any(marker in everything for marker in EVALUATED)
    if "{{" in everything:  # the kind shows what a person wrote: literally
        assert "{{ 7*191 }} {% for x in [1,2] %}L{{ x }}{% endfor %}" in everything


def test_template_code_and_markup_in_a_mail_through_the_pipeline(app):
    subject = f"{TEMPLATE_CODE} {MARKUP}"
    result = feed(app, make_mail(subject=subject, sender="{{ 7*191 }} <ann@example.org>"))
    assert result.outcome is Outcome.RECORDED
    ack = email.message_from_bytes(ack_bytes(), policy=default)
    text = ack.get_body(("plain",)).get_content()
    html = ack.get_body(("html",)).get_content()
    assert TEMPLATE_CODE in str(ack["Subject"]) and TEMPLATE_CODE in text
    assert "Hello {{ 7*191 }}" in text
    assert not any(marker in str(ack["Subject"]) + text + html for marker in EVALUATED)
    assert "<script" not in html.lower() and "&lt;script&gt;" in html


# --- attachment names and the store --------------------------------------------------------------
TRAVERSAL_NAMES = ["../../etc/passwd", "/abs/path/shadow", "C:\\x\\boot.ini", "..", "...",
                   "a/../../b.txt", "..\\..\\win.ini", "\x00evil.sh", "./.hidden", "~/x",
                   "%2e%2e%2f"]


def test_attachment_names_cannot_leave_the_store(app, tmp_path):
    attachments = [(name, "application/octet-stream", f"content {i}".encode())
                   for i, name in enumerate(TRAVERSAL_NAMES)]
    result = feed(app, make_mail(attachments=attachments))
    assert result.outcome is Outcome.RECORDED
    stored = list(Attachment.select())
    assert len(stored) == len(TRAVERSAL_NAMES)
    for row in stored:
        assert row.filename and not re.search(r"[/\\\x00]", row.filename)
        assert ".." not in re.split(r"[/\\]", row.filename) and not row.filename.startswith(".")
        assert app.store.get(row.sha256).startswith(b"content ")
    # The store names every file after its content's sha256, under two levels of directories.
    root = app.store.root.resolve()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and all(re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}",
                                      p.relative_to(root).as_posix()) for p in files)
    # And nothing was written anywhere else under the test's directory by those names.
    for path in tmp_path.rglob("*"):
        assert path.name not in ("passwd", "shadow", "boot.ini", "win.ini", "evil.sh", "b.txt")


@pytest.mark.parametrize("disposition", [
    b"attachment; filename*=utf-8''..%2F..%2Fetc%2Fpasswd",
    b"attachment; filename*0=\"../../\"; filename*1=\"etc/passwd\"",
    b"attachment; filename=\"=?utf-8?q?=2E=2E=2F=2E=2E=2Fetc=2Fpasswd?=\"",
    b"attachment; filename=\"=?utf-8?b?Li4vLi4vZXRjL3Bhc3N3ZA==?=\"",
    b"attachment; filename=\"..%2F..%2Fetc%2Fpasswd\"",
])
def test_encoded_path_names_are_display_names_only(disposition):
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\nbody\n"
           b"--x\nContent-Type: application/octet-stream\nContent-Disposition: " + disposition
           + b"\n\nDATA\n--x--\n")
    [part] = parse(raw).attachments
    assert not re.search(r"[/\\\x00]", part.filename) and not part.filename.startswith(".")
    assert part.filename.endswith("passwd")


# --- HTML to text --------------------------------------------------------------------------------
@pytest.mark.parametrize("markup", [
    "a<script>SECRET</script>b",
    "a<SCRIPT type='text/javascript'>SECRET</SCRIPT >b",
    "a<script>SECRET",                                   # never closed
    "a<script\n>SECRET</script\n>b",
    "a<script>SECRET</scriptx>SECRET</script>b",
    "a<script x=\"</script>\">SECRET</script>b",
    "a<script><!--SECRET</script>b",
    "a<style>SECRET{color:red}</style>b",
    "a<style>SECRET",
    "a<STYLE media=all>SECRET</style>b",
    "a<style>SECRET</style<b>SECRET</style>b",
    "a<!--SECRET-->b",
    "a<!--SECRET",
    "a<!--SECRET--!>b",
    "a<!-- <script>SECRET</script> -->b",
    "a<![CDATA[SECRET]]>b",
    "a<![CDATA[SECRET",
    "a<head><script>SECRET</script><style>SECRET</style></head>b",
    "a<svg><script>SECRET</script></svg>b",
    "a<template><p>SECRET</p></template>b",
    "a<noscript>SECRET</noscript>b",
    "a<title>SECRET</title>b",
    "a<![foo[SECRET]]><script>SECRET</script>b",          # made HTMLParser raise (3.11)
    "a<![if !x]><script>SECRET</script><![endif]>b",
    "<script>SECRET</script>" * 3 + "a<b>b</b>",
])
def test_html_to_text_never_shows_script_style_comment_or_cdata(markup):
    text = html_to_text(markup)
    assert "SECRET" not in text
    assert text.startswith("a") or text == "a"


def test_html_to_text_keeps_the_text_after_html5_comment_ends():
    assert html_to_text("a<!-->b") == "ab"
    assert html_to_text("a<!--->b") == "ab"
    assert html_to_text("a<!--x--!>b") == "ab"


def test_html_mail_with_script_through_parse():
    raw = (b"From: a@example.com\nContent-Type: text/html\n\n<p>hello</p><script>SECRET()"
           b"</script><style>.x{SECRET}</style><!-- SECRET -->")
    assert parse(raw).body == "hello"


@pytest.mark.parametrize("name", ENCODED_NAMES, ids=range(len(ENCODED_NAMES)))
def test_a_name_never_adds_a_mailbox_in_parse(name):
    # Short lists go through the email package's address parser, long ones (over 8 KB) through
    # the legacy one: neither may read a mailbox out of an encoded word.
    long_list = b", ".join(b"u%d@example.org" % i for i in range(1000))
    for to in (name + b" <ann@example.org>", long_list + b", " + name + b" <ann@example.org>"):
        mail = parse(b"From: " + name + b" <ann@example.org>\r\nTo: " + to + b"\r\n\r\nx")
        assert mail.sender.address == "ann@example.org"
        assert [a.address for a in mail.to if "evil" in a.address or "?" in a.address] == []
        assert mail.to[-1].address == "ann@example.org"
