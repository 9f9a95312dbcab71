"""The whole story through the daemon process, against a real Dovecot and a real SMTP relay sink:
mail in -> acknowledgement -> follow-up -> `ticket close` -> "Ticket #N has been closed" -> the
user's reply reopens it; an out-of-office gets no answer; a broken message is quarantined and
the next good one still becomes a ticket; the SMTP intake path works the same."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.helpers import DESK, make_mail, write_config
from tests.servers.daemon import DaemonProcess, wait_until
from tests.servers.smtpsink import free_port

pytestmark = pytest.mark.integration

TAG = re.compile(r"\[DESK #(\d+)\]")


@pytest.fixture
def daemon(tmp_path, database_url, fresh_mailbox, smtp_sink):
    intake_port = free_port()
    intake = (f"imap:\n"
              f"    - {{host: 127.0.0.1, port: {fresh_mailbox.port}, security: none, "
              f"username: desk, password: '${{DESK_IMAP_PASSWORD}}', idle: true, poll_interval: 1}}\n"
              f"    - {{host: 127.0.0.1, port: {fresh_mailbox.port}, security: none, "
              f"username: desk2, password: '${{DESK_IMAP_PASSWORD}}', idle: false, poll_interval: 0.5}}\n"
              f"  smtp: {{listen: '127.0.0.1:{intake_port}', protocol: smtp}}")
    outgoing = (f"smtp: {{host: 127.0.0.1, port: {smtp_sink.port}, security: none}}\n"
                f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
    config = write_config(tmp_path, database_url, intake=intake, outgoing=outgoing)
    process = DaemonProcess(config, tmp_path / "daemon.log", env={"DESK_IMAP_PASSWORD": "secret"})
    process.start()
    process.intake_port = intake_port
    yield process
    process.stop()
    print(process.log_text())  # shown by pytest when the test failed
    assert "secret" not in process.log_text()


def mails_to(sink, address, subject_part):
    return [m for m in sink.messages
            if address in m.rcpt_tos and subject_part in str(m.message["Subject"])]


def test_the_whole_story_by_imap(daemon, fresh_mailbox, smtp_sink):
    dovecot = fresh_mailbox
    dovecot.append("desk", make_mail(subject="Printer on floor 3 is broken",
                                     sender="Ann User <ann@example.org>"))
    ack = wait_until(lambda: mails_to(smtp_sink, "ann@example.org", "Printer"), what="the ack")[0]
    number = int(TAG.search(str(ack.message["Subject"])).group(1))
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert f"ticket #{number}" in ack.message.get_body(("plain",)).get_content()
    wait_until(lambda: dovecot.folder_uids("desk", "Processed"), what="the move to Processed")
    assert dovecot.folder_uids("desk", "INBOX") == []

    # The user's reply with the tag lands on the same ticket.
    dovecot.append("desk", make_mail(subject=f"Re: {ack.message['Subject']}",
                                     sender="ann@example.org", body="It also jams.",
                                     in_reply_to=ack.message["Message-ID"]))
    shown = wait_until(lambda: (t := daemon.cli_json("ticket", "show", str(number)))
                       and len(t["messages"]) == 2 and t, what="the follow-up")
    assert "It also jams." in shown["messages"][1]["body"]

    # The agent closes it from the command line; the user is told.
    daemon.cli("ticket", "close", str(number), "--message", "Replaced the fuser unit.")
    closed = wait_until(lambda: mails_to(smtp_sink, "ann@example.org", "has been closed"),
                        what="the closed notice")[0]
    assert str(closed.message["Subject"]) == f"[DESK #{number}] Ticket #{number} has been closed"
    assert "Replaced the fuser unit." in closed.message.get_body(("plain",)).get_content()

    # The user's reply reopens it.
    dovecot.append("desk", make_mail(subject=f"Re: {closed.message['Subject']}",
                                     sender="ann@example.org", body="Jammed again this morning.",
                                     in_reply_to=closed.message["Message-ID"]))
    wait_until(lambda: mails_to(smtp_sink, "ann@example.org", "reopened"), what="the reopened notice")
    assert daemon.cli_json("ticket", "show", str(number))["status"] == "open"


def test_automated_and_broken_mail(daemon, fresh_mailbox, smtp_sink):
    dovecot = fresh_mailbox
    dovecot.append("desk", make_mail(subject="Automatic reply: away until Monday",
                                     sender="Olly <olly@example.org>",
                                     headers={"Auto-Submitted": "auto-replied"}))
    dovecot.append("desk", b"Subject: no sender here\r\nMessage-ID: <broken@x>\r\n\r\nhello\r\n")
    dovecot.append("desk", make_mail(subject="VPN does not connect", sender="bob@example.org"))
    ack = wait_until(lambda: mails_to(smtp_sink, "bob@example.org", "VPN"), what="bob's ack")[0]
    assert TAG.search(str(ack.message["Subject"]))
    # Mail is sent in the order it was queued: an ack to olly would have come first.
    assert mails_to(smtp_sink, "olly@example.org", "") == []
    wait_until(lambda: dovecot.folder_uids("desk", "Quarantine"), what="the quarantine move")
    held = daemon.cli_json("quarantine", "list")
    assert len(held) == 1 and "sender" in held[0]["error"]
    assert dovecot.folder_uids("desk", "INBOX") == []
    tickets = daemon.cli_json("ticket", "list")
    assert [t["requester"] for t in tickets] == ["bob@example.org"]


def test_the_smtp_intake_path(daemon, smtp_sink):
    raw = make_mail(subject="Cannot log in", sender="cat@example.org")
    with smtplib.SMTP("127.0.0.1", daemon.intake_port, timeout=10) as client:
        refused = client.sendmail("cat@example.org", [DESK], raw)
    assert refused == {}
    ack = wait_until(lambda: mails_to(smtp_sink, "cat@example.org", "Cannot log in"),
                     what="the ack")[0]
    number = int(TAG.search(str(ack.message["Subject"])).group(1))
    reply = make_mail(subject=f"RE: {ack.message['Subject']}", sender="cat@example.org",
                      body="Now it works, thanks")
    with smtplib.SMTP("127.0.0.1", daemon.intake_port, timeout=10) as client:
        client.sendmail("cat@example.org", [DESK], reply)
    ticket = daemon.cli_json("ticket", "show", str(number))
    assert len(ticket["messages"]) == 2  # 250 came after the commit


def test_same_mail_to_two_desk_mailboxes_makes_one_ticket(daemon, fresh_mailbox, smtp_sink):
    raw = make_mail(subject="Shared drive is full", sender="dan@example.org",
                    to="desk@example.test, desk2@example.test")
    fresh_mailbox.append("desk", raw)
    fresh_mailbox.append("desk2", raw)
    wait_until(lambda: fresh_mailbox.folder_uids("desk", "Processed")
               and fresh_mailbox.folder_uids("desk2", "Processed"), what="both mailboxes read")
    wait_until(lambda: mails_to(smtp_sink, "dan@example.org", "Shared drive"), what="the ack")
    tickets = daemon.cli_json("ticket", "list")
    assert [t["requester"] for t in tickets] == ["dan@example.org"]
    assert tickets[0]["cc"] == []  # desk2 is one of our own addresses (desk.aliases)
    # Another mail through the second mailbox still gets its own answer, so the first ack was
    # not simply the last one out: there is exactly one for dan.
    fresh_mailbox.append("desk2", make_mail(subject="Second question", sender="eve@example.org"))
    wait_until(lambda: mails_to(smtp_sink, "eve@example.org", "Second question"), what="eve's ack")
    assert len(mails_to(smtp_sink, "dan@example.org", "Shared drive")) == 1


def test_sigterm_stops_the_daemon_cleanly(daemon):
    assert daemon.stop(timeout=20) == 0
    assert "stopped" in daemon.log_text()
