"""The running daemon against a robot that answers every mail and sets no auto-reply header:
the exchange stops within the per-recipient cap on automatic mail, and what was held back is
on record. Real Dovecot, real SMTP sink, the daemon as a child process."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import make_mail, write_config
from tests.servers.daemon import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

ROBOT = "robot@example.net"
CAP = 3


class Robot:
    """Answers every mail it receives at the sink with a fresh mail to the desk: its own
    subject (no ticket tag), no In-Reply-To, no Auto-Submitted or Precedence: the worst kind."""

    def __init__(self, sink, dovecot):
        self.sink, self.dovecot = sink, dovecot
        self.answered = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _received(self):
        return [m for m in self.sink.messages if ROBOT in m.rcpt_tos]

    def _run(self):
        while not self.stop.wait(0.05):
            for _ in self._received()[self.answered:]:
                self.answered += 1
                self.dovecot.append("desk", make_mail(
                    subject=f"Thank you for contacting us (case {self.answered})",
                    sender=f"Helpful Robot <{ROBOT}>",
                    body="We have received your message and will get back to you.\n"))


def test_a_robot_that_answers_everything_gets_at_most_the_cap(tmp_path, database_url,
                                                               fresh_mailbox, smtp_sink):
    intake = (f"imap:\n    - {{host: 127.0.0.1, port: {fresh_mailbox.port}, security: none, "
              f"username: desk, password: secret, idle: true, poll_interval: 1}}")
    outgoing = (f"smtp: {{host: 127.0.0.1, port: {smtp_sink.port}, security: none}}\n"
                f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
    config = write_config(tmp_path, database_url, intake=intake, outgoing=outgoing,
                          extra=f"limits:\n  auto_replies_per_recipient_per_hour: {CAP}\n")
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    robot = Robot(smtp_sink, fresh_mailbox)
    robot.thread.start()
    try:
        fresh_mailbox.append("desk", make_mail(subject="Hello from the robot",
                                               sender=f"Helpful Robot <{ROBOT}>"))
        # The robot's first mail and its answers to our first CAP acks make CAP + 1 tickets;
        # the last one's ack is held, so the robot hears nothing more and the loop ends.
        held = wait_until(lambda: [o for o in daemon.cli_json("outbox", "list")
                                   if o["status"] == "held"], timeout=60, what="a held ack")
        wait_until(lambda: fresh_mailbox.folder_uids("desk", "INBOX") == [], what="INBOX read")
        assert [o["kind"] for o in held] == ["ack"] and held[0]["recipients"] == [ROBOT]
        assert "auto_replies_per_recipient_per_hour" in held[0]["last_error"]
        assert [o for o in daemon.cli_json("outbox", "list") if o["status"] == "pending"] == []
        assert len([m for m in smtp_sink.messages if ROBOT in m.rcpt_tos]) == CAP
        assert robot.answered == CAP
        tickets = daemon.cli_json("ticket", "list")
        assert len(tickets) == CAP + 1  # every robot mail is on record, none was lost
    finally:
        robot.stop.set()
        robot.thread.join(5)
        daemon.stop()
        print(daemon.log_text())
