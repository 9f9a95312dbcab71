"""The portal as its own WSGI process (as under gunicorn behind nginx): a WSGI server loads
``mailticket.web:create_app`` with the config, beside a daemon on the same database. Links in
the daemon's mail point at it, what a user does there is on the ticket, and the mail it queues
is sent by the daemon."""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import write_config
from tests.servers.daemon import DaemonProcess, wait_until
from tests.servers.smtpsink import free_port

pytestmark = pytest.mark.integration


def mails(folder: Path) -> list[email.message.EmailMessage]:
    new = folder / "new"
    found = sorted(new.glob("*"), key=lambda p: p.stat().st_mtime) if new.is_dir() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in found]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


@pytest.fixture
def deployment(tmp_path, database_url):
    smtp, daemon_web, wsgi = free_port(), free_port(), free_port()
    config = write_config(tmp_path, database_url, intake=f"smtp: {{listen: '127.0.0.1:{smtp}'}}",
                          extra=f"web: {{listen: '127.0.0.1:{daemon_web}', "
                                f"base_url: 'http://127.0.0.1:{wsgi}'}}\n")
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    server = subprocess.Popen(
        [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{wsgi}", "--threads=4",
         "--call", "mailticket.web:create_app"],
        env=dict(daemon.env, MAILTICKET_CONFIG=str(config)), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(wsgi), what="the WSGI server")
        yield daemon, smtp, wsgi, tmp_path / "sent"
    finally:
        server.terminate()
        server.wait(timeout=10)
        daemon.stop()


def _answers(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/sign-in", timeout=2).status == 200
    except OSError:
        return False


def test_links_point_at_the_wsgi_server_and_what_users_do_there_reaches_the_desk(deployment):
    daemon, smtp, wsgi, sent = deployment
    with smtplib.SMTP("127.0.0.1", smtp) as client:
        client.sendmail("ann@example.org", ["desk@example.test"],
                        b"From: Ann <ann@example.org>\r\nTo: desk@example.test\r\n"
                        b"Subject: VPN drops every hour\r\nMessage-ID: <vpn@example.org>\r\n\r\n"
                        b"It drops at :00.\r\n")
    [ack] = wait_until(lambda: mails(sent), what="the acknowledgement")
    [link] = re.findall(rf"http://127\.0\.0\.1:{wsgi}/t/\S+", text_of(ack))
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = browser.open(link, timeout=10).read().decode()
    number = int(re.search(r"Ticket #(\d+):", page).group(1))
    assert "It drops at :00." in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "nonce": "n1",
                                   "note": "It also drops at :30."}).encode()
    after = browser.open(f"http://127.0.0.1:{wsgi}/tickets/{number}/notes", form, timeout=10)
    assert "It also drops at :30." in after.read().decode()
    shown = daemon.cli_json("ticket", "show", str(number))
    assert [m["body"].strip() for m in shown["messages"]][-1] == "It also drops at :30."

    # Mail the WSGI process queues goes out through the daemon's sender.
    signed_out = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    form_page = signed_out.open(f"http://127.0.0.1:{wsgi}/sign-in", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form_page).group(1)
    signed_out.open(f"http://127.0.0.1:{wsgi}/sign-in", urllib.parse.urlencode(
        {"csrf": csrf, "address": "ann@example.org"}).encode(), timeout=10)
    sign_in = wait_until(lambda: [m for m in mails(sent) if "sign-in link" in str(m["Subject"])],
                         what="the sign-in mail")
    assert re.search(rf"http://127\.0\.0\.1:{wsgi}/s/\S+", text_of(sign_in[0]))


def test_run_with_portal_workers_serves_from_its_processes_and_restarts_a_dead_one(
        tmp_path, database_url):
    smtp, web = free_port(), free_port()
    config = write_config(tmp_path, database_url, intake=f"smtp: {{listen: '127.0.0.1:{smtp}'}}",
                          extra=f"web: {{listen: '127.0.0.1:{web}', workers: 2}}\n")
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        assert "2 processes" in daemon.log_text()
        assert _answers(web)
        children = _portal_children(daemon.process.pid)
        assert len(children) == 2
        subprocess.run(["kill", "-9", str(children[0])], check=True)
        wait_until(lambda: len(_portal_children(daemon.process.pid)) == 2
                   and children[0] not in _portal_children(daemon.process.pid),
                   timeout=20, what="the dead portal process started again")
        assert "starting it again" in daemon.log_text()
        assert _answers(web)
    finally:
        assert daemon.stop() == 0
    assert _portal_children(daemon.process.pid) == []


def _portal_children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "portal serve"],
                           capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]
