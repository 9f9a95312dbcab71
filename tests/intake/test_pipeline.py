"""The pipeline against a real database: tickets, follow-ups, reopen, duplicates, quarantine,
and the mail each change queues. Runs on SQLite and, when enabled, PostgreSQL."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta
from email.policy import default

import pytest

from mailticket.db import transaction
from mailticket.intake.items import Cursor, Outcome, RawMail
from mailticket.models import (Attachment, Event, IntakeKey, MailboxState, Message, Outbox,
                               Quarantine, Ticket)
from mailticket.wiring import build
from tests.helpers import Clock, make_mail, settings_for


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(tmp_path, database_url, clock):
    application = build(settings_for(tmp_path, database_url), clock=clock)
    yield application
    application.close()


def feed(app, *raws, source="test", start=1):
    items = [RawMail(source, f"1/{start + i}", raw) for i, raw in enumerate(raws)]
    return app.pipeline.process_batch(items)


def sent_of(kind):
    return [email.message_from_bytes(bytes(o.content), policy=default)
            for o in Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)]


def test_new_mail_becomes_a_ticket_with_an_acknowledgement(app):
    [result] = feed(app, make_mail(attachments=[("log.txt", "text/plain", b"error 42\n")]))
    assert result.outcome is Outcome.RECORDED
    ticket = Ticket.get(Ticket.number == result.ticket)
    assert (ticket.status, ticket.requester, ticket.requester_name) == ("new", "ann@example.org", "Ann User")
    assert ticket.subject == "Printer on floor 3 is broken"
    [ack] = sent_of("ack")
    assert ack["To"].addresses[0].addr_spec == "ann@example.org"
    assert f"[DESK #{ticket.number}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == Message.get(Message.ticket == ticket).message_id
    assert f"ticket #{ticket.number}" in ack.get_body(("plain",)).get_content()
    [attachment] = Attachment.select()
    assert (attachment.filename, attachment.size) == ("log.txt", 9)
    assert app.store.get(attachment.sha256) == b"error 42\n"
    assert [e.kind for e in Event.select().where(Event.ticket == ticket)] == ["created"]


def test_ticket_numbers_are_sequential(app):
    results = feed(app, make_mail(subject="one"), make_mail(subject="two"), make_mail(subject="three"))
    numbers = [r.ticket for r in results]
    assert numbers == list(range(numbers[0], numbers[0] + 3))


def test_reply_with_tag_is_added_to_the_ticket(app):
    [first] = feed(app, make_mail())
    [reply] = feed(app, make_mail(subject=f"RE: [DESK #{first.ticket}] Printer", body="Still broken"),
                   start=2)
    assert (reply.outcome, reply.ticket) == (Outcome.RECORDED, first.ticket)
    assert Ticket.select().count() == 1
    assert Message.select().where(Message.ticket == first.ticket).count() == 2
    assert len(sent_of("ack")) == 1  # a follow-up is not acknowledged again


def test_reply_threaded_to_our_acknowledgement_without_tag(app):
    [first] = feed(app, make_mail())
    ack_id = Outbox.get().message_id
    [reply] = feed(app, make_mail(subject="Re: Printer", in_reply_to=ack_id), start=2)
    assert reply.ticket == first.ticket


def test_unknown_tag_makes_a_new_ticket_and_the_ack_says_so(app):
    [result] = feed(app, make_mail(subject="Re: [DESK #9999] help"))
    assert result.ticket != 9999
    [ack] = sent_of("ack")
    assert "9999" in ack.get_body(("plain",)).get_content()


def test_same_message_id_twice_makes_one_ticket(app):
    raw = make_mail(message_id="<same@example.org>")
    first = feed(app, raw, source="imap://a")
    second = feed(app, raw, source="imap://b")
    assert first[0].outcome is Outcome.RECORDED
    assert (second[0].outcome, second[0].ticket) == (Outcome.DUPLICATE, first[0].ticket)
    assert Ticket.select().count() == 1
    assert Outbox.select().count() == 1


def test_same_source_key_again_is_not_reapplied(app):
    raw = make_mail()
    [first] = feed(app, raw)
    [again] = feed(app, raw)
    assert (again.outcome, again.ticket) == (Outcome.DUPLICATE, first.ticket)
    assert Ticket.select().count() == 1


def test_close_then_reply_reopens_and_says_so(app, clock):
    [first] = feed(app, make_mail())
    with transaction(app.db):
        app.desk.close(first.ticket, "ada", "Replaced the toner.")
    [closed] = sent_of("closed")
    assert closed["Subject"] == f"[DESK #{first.ticket}] Ticket #{first.ticket} has been closed"
    assert "Replaced the toner." in closed.get_body(("plain",)).get_content()
    clock.now += timedelta(days=2)
    feed(app, make_mail(subject=closed["Subject"], body="It is broken again",
                        in_reply_to=closed["Message-ID"]), start=2)
    ticket = Ticket.get(Ticket.number == first.ticket)
    assert (ticket.status, ticket.closed_at) == ("open", None)
    [reopened] = sent_of("reopened")
    assert f"Ticket #{first.ticket}" in reopened["Subject"]
    kinds = [e.kind for e in Event.select().where(Event.ticket == ticket).order_by(Event.id)]
    assert kinds == ["created", "status", "status", "reopened"]


def test_reply_after_the_reopen_window_opens_a_linked_ticket(app, clock):
    [first] = feed(app, make_mail())
    with transaction(app.db):
        app.desk.close(first.ticket, "ada", "Done")
    clock.now += timedelta(days=31)
    [late] = feed(app, make_mail(subject=f"Re: [DESK #{first.ticket}] Printer"), start=2)
    assert late.ticket != first.ticket
    new = Ticket.get(Ticket.number == late.ticket)
    assert new.linked_to_id == first.ticket
    assert Ticket.get(Ticket.number == first.ticket).status == "closed"
    assert f"Ticket #{first.ticket}" in sent_of("ack")[-1].get_body(("plain",)).get_content()


def test_out_of_office_is_recorded_but_not_acknowledged(app):
    [first] = feed(app, make_mail())
    [auto] = feed(app, make_mail(subject=f"Automatic reply: [DESK #{first.ticket}] Printer",
                                 headers={"Auto-Submitted": "auto-replied"}), start=2)
    assert (auto.outcome, auto.ticket) == (Outcome.RECORDED, first.ticket)
    assert len(sent_of("ack")) == 1
    message = Message.select().order_by(Message.id.desc()).get()
    assert (message.verdict, message.decision) == ("auto_reply", "attach")
    [unrelated] = feed(app, make_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}),
                       start=3)
    assert (unrelated.outcome, unrelated.ticket) == (Outcome.RECORDED, None)
    assert Ticket.select().count() == 1


def test_our_own_mail_coming_back_is_not_answered(app):
    [result] = feed(app, make_mail(sender="Test Desk <desk@example.test>"))
    assert result.ticket is None
    assert Outbox.select().count() == 0


def test_bad_message_is_quarantined_and_the_rest_of_the_batch_commits(app):
    results = feed(app, make_mail(subject="good one"), b"", make_mail(subject="good two"))
    assert [r.outcome for r in results] == [Outcome.RECORDED, Outcome.QUARANTINED, Outcome.RECORDED]
    assert Ticket.select().count() == 2
    [held] = Quarantine.select()
    assert held.raw == b"" and held.error
    assert IntakeKey.get(IntakeKey.key == "1/2").outcome == "quarantined"


def test_mail_without_sender_is_quarantined_and_can_be_retried(app):
    raw = b"Subject: who am I\r\nMessage-ID: <nosender@x>\r\n\r\nbody\r\n"
    [result] = feed(app, raw)
    assert result.outcome is Outcome.QUARANTINED
    held = Quarantine.get()
    assert "sender" in held.error
    again = app.pipeline.retry_quarantined(held.id)
    assert again.outcome is Outcome.QUARANTINED
    assert Quarantine.select().count() == 1


def test_quarantine_retry_releases_a_message_that_now_works(app):
    [result] = feed(app, make_mail(sender="undisclosed-recipients:;"))
    assert result.outcome is Outcome.QUARANTINED
    held = Quarantine.get()
    held.raw = make_mail()  # what an admin's repaired copy would be
    held.save()
    released = app.pipeline.retry_quarantined(held.id)
    assert released.outcome is Outcome.RECORDED
    held = Quarantine.get()
    assert (held.status, held.ticket_id) == ("released", released.ticket)


def test_a_message_over_the_size_limit_still_makes_its_ticket_from_its_header(app):
    object.__setattr__(app.settings.limits, "max_message_bytes", 1000)
    raw = make_mail(subject="Huge scan", body="x" * 2000)
    [result] = feed(app, raw)
    assert result.outcome is Outcome.RECORDED and result.ticket
    message = Message.get(Message.ticket == result.ticket)
    assert message.subject == "Huge scan" and "x" * 100 not in message.body
    [note] = [e.detail for e in Event.select().where(Event.kind == "dropped")]
    assert "over the 1000 bytes limit (limits.max_message_size)" in note
    assert app.store.get(message.raw_sha256) == raw  # kept whole in the store, not the database
    [ack] = sent_of("ack")
    assert "over the 1000 bytes limit" in ack.get_body(("plain",)).get_content()


def test_a_message_a_source_took_only_the_header_of_is_kept_aside_with_its_ticket(app):
    header = make_mail(subject="Huge scan").split(b"\n\n")[0] + b"\n\n"
    [result] = app.pipeline.process_batch([RawMail("imap://x", "7/1", header,
                                                   oversized=40 * 1024 * 1024)])
    assert result.outcome is Outcome.QUARANTINED and result.ticket
    assert "40.0 MB" in Event.get(Event.kind == "dropped").detail
    assert "quarantine folder" in Event.get(Event.kind == "dropped").detail
    assert Quarantine.select().count() == 0
    assert app.pipeline.outcomes_of("imap://x", ["7/1"]) == {"7/1": Outcome.QUARANTINED}
    [again] = app.pipeline.process_batch([RawMail("imap://x", "7/1", header, oversized=1)])
    assert again.outcome is Outcome.QUARANTINED and Ticket.select().count() == 1

def test_cursor_is_saved_with_the_batch(app):
    app.pipeline.process_batch([RawMail("imap://x", "7/3", make_mail())], Cursor("imap://x", 7, 3))
    assert app.pipeline.load_cursor("imap://x") == Cursor("imap://x", 7, 3)
    app.pipeline.process_batch([], Cursor("imap://x", 7, 9))
    assert MailboxState.select().count() == 1
    assert app.pipeline.load_cursor("imap://x").last_uid == 9
    assert app.pipeline.outcomes_of("imap://x", ["7/3", "7/4"]) == {"7/3": Outcome.RECORDED}


def test_a_failing_database_abandons_the_batch_instead_of_quarantining_it(app):
    from mailticket.errors import TemporaryFailure
    from mailticket.models import Event

    Event.drop_table()  # the schema is broken: no message is at fault
    with pytest.raises(TemporaryFailure):
        feed(app, make_mail(subject="one"), make_mail(subject="two"))
    assert Quarantine.select().count() == 0
    assert Ticket.select().count() == 0
    assert IntakeKey.select().count() == 0


def test_a_template_broken_at_run_time_keeps_the_mail_instead_of_quarantining_it(
        tmp_path, database_url, clock):
    from mailticket.errors import TemporaryFailure

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "ack.txt.j2").write_text("Ticket {{ ticket.number }}\n")
    app = build(settings_for(tmp_path, database_url, extra=f"templates: {templates}\n"), clock=clock)
    (templates / "ack.txt.j2").write_text("Ticket {{ ticket.nosuch }}\n")  # edited while running
    with pytest.raises(TemporaryFailure, match="ack"):
        feed(app, make_mail())
    assert Quarantine.select().count() == 0 and Ticket.select().count() == 0
    app.close()


def test_a_different_mail_reusing_a_message_id_is_kept_as_its_own(app):
    first = feed(app, make_mail(subject="Incident INC001 opened", message_id="<robot@example.org>"))
    mail_two = make_mail(subject="Incident INC002 opened", message_id="<robot@example.org>")
    second = feed(app, mail_two, start=2)
    assert second[0].outcome is Outcome.RECORDED and second[0].ticket != first[0].ticket
    reused = Message.get(Message.subject == "Incident INC002 opened")
    assert reused.message_id.endswith("@reused-id.invalid>")
    assert any("already used" in d for d in reused.defects)
    # The same second mail arriving again by another route is still recognised.
    again = feed(app, b"Received: from relay2.example.org\r\n" + mail_two, source="other")
    assert again[0].outcome is Outcome.DUPLICATE


DECISION_LINE = re.compile(
    r"^(?P<message_id>\S+) source=test key=(?P<key>\S+) verdict=(?P<verdict>\S+) "
    r"action=(?P<action>\S+) ticket=(?P<ticket>\S+) outcome=(?P<outcome>\w+) \((?P<reason>.+)\)$")


def test_every_message_writes_one_decision_line_of_one_format(app, caplog):
    """New ticket, report of our own mail, duplicate, no sender, a parse failure (quarantined by
    exception) and a key taken in before: each leaves exactly one line in
    mailticket.decisions, with the Message-ID, source key, verdict, action, ticket and reason."""
    good = make_mail(subject="Printer jams", message_id="<one@example.org>")
    caplog.set_level("INFO", logger="mailticket.decisions")
    feed(app, good, good, b"Subject: who am I\r\nMessage-ID: <nosender@x>\r\n\r\nbody\r\n", b"")
    feed(app, good)  # the key 1/1 again, as after a crash
    lines = [r.getMessage() for r in caplog.records if r.name == "mailticket.decisions"]
    parsed = [DECISION_LINE.match(line) for line in lines]
    assert all(parsed), lines
    rows = [(m["key"], m["message_id"], m["verdict"], m["action"], m["outcome"])
            for m in parsed if m]
    assert rows == [
        ("1/1", "<one@example.org>", "human", "new_ticket", "recorded"),
        ("1/2", "<one@example.org>", "-", "duplicate", "duplicate"),
        ("1/3", "<nosender@x>", "human", "quarantine", "quarantined"),
        ("1/4", "-", "-", "error", "quarantined"),
        ("1/1", "-", "-", "seen", "duplicate"),
    ]
    ticket = Message.get(Message.message_id == "<one@example.org>").ticket_id
    assert [m["ticket"] for m in parsed if m][:2] == [str(ticket), str(ticket)]
    assert "empty message" in parsed[3]["reason"]
