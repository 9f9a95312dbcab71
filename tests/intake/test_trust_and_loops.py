"""Who may touch a ticket, the caps on automatic mail, and bounces of our own mail: through the
pipeline on a real database (SQLite, and PostgreSQL when enabled)."""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import datetime, timedelta
from email.policy import default

import pytest

from mailticket.db import transaction
from mailticket.intake.items import Outcome, RawMail
from mailticket.mail import tokens
from mailticket.models import Event, Message, Outbox, Ticket, thread_key
from mailticket.wiring import build
from tests.helpers import DESK, Clock, make_mail, settings_for

STAFF = "lead@example.test"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_app(tmp_path, database_url, clock):
    apps = []

    def make(outsider_mail="note", alerts_to=(STAFF,), **limits):
        settings = settings_for(tmp_path, database_url)
        settings = replace(settings,
                           desk=replace(settings.desk, outsider_mail=outsider_mail,
                                        alerts_to=tuple(alerts_to)),
                           limits=replace(settings.limits, **limits))
        app = build(settings, clock=clock)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app):
    return make_app()


class Feeder:
    def __init__(self):
        self.count = 0

    def __call__(self, app, *raws):
        items = []
        for raw in raws:
            self.count += 1
            items.append(RawMail("test", f"1/{self.count}", raw))
        return app.pipeline.process_batch(items)


@pytest.fixture
def feed():
    return Feeder()


def outbox(kind=None, status=None):
    query = Outbox.select().order_by(Outbox.id)
    if kind:
        query = query.where(Outbox.kind == kind)
    if status:
        query = query.where(Outbox.status == status)
    return list(query)


def parsed(row):
    return email.message_from_bytes(bytes(row.content), policy=default)


def events(number, kind):
    return [e.detail for e in Event.select().where(Event.ticket == number, Event.kind == kind)]


def open_ticket(app, feed, **kwargs):
    [result] = feed(app, make_mail(**kwargs))
    assert result.outcome is Outcome.RECORDED
    return result.ticket


# --- keyed tokens in our Message-IDs ---------------------------------------------------------

def test_our_message_ids_carry_a_token_only_our_key_verifies(app, feed):
    number = open_ticket(app, feed)
    [ack] = outbox("ack")
    assert tokens.ticket_of(thread_key(app.db), ack.message_id) == number
    assert parsed(ack)["Message-ID"] == ack.message_id
    assert tokens.ticket_of(b"another desk's key", ack.message_id) is None
    forged = ack.message_id.replace(f"<mt.{number}.", f"<mt.{number + 1}.")
    assert tokens.ticket_of(thread_key(app.db), forged) is None


def test_the_key_is_made_once_and_kept(make_app, app):
    first = thread_key(app.db)
    make_app()  # a second start migrates again: the key stays
    assert thread_key(app.db) == first and len(first) == 32


# --- who may touch a ticket --------------------------------------------------------------------

def test_a_guessed_tag_from_an_outsider_is_an_unverified_note(app, feed):
    number = open_ticket(app, feed)
    [result] = feed(app, make_mail(subject=f"Re: [DESK #{number}] close this",
                                   sender="Mallory <mallory@example.net>",
                                   body="Please close it, it is fixed."))
    assert (result.outcome, result.ticket) == (Outcome.RECORDED, number)
    ticket = Ticket.get_by_id(number)
    assert ticket.status == "new"  # unchanged
    note = Message.get(Message.sender == "mallory@example.net")
    assert (note.ticket_id, note.direction, note.decision) == (number, "note", "unverified")
    assert "mallory@example.net" in events(number, "unverified_mail")[0]
    [alert] = outbox("unverified")
    assert alert.recipients == [STAFF]
    assert "mallory@example.net" in parsed(alert).get_body(("plain",)).get_content()
    assert outbox("ack")[-1].recipients == ["ann@example.org"]  # mallory got no answer
    assert Ticket.select().count() == 1


def test_an_outsider_cannot_send_a_resolved_ticket_back_to_open(app, feed, clock):
    number = open_ticket(app, feed)
    with transaction(app.db):
        Ticket.update(status="resolved").where(Ticket.number == number).execute()
    feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender="mallory@example.net"))
    assert Ticket.get_by_id(number).status == "resolved"
    feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender="ann@example.org"))
    assert Ticket.get_by_id(number).status == "open"  # the requester can


def test_with_policy_new_ticket_an_outsider_gets_a_new_linked_ticket(make_app, feed):
    app = make_app(outsider_mail="new_ticket")
    number = open_ticket(app, feed)
    [result] = feed(app, make_mail(subject=f"Re: [DESK #{number}] me too",
                                   sender="mallory@example.net"))
    assert result.ticket != number
    new = Ticket.get_by_id(result.ticket)
    assert (new.requester, new.linked_to_id) == ("mallory@example.net", number)
    assert [a.recipients for a in outbox("ack")] == [["ann@example.org"], ["mallory@example.net"]]
    assert Ticket.get_by_id(number).status == "new"


def test_a_cc_of_the_ticket_and_the_requester_update_it(app, feed):
    number = open_ticket(app, feed, cc="Bob <bob@example.org>")
    for sender in ("bob@example.org", "ANN@example.org"):
        [result] = feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender=sender))
        assert Message.get(Message.message_id == Message.select(Message.message_id)
                           .order_by(Message.id.desc()).scalar()).direction == "in"
    assert events(number, "unverified_mail") == []
    assert len(events(number, "follow_up")) == 2


def test_a_reply_threaded_to_our_mail_is_trusted_even_from_someone_new(app, feed):
    number = open_ticket(app, feed)
    [ack] = outbox("ack")
    # Ann forwarded our acknowledgement to a colleague, who answers it.
    [result] = feed(app, make_mail(subject=f"Re: [DESK #{number}] Printer",
                                   sender="carol@example.org", in_reply_to=ack.message_id))
    assert result.ticket == number
    assert events(number, "unverified_mail") == []
    assert Message.get(Message.sender == "carol@example.org").direction == "in"


def test_a_forged_token_proves_nothing(app, feed):
    number = open_ticket(app, feed)
    forged = f"<mt.{number}.0123456789ab.0123456789abcdef0123@example.test>"
    feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender="mallory@example.net",
                        in_reply_to=forged))
    assert len(events(number, "unverified_mail")) == 1


def test_a_threaded_reply_without_tag_finds_the_ticket_by_token_alone(app, feed):
    number = open_ticket(app, feed)
    [ack] = outbox("ack")
    with transaction(app.db):
        Outbox.delete().execute()  # the outbox row is gone (purged): the token still works
    [result] = feed(app, make_mail(subject="Re: your printer", sender="ann@example.org",
                                   in_reply_to=ack.message_id))
    assert result.ticket == number


def test_without_alerts_to_the_note_is_kept_and_only_logged(make_app, feed, caplog):
    app = make_app(alerts_to=())
    number = open_ticket(app, feed)
    feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender="mallory@example.net"))
    assert outbox("unverified") == []
    assert len(events(number, "unverified_mail")) == 1
    assert "unverified mail from mallory@example.net" in caplog.text


# --- caps on automatic mail ------------------------------------------------------------------

def test_automatic_mail_to_one_address_is_capped_and_the_rest_held(app, feed, clock):
    feed(app, *[make_mail(subject=f"request {i}") for i in range(7)])
    assert [o.status for o in outbox("ack")] == ["pending"] * 5 + ["held"] * 2
    held = outbox(status="held")[0]
    assert "5 automatic mails to ann@example.org" in held.last_error
    assert "limits.auto_replies_per_recipient_per_hour" in held.last_error
    assert Ticket.select().count() == 7  # every request is still a ticket
    clock.now += timedelta(hours=1, minutes=1)
    feed(app, make_mail(subject="an hour later"))
    assert outbox("ack")[-1].status == "pending"


def test_reopened_notices_count_towards_the_cap(make_app, feed, clock):
    app = make_app(auto_replies_per_recipient_per_hour=2)
    number = open_ticket(app, feed)
    for _ in range(2):
        with transaction(app.db):
            app.desk.close(number, "ada", "done")
        feed(app, make_mail(subject=f"Re: [DESK #{number}]", sender="ann@example.org"))
    # ack + the first "reopened" reach the cap of 2; the second "reopened" is held
    assert [(o.kind, o.status) for o in outbox() if o.kind in ("ack", "reopened")] == [
        ("ack", "pending"), ("reopened", "pending"), ("reopened", "held")]
    assert [o.status for o in outbox("closed")] == ["pending", "pending"]  # agents' mail is not capped


def test_the_desk_wide_breaker_holds_automatic_mail_and_tells_the_desk_once(make_app, feed,
                                                                            caplog):
    app = make_app(auto_replies_per_hour=3)
    feed(app, *[make_mail(sender=f"user{i}@example.org", subject=f"flood {i}") for i in range(6)])
    assert [o.status for o in outbox("ack")] == ["pending"] * 3 + ["held"] * 3
    assert "desk-wide breaker" in outbox("ack", "held")[0].last_error
    [alert] = outbox("breaker")
    assert alert.recipients == [STAFF] and alert.status == "pending"
    assert "limits.auto_replies_per_hour" in parsed(alert).get_body(("plain",)).get_content()
    assert Ticket.select().count() == 6
    assert "desk-wide breaker" in caplog.text


# --- bounces of our own mail -----------------------------------------------------------------

def dsn(original: bytes, recipient: str, status="5.1.1", action="failed") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {DESK}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.org>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} user unknown\r\n"
        "\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    ).encode() + original + b"\r\n--b1--\r\n"


def test_a_bounce_of_our_ack_is_a_note_on_its_ticket_and_marks_the_outbox(app, feed):
    number = open_ticket(app, feed, sender="Ann <ann@example.org>")
    [ack] = outbox("ack")
    [result] = feed(app, dsn(bytes(ack.content), "ann@example.org"))
    assert (result.outcome, result.ticket) == (Outcome.RECORDED, number)
    assert Ticket.select().count() == 1  # never a ticket of its own
    note = Message.get(Message.message_id == "<bounce-1@mx.example.org>")
    assert (note.ticket_id, note.direction) == (number, "note")
    ack = Outbox.get_by_id(ack.id)
    assert ack.status == "bounced"
    assert [(b["recipient"], b["status"]) for b in ack.bounced] == [("ann@example.org", "5.1.1")]
    assert "ann@example.org 5.1.1" in ack.last_error
    assert f"outbox #{ack.id} (ack) did not reach ann@example.org" in events(number, "bounce")[0]
    assert len(outbox()) == 1  # nothing answered the bounce


def test_a_bounce_cannot_mark_addresses_our_mail_was_not_sent_to(app, feed):
    number = open_ticket(app, feed)
    [ack] = outbox("ack")
    feed(app, dsn(bytes(ack.content), "someone-else@example.org"))
    assert Outbox.get_by_id(ack.id).status == "pending"
    assert Message.get(Message.message_id == "<bounce-1@mx.example.org>").ticket_id == number


def test_a_delay_warning_is_noted_but_marks_nothing(app, feed):
    number = open_ticket(app, feed)
    [ack] = outbox("ack")
    feed(app, dsn(bytes(ack.content), "ann@example.org", status="4.4.1", action="delayed"))
    assert Outbox.get_by_id(ack.id).status == "pending"
    assert "delayed for ann@example.org" in events(number, "bounce")[0]


def test_a_bounce_about_nothing_of_ours_is_kept_without_a_ticket(app, feed):
    stranger = make_mail(message_id="<not-ours@example.org>")
    [result] = feed(app, dsn(stranger, "x@example.org"))
    assert result.outcome is Outcome.RECORDED and result.ticket is None
    assert Ticket.select().count() == 0 and outbox() == []


# --- limits: the ticket is still made, and says what was left out -----------------------------

def test_attachments_over_the_limits_are_left_out_and_the_ticket_says_so(make_app, feed):
    app = make_app(max_attachments=2, max_attachment_bytes=1000)
    raw = make_mail(attachments=[("a.txt", "text/plain", b"a" * 10),
                                 ("big.bin", "application/octet-stream", b"x" * 5000),
                                 ("b.txt", "text/plain", b"b" * 10),
                                 ("c.txt", "text/plain", b"c" * 10)])
    [result] = feed(app, raw)
    assert result.outcome is Outcome.RECORDED
    message = Message.get(Message.ticket == result.ticket)
    kept = sorted(a.filename for a in message.attachments)
    assert kept == ["a.txt", "b.txt"]
    dropped = events(result.ticket, "dropped")
    assert any("big.bin" in line for line in dropped)
    assert any("c.txt" in line for line in dropped)
    assert any(line.startswith("not kept: ") for line in message.defects)
    assert len(outbox("ack")) == 1  # the user is answered as usual
    # The raw message is kept whole for an admin who needs what was left out.
    assert app.store.get(message.raw_sha256) == raw


def test_desk_staff_in_alerts_to_may_touch_any_ticket(app, feed):
    number = open_ticket(app, feed)
    [result] = feed(app, make_mail(subject=f"Re: [DESK #{number}] looking at it",
                                   sender=f"Lead <{STAFF.upper()}>"))
    assert result.ticket == number
    assert events(number, "unverified_mail") == [] and len(events(number, "follow_up")) == 1
    assert outbox("unverified") == []  # no alert about the staff's own mail: no loop with them


def test_a_flood_of_outsider_mail_does_not_flood_the_staff(make_app, feed):
    app = make_app(auto_replies_per_recipient_per_hour=2)
    number = open_ticket(app, feed)
    feed(app, *[make_mail(subject=f"Re: [DESK #{number}] spam {i}",
                          sender=f"spammer{i}@example.net") for i in range(5)])
    assert len(events(number, "unverified_mail")) == 5  # every one is on record
    assert [o.status for o in outbox("unverified")] == ["pending"] * 2 + ["held"] * 3
