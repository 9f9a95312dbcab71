"""Spike detection on a real database (desk/spikes.py): look-alike new tickets from distinct
users within the window make exactly one alert, kept once across restarts, and the outage opened
from it with ``--from-spike`` links them all."""

from __future__ import annotations

import email
from datetime import datetime, timedelta
from email.policy import default

import pytest

from mailticket import cli
from mailticket.db import transaction
from mailticket.desk.outages import resolve
from mailticket.errors import InvalidRequest, UnknownSpike
from mailticket.intake.items import RawMail
from mailticket.models import OutageTicket, Outbox, Spike, Ticket
from mailticket.vocabulary import SpikeState
from mailticket.wiring import build
from tests.desk.test_outages import GROUPS, OUTAGES
from tests.helpers import Clock, make_mail, settings_for, write_config

START = datetime(2026, 12, 7, 9, 0)
SUBJECTS = ["Records system is down", "RMS will not load", "cannot reach the records system",
            "RMS error 500", "Records system timeout", "RMS down again", "records system??"]


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def settings(tmp_path, database_url):
    return settings_for(tmp_path, database_url, extra=GROUPS + OUTAGES)


@pytest.fixture
def app(settings, clock):
    made = build(settings, clock=clock)
    yield made
    made.close()


def arrive(app, clock, subject, sender, minutes=1.0, body="Hello, it does not work.\n"):
    clock.now += timedelta(minutes=minutes)
    [result] = app.pipeline.process_batch([RawMail("test", f"{subject}{sender}{clock.now}",
                                                    make_mail(subject=subject, sender=sender,
                                                              body=body))])
    return result.ticket


def alerts():
    return [(o.recipients, email.message_from_bytes(bytes(o.content), policy=default))
            for o in Outbox.select().where(Outbox.kind == "outage_spike").order_by(Outbox.id)]


def five(app, clock, start=0, minutes=1.0, subjects=SUBJECTS):
    return [arrive(app, clock, subjects[(start + i) % len(subjects)],
                   f"user{start + i}@spd.example.gov", minutes) for i in range(5)]


def test_five_look_alikes_from_five_users_make_one_alert_with_all_five(app, clock):
    tickets = five(app, clock, minutes=3)
    [(to, mail)] = alerts()
    # the lead, outages.notify (Lee once), the desk group
    assert to == ["lee@desk.example.test", "appsupport@desk.example.test",
                  "ada@desk.example.test", "al@desk.example.test"]
    assert mail["Subject"] == ("Possible outage: 5 tickets in 12 minutes about 'records' "
                               "(spike #1)")
    body = mail.get_body(("plain",)).get_content()
    for number in tickets:
        assert f"#{number} " in body
    assert "Springfield Police Department" in body
    assert 'mailticket outage open "records" --from-spike 1' in body
    spike = Spike.get_by_id(1)
    assert (spike.tickets, spike.state, spike.key) == (tickets, "open", "application:records")


def test_a_sixth_and_seventh_join_the_spike_with_no_second_alert(app, clock):
    tickets = five(app, clock) + [arrive(app, clock, "RMS down again", "six@spd.example.gov"),
                                  arrive(app, clock, "RMS??", "seven@example.org")]
    assert len(alerts()) == 1
    assert Spike.get_by_id(1).tickets == tickets


def test_five_from_one_user_five_unlike_or_spread_out_make_none(app, clock):
    for i in range(5):
        arrive(app, clock, SUBJECTS[i], "same@spd.example.gov")
    for i, subject in enumerate(["Printer jammed", "Password reset for Bob", "VPN drops",
                                 "New laptop for Eve", "Who is our registrar?"]):
        arrive(app, clock, subject, f"unlike{i}@example.org")
    for i in range(5):  # look alike, from different users, but 16 minutes apart
        arrive(app, clock, "Timesheet portal login fails", f"slow{i}@example.org", minutes=16)
    assert alerts() == [] and Spike.select().count() == 0


def test_significant_words_make_a_spike_without_a_configured_application(app, clock):
    for i, subject in enumerate(["Timesheet portal login fails", "timesheet PORTAL login",
                                 "Cannot login to the timesheet portal", "Timesheet portal?",
                                 "Re: timesheet portal is slow"]):
        arrive(app, clock, subject, f"u{i}@example.org")
    [(_, mail)] = alerts()
    assert "'timesheet portal'" in mail["Subject"]


def test_the_outage_from_the_spike_links_them_all_and_no_alert_follows(app, clock, settings,
                                                                        capsys, tmp_path):
    tickets = five(app, clock)
    config = str(write_config(tmp_path, settings.database, extra=GROUPS + OUTAGES))
    capsys.readouterr()  # what intake logged (a handler an earlier cli.main set up)
    code = cli.main(["--config", config, "outage", "open", "Records system down",
                     "--from-spike", "1", "--as", "ada"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith("outage #1 opened: Records system down; from spike #1: "
                          + ", ".join(f"#{n}" for n in tickets) + " linked; told ")
    assert [link.ticket_id for link in OutageTicket.select().order_by(OutageTicket.ticket)] \
        == tickets
    assert Spike.get_by_id(1).state == SpikeState.OUTAGE
    five(app, clock, start=5)  # new look-alikes while the outage is open: no alert
    assert len(alerts()) == 1 and Spike.select().count() == 1
    code = cli.main(["--config", config, "outage", "open", "Again", "--from-spike", "1"])
    assert code != 0 and "already" in capsys.readouterr().err
    code = cli.main(["--config", config, "outage", "open", "X", "--from-spike", "99"])
    out, err = capsys.readouterr()
    assert code != 0 and "no spike #99" in err


def test_after_the_outage_is_resolved_a_new_spike_alerts_again(app, clock):
    five(app, clock)
    with transaction(app.db):
        outage, _, _ = app.desk.outage_from_spike(1, "ada", "RMS down")
    resolve(app.desk, app.db, outage.number, "ada", "Fixed.")
    five(app, clock, start=5)
    assert len(alerts()) == 2 and Spike.get_by_id(2).state == SpikeState.OPEN


def test_an_expired_spike_lets_a_new_one_form(app, clock):
    five(app, clock)
    clock.now += timedelta(minutes=20)
    five(app, clock, start=5)
    assert len(alerts()) == 2
    assert [s.state for s in Spike.select().order_by(Spike.number)] == ["expired", "open"]


def test_a_restart_does_not_alert_again(settings, clock, app):
    five(app, clock)
    app.close()
    again = build(settings, clock=clock)
    try:
        arrive(again, clock, "RMS still down", "late@example.org")
        assert len(alerts()) == 1 and len(Spike.get_by_id(1).tickets) == 6
    finally:
        again.close()


def test_tickets_in_an_open_outage_do_not_count(app, clock):
    first = arrive(app, clock, "RMS down", "first@spd.example.gov")
    with transaction(app.db):
        app.desk.open_outage("ada", "RMS", from_ticket=first)
    for i in range(4):
        arrive(app, clock, SUBJECTS[i], f"other{i}@example.org")
    assert alerts() == []


def test_unknown_spike_and_closed_tickets(app, clock):
    tickets = five(app, clock)
    with transaction(app.db):
        app.desk.close(tickets[0], "ada", "Not an outage: a typo.")
    with pytest.raises(UnknownSpike, match="no spike #7"), transaction(app.db):
        app.desk.outage_from_spike(7, "ada")
    with transaction(app.db):
        outage, linked, skipped = app.desk.outage_from_spike(1, "ada")
    assert (outage.title, linked, skipped) == ("Possible outage: records", tickets[1:],
                                               tickets[:1])
    with pytest.raises(InvalidRequest, match="already"), transaction(app.db):
        app.desk.outage_from_spike(1, "ada")
    assert Ticket.get_by_id(tickets[1]).status != "closed"


def test_one_subject_s_many_word_pairs_make_one_spike_and_one_alert(app, clock):
    tickets = [arrive(app, clock, "Printer on floor 3 prints blank pages", f"p{i}@example.org")
               for i in range(7)]
    [(_, mail)] = alerts()
    assert "'printer floor'" in mail["Subject"]
    assert [s.tickets for s in Spike.select()] == [tickets]


def test_the_sweep_expires_spikes_frees_resolved_ones_and_deletes_old_topics(app, clock):
    from mailticket.jobs import run_job
    from mailticket.models import SpikeTopic

    five(app, clock)
    assert run_job("spike-sweep", app.desk, app.db, clock.now) == (
        "0 spike(s) expired, 0 freed, 0 old topic(s) deleted")
    later = clock.now + timedelta(minutes=16)
    assert run_job("spike-sweep", app.desk, app.db, later) == (
        "1 spike(s) expired, 0 freed, 5 old topic(s) deleted")
    assert (Spike.get_by_id(1).state, Spike.get_by_id(1).open_key) == ("expired", None)
    assert SpikeTopic.select().count() == 0
    clock.now = later
    five(app, clock, start=5)
    with transaction(app.db):
        outage, _, _ = app.desk.outage_from_spike(2, "ada")
    resolve(app.desk, app.db, outage.number, "ada", "Fixed.")
    assert run_job("spike-sweep", app.desk, app.db, clock.now).startswith("0 spike(s) expired, "
                                                                         "1 freed")
    assert Spike.get_by_id(2).open_key is None


def test_an_agent_opens_the_outage_from_the_spike_by_mail(app, clock):
    from tests.desk.test_procedure import agent_mail

    tickets = five(app, clock)
    agent_mail(app, tickets[0], "#outage spike 1 Records system down\nOn it.\n", key="s1",
               sender="Ada Lovelace <ada@desk.example.test>")
    agent_mail(app, tickets[0], "#outage spike x\n", key="s2",
               sender="Ada Lovelace <ada@desk.example.test>")
    reports = [m.get_body(("plain",)).get_content() for m in
               (email.message_from_bytes(bytes(o.content), policy=default) for o in
                Outbox.select().where(Outbox.kind == "agent_report").order_by(Outbox.id))]
    assert "outage #1 opened from spike #1, 5 ticket(s) linked" in reports[0]
    assert "#outage spike takes the spike's number" in reports[1]
    assert [link.ticket_id for link in OutageTicket.select().order_by(OutageTicket.ticket)] \
        == tickets
