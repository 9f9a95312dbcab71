"""Business-hours SLA on tickets, the timed jobs (warnings, breach alerts, auto-close), requests
logged from other channels and the directory's agency on tickets, with fixed clocks."""

from __future__ import annotations

import email
import shutil
from datetime import datetime, timedelta
from email.policy import default
from pathlib import Path

import pytest

from mailticket.db import transaction
from mailticket.jobs import last_run, run_job
from mailticket.errors import InvalidRequest
from mailticket.intake.items import RawMail
from mailticket.models import Event, Message, Outbox, Ticket
from mailticket.wiring import build
from tests.helpers import Clock, make_mail, settings_for

REPO = Path(__file__).resolve().parents[2]

PROCESS = """\
groups:
  desk: {level: 1, members: ["Ada <ada@desk.example.test>"]}
  network: {level: 2, members: ["Nora <nora@desk.example.test>"]}
  lead: {level: 3, members: ["Lee <lee@desk.example.test>"]}
sla:
  first_response: 1 business day
  warn_before: 2 hours
  verify_close_after: 3 business days
  calendar: {timezone: America/New_York, days: mon-fri, hours: "07:00-17:00",
             holidays: [2026-12-25]}
directory: DIRECTORY
"""


def utc(text):
    """A New York wall time as naive UTC (EST, UTC-5, in late November and December)."""
    return datetime.fromisoformat(text) + timedelta(hours=5)


@pytest.fixture
def clock():
    return Clock(utc("2026-11-27T16:00"))  # a Friday, 16:00 in New York


@pytest.fixture
def app(tmp_path, database_url, clock):
    directory = tmp_path / "directory.yaml"
    shutil.copy(REPO / "config" / "directory.example.yaml", directory)
    settings = settings_for(tmp_path, database_url,
                            extra=PROCESS.replace("DIRECTORY", str(directory)))
    application = build(settings, clock=clock)
    yield application
    application.close()


def new_ticket(app, sender="Ann <ann@example.org>", subject="VPN down", key=None):
    [result] = app.pipeline.process_batch([RawMail("test", key or subject, make_mail(
        subject=subject, sender=sender))])
    return Ticket.get_by_id(result.ticket)


def mails(kind):
    return [(o.recipients, email.message_from_bytes(bytes(o.content), policy=default))
            for o in Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)]


def test_the_first_response_is_due_one_business_day_later(app):
    ticket = new_ticket(app)  # Friday 16:00: 1 h left on Friday, 9 h on Monday
    assert ticket.response_due_at == utc("2026-11-30T16:00")


def test_the_group_is_warned_before_the_target_and_the_lead_alerted_after(app):
    ticket = new_ticket(app)
    run_job("sla-check", app.desk, app.db, utc("2026-11-30T13:00"))  # 3 business hours left
    assert mails("sla_warning") == []
    run_job("sla-check", app.desk, app.db, utc("2026-11-30T14:00"))  # 2 hours left: warned
    [(to, warning)] = mails("sla_warning")
    assert to == ["ada@desk.example.test"] and f"[DESK #{ticket.number}]" in warning["Subject"]
    run_job("sla-check", app.desk, app.db, utc("2026-11-30T15:00"))
    assert len(mails("sla_warning")) == 1  # once
    run_job("sla-check", app.desk, app.db, utc("2026-11-30T16:00"))
    [(to, breach)] = mails("sla_breach")
    assert to == ["lee@desk.example.test"]  # the service lead (level 3)
    run_job("sla-check", app.desk, app.db, utc("2026-12-01T09:00"))
    assert len(mails("sla_breach")) == 1
    kinds = [e.kind for e in Event.select().where(Event.ticket == ticket.number)]
    assert kinds.count("sla_warning") == 1 and kinds.count("sla_breach") == 1
    assert last_run("sla-check").endswith("0 warned, 0 overdue")


def test_a_first_reply_stops_the_clock(app, clock):
    ticket = new_ticket(app)
    clock.now = utc("2026-11-30T08:00")
    with transaction(app.db):
        app.desk.reply(ticket.number, "ada", "Looking at it.")
    assert Ticket.get_by_id(ticket.number).first_response_at == utc("2026-11-30T08:00")
    run_job("sla-check", app.desk, app.db, utc("2026-12-02T09:00"))
    assert mails("sla_warning") == [] and mails("sla_breach") == []


def test_resolved_tickets_nobody_answers_are_closed_after_three_business_days(app, clock):
    ticket = new_ticket(app)
    clock.now = utc("2026-12-23T10:00")  # Wednesday before Christmas
    with transaction(app.db):
        app.desk.resolve(ticket.number, "nora", "Restarted the VPN concentrator.")
    # 3 business days = 30 h: Wed 23rd 7 h + Thu 24th 10 h + Fri 25th (holiday) 0 h
    # + the weekend 0 h + Mon 28th 10 h = 27 h; the last 3 h run out Tuesday 10:00.
    run_job("auto-close", app.desk, app.db, utc("2026-12-28T17:00"))
    assert Ticket.get_by_id(ticket.number).status == "resolved"
    run_job("auto-close", app.desk, app.db, utc("2026-12-29T09:59"))
    assert Ticket.get_by_id(ticket.number).status == "resolved"
    run_job("auto-close", app.desk, app.db, utc("2026-12-29T10:00"))
    closed = Ticket.get_by_id(ticket.number)
    assert closed.status == "closed" and closed.closed_at == utc("2026-12-29T10:00")
    [(to, mail)] = mails("closed")
    assert to == ["ann@example.org"]
    assert mail["Subject"].endswith(f"Ticket #{ticket.number} has been closed")
    assert "Restarted the VPN concentrator." in mail.get_body(("plain",)).get_content()


def test_a_reply_to_a_resolved_ticket_keeps_it_from_being_closed(app, clock):
    ticket = new_ticket(app)
    with transaction(app.db):
        app.desk.resolve(ticket.number, "nora", "Fixed.")
    app.pipeline.process_batch([RawMail("test", "reply", make_mail(
        subject=f"Re: [DESK #{ticket.number}]", sender="ann@example.org", body="Not fixed"))])
    run_job("auto-close", app.desk, app.db, utc("2027-01-15T12:00"))
    assert Ticket.get_by_id(ticket.number).status == "open" and mails("closed") == []


def test_a_phone_request_is_logged_with_its_channel_and_acknowledged(app):
    with transaction(app.db):
        ticket = app.desk.open_by_agent("ada", "Bob@Example.org", "phone", "Password reset",
                                        "Locked out since this morning.", requester_name="Bob")
    assert (ticket.channel, ticket.requester, ticket.group) == ("phone", "bob@example.org", "desk")
    assert ticket.response_due_at is not None
    [message] = Message.select().where(Message.ticket == ticket.number)
    assert (message.body, message.author, message.source) == (
        "Locked out since this morning.", "ada", "phone")
    [(to, ack)] = mails("ack")
    assert to == ["bob@example.org"] and f"ticket #{ticket.number}" in \
        ack.get_body(("plain",)).get_content()


@pytest.mark.parametrize("channel, subject, text, problem", [
    ("fax", "x", "y", "channel must be one of phone, walk-in, voicemail, not 'fax'"),
    ("phone", " ", "y", "the subject is empty"),
    ("phone", "x", " ", "the message text is empty"),
])
def test_bad_manual_requests_are_refused(app, channel, subject, text, problem):
    with pytest.raises(InvalidRequest) as raised:
        with transaction(app.db):
            app.desk.open_by_agent("ada", "bob@example.org", channel, subject, text)
    assert str(raised.value) == problem
    assert Ticket.select().count() == 0


def test_tickets_record_the_requesters_agency_from_the_directory(app):
    directory = app.settings.directory
    agency = directory.agencies()[0]
    address = (agency.addresses[0] if agency.addresses
               else f"someone@{agency.domains[0]}")
    assert new_ticket(app, sender=address, key="x").agency == agency.name
    assert new_ticket(app, sender="nobody@unknown.example", key="y").agency is None


def test_mail_taken_in_while_a_job_runs_as_at_another_time_keeps_the_real_time(app, clock):
    """``jobs run auto-close --at FUTURE`` dates what it does as at FUTURE; a mail intake takes
    in meanwhile, on the same desk, is dated with the real clock. The job is held inside its
    run (waiting for the lock on the ticket it closes) while the mail arrives."""
    import threading

    resolved = new_ticket(app)
    with transaction(app.db):
        app.desk.resolve(resolved.number, "nora", "Restarted the VPN concentrator.")
    clock.now = utc("2026-12-01T10:00")  # the real time from here on
    future = utc("2026-12-10T12:00")
    job = threading.Thread(target=run_job, args=("auto-close", app.desk, app.db, future))
    with transaction(app.db):
        app.desk.get(resolved.number)  # the job needs this ticket: it waits for our commit
        job.start()
        job.join(timeout=0.5)
        assert job.is_alive()  # running as at FUTURE, held at the ticket
        arrived = new_ticket(app, sender="Bob <bob@example.org>", subject="Printer jams")
    job.join(timeout=30)
    assert not job.is_alive()
    assert Ticket.get_by_id(resolved.number).closed_at == future
    assert arrived.created_at == utc("2026-12-01T10:00")
    [created] = Event.select().where(Event.ticket == arrived.number, Event.kind == "created")
    assert created.at == utc("2026-12-01T10:00")
    assert app.desk.clock is clock
