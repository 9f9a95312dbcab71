"""``mailticket outage ...`` as an agent uses it: what each command prints, one clear line and a
non-zero exit on every mistake with nothing changed, and a resolve killed with SIGKILL part way
through that a second run finishes with every user told exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mailticket import cli
from mailticket import config as configmod
from mailticket.db import transaction
from mailticket.intake.items import RawMail
from mailticket.models import Outage, OutageLog, OutageTicket, Outbox, Ticket
from mailticket.wiring import build
from tests.desk.test_outages import GROUPS, OUTAGES
from tests.helpers import make_mail, write_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path, database_url):
    return str(write_config(tmp_path, database_url, extra=GROUPS + OUTAGES))


@pytest.fixture
def app(config):
    made = build(configmod.load(config))
    yield made
    made.close()


def new_ticket(app, subject, sender="cop@spd.example.gov"):
    [result] = app.pipeline.process_batch([RawMail("test", subject + sender, make_mail(
        subject=subject, sender=sender))])
    return result.ticket


def run(capsys, config, *args):
    code = cli.main(["--config", config, *args])
    out, err = capsys.readouterr()
    return code, out, err


def state():
    """What a failed command must leave as it was."""
    return (list(Outage.select().tuples()), list(OutageTicket.select().tuples()),
            OutageLog.select().count(), Outbox.select().count(),
            list(Ticket.select(Ticket.number, Ticket.status).tuples()))


def test_the_outage_commands_from_open_to_resolve(capsys, config, app):
    first, second = new_ticket(app, "RMS down"), new_ticket(app, "RMS still down", "k@x.example")
    code, out, err = run(capsys, config, "outage", "open", "Records system down", "--app", "RMS",
                         "--agency", "SPD", "--public", "We are on it.", "--from-ticket",
                         str(first), "--advise-partners", "--as", "ada")
    assert (code, err) == (0, "")
    assert out == (f"outage #1 opened: Records system down; ticket #{first} linked; told "
                   "lee@desk.example.test, appsupport@desk.example.test; partners advised: "
                   "noc@partner.example.net\n")
    code, out, _ = run(capsys, config, "outage", "link", "1", str(second), "--as", "ada")
    assert (code, out) == (0, f"outage #1: linked #{second}\n")
    code, out, _ = run(capsys, config, "outage", "update", "1", "--public", "Back by noon.",
                       "--notify", "--advise-contacts", "--as", "ada")
    assert code == 0 and out.startswith("outage #1: public text updated; the users of 2 "
                                        "ticket(s) told; contacts advised: rokafor@spd")
    code, out, _ = run(capsys, config, "outage", "update", "1", "--title",
                       "Records system down", "--as", "ada")
    assert (code, out) == (0, "outage #1: title updated\n")
    code, out, _ = run(capsys, config, "outage", "show", "1")
    assert code == 0
    for line in ("Outage #1: Records system down", "  state:        open",
                 "  applications: records",
                 "  scope:        agencies: Springfield Police Department",
                 "  public text:  Back by noon.",
                 "  tickets:      2 (2 open): 2 email, 0 phone, 0 walk-in, 0 voicemail, 0 portal",
                 "  users:        2",
                 "  reach:        beyond its scope (1 ticket(s) from outside the scope)",
                 "  agencies:     Springfield Police Department 1; (no agency) 1",
                 "  related:      portal, notifications"):
        assert line + "\n" in out
    assert "ada: linked ticket" in out
    code, out, _ = run(capsys, config, "outage", "list", "--json")
    [listed] = json.loads(out)
    assert (listed["number"], listed["state"], listed["impact"]["tickets"]) == (1, "open", 2)
    code, out, _ = run(capsys, config, "outage", "unlink", "1", str(second))
    assert (code, out) == (0, f"outage #1: unlinked #{second}\n")
    code, out, _ = run(capsys, config, "outage", "resolve", "1", "--message",
                       "The database server was restarted.", "--as", "nora")
    assert (code, out) == (0, "outage #1 resolved; 1 ticket(s) dealt with, their users told\n")
    code, out, _ = run(capsys, config, "outage", "list")
    assert code == 0 and "resolved" in out and "Records system down" in out
    assert Ticket.get_by_id(first).status == "closed"
    assert Ticket.get_by_id(second).status == "new"


@pytest.mark.parametrize("args, error", [
    (("outage", "show", "9"), "no outage #9"),
    (("outage", "link", "1", "999"), "no ticket #999"),
    (("outage", "link", "1", "{new}", "{closed}"), "ticket #{closed} is closed; reopen it "
                                                   "first to link it"),
    (("outage", "link", "1", "{linked}"), "ticket #{linked} is already linked to outage #1"),
    (("outage", "unlink", "1", "{new}"), "ticket #{new} is not linked to outage #1"),
    (("outage", "link", "2", "{new}"), "outage #2 is resolved"),
    (("outage", "resolve", "2", "-m", "again"), "outage #2 is already resolved"),
    (("outage", "open", "Down", "--app", "payroll"),
     "no application 'payroll' in outages.applications (applications: records, mail)"),
    (("outage", "open", "Down", "--agency", "Nowhere"), "no agency 'Nowhere' in the directory"),
    (("outage", "open", "Down", "--from-ticket", "{closed}"), "ticket #{closed} is closed"),
    (("outage", "update", "1", "--public", "x", "--advise-contacts"),
     "no contacts to advise: outage #1 names no agency and none of its tickets has one"),
    (("outage", "update", "1", "--public", " "), "the public text is empty"),
    (("outage", "update", "1"), "the public text is empty"),
    (("outage", "update", "1", "--title", " "), "the outage's title is empty"),
])
def test_each_mistake_is_one_line_exit_1_and_changes_nothing(capsys, config, app, args, error):
    linked_one = new_ticket(app, "linked", "a@example.org")
    fresh, closed = new_ticket(app, "fresh", "b@example.org"), new_ticket(app, "x", "c@x.org")
    with transaction(app.db):
        app.desk.close(closed, "ada", "done")
        app.desk.open_outage("ada", "Open one", from_ticket=linked_one)
        app.desk.open_outage("ada", "Resolved one")
    from mailticket.desk.outages import resolve

    resolve(app.desk, app.db, 2, "ada", "fixed")
    before = state()
    names = {"new": fresh, "closed": closed, "linked": linked_one}
    code, out, err = run(capsys, config, *(a.format(**names) for a in args))
    assert (code, out) == (cli.EXIT_FAILED, "")
    assert err.startswith(f"mailticket: {error.format(**names)}") and err.count("\n") == 1
    assert state() == before


@pytest.mark.parametrize("args", [("outage", "show", "x"), ("outage", "link", "1"),
                                  ("outage", "resolve", "1"),
                                  ("outage", "resolve", "1", "-m", "x", "--batch-size", "0")])
def test_bad_arguments_exit_2(capsys, config, args):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", config, *args])
    assert exited.value.code == cli.EXIT_USAGE


def test_a_resolve_killed_part_way_is_finished_by_the_next_one_telling_each_user_once(
        config, app, capsys):
    count = 300
    with transaction(app.db):
        numbers = [Ticket.create(subject=f"Down {i}", status="open", channel="phone",
                                 requester=f"user{i}@spd.example.gov").number
                   for i in range(count)]
        app.desk.open_outage("ada", "Records down")
        app.desk.link_tickets(1, "ada", numbers)
        app.desk.close(numbers[0], "ada", "fixed before")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailticket", "--config", config, "outage", "resolve", "1",
         "-m", "Restarted.", "--batch-size", "1", "--as", "nora"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})

    def settled():
        return OutageTicket.select().where(OutageTicket.settled_at.is_null(False)).count()

    deadline = time.monotonic() + 60
    while settled() < 40 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    at_kill = settled()
    assert process.returncode == -signal.SIGKILL
    assert 40 <= at_kill < count, "the resolve was not interrupted part way"
    assert Outage.get_by_id(1).state == "resolving"
    # Every ticket dealt with so far was closed, with its mail, in one transaction.
    assert Ticket.select().where(Ticket.status == "closed").count() == at_kill
    assert Outbox.select().where(Outbox.kind == "closed").count() == at_kill

    code, out, err = run(capsys, config, "outage", "resolve", "1", "-m", "Restarted.")
    assert (code, err) == (0, "")
    assert out == f"outage #1 resolved; {count - at_kill} ticket(s) dealt with, their users told\n"
    assert {s for (s,) in Ticket.select(Ticket.status).tuples()} == {"closed"}
    per = Counter((o.ticket_id, tuple(o.recipients))
                  for o in Outbox.select().where(Outbox.kind == "closed"))
    assert per == Counter({(n, (f"user{i}@spd.example.gov",)): 1 for i, n in enumerate(numbers)})
    assert Outbox.select().where(Outbox.kind == "outage_resolved").count() == 1
    assert OutageTicket.get(OutageTicket.ticket == numbers[0]).settled == "already closed"
