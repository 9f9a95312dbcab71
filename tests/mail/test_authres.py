"""Authentication-Results from trusted servers vouch for the From address."""

from __future__ import annotations

import pytest

from mailticket.mail.authres import vouched_by
from mailticket.mail.parse import parse

TRUSTED = frozenset({"mx.desk.test"})


def mail(*results: str, sender="nora@desk.example.test"):
    headers = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return parse(f"{headers}From: {sender}\r\nSubject: x\r\n\r\nbody\r\n".encode())


@pytest.mark.parametrize("result, why", [
    ("mx.desk.test; dkim=pass header.d=desk.example.test header.s=s1",
     "dkim=pass header.d=desk.example.test (by mx.desk.test)"),
    ("mx.desk.test; dkim=pass (good signature) header.d=example.test",  # a parent domain
     "dkim=pass header.d=example.test (by mx.desk.test)"),
    ("mx.desk.test 1; spf=pass smtp.mailfrom=bounce@desk.example.test",
     "spf=pass smtp.mailfrom=desk.example.test (by mx.desk.test)"),
    ("MX.DESK.TEST; dmarc=pass header.from=desk.example.test",
     "dmarc=pass header.from=desk.example.test (by mx.desk.test)"),
    ("mx.desk.test; spf=fail smtp.mailfrom=desk.example.test; dkim=pass header.i=@desk.example.test",
     "dkim=pass header.d=desk.example.test (by mx.desk.test)"),
])
def test_a_pass_about_the_from_domain_from_a_trusted_server_vouches(result, why):
    assert vouched_by(mail(result), TRUSTED) == why


@pytest.mark.parametrize("result", [
    "mx.evil.test; dkim=pass header.d=desk.example.test",           # not our server
    "mx.desk.test; dkim=fail header.d=desk.example.test",
    "mx.desk.test; dkim=pass header.d=evil.test",                    # someone else's signature
    "mx.desk.test; dkim=pass header.d=xdesk.example.test",           # not a parent domain
    "mx.desk.test; spf=softfail smtp.mailfrom=desk.example.test",
    "mx.desk.test; none",
    "garbage without structure",
    "",
])
def test_anything_else_does_not(result):
    assert vouched_by(mail(result), TRUSTED) is None


def test_no_trusted_servers_or_no_sender_vouches_for_nothing():
    good = "mx.desk.test; dkim=pass header.d=desk.example.test"
    assert vouched_by(mail(good), frozenset()) is None
    assert vouched_by(parse(f"Authentication-Results: {good}\r\n\r\nx".encode()), TRUSTED) is None
