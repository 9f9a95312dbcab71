"""The status report's figures on a seeded database (SQLite, and PostgreSQL when enabled), with
fixed clocks: every figure, the period boundaries (a row at ``start`` is in, one at ``end`` is
out), the 7-day boundary, the SLA horizon over closed hours, local-hour slots and the agency
filter."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from mailticket.config import Sla
from mailticket.config.calendar import BusinessCalendar, BusinessDuration
from mailticket.models import Event, Message, Ticket
from mailticket.models import database_proxy
from mailticket.reports.figures import Count, IncidentLine, NoteLine, Period, gather

NEW_YORK = BusinessCalendar.from_config(timezone="America/New_York", days="mon-fri",
                                        hours="07:00-17:00")
SLA = Sla(first_response=BusinessDuration(days=1), calendar=NEW_YORK,
          warn_before=timedelta(hours=2))
SECOND = timedelta(seconds=1)
IMAP = "imap://desk@mail.example.test:993/INBOX"
SMTP = "smtp://127.0.0.1:8025"


def ny(text: str) -> datetime:
    """A New York wall time in January (EST, UTC-5) as naive UTC."""
    return datetime.fromisoformat(text) + timedelta(hours=5)


# The morning report: Monday 17:00 to Tuesday 07:30, New York time.
START, END = ny("2026-01-12T17:00"), ny("2026-01-13T07:30")
PERIOD = Period(START, END)
NOW = END
_ids = itertools.count(1)


def ticket(created_at=ny("2026-01-12T09:00"), **fields) -> Ticket:
    values = {"subject": "VPN down", "status": "open", "requester": "ann@example.org",
              "requester_name": "Ann", "channel": "email", "group": "desk",
              "created_at": created_at, "updated_at": created_at, **fields}
    return Ticket.create(**values)


def message(at, ticket=None, direction="in", source=IMAP) -> Message:
    return Message.create(ticket=ticket, direction=direction, source=source, created_at=at,
                          message_id=f"<m{next(_ids)}@example.test>", subject="s")


def event(ticket, at, kind, detail="") -> Event:
    return Event.create(ticket=ticket, at=at, kind=kind, detail=detail, actor="ada@example.test")


def report(**kwargs):
    kwargs.setdefault("sla", SLA)
    period = kwargs.pop("period", PERIOD)
    now = kwargs.pop("now", NOW)
    return gather(database_proxy.obj, period, now, **kwargs)


@pytest.fixture
def db(database):
    return database


# --- mail received ---------------------------------------------------------------------------------

def test_mail_received_by_mailbox_counts_incoming_mail_of_the_period(db):
    t = ticket()
    message(START, t)                                   # exactly at start: in
    message(END - SECOND, t)                            # the last second: in
    message(END, t)                                     # exactly at end: the next report's
    message(START - SECOND, t)                          # the previous report's
    message(ny("2026-01-12T18:00"), t, source=SMTP)
    message(ny("2026-01-12T18:00"), None)               # on no ticket (e.g. a bounce): still mail
    message(ny("2026-01-12T19:00"), t, direction="out")
    message(ny("2026-01-12T19:00"), t, direction="note")
    message(ny("2026-01-12T19:00"), t, source="phone")  # logged by an agent: not mail
    message(ny("2026-01-12T19:00"), t, source="voicemail")

    data = report()

    assert data.mail_by_mailbox == (Count(IMAP, 3), Count(SMTP, 1))
    assert data.mail_total == 4


def test_mail_volume_is_counted_by_local_hour_with_every_hour_shown(db):
    message(START)                          # Mon 17:00:00
    message(ny("2026-01-12T17:59:59"))
    message(ny("2026-01-12T18:00"))
    message(ny("2026-01-13T07:29:59"))
    message(END)                            # Tue 07:30: not this period

    data = report()

    assert data.volume_unit == "hour"
    labels = [bar.label for bar in data.volume]
    assert labels[0] == "Mon 17:00" and labels[-1] == "Tue 07:00"
    assert len(labels) == 15  # Mon 17:00 ... Mon 23:00 (7) and Tue 00:00 ... 07:00 (8)
    counts = {bar.label: bar.count for bar in data.volume}
    assert counts["Mon 17:00"] == 2 and counts["Mon 18:00"] == 1 and counts["Tue 07:00"] == 1
    assert sum(counts.values()) == 4
    assert data.volume[0].start == START
    assert [b.start for b in data.volume] == [START + timedelta(hours=i) for i in range(15)]


def test_local_hours_in_a_half_hour_time_zone_from_a_period_starting_mid_hour(db):
    kolkata = Sla(calendar=BusinessCalendar.from_config(timezone="Asia/Kolkata"))
    # 09:15 to 12:15 in Kolkata (UTC+05:30) is 03:45 to 06:45 UTC.
    period = Period(datetime(2026, 1, 12, 3, 45), datetime(2026, 1, 12, 6, 45))
    message(datetime(2026, 1, 12, 3, 45))          # 09:15 local
    message(datetime(2026, 1, 12, 4, 29, 59))      # 09:59:59 local
    message(datetime(2026, 1, 12, 4, 30))          # 10:00 local
    message(datetime(2026, 1, 12, 6, 44))          # 12:14 local

    data = report(period=period, now=period.end, sla=kolkata)

    assert [(b.label, b.count) for b in data.volume] == [
        ("Mon 09:15", 2), ("Mon 10:00", 1), ("Mon 11:00", 0), ("Mon 12:00", 1)]
    assert [b.start for b in data.volume] == [datetime(2026, 1, 12, h, m) for h, m in (
        (3, 45), (4, 30), (5, 30), (6, 30))]


def test_the_hour_the_clocks_go_back_is_two_slots(db):
    # New York, Sunday 1 November 2026: 02:00 EDT becomes 01:00 EST. 00:00 EDT is 04:00 UTC.
    period = Period(datetime(2026, 11, 1, 4, 0), datetime(2026, 11, 1, 9, 0))
    message(datetime(2026, 11, 1, 5, 10))   # 01:10 EDT
    message(datetime(2026, 11, 1, 6, 10))   # 01:10 EST

    data = report(period=period, now=period.end)

    assert [(b.label, b.count) for b in data.volume] == [
        ("Sun 00:00", 0), ("Sun 01:00", 1), ("Sun 01:00", 1), ("Sun 02:00", 0),
        ("Sun 03:00", 0)]


def test_a_long_period_is_charted_by_day(db):
    period = Period(ny("2026-01-09T17:00"), ny("2026-01-13T07:30"))  # Friday to Tuesday: 86.5 h
    message(ny("2026-01-09T23:59"))
    message(ny("2026-01-10T00:00"))
    message(ny("2026-01-13T07:00"))

    data = report(period=period)

    assert data.volume_unit == "day"
    assert [(b.label, b.count) for b in data.volume] == [
        ("Fri 09 Jan", 1), ("Sat 10 Jan", 1), ("Sun 11 Jan", 0), ("Mon 12 Jan", 0),
        ("Tue 13 Jan", 1)]


def test_an_empty_period_shows_zeros(db):
    data = report()
    assert data.mail_by_mailbox == () and data.mail_total == 0
    assert all(bar.count == 0 for bar in data.volume) and len(data.volume) == 15
    assert data.new_by_channel == (Count("email", 0), Count("phone", 0), Count("walk-in", 0),
                                   Count("voicemail", 0), Count("portal", 0))
    assert (data.follow_ups, data.resolved, data.closed, data.reopened) == (0, 0, 0, 0)
    assert data.escalations == ()
    assert (data.first_response_within, data.first_response_outside) == (0, 0)
    assert data.old_tickets == () and data.old_tickets_total == 0
    assert data.sla_tickets == () and data.sla_tickets_total == 0


# --- tickets and events ------------------------------------------------------------------------------

def test_new_tickets_by_channel_with_zeros(db):
    ticket(START)
    ticket(END - SECOND)
    ticket(ny("2026-01-12T20:00"), channel="voicemail")
    ticket(END, channel="phone")            # the next report's
    ticket(START - SECOND, channel="phone")  # the previous report's

    data = report()

    assert data.new_by_channel == (Count("email", 2), Count("phone", 0), Count("walk-in", 0),
                                   Count("voicemail", 1), Count("portal", 0))
    assert data.new_total == 3


def test_follow_ups_resolved_closed_and_reopened_come_from_the_events_of_the_period(db):
    t = ticket()
    event(t, START, "follow_up", "message <a@x>")
    event(t, END - SECOND, "follow_up", "message <b@x>")
    event(t, END, "follow_up", "message <c@x>")              # the next report's
    event(t, START - SECOND, "follow_up", "message <d@x>")   # the previous report's
    event(t, ny("2026-01-12T18:00"), "status", "open -> resolved: Replaced the fuser unit.")
    event(t, ny("2026-01-12T18:00"), "status", "new -> resolved")
    event(t, ny("2026-01-12T18:00"), "status", "resolved -> closed: the user -> resolved: ok")
    event(t, ny("2026-01-12T18:00"), "status", "closed -> open: reopened by reply")
    event(t, ny("2026-01-12T18:00"), "reopened", "It jams again.")
    event(t, ny("2026-01-12T18:00"), "status", "new -> open: first reply")
    event(t, ny("2026-01-12T18:00"), "comment", "open -> resolved: not a status change")
    event(t, END, "status", "open -> closed: too late")

    data = report()

    assert (data.follow_ups, data.resolved, data.closed, data.reopened) == (2, 2, 1, 1)


def test_escalations_by_the_group_escalated_to(db):
    t = ticket()
    event(t, START, "escalated", "desk -> network (level 2): The switch drops packets.")
    event(t, ny("2026-01-12T18:00"), "escalated", "- -> network (level 2): no group before")
    event(t, ny("2026-01-12T18:00"), "escalated",
          "network -> lead (level 3): says desk -> network (level 9): nothing")
    event(t, END, "escalated", "desk -> apps (level 2): the next report's")
    event(t, ny("2026-01-12T18:00"), "assigned", "Nora <nora@example.test>")

    data = report()

    assert data.escalations == (Count("lead", 1), Count("network", 2))
    assert data.escalations_total == 3


def test_first_responses_within_and_outside_the_sla(db):
    due = ny("2026-01-13T09:00")
    ticket(first_response_at=START, response_due_at=due)                         # within
    ticket(first_response_at=END - SECOND, response_due_at=END - SECOND)          # at the due time
    ticket(first_response_at=ny("2026-01-12T18:00"), response_due_at=ny("2026-01-12T17:59"))
    ticket(first_response_at=ny("2026-01-12T18:00"), response_due_at=None)       # no target
    ticket(first_response_at=END, response_due_at=ny("2026-01-12T18:00"))        # next report
    ticket(first_response_at=START - SECOND, response_due_at=due)                # previous one
    ticket(first_response_at=None, response_due_at=due)

    data = report()

    assert (data.first_response_within, data.first_response_outside) == (3, 1)
    assert data.first_responses == 4


# --- ticket lists as at now ------------------------------------------------------------------------

def test_tickets_open_more_than_seven_days_oldest_first_and_the_boundary(db):
    week = timedelta(days=7)
    exactly = ticket(NOW - week, subject="exactly seven days")
    just_over = ticket(NOW - week - SECOND, subject="a second older",
                       updated_at=ny("2026-01-12T10:00"), agent="nora@example.test",
                       agency="Springfield Police Department", group="network")
    oldest = ticket(NOW - timedelta(days=30), subject="a month", status="resolved")
    ticket(NOW - timedelta(days=40), status="closed")
    untouched = ticket(NOW - timedelta(days=20), status="new")

    data = report()

    assert [t.number for t in data.old_tickets] == [oldest.number, untouched.number,
                                                   just_over.number]
    assert exactly.number not in [t.number for t in data.old_tickets]
    assert data.old_tickets_total == 3 and data.old_ticket_days == 7
    line = data.old_tickets[-1]
    assert (line.subject, line.status, line.requester, line.requester_name, line.agency,
            line.group, line.agent, line.age_days, line.last_activity, line.created_at) == (
        "a second older", "open", "ann@example.org", "Ann", "Springfield Police Department",
        "network", "nora@example.test", 7, ny("2026-01-12T10:00"), NOW - week - SECOND)
    assert data.old_tickets[0].age_days == 30 and data.old_tickets[0].status == "resolved"


def test_old_ticket_days_is_configurable_and_lists_are_capped_with_exact_totals(db):
    for days in (3, 4, 5, 6):
        ticket(NOW - timedelta(days=days, hours=1))

    data = report(old_ticket_days=3, list_limit=2)

    assert data.old_tickets_total == 4
    assert [t.age_days for t in data.old_tickets] == [6, 5]


def test_tickets_near_or_past_their_first_response_target(db):
    # now: Tuesday 07:30; 2 business hours later is 09:30.
    overdue = ticket(response_due_at=ny("2026-01-12T15:00"), subject="overdue")
    due_now = ticket(response_due_at=NOW, subject="due now")
    near = ticket(response_due_at=ny("2026-01-13T09:30"), subject="at the horizon")
    ticket(response_due_at=ny("2026-01-13T09:30:01"), subject="just beyond")
    warned = ticket(response_due_at=ny("2026-01-13T15:00"), sla_warned_at=ny("2026-01-13T07:00"),
                    subject="warned")
    ticket(response_due_at=ny("2026-01-12T15:00"), first_response_at=ny("2026-01-12T16:00"))
    ticket(response_due_at=ny("2026-01-12T15:00"), status="resolved")
    ticket(response_due_at=None)

    data = report()

    assert [(t.number, t.overdue) for t in data.sla_tickets] == [
        (overdue.number, True), (due_now.number, True), (near.number, False),
        (warned.number, False)]
    assert data.sla_tickets_total == 4
    assert data.sla_tickets[0].due_at == ny("2026-01-12T15:00")
    assert data.sla_tickets[0].subject == "overdue"


def test_the_sla_horizon_reaches_over_closed_hours_as_the_sla_job_does(db):
    # Friday 15:00: 2 business hours take the desk to Friday's closing; Monday's opening is
    # no more business time away, so a target then is as near.
    now = ny("2026-01-09T15:00")
    monday_opening = ticket(response_due_at=ny("2026-01-12T07:00"))
    ticket(response_due_at=ny("2026-01-12T07:00:01"))
    assert NEW_YORK.between(now, ny("2026-01-12T07:00")) <= SLA.warn_before
    assert NEW_YORK.between(now, ny("2026-01-12T07:00:01")) > SLA.warn_before

    data = report(period=Period(ny("2026-01-09T07:30"), now), now=now)

    assert [t.number for t in data.sla_tickets] == [monday_opening.number]


# --- the agency filter and what the caller passes in --------------------------------------------

def test_the_agency_filter_applies_to_every_figure(db):
    police, fire = "Springfield Police Department", "Springfield Fire Department"
    mine = ticket(START, agency=police, channel="phone", first_response_at=START,
                  response_due_at=END)
    theirs = ticket(START, agency=fire, first_response_at=START,
                    response_due_at=START - SECOND)
    ticket(NOW - timedelta(days=9), agency=police)
    ticket(NOW - timedelta(days=9), agency=fire)
    ticket(NOW - timedelta(days=9), agency=None)
    ticket(response_due_at=START, agency=police)
    ticket(response_due_at=START, agency=fire)
    for t in (mine, theirs):
        message(START, t)
        event(t, START, "follow_up", "m")
        event(t, START, "status", "open -> resolved: done")
        event(t, START, "status", "resolved -> closed: done")
        event(t, START, "reopened", "again")
        event(t, START, "escalated", "desk -> network (level 2): help")
    message(START, None)  # mail on no ticket belongs to no agency

    everyone = report()
    police_only = report(agency=police)

    assert everyone.mail_total == 3 and police_only.mail_total == 1
    assert everyone.new_total == 2 and police_only.new_by_channel == (
        Count("email", 0), Count("phone", 1), Count("walk-in", 0), Count("voicemail", 0), Count("portal", 0))
    assert (everyone.follow_ups, everyone.resolved, everyone.closed, everyone.reopened) == (
        2, 2, 2, 2)
    assert (police_only.follow_ups, police_only.resolved, police_only.closed,
            police_only.reopened) == (1, 1, 1, 1)
    assert police_only.escalations == (Count("network", 1),)
    assert (everyone.first_response_within, everyone.first_response_outside) == (1, 1)
    assert (police_only.first_response_within, police_only.first_response_outside) == (1, 0)
    assert everyone.old_tickets_total == 3 and police_only.old_tickets_total == 1
    assert {t.agency for t in police_only.old_tickets} == {police}
    assert everyone.sla_tickets_total == 2 and police_only.sla_tickets_total == 1
    assert police_only.agency == police and sum(b.count for b in police_only.volume) == 1


def test_incidents_and_notes_are_passed_through_in_order(db):
    incidents = [IncidentLine(5, "Mail delays", 120, ny("2026-01-12T16:00")),
                 IncidentLine(9, "VPN", 3, ny("2026-01-12T18:00"))]
    notes = [NoteLine("apps@example.test", ny("2026-01-12T18:02"), "Release", "Down 22:00.")]

    data = report(incidents=incidents, notes=notes)

    assert data.incidents == tuple(incidents) and data.notes == tuple(notes)
    assert data.period == PERIOD and data.now == NOW and data.timezone == "America/New_York"


def test_a_period_must_be_naive_utc_and_not_empty():
    with pytest.raises(ValueError):
        Period(END, START)
    with pytest.raises(ValueError):
        Period(START, START)
    with pytest.raises(ValueError):
        Period(START.astimezone(), END.astimezone())
