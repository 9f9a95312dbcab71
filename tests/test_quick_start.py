"""The README's quick start: the shipped default config runs with no mail server, the SMTP
one-liner gets an acknowledgement written to the local maildir, and the agent closes it."""

from __future__ import annotations

import re
import smtplib
import urllib.request
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
import yaml

from mailticket import config as configmod
from tests.servers.daemon import DaemonProcess, wait_until
from tests.servers.smtpsink import free_port

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "mailticket.yaml"
README_MAIL = (b"From: Ann <ann@example.org>\r\nTo: desk@example.test\r\n"
               b"Subject: Printer on floor 3 is broken\r\nMessage-ID: <1@example.org>\r\n\r\n"
               b"It prints blank pages.\r\n")

pytestmark = pytest.mark.integration


def test_the_default_config_needs_no_mail_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = configmod.load(DEFAULT, environ={})
    assert settings.database == f"sqlite:///{tmp_path / 'var' / 'mailticket.db'}"
    assert settings.intake.imap == ()
    assert (settings.intake.smtp.host, settings.intake.smtp.port) == ("127.0.0.1", 8025)
    assert settings.outgoing.smtp is None
    assert settings.outgoing.maildir == tmp_path / "var" / "sent"
    assert (settings.web.host, settings.web.port) == ("127.0.0.1", 8080)
    assert settings.web.base_url == "http://127.0.0.1:8080"


def test_readme_one_liner_gets_an_acknowledgement_in_the_maildir(tmp_path):
    # The shipped default, moved to a free port so the test never collides with a running desk.
    port, web_port = free_port(), free_port()
    data = yaml.safe_load(DEFAULT.read_text())
    data["intake"]["smtp"]["listen"] = f"127.0.0.1:{port}"
    data["web"] = {"listen": f"127.0.0.1:{web_port}", "base_url": f"http://127.0.0.1:{web_port}"}
    config = tmp_path / "config" / "mailticket.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(data))
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        smtplib.SMTP("127.0.0.1", port).sendmail("ann@example.org", ["desk@example.test"],
                                                 README_MAIL)
        new = config.parent / "var" / "sent" / "new"
        [ack_file] = wait_until(lambda: list(new.glob("*")) if new.is_dir() else [],
                                what="the acknowledgement in var/sent/new")
        ack = message_from_bytes(ack_file.read_bytes(), policy=default)
        number = int(re.search(r"\[DESK #(\d+)\]", str(ack["Subject"])).group(1))
        assert ack["To"].addresses[0].addr_spec == "ann@example.org"
        # The README: the acknowledgement's link opens the ticket in the browser.
        [link] = re.findall(rf"http://127\.0\.0\.1:{web_port}/t/\S+",
                            ack.get_body(("plain",)).get_content())
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        html = opener.open(link, timeout=10).read().decode()
        assert f"Ticket #{number}: Printer on floor 3 is broken" in html
        assert "It prints blank pages." in html
        daemon.cli("ticket", "close", str(number), "--message", "Replaced the fuser unit.")
        closed = wait_until(lambda: [p for p in new.glob("*") if b"has been closed" in p.read_bytes()],
                            what="the closed notice")
        assert closed
    finally:
        assert daemon.stop() == 0
