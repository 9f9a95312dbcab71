"""SmtpTransport against a real aiosmtpd sink on loopback; MaildirTransport on a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailticket.config import Outgoing, OutgoingSmtp
from mailticket.errors import PermanentFailure, TemporaryFailure
from mailticket.transport import (MaildirTransport, RelayUnavailable, SmtpTransport,
                                  make_transport)
from tests.servers.smtpsink import SmtpSink, free_port

pytestmark = pytest.mark.integration

# CRLF, 8-bit UTF-8 body, a line starting with a dot: all must arrive as they were.
MESSAGE = (
    b"From: Desk <desk@example.org>\r\n"
    b"To: user@example.com\r\n"
    b"Subject: =?utf-8?q?Ticket_=2312_re=C3=A7u?=\r\n"
    b"Message-ID: <t12@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Bonjour, votre demande a \xc3\xa9t\xc3\xa9 re\xc3\xa7ue.\r\n"
    b".a line that starts with a dot\r\n"
)


def settings(host: str, port: int, **overrides) -> OutgoingSmtp:
    values = dict(host=host, port=port, security="none", username=None, password=None,
                  timeout=5.0)
    values.update(overrides)
    return OutgoingSmtp(**values)


@pytest.fixture
def transport(smtp_sink: SmtpSink):
    t = SmtpTransport(settings(smtp_sink.host, smtp_sink.port))
    yield t
    t.close()


def test_delivery_arrives_byte_exact(transport, smtp_sink):
    refused = transport.send("desk@example.org", ["user@example.com", "cc@example.com"], MESSAGE)

    assert refused == {}
    [got] = smtp_sink.wait_for(1)
    assert got.envelope_from == "desk@example.org"
    assert got.rcpt_tos == ("user@example.com", "cc@example.com")
    assert got.raw == MESSAGE
    assert got.message["Message-ID"] == "<t12@example.org>"


def test_one_connection_for_many_messages(transport, smtp_sink):
    for i in range(5):
        transport.send("desk@example.org", [f"u{i}@example.com"], MESSAGE)

    assert len(smtp_sink.wait_for(5)) == 5
    assert smtp_sink.connections == 1
    assert smtp_sink.open_connections == 1
    transport.close()
    assert smtp_sink.connections == 1


@pytest.mark.parametrize("code, expected", [
    (451, TemporaryFailure),
    (421, TemporaryFailure),
    (550, PermanentFailure),
    (554, PermanentFailure),
])
def test_data_reply_is_classified(transport, smtp_sink, code, expected):
    smtp_sink.fail_next(1, code, f"{code // 100}.0.0 told to fail")

    with pytest.raises(expected) as err:
        transport.send("desk@example.org", ["user@example.com"], MESSAGE)

    assert f"{code} {code // 100}.0.0 told to fail" in str(err.value)
    assert not isinstance(err.value, PermanentFailure if expected is TemporaryFailure
                          else TemporaryFailure)
    # The next message goes through (on the same connection unless the server closed it).
    transport.send("desk@example.org", ["user@example.com"], MESSAGE)
    assert len(smtp_sink.wait_for(1)) == 1


def test_all_recipients_refused_5xx_is_permanent(transport, smtp_sink):
    smtp_sink.reject_recipient("gone@example.com", 550, "5.1.1 No such user here")

    with pytest.raises(PermanentFailure, match="gone@example.com: 550 5.1.1 No such user here"):
        transport.send("desk@example.org", ["gone@example.com"], MESSAGE)


def test_recipient_refused_4xx_is_temporary(transport, smtp_sink):
    smtp_sink.reject_recipient("busy@example.com", 450, "4.2.1 Try later")

    with pytest.raises(TemporaryFailure, match="450"):
        transport.send("desk@example.org", ["busy@example.com"], MESSAGE)


def test_some_recipients_refused_are_returned(transport, smtp_sink):
    smtp_sink.reject_recipient("gone@example.com", 550)

    refused = transport.send("desk@example.org", ["ok@example.com", "gone@example.com"], MESSAGE)

    assert list(refused) == ["gone@example.com"]
    assert refused["gone@example.com"][0] == 550
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("ok@example.com",)


def test_relay_down_is_temporary_and_it_comes_back(transport, smtp_sink):
    transport.send("desk@example.org", ["a@example.com"], MESSAGE)
    smtp_sink.stop()

    with pytest.raises(RelayUnavailable, match="Connection refused") as err:
        transport.send("desk@example.org", ["b@example.com"], MESSAGE)
    assert isinstance(err.value, TemporaryFailure)

    smtp_sink.start()
    transport.send("desk@example.org", ["c@example.com"], MESSAGE)
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)] == [("a@example.com",), ("c@example.com",)]
    assert smtp_sink.connections == 2


def test_nobody_listening_is_temporary():
    t = SmtpTransport(settings("127.0.0.1", free_port()))
    with pytest.raises(TemporaryFailure):
        t.send("desk@example.org", ["a@example.com"], MESSAGE)


def test_reconnects_after_the_server_dropped_the_connection(transport, smtp_sink):
    transport.send("desk@example.org", ["a@example.com"], MESSAGE)
    smtp_sink.drop_connections()
    assert smtp_sink.open_connections == 0

    transport.send("desk@example.org", ["b@example.com"], MESSAGE)

    assert len(smtp_sink.wait_for(2)) == 2
    assert smtp_sink.connections == 2


def test_starttls_required_but_not_offered_is_temporary(smtp_sink):
    t = SmtpTransport(settings(smtp_sink.host, smtp_sink.port, security="starttls"))
    with pytest.raises(RelayUnavailable, match="does not offer STARTTLS"):
        t.send("desk@example.org", ["a@example.com"], MESSAGE)
    assert smtp_sink.messages == []


def test_maildir_writes_into_new(tmp_path: Path):
    t = MaildirTransport(tmp_path / "out")

    other = MESSAGE.replace(b"Subject:", b"X-Other: 1\r\nSubject:")
    t.send("desk@example.org", ["user@example.com"], MESSAGE)
    t.send("desk@example.org", ["user@example.com"], other)
    # The same mail again (a re-send after a crash before it was recorded as sent): one copy.
    t.send("desk@example.org", ["user@example.com"], MESSAGE)

    files = sorted((tmp_path / "out" / "new").iterdir())
    assert len(files) == 2 and files[0].name != files[1].name
    assert sorted(f.read_bytes() for f in files) == sorted([MESSAGE, other])
    assert list((tmp_path / "out" / "tmp").iterdir()) == []
    assert (tmp_path / "out" / "cur").is_dir()


def test_make_transport_follows_the_config(tmp_path):
    relay = settings("127.0.0.1", 25)
    assert isinstance(make_transport(Outgoing(relay, None, 30, 3600, 20)), SmtpTransport)
    assert isinstance(make_transport(Outgoing(None, tmp_path, 30, 3600, 20)), MaildirTransport)


def test_login_failure_is_temporary_and_never_shows_the_password(smtp_sink, caplog):
    from mailticket.config import Secret

    t = SmtpTransport(settings(smtp_sink.host, smtp_sink.port, username="desk",
                               password=Secret("hunter2-secret")))
    with caplog.at_level("DEBUG"), pytest.raises(RelayUnavailable) as err:
        t.send("desk@example.org", ["a@example.com"], MESSAGE)

    assert "hunter2" not in str(err.value) and "hunter2" not in repr(t)
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(security):
    from mailticket.config import Secret

    with SmtpSink(tls=security, users={"desk": "s3cret"}) as sink:
        t = SmtpTransport(settings(sink.host, sink.port, security=security, username="desk",
                                   password=Secret("s3cret")),
                          ssl_context=sink.client_ssl_context())
        t.send("desk@example.org", ["a@example.com"], MESSAGE)
        t.send("desk@example.org", ["b@example.com"], MESSAGE)
        t.close()

        assert [m.raw for m in sink.wait_for(2)] == [MESSAGE, MESSAGE]
        assert sink.logins == ["desk"] and sink.connections == 1


def test_wrong_password_is_temporary_and_not_shown(caplog):
    from mailticket.config import Secret

    with SmtpSink(tls="starttls", users={"desk": "right"}) as sink:
        t = SmtpTransport(settings(sink.host, sink.port, security="starttls", username="desk",
                                   password=Secret("wrong-pw-xyz")),
                          ssl_context=sink.client_ssl_context())
        with caplog.at_level("DEBUG"), pytest.raises(RelayUnavailable, match="535") as err:
            t.send("desk@example.org", ["a@example.com"], MESSAGE)

    assert "refused the login of 'desk'" in str(err.value)
    assert "wrong-pw-xyz" not in str(err.value) and "wrong-pw-xyz" not in caplog.text


def test_untrusted_certificate_is_refused():
    with SmtpSink(tls="starttls") as sink:
        t = SmtpTransport(settings(sink.host, sink.port, security="starttls"))
        with pytest.raises(RelayUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            t.send("desk@example.org", ["a@example.com"], MESSAGE)
        assert sink.messages == []
