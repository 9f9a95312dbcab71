"""The desk's procedure through the running daemon, against a real Dovecot and SMTP sink: user
mail -> acknowledgement -> an agent escalates by mail command -> level 2 resolves from the
command line -> the user is asked to verify -> no reply -> the scheduler's auto-close (run as at
a later time) -> "Ticket #N has been closed" -> the user's reply reopens it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import make_mail, write_config
from tests.servers.daemon import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

TAG = re.compile(r"\[DESK #(\d+)\]")
PROCESS = """\
groups:
  desk:    {level: 1, members: ["Ada <ada@desk.example.test>"]}
  network: {level: 2, members: ["Nora <nora@desk.example.test>"]}
  lead:    {level: 3, members: ["Lee <lee@desk.example.test>"]}
escalation: {desk: [network], network: [lead]}
sla: {verify_close_after: 3 business days}
"""


def to(sink, address, subject_part=""):
    return [m for m in sink.messages
            if address in m.rcpt_tos and subject_part in str(m.message["Subject"])]


def test_one_ticket_through_the_whole_procedure(tmp_path, database_url, fresh_mailbox,
                                                smtp_sink):
    intake = (f"imap:\n    - {{host: 127.0.0.1, port: {fresh_mailbox.port}, security: none, "
              f"username: desk, password: secret, idle: true, poll_interval: 1}}")
    outgoing = (f"smtp: {{host: 127.0.0.1, port: {smtp_sink.port}, security: none}}\n"
                f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
    config = write_config(tmp_path, database_url, intake=intake, outgoing=outgoing,
                          extra=PROCESS)
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        dovecot = fresh_mailbox
        # 1. The user writes; the acknowledgement carries the number.
        dovecot.append("desk", make_mail(subject="Cannot reach the file server",
                                         sender="Ann <ann@example.org>"))
        ack = wait_until(lambda: to(smtp_sink, "ann@example.org", "file server"),
                         what="the ack")[0]
        number = int(TAG.search(str(ack.message["Subject"])).group(1))
        assert daemon.cli_json("ticket", "show", str(number))["group"] == "desk"

        # 2. Ada (level 1) escalates it to network from her mail client, with a word to Ann.
        dovecot.append("desk", make_mail(
            subject=f"Re: {ack.message['Subject']}", sender="Ada <ada@desk.example.test>",
            body="#escalate network switch port 12 is dead\n\nHello Ann, the network team "
                 "will look at it today.\n", in_reply_to=ack.message["Message-ID"]))
        escalated = wait_until(lambda: to(smtp_sink, "nora@desk.example.test", "Escalated"),
                               what="the escalation notice")[0]
        assert "switch port 12 is dead" in escalated.message.get_body(("plain",)).get_content()
        relayed = wait_until(lambda: [m for m in to(smtp_sink, "ann@example.org")
                                      if "network team" in m.message.get_body(
                                          ("plain",)).get_content()], what="the relay")[0]
        assert "#escalate" not in relayed.message.get_body(("plain",)).get_content()
        report = wait_until(lambda: to(smtp_sink, "ada@desk.example.test", "Done"),
                            what="the report to Ada")[0]
        assert "escalated to network" in report.message.get_body(("plain",)).get_content()
        shown = daemon.cli_json("ticket", "show", str(number))
        assert (shown["group"], shown["status"]) == ("network", "open")

        # 3. Nora (level 2) resolves it from the command line; Ann is asked to verify and the
        #    desk is told.
        daemon.cli("ticket", "resolve", str(number), "--message", "Replaced the switch port.",
                   "--as", "nora")
        resolved = wait_until(lambda: to(smtp_sink, "ann@example.org", "Resolved"),
                              what="the request to verify")[0]
        assert "reply to this message" in resolved.message.get_body(("plain",)).get_content()
        wait_until(lambda: to(smtp_sink, "ada@desk.example.test", "please verify"),
                   what="the desk told")
        assert daemon.cli_json("ticket", "show", str(number))["group"] == "desk"

        # 4. Ann does not answer; a week later the auto-close job closes it.
        later = (datetime.now(timezone.utc) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
        done = daemon.cli("jobs", "run", "auto-close", "--at", later)
        assert "1 closed" in done.stdout
        closed = wait_until(lambda: to(smtp_sink, "ann@example.org", "has been closed"),
                            what="the closed notice")[0]
        assert str(closed.message["Subject"]).endswith(f"Ticket #{number} has been closed")
        assert "Replaced the switch port." in closed.message.get_body(("plain",)).get_content()

        # 5. Ann's reply reopens it.
        dovecot.append("desk", make_mail(subject=f"Re: {closed.message['Subject']}",
                                         sender="ann@example.org", body="It is down again.",
                                         in_reply_to=closed.message["Message-ID"]))
        wait_until(lambda: to(smtp_sink, "ann@example.org", "reopened"),
                   what="the reopened notice")
        shown = daemon.cli_json("ticket", "show", str(number))
        assert shown["status"] == "open"
        kinds = [e["kind"] for e in shown["events"]]
        for kind in ("created", "escalated", "reply", "status", "reopened"):
            assert kind in kinds, kinds
    finally:
        daemon.stop()
        print(daemon.log_text())


def test_the_daemon_sends_the_scheduled_report_once(tmp_path, database_url, smtp_sink):
    """A report whose slot has just passed is sent by the daemon's scheduler (in the grace
    period); a second daemon started on the same database does not send it again."""
    from tests.servers.smtpsink import free_port

    slot = datetime.now(timezone.utc).strftime("%H:%M")
    outgoing = (f"smtp: {{host: 127.0.0.1, port: {smtp_sink.port}, security: none}}\n"
                f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
    extra = (f"reports:\n  shift: {{at: \"{slot}\", days: mon-sun, to: [rep@example.test], "
             f"title: Shift status}}\n  grace: 2 hours\n")
    config = write_config(tmp_path, database_url, outgoing=outgoing, extra=extra,
                          intake=f"smtp: {{listen: '127.0.0.1:{free_port()}'}}")
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        [report] = wait_until(lambda: to(smtp_sink, "rep@example.test"), what="the report")
        assert str(report.message["Subject"]).startswith("Shift status")
        assert report.message.get_content_type() == "multipart/alternative"
        html = report.message.get_body(("html",)).get_content()
        assert "<table" in html and "<img" not in html
        text = report.message.get_body(("plain",)).get_content()
        assert "INCIDENTS AFFECTING USERS" in text and "Period:" in text
    finally:
        daemon.stop()
    again = DaemonProcess(config, tmp_path / "daemon2.log").start()
    try:
        wait_until(lambda: "job reports as at" in again.log_text(), what="the second run")
        assert len(to(smtp_sink, "rep@example.test")) == 1
    finally:
        again.stop()
