"""Scheduled status reports with fixed clocks on a real database: once per slot across restarts
and with two schedulers on one database, late within the grace period, skipped after it, each
covering the time since the previous one; incidents and report notes included."""

from __future__ import annotations

import email
from pathlib import Path
from datetime import datetime, timedelta
from email.policy import default

import pytest

from mailticket.db import transaction
from mailticket.jobs import run_job
from mailticket.intake.items import RawMail
from mailticket.models import Outbox, ReportRun
from mailticket.reports.runner import gather_for, run_due
from mailticket.reports.schedule import last_slot, next_slot
from mailticket.wiring import build
from tests.helpers import Clock, make_mail, settings_for

REPO = Path(__file__).resolve().parents[2]
REPORTS = """\
reports:
  morning: {at: "07:30", days: mon-fri, to: [desk-report@example.test], title: Morning status}
  end_of_shift: {at: "17:00", days: mon-fri, to: [desk-report@example.test],
                 title: End of shift status}
  grace: 2 hours
"""
# Tuesday 2026-11-24, UTC (no sla.calendar: the reports' zone is UTC).
MORNING = datetime(2026, 11, 24, 7, 30)


@pytest.fixture
def make_app(tmp_path, database_url):
    apps = []

    def make(extra=REPORTS, notes=False):
        from dataclasses import replace

        settings = settings_for(tmp_path, database_url, extra=extra)
        if notes:
            settings = replace(settings, desk=replace(
                settings.desk, report_notes_address="desk-notes@example.test"))
        app = build(settings, clock=Clock(MORNING))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def reports():
    return [email.message_from_bytes(bytes(o.content), policy=default)
            for o in Outbox.select().where(Outbox.kind == "report").order_by(Outbox.id)]


def test_slots_follow_the_schedule(make_app):
    schedule = make_app().settings.reports.get("morning")
    saturday = datetime(2026, 11, 28, 12, 0)
    assert last_slot(schedule, saturday) == datetime(2026, 11, 27, 7, 30)
    assert next_slot(schedule, saturday) == datetime(2026, 11, 30, 7, 30)
    assert last_slot(schedule, MORNING) == MORNING  # at the slot itself


def test_a_report_goes_once_per_slot_also_after_a_restart(make_app):
    app = make_app()
    assert run_due(app.desk, app.db, MORNING + timedelta(minutes=1)) == (
        "morning sent, end_of_shift skipped")  # yesterday's 17:00 is past the grace period
    assert run_due(app.desk, app.db, MORNING + timedelta(minutes=2)) == "nothing due"
    restarted = make_app()
    assert run_due(restarted.desk, restarted.db, MORNING + timedelta(minutes=3)) == "nothing due"
    [mail] = reports()
    assert mail["Subject"].startswith("Morning status")
    assert mail.get_content_type() == "multipart/alternative"
    assert {p.get_content_type() for p in mail.iter_parts()} == {"text/plain", "text/html"}
    runs = {(r.report, r.slot): r.outcome for r in ReportRun.select()}
    assert runs[("morning", MORNING)] == "sent"
    assert runs[("end_of_shift", datetime(2026, 11, 23, 17, 0))].startswith("skipped: missed by")


def test_two_schedulers_on_one_database_send_it_once(make_app, tmp_path):
    """Two processes (as two daemons would be) run the report job for the same slot at once."""
    import os
    import subprocess
    import sys

    app = make_app()
    config = str(app.settings.path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    at = (MORNING + timedelta(seconds=30)).isoformat()
    runs = [subprocess.Popen([sys.executable, "-m", "mailticket", "--config", config, "jobs",
                              "run", "reports", "--at", at], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
            for _ in range(2)]
    outputs = [(run.wait(60), run.stdout.read()) for run in runs]
    assert [code for code, _ in outputs] == [0, 0], outputs
    sent = [out for _, out in outputs if "morning sent" in out]
    assert len(sent) == 1, outputs
    assert len(reports()) == 1
    assert ReportRun.select().where(ReportRun.report == "morning").count() == 1


def test_a_missed_slot_within_grace_is_sent_late_and_after_it_skipped(make_app):
    app = make_app()
    with transaction(app.db):  # yesterday's evening report went out
        ReportRun.create(report="end_of_shift", slot=datetime(2026, 11, 23, 17, 0),
                         outcome="sent")
    assert run_due(app.desk, app.db, MORNING + timedelta(hours=1, minutes=59)) == \
        "morning sent late"
    [mail] = reports()
    assert "(sent late)" in mail["Subject"]
    assert ReportRun.get(ReportRun.report == "morning").late
    # The evening slot: down from 16:00 to 19:01, more than 2 hours late.
    assert run_due(app.desk, app.db, datetime(2026, 11, 24, 19, 1)) == "end_of_shift skipped"
    assert len(reports()) == 1


def test_the_period_runs_from_the_previous_report_of_the_same_kind(make_app):
    app = make_app()
    schedule = app.settings.reports.get("morning")
    with transaction(app.db):
        ReportRun.create(report="morning", slot=datetime(2026, 11, 20, 7, 30), outcome="sent")
        ReportRun.create(report="morning", slot=datetime(2026, 11, 23, 7, 30),
                         outcome="skipped: missed")
    data = gather_for(app.db, app.settings, schedule, MORNING, MORNING)
    assert (data.period.start, data.period.end) == (datetime(2026, 11, 20, 7, 30), MORNING)
    fresh = gather_for(app.db, app.settings, app.settings.reports.get("end_of_shift"),
                       datetime(2026, 11, 24, 17, 0), datetime(2026, 11, 24, 17, 0))
    assert fresh.period.start == datetime(2026, 11, 23, 17, 0)  # the first: the day before


def test_incidents_and_report_notes_go_into_the_next_report(make_app):
    app = make_app(notes=True)
    app.desk.clock = app.desk.mailer.clock = Clock(datetime(2026, 11, 23, 18, 0))
    app.pipeline.clock = app.desk.clock
    [ticket] = app.pipeline.process_batch([RawMail("t", "1", make_mail(
        subject="Mail is down", sender="ann@example.org", cc="bob@example.org"))])
    app.pipeline.process_batch([RawMail("t", "2", make_mail(
        subject="Payroll maintenance tonight", sender="apps@example.org",
        to="desk-notes@example.test", body="From 22:00, 30 minutes."))])
    with transaction(app.db):
        outage = app.desk.outage_from_ticket(ticket.ticket, "ada")
    run_job("reports", app.desk, app.db, MORNING + timedelta(minutes=1))
    [mail] = reports()
    text = mail.get_body(("plain",)).get_content()
    assert "Mail is down" in text and "Payroll maintenance tonight" in text
    assert "From 22:00, 30 minutes." in text
    data = gather_for(app.db, app.settings, app.settings.reports.get("morning"), MORNING, MORNING)
    [incident] = data.incidents
    assert (incident.number, incident.users_affected) == (outage.number, 2)
    assert (incident.subject, incident.tickets, incident.reach) == ("Mail is down", 1, "all users")
