"""Outgoing mail: templates, overrides, escaping, headers that cannot be injected, threading."""

from __future__ import annotations

import email
from email.policy import default

import pytest

from mailticket.errors import ConfigError
from mailticket.mail.compose import Composer, Recipient, build_message, deliverable, ticket_tag

DESK = Recipient("Service Desk", "desk@example.test")


def context(**ticket):
    base = {"number": 7, "subject": "Printer", "status": "new", "requester": "ann@example.org",
            "requester_name": "Ann", "resolution": None, "created_at": None}
    base.update(ticket)
    return {"desk": {"name": "Service Desk", "address": "desk@example.test"}, "tag": "[DESK #7]",
            "reopen_window_days": 30, "ticket": base, "unknown_tag": None, "linked_from": None,
            "text": "", "author": "ada"}


def build(rendered, **kwargs):
    raw = build_message(rendered, sender=DESK, to=[Recipient("Ann", "ann@example.org")],
                        message_id="<id@example.test>", tag="[DESK #7]", ticket=7, **kwargs)
    return email.message_from_bytes(raw, policy=default)


def test_shipped_templates_are_complete():
    Composer().check()


@pytest.mark.parametrize("kind", ["ack", "reply", "closed", "reopened"])
def test_every_kind_renders_text_and_html(kind):
    rendered = Composer().render(kind, context(resolution="Fixed"))
    assert "[DESK #7]" in rendered.subject
    assert rendered.text.strip()
    assert rendered.html and "<p>" in rendered.html


def test_closed_subject_and_resolution():
    rendered = Composer().render("closed", context(resolution="Replaced the toner"))
    assert rendered.subject == "[DESK #7] Ticket #7 has been closed"
    assert "Replaced the toner" in rendered.text


def test_user_text_is_escaped_in_html_and_never_run_as_a_template():
    rendered = Composer().render("ack", context(subject="<script>alert(1)</script> {{ 7*7 }}"))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "{{ 7*7 }}" in rendered.text and "49" not in rendered.text


def test_subject_with_cr_lf_cannot_inject_headers():
    rendered = Composer().render("ack", context(subject="Hi\r\nBcc: victim@example.net"))
    message = build(rendered)
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])


def test_name_with_line_break_cannot_inject_headers():
    rendered = Composer().render("ack", context())
    raw = build_message(rendered, sender=DESK,
                        to=[Recipient("Ann\r\nBcc: victim@example.net", "ann@example.org")],
                        message_id="<id@x>", tag="[DESK #7]", ticket=7)
    message = email.message_from_bytes(raw, policy=default)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "ann@example.org"


def test_automated_mail_is_marked_and_threaded():
    message = build(Composer().render("ack", context()), in_reply_to="<user@example.org>",
                    references=["<root@example.org>"])
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Loop"] == "desk@example.test"
    assert message["X-Mailticket-Ticket"] == "7"
    assert message["In-Reply-To"] == "<user@example.org>"
    assert message["References"] == "<root@example.org> <user@example.org>"
    assert message.get_body(("html",)) is not None


def test_agent_reply_is_not_marked_automated():
    message = build(Composer().render("reply", context(text="Try again")), automated=False)
    assert message["Auto-Submitted"] is None


def test_tag_is_added_when_an_override_leaves_it_out(tmp_path):
    (tmp_path / "ack.subject.j2").write_text("We got it")
    rendered = Composer(tmp_path).render("ack", context())
    assert rendered.subject == "We got it"
    assert str(build(rendered)["Subject"]) == "[DESK #7] We got it"
    assert ticket_tag("DESK", 7) == "[DESK #7]"


def test_override_directory_wins_and_falls_back(tmp_path):
    (tmp_path / "ack.txt.j2").write_text("Custom ack for {{ ticket.number }}\n")
    composer = Composer(tmp_path)
    assert composer.render("ack", context()).text == "Custom ack for 7\n"
    assert "has been closed" in composer.render("closed", context()).subject


def test_broken_override_is_reported_by_check(tmp_path):
    (tmp_path / "ack.txt.j2").write_text("{% if %}")
    with pytest.raises(ConfigError) as caught:
        Composer(tmp_path).check()
    assert "ack.txt.j2" in str(caught.value)


def test_undefined_variable_is_an_error_not_empty_text(tmp_path):
    (tmp_path / "ack.txt.j2").write_text("{{ nonsense }}")
    with pytest.raises(Exception, match="nonsense"):
        Composer(tmp_path).render("ack", context())


def test_non_ascii_names_subjects_and_bodies_survive_the_round_trip():
    rendered = Composer().render("ack", context(subject="Drucker im 3. Stock: Störung – 打印机",
                                                requester_name="Jürgen Weiß"))
    raw = build_message(rendered, sender=DESK, to=[Recipient("Jürgen Weiß", "juergen@example.de")],
                        cc=[Recipient('Smith, "Bob"', "bob@example.org")],
                        message_id="<id@x>", tag="[DESK #7]", ticket=7)
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78 + 2
    message = email.message_from_bytes(raw, policy=default)
    assert str(message["Subject"]) == "[DESK #7] Drucker im 3. Stock: Störung – 打印机"
    assert message["To"].addresses[0].display_name == "Jürgen Weiß"
    assert message["Cc"].addresses[0].display_name == 'Smith, "Bob"'
    assert "Jürgen Weiß" in message.get_body(("plain",)).get_content()
    assert "Jürgen Weiß" in message.get_body(("html",)).get_content()
    assert message.defects == [] and all(not p.defects for p in message.walk())


def test_quoted_local_part_is_kept_deliverable():
    rendered = Composer().render("ack", context())
    raw = build_message(rendered, sender=DESK, to=[Recipient("", '"john doe"@example.org')],
                        message_id="<id@x>", tag="[DESK #7]", ticket=7)
    message = email.message_from_bytes(raw, policy=default)
    assert message["To"].addresses[0].addr_spec == '"john doe"@example.org'


@pytest.mark.parametrize("address, on_the_wire", [
    ("ann@exämple.de", "ann@xn--exmple-cua.de"),
    ("jörg@example.de", "jörg@example.de"),
])
def test_international_addresses_can_be_answered(address, on_the_wire):
    rendered = Composer().render("ack", context())
    raw = build_message(rendered, sender=DESK, to=[Recipient("Jörg", address)],
                        cc=[Recipient("", "bob@exämple.de")],
                        message_id="<id@x>", tag="[DESK #7]", ticket=7,
                        in_reply_to="<ä@broken>", references=["<ok@x>", "<ü@y>"])
    # RFC 6532: header text is UTF-8, which is how a reader of such mail decodes it.
    message = email.message_from_string(raw.decode("utf-8"), policy=default)
    assert message["To"].addresses[0].addr_spec == on_the_wire
    assert message["To"].addresses[0].display_name == "Jörg"
    assert message["Cc"].addresses[0].addr_spec == "bob@xn--exmple-cua.de"
    assert message["In-Reply-To"] is None and message["References"] == "<ok@x>"
    assert deliverable(address) == on_the_wire


@pytest.mark.parametrize("bad", ["nobody", "a@", "@b", "a\r\nBcc: x@y@z", "<a@b>", "a b@c"])
def test_what_is_no_address_is_refused(bad):
    with pytest.raises(ValueError):
        deliverable(bad)


def test_check_renders_every_template_with_the_variables_it_will_get(tmp_path):
    (tmp_path / "closed.txt.j2").write_text("Closed: {{ ticket.nosuch }}\n")
    with pytest.raises(ConfigError) as caught:
        Composer(tmp_path).check()
    assert "closed" in str(caught.value) and "nosuch" in str(caught.value)
    (tmp_path / "closed.txt.j2").write_text("Closed by {{ author }}\n")  # only replies get author
    with pytest.raises(ConfigError):
        Composer(tmp_path).check()


def test_overriding_the_text_drops_the_shipped_html(tmp_path):
    (tmp_path / "ack.txt.j2").write_text("Our own words for #{{ ticket.number }}\n")
    rendered = Composer(tmp_path).render("ack", context())
    assert rendered.html is None
    (tmp_path / "ack.html.j2").write_text("<p>Our own HTML for #{{ ticket.number }}</p>\n")
    assert "Our own HTML" in Composer(tmp_path).render("ack", context()).html


def test_attachment_names_and_types_cannot_inject_headers():
    from email import message_from_bytes
    from email.policy import default as default_policy

    from mailticket.mail.compose import Recipient, Rendered, build_message

    raw = build_message(
        Rendered("Files", "see attached", None), sender=Recipient("Desk", "desk@example.org"),
        to=[Recipient("Ann", "ann@example.org")], message_id="<x@example.org>", tag="[DESK #1]",
        ticket=1, attachments=[('evil"\r\nBcc: x@evil.example\r\n.pdf', "text/html\r\nX: y",
                                b"data"), ("плана.txt", "text/plain", b"plan")])
    mail = message_from_bytes(raw, policy=default_policy)
    assert mail["Bcc"] is None and mail["X"] is None
    names = [part.get_filename() for part in mail.iter_attachments()]
    assert names == ["evil' Bcc: x@evil.example .pdf", "плана.txt"]
    types = [part.get_content_type() for part in mail.iter_attachments()]
    assert types == ["application/octet-stream", "text/plain"]
    assert [p.get_content() for p in mail.iter_attachments()] == [b"data", "plan"]
