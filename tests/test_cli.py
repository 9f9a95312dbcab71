"""The command line as an agent uses it: one clear line and a non-zero exit on every mistake."""

from __future__ import annotations

import json

import pytest

from mailticket import cli
from mailticket.intake.items import RawMail
from mailticket.models import Outbox
from mailticket.wiring import build
from tests.helpers import make_mail, write_config


@pytest.fixture
def config(tmp_path, database_url):
    return str(write_config(tmp_path, database_url))


@pytest.fixture
def ticket(config, tmp_path):
    """One ticket made by intake; returns its number."""
    from mailticket import config as configmod

    app = build(configmod.load(config))
    [result] = app.pipeline.process_batch([RawMail("test", "1/1", make_mail())])
    app.close()
    return result.ticket


def run(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_config_ok(capsys, config):
    code, out, _ = run(capsys, "--config", config, "check-config")
    assert code == 0 and "OK" in out


def test_invalid_config_names_file_and_key(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: sqlite:///x.db\ndesk: {address: nope}\noutgoing: {maildir: sent}\n"
                   "intake: {imap: [{host: h, port: abc, username: u, password: p}]}\n")
    code, _, err = run(capsys, "--config", str(bad), "check-config")
    assert code == cli.EXIT_CONFIG
    assert f"{bad}: intake.imap[0].port: expected an integer, got 'abc'" in err
    assert "desk.address" in err
    assert "Traceback" not in err


def test_run_refuses_an_invalid_config(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: 42\n")
    code, _, err = run(capsys, "--config", str(bad), "run")
    assert code == cli.EXIT_CONFIG and "database" in err


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run(capsys, "--config", str(tmp_path / "nope.yaml"), "check-config")
    assert code == cli.EXIT_CONFIG and "no such config file" in err


def test_init_db(capsys, config):
    code, out, _ = run(capsys, "--config", config, "init-db")
    assert code == 0 and "database ready" in out


def test_list_and_show(capsys, config, ticket):
    code, out, _ = run(capsys, "--config", config, "ticket", "list")
    assert code == 0 and "Printer on floor 3" in out
    code, out, _ = run(capsys, "--config", config, "ticket", "list", "--status", "new", "--json")
    assert [t["number"] for t in json.loads(out)] == [ticket]
    code, out, _ = run(capsys, "--config", config, "ticket", "list", "--status", "closed")
    assert "no tickets" in out
    code, out, _ = run(capsys, "--config", config, "ticket", "show", str(ticket))
    assert code == 0 and f"Ticket #{ticket}" in out and "It prints blank pages" in out
    code, out, _ = run(capsys, "--config", config, "ticket", "show", f"#{ticket}", "--json")
    shown = json.loads(out)
    assert shown["status"] == "new" and shown["events"][0]["kind"] == "created"


def test_reply_close_reopen(capsys, config, ticket):
    code, out, _ = run(capsys, "--config", config, "ticket", "reply", str(ticket),
                       "--message", "Is it plugged in?", "--as", "ada")
    assert code == 0 and "ann@example.org" in out
    code, out, _ = run(capsys, "--config", config, "ticket", "close", str(ticket), "-m", "Plugged in")
    assert code == 0
    code, _, err = run(capsys, "--config", config, "ticket", "close", str(ticket), "-m", "again")
    assert code == cli.EXIT_FAILED and "already closed" in err
    code, out, _ = run(capsys, "--config", config, "ticket", "reopen", str(ticket), "-m", "Not fixed")
    assert code == 0
    code, out, _ = run(capsys, "--config", config, "ticket", "show", str(ticket), "--json")
    shown = json.loads(out)
    assert shown["status"] == "open"
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert {e["actor"] for e in shown["events"][1:]} >= {"ada"}
    assert [o.kind for o in Outbox.select().order_by(Outbox.id)] == ["ack", "reply", "closed", "reopened"]


def test_unknown_ticket_is_one_line_and_exit_1(capsys, config):
    for action in (["show", "999"], ["close", "999", "-m", "x"], ["reply", "999", "-m", "x"]):
        code, _, err = run(capsys, "--config", config, "ticket", *action)
        assert code == cli.EXIT_FAILED
        assert err.strip() == "mailticket: no ticket #999"


def test_reopen_of_open_ticket_fails(capsys, config, ticket):
    code, _, err = run(capsys, "--config", config, "ticket", "reopen", str(ticket), "-m", "x")
    assert code == cli.EXIT_FAILED and "not closed" in err


def test_empty_message_is_refused(capsys, config, ticket):
    code, _, err = run(capsys, "--config", config, "ticket", "close", str(ticket), "-m", "  ")
    assert code == cli.EXIT_FAILED and "empty" in err


@pytest.mark.parametrize("args", [["ticket", "show", "abc"], ["ticket", "show", "0"],
                                  ["ticket", "frobnicate"], ["ticket", "close", "1"], []])
def test_bad_arguments_exit_2(capsys, config, args):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", config, *args])
    assert exited.value.code == cli.EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_quarantine_list_and_retry(capsys, config):
    from mailticket import config as configmod

    app = build(configmod.load(config))
    app.pipeline.process_batch([RawMail("test", "1/9", b"Subject: nobody\r\n\r\nhi\r\n")])
    app.close()
    code, out, _ = run(capsys, "--config", config, "quarantine", "list", "--json")
    [held] = json.loads(out)
    assert "sender" in held["error"]
    code, out, _ = run(capsys, "--config", config, "quarantine", "list")
    assert f"#{held['id']}" in out
    code, _, err = run(capsys, "--config", config, "quarantine", "retry", str(held["id"]))
    assert code == cli.EXIT_FAILED and "still fails" in err
    code, _, err = run(capsys, "--config", config, "quarantine", "retry", "12345")
    assert code == cli.EXIT_FAILED and "no quarantined message #12345" in err


def test_outbox_list_and_retry(capsys, config, ticket):
    code, out, _ = run(capsys, "--config", config, "outbox", "list", "--json")
    [row] = json.loads(out)
    assert (row["kind"], row["status"]) == ("ack", "pending")
    Outbox.update(status="failed", last_error="550 no such user").execute()
    code, out, _ = run(capsys, "--config", config, "outbox", "list", "--failed")
    assert "550 no such user" in out
    code, out, _ = run(capsys, "--config", config, "outbox", "retry", str(row["id"]))
    assert code == 0
    assert Outbox.get().status == "pending"


def test_terminal_escapes_in_mail_never_reach_the_agents_terminal(capsys, config):
    from mailticket import config as configmod

    app = build(configmod.load(config))
    [result] = app.pipeline.process_batch([RawMail("test", "1/5", make_mail(
        subject="Help", body="Hello \x1b]0;pwned\x07 \x1b[2J\x1b[31mred\tand\nnext line"))])
    app.close()
    code, out, _ = run(capsys, "--config", config, "ticket", "show", str(result.ticket))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "red\tand" in out and "next line" in out


def test_a_ticket_number_past_any_real_one_is_just_unknown(capsys, config):
    code, _, err = run(capsys, "--config", config, "ticket", "show", "99999999999999999999999")
    assert code == cli.EXIT_FAILED
    assert err.strip() == "mailticket: no ticket #99999999999999999999999"


def test_run_with_the_intake_port_taken_says_so_in_one_line(capsys, tmp_path, database_url):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, database_url,
                              intake=f"smtp: {{listen: '127.0.0.1:{port}'}}")
        code, _, err = run(capsys, "--config", str(config), "run")
    assert code == cli.EXIT_FAILED
    assert "Traceback" not in err and str(port) in err


def test_list_limit_shows_the_newest(capsys, config, ticket):
    from mailticket import config as configmod

    app = build(configmod.load(config))
    app.pipeline.process_batch([RawMail("test", "1/2", make_mail(subject="Second request"))])
    app.close()
    code, out, _ = run(capsys, "--config", config, "ticket", "list", "--limit", "1", "--json")
    assert [t["subject"] for t in json.loads(out)] == ["Second request"]


PROCESS = """\
groups:
  desk:    {level: 1, members: ["Ada <ada@desk.example.test>"]}
  network: {level: 2, members: ["Nora <nora@desk.example.test>"], address: net@desk.example.test}
escalation: {desk: [network]}
"""


@pytest.fixture
def process_config(tmp_path, database_url):
    return str(write_config(tmp_path, database_url, extra=PROCESS))


def test_assign_escalate_resolve_close(capsys, process_config):
    from mailticket import config as configmod

    app = build(configmod.load(process_config))
    [result] = app.pipeline.process_batch([RawMail("test", "1/1", make_mail())])
    app.close()
    n = str(result.ticket)
    code, out, _ = run(capsys, "--config", process_config, "ticket", "assign", n, "ada",
                       "--as", "ada")
    assert code == 0 and out == f"ticket #{n} assigned to ada@desk.example.test; they are told " \
                                f"(outbox #2)\n"
    code, out, _ = run(capsys, "--config", process_config, "ticket", "escalate", n,
                       "--to", "network", "-m", "Switch is dying", "--as", "ada")
    assert code == 0 and f"ticket #{n} escalated to network; mail to net@desk.example.test" in out
    code, out, _ = run(capsys, "--config", process_config, "ticket", "resolve", n,
                       "-m", "New switch", "--as", "nora")
    assert code == 0 and out.startswith(f"ticket #{n} resolved; mail to ann@example.org queued")
    code, out, _ = run(capsys, "--config", process_config, "ticket", "show", n, "--json")
    shown = json.loads(out)
    assert (shown["status"], shown["group"], shown["resolution"]) == ("resolved", "desk",
                                                                      "New switch")
    assert [e["kind"] for e in shown["events"] if e["kind"] in ("assigned", "escalated")] == [
        "assigned", "escalated"]
    code, out, _ = run(capsys, "--config", process_config, "ticket", "close", n,
                       "-m", "Verified with Ann")
    assert code == 0


@pytest.mark.parametrize("args, message", [
    (["assign", "{n}", "zed"], "mailticket: no agent 'zed' (agents: Ada <ada@desk.example.test>, "
                               "Nora <nora@desk.example.test>)\n"),
    (["escalate", "{n}", "--to", "moon", "-m", "x"],
     "mailticket: no group 'moon' (groups: desk, network)\n"),
    (["escalate", "999", "--to", "network", "-m", "x"], "mailticket: no ticket #999\n"),
])
def test_procedure_mistakes_are_one_line_and_exit_1(capsys, process_config, args, message):
    from mailticket import config as configmod

    app = build(configmod.load(process_config))
    [result] = app.pipeline.process_batch([RawMail("test", "1/1", make_mail())])
    app.close()
    args = [a.format(n=result.ticket) for a in args]
    code, out, err = run(capsys, "--config", process_config, "ticket", *args)
    assert (code, out, err) == (cli.EXIT_FAILED, "", message)


def test_escalate_without_to_is_a_usage_error(capsys, process_config):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--config", process_config, "ticket", "escalate", "1", "-m", "x"])
    assert raised.value.code == cli.EXIT_USAGE
    assert "--to" in capsys.readouterr().err


def test_other_channels_whois_jobs_and_list_filters(capsys, tmp_path, database_url):
    from datetime import timedelta

    from mailticket import config as configmod
    from mailticket.models import utcnow

    directory = tmp_path / "directory.yaml"
    directory.write_text(
        "agencies:\n"
        "  - name: Springfield Police Department\n    code: SPD\n    county: Sangamon\n"
        "    domains: [spd.example.gov]\n"
        "    contacts:\n      - {role: JTAC, name: Jo Tac, email: jtac@spd.example.gov}\n")
    config = str(write_config(tmp_path, database_url, extra=PROCESS + f"directory: {directory}\n"))
    # A ticket from two business days ago: long overdue for its first response.
    old = utcnow() - timedelta(days=4)
    app = build(configmod.load(config), clock=lambda: old)
    app.pipeline.process_batch([RawMail("test", "1/1", make_mail(sender="cop@spd.example.gov"))])
    app.close()

    code, out, _ = run(capsys, "--config", config, "ticket", "new", "--requester",
                       "Walk@Example.org", "--channel", "walk-in", "--subject", "Badge broken",
                       "-m", "Came by the desk at 9.")
    assert code == 0 and out == "ticket #2 logged (walk-in); the acknowledgement goes to " \
                                "walk@example.org\n"
    listed = lambda *f: [t["number"] for t in json.loads(run(  # noqa: E731
        capsys, "--config", config, "ticket", "list", "--json", *f)[1])]
    assert listed("--channel", "walk-in") == [2]
    assert listed("--overdue") == [1]
    assert listed("--due-within", "7 days") == [2]  # 1 business day, whatever the weekday
    assert listed("--agency", "springfield police department") == [1]
    assert listed("--group", "desk") == [2, 1]
    assert listed("--older-than", "3") == [1]

    code, out, _ = run(capsys, "--config", config, "whois", "cop@spd.example.gov")
    assert code == 0 and "agency:  Springfield Police Department (SPD)" in out
    assert "JTAC" in out and "jtac@spd.example.gov" in out
    code, _, err = run(capsys, "--config", config, "whois", "nobody@else.example")
    assert code == cli.EXIT_FAILED and "is in no agency or county" in err

    code, out, _ = run(capsys, "--config", config, "jobs", "run", "sla-check",
                       "--at", "2030-01-07T12:00")
    assert code == 0 and out == "sla-check as at 2030-01-07 12:00 UTC: 0 warned, 2 overdue\n"
    code, out, _ = run(capsys, "--config", config, "jobs", "list")
    assert "sla-check" in out and "2030-01-07T12:00:00 0 warned, 2 overdue" in out
    code, _, err = run(capsys, "--config", config, "jobs", "run", "nope")
    assert code == cli.EXIT_FAILED and err == "mailticket: no job 'nope' (jobs: sla-check, " \
                                              "auto-close, outage-resolve, spike-sweep, reports)\n"


@pytest.mark.parametrize("args", [
    ["ticket", "new", "--requester", "not-an-address", "--channel", "phone", "--subject", "s",
     "-m", "m"],
    ["ticket", "new", "--requester", "a@b.example", "--channel", "fax", "--subject", "s",
     "-m", "m"],
    ["ticket", "list", "--due-within", "soon"],
    ["jobs", "run", "sla-check", "--at", "yesterday"],
])
def test_bad_arguments_of_the_procedure_commands_exit_2(capsys, config, args):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--config", config, *args])
    assert raised.value.code == cli.EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_show_prints_one_timeline_with_the_sla_clock(capsys, process_config):
    from datetime import datetime

    from mailticket import config as configmod

    moments = iter([datetime(2026, 11, 24, 9, 0), datetime(2026, 11, 24, 9, 30)])
    now = {"t": next(moments)}
    app = build(configmod.load(process_config), clock=lambda: now["t"])
    [result] = app.pipeline.process_batch([RawMail("test", "1/1", make_mail(body="Help!"))])
    now["t"] = next(moments)
    from mailticket.db import transaction
    with transaction(app.db):
        app.desk.reply(result.ticket, "ada", "On it.")
    app.close()
    code, out, _ = run(capsys, "--config", process_config, "ticket", "show", str(result.ticket))
    assert code == 0
    assert ("SLA:       first response due 2026-11-25 09:00 UTC; answered 2026-11-24 09:30 UTC "
            "(in time)") in out
    timeline = out.split("Timeline:\n", 1)[1]
    import re
    order = [re.match(r"  \S+ \S+ UTC  (?:--- (.+?) from|\S+: (\S+))", line).group(1, 2)
             for line in timeline.splitlines() if line.startswith("  2026")]
    order = [a or b for a, b in order]
    assert order == ["mail in", "created", "mail out", "reply", "status"]
    assert "Help!" in timeline and "On it." in timeline


def test_ticket_incident_opens_an_outage_and_off_names_the_new_commands(capsys, config, ticket):
    code, out, _ = run(capsys, "--config", config, "ticket", "incident", str(ticket))
    assert (code, out) == (0, f"ticket #{ticket}: outage #1 opened from it "
                              "(mailticket outage show 1)\n")
    code, out, _ = run(capsys, "--config", config, "outage", "show", "1", "--json")
    data = json.loads(out)
    assert (data["title"], [t["number"] for t in data["tickets"]]) == (
        "Printer on floor 3 is broken", [ticket])
    code, out, _ = run(capsys, "--config", config, "ticket", "show", str(ticket))
    assert "  outage:    #1 (open): Printer on floor 3 is broken\n" in out
    code, out, _ = run(capsys, "--config", config, "ticket", "show", str(ticket), "--json")
    assert json.loads(out)["outages"] == [
        {"number": 1, "title": "Printer on floor 3 is broken", "state": "open"}]
    code, _, err = run(capsys, "--config", config, "ticket", "incident", str(ticket))
    assert code == cli.EXIT_FAILED and "already linked to outage #1" in err
    code, _, err = run(capsys, "--config", config, "ticket", "incident", str(ticket), "--off")
    assert code == cli.EXIT_FAILED
    assert err == (f"mailticket: incidents are outages now; outage #1: mailticket outage unlink "
                   f"1 {ticket}, or resolve it: mailticket outage resolve 1 --message TEXT\n")


def test_report_list_preview_and_send(capsys, tmp_path, database_url):
    reports = ("reports:\n  morning: {at: \"07:30\", days: mon-fri, to: [rep@example.test], "
               "title: Morning status}\n")
    config = str(write_config(tmp_path, database_url, extra=reports))
    code, out, _ = run(capsys, "--config", config, "report", "list")
    assert code == 0 and out.startswith("morning: 'Morning status' at 07:30 mon,tue,wed,thu,fri "
                                        "(UTC) to rep@example.test\n    last: never   next: ")
    html = tmp_path / "report.html"
    code, out, err = run(capsys, "--config", config, "report", "preview", "morning",
                         "--at", "2026-11-24T07:30", "--html", str(html))
    assert code == 0 and out.startswith("Subject: Morning status")
    assert "<table" in html.read_text() and f"written to {html}" in err
    code, out, _ = run(capsys, "--config", config, "report", "send", "morning")
    assert (code, out) == (0, "report morning queued to rep@example.test; the daemon sends it\n")
    assert Outbox.select().where(Outbox.kind == "report").count() == 1
    code, out, _ = run(capsys, "--config", config, "report", "list")
    assert "last: " in out and " sent" in out
    code, _, err = run(capsys, "--config", config, "report", "send", "weekly")
    assert (code, err) == (cli.EXIT_FAILED, "mailticket: no report 'weekly' (reports: morning)\n")


def test_whois_json_and_list_by_agent(capsys, tmp_path, database_url):
    from mailticket import config as configmod
    from mailticket.db import transaction

    directory = tmp_path / "directory.yaml"
    directory.write_text(
        "counties:\n  - name: Sangamon\n    contacts:\n      - {role: registrar, name: Reg Istrar}\n"
        "agencies:\n  - name: Springfield Police Department\n    code: SPD\n    county: Sangamon\n"
        "    domains: [spd.example.gov]\n")
    config = str(write_config(tmp_path, database_url, extra=PROCESS + f"directory: {directory}\n"))
    code, out, _ = run(capsys, "--config", config, "whois", "Sangamon County", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["county"] == "Sangamon" and answer["agencies"] == []
    assert answer["contacts"] == [{"role": "registrar", "name": "Reg Istrar", "email": None,
                                   "phone": None}]
    app = build(configmod.load(config))
    [first] = app.pipeline.process_batch([RawMail("test", "1/1", make_mail())])
    app.pipeline.process_batch([RawMail("test", "1/2", make_mail(subject="other"))])
    with transaction(app.db):
        app.desk.assign(first.ticket, "ada", "nora")
    app.close()
    code, out, _ = run(capsys, "--config", config, "ticket", "list", "--agent", "Nora", "--json")
    assert [t["number"] for t in json.loads(out)] == [first.ticket]


def test_outbox_list_failed_shows_bounced_mail(capsys, config, ticket):
    from mailticket import config as configmod
    from mailticket.db import transaction

    app = build(configmod.load(config))
    with transaction(app.db):
        Outbox.update(status="bounced", last_error="bounced: ann@example.org 5.1.1",
                      bounced=[{"recipient": "ann@example.org", "status": "5.1.1",
                                "detail": "user unknown", "at": "2026-11-24T09:00:00"}]).execute()
    app.close()
    code, out, _ = run(capsys, "--config", config, "outbox", "list", "--failed", "--json")
    [row] = json.loads(out)
    assert (code, row["status"], row["bounced"][0]["recipient"]) == (0, "bounced",
                                                                     "ann@example.org")


def test_ticket_help_lists_the_commands_agents_write_in_mail(capsys):
    from mailticket.desk.commands import COMMANDS

    with pytest.raises(SystemExit) as exited:
        cli.main(["ticket", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "agents may also work a ticket by mail" in out
    for spec in COMMANDS.values():
        assert f"{spec.usage}: {spec.help}" in " ".join(out.split())
