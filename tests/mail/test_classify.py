"""classify(): which mail the desk may answer. A table of messages, each with the kind and the
reason we expect, then the properties of the rule table itself."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from mailticket.mail import classify as classify_module
from mailticket.mail.classify import RULES, Kind, Verdict, classify
from mailticket.mail.parse import parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"
DESK = frozenset({"Desk@Example.org", "help@example.org"})


def verdict_of(raw: bytes) -> Verdict:
    return classify(parse(raw), DESK)


def mail(*headers: str, body: str = "Hello, my laptop is broken.") -> bytes:
    lines = list(headers)
    if not any(h.lower().startswith("from:") for h in lines):
        lines.insert(0, "From: Ann User <ann@example.com>")
    if not any(h.lower().startswith("subject:") for h in lines):
        lines.append("Subject: laptop")
    return ("\n".join(lines) + "\n\n" + body + "\n").encode()


@pytest.mark.parametrize("name, kind, reason", [
    ("encoded_subject.eml", Kind.HUMAN, "no automated-mail marker"),
    ("html_only.eml", Kind.HUMAN, "no automated-mail marker"),
    ("forwarded_message.eml", Kind.HUMAN, "no automated-mail marker"),
    ("autoreply_rfc3834.eml", Kind.AUTO_REPLY, "Auto-Submitted: auto-replied"),
    ("autoreply_exchange.eml", Kind.AUTO_REPLY, "X-Auto-Response-Suppress: All"),
    ("autoreply_subject_only.eml", Kind.AUTO_REPLY, "auto-reply subject: Abwesenheitsnotiz"),
    ("dsn.eml", Kind.BOUNCE, "multipart/report; report-type=delivery-status"),
    ("mdn.eml", Kind.REPORT, "multipart/report; report-type=disposition-notification"),
    ("list_post.eml", Kind.LIST, "list-id: Users <users.lists.example.org>"),
])
def test_fixture_mails(name, kind, reason):
    verdict = classify(parse((FIXTURES / name).read_bytes()), DESK)
    assert verdict.kind is kind
    assert verdict.reason.startswith(reason)
    assert verdict.acknowledge is (kind is Kind.HUMAN)


@pytest.mark.parametrize("raw, kind, reason", [
    # ours: never answer ourselves
    (mail("From: Desk <DESK@example.org>"), Kind.OWN, "From is a desk address: desk@example.org"),
    (mail("X-Loop: help@example.org"), Kind.OWN, "X-Loop: help@example.org"),
    (mail("X-Loop: <Help@Example.org>"), Kind.OWN, "X-Loop"),
    (mail("X-Mailticket-Ticket: 12"), Kind.OWN, "X-Mailticket-Ticket header present"),
    (mail("X-Loop: other@example.net"), Kind.HUMAN, "no automated-mail marker"),
    # bounces
    (mail("From: MAILER-DAEMON@mx.example.net"), Kind.BOUNCE, "From: mailer-daemon@"),
    (mail('From: "MAILER DAEMON" <>', "Subject: Banned file"), Kind.BOUNCE, "From: "),
    (mail("From: postmaster@example.net", "Return-Path: <>"), Kind.BOUNCE, "From: postmaster@"),
    (mail("From: postmaster@example.net", "Subject: Message blocked"), Kind.BOUNCE,
     "From: postmaster@example.net"),
    # Issue #2: postmaster senders are never acknowledged, even the admin writing by hand.
    (mail("From: Postmaster <postmaster@example.net>", "Subject: Our new mail server"),
     Kind.BOUNCE, "From: postmaster@example.net"),
    (mail("Subject: Undeliverable: RE: invoice"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: Undelivered Mail Returned to Sender"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: Delivery Status Notification (Failure)"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: Mail delivery failed: returning message to sender"), Kind.BOUNCE, "bounce"),
    (mail("Subject: failure notice"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: Returned mail: see transcript for details"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: DELIVERY FAILURE: User x not listed"), Kind.BOUNCE, "bounce subject"),
    (mail("Subject: Warning: message 1KNm-000 delayed 24 hours"), Kind.BOUNCE, "bounce subject"),
    # people writing about bounces are people
    (mail("Subject: Re: Undeliverable: RE: invoice"), Kind.HUMAN, "no automated-mail marker"),
    (mail("Subject: undeliverable emails since Monday"), Kind.HUMAN, "no automated-mail marker"),
    # reports
    (mail("Content-Type: multipart/report; report-type=feedback-report; boundary=x"),
     Kind.REPORT, "multipart/report; report-type=feedback-report"),
    (mail("Subject: Read: your request", "Return-Path: <>"), Kind.REPORT, "read receipt"),
    (mail("Subject: Read: your request", body="Your message was read on Monday."),
     Kind.REPORT, "read receipt"),
    (mail("Subject: Read: the manual please"), Kind.HUMAN, "no automated-mail marker"),
    # auto-replies (RFC 3834 and the usual vendor headers)
    (mail("Auto-Submitted: auto-generated (failure)"), Kind.AUTO_REPLY,
     "Auto-Submitted: auto-generated (failure)"),
    (mail("Auto-Submitted: no"), Kind.HUMAN, "no automated-mail marker"),
    (mail("X-Autoreply: yes"), Kind.AUTO_REPLY, "x-autoreply: yes"),
    (mail("X-Autorespond: 123"), Kind.AUTO_REPLY, "x-autorespond: 123"),
    (mail("X-Auto-Response-Suppress: OOF, AutoReply"), Kind.AUTO_REPLY,
     "X-Auto-Response-Suppress"),
    (mail("X-Auto-Response-Suppress: DR, RN, NRN"), Kind.HUMAN, "no automated-mail marker"),
    (mail("Precedence: auto_reply"), Kind.AUTO_REPLY, "Precedence: auto_reply"),
    (mail("Return-Path: <>"), Kind.AUTO_REPLY, "null Return-Path <> (RFC 3834)"),
    (mail("Subject: Automatic reply: laptop"), Kind.AUTO_REPLY, "auto-reply subject"),
    (mail("Subject: Auto: laptop"), Kind.AUTO_REPLY, "auto-reply subject"),
    (mail("Subject: Out of Office AutoReply: laptop"), Kind.AUTO_REPLY, "auto-reply subject"),
    (mail("Subject: Réponse automatique : laptop"), Kind.AUTO_REPLY, "auto-reply subject"),
    (mail("Subject: =?windows-1250?Q?Automatyczna_odpowied=9F:_x?="), Kind.AUTO_REPLY,
     "auto-reply subject"),
    (mail("Subject: Your email requires verification verify#123"), Kind.AUTO_REPLY,
     "challenge-response subject"),
    (mail("From: No Reply <no-reply@shop.example>"), Kind.AUTO_REPLY, "robot sender"),
    (mail("From: jira-noreply@corp.example"), Kind.AUTO_REPLY, "robot sender"),
    (mail("From: bugzilla-daemon@bugs.example"), Kind.AUTO_REPLY, "robot sender"),
    (mail("From: scanner@host.example", "Return-Path: <root@host.example>"), Kind.AUTO_REPLY,
     "sent by a system account"),
    # root re-delivering a person's mail is not a robot
    (mail("From: alex@example.com", "Return-Path: <root@relay.example.net>"), Kind.HUMAN,
     "no automated-mail marker"),
    (mail("From: Noreen <noreen@example.com>"), Kind.HUMAN, "no automated-mail marker"),
    # lists
    (mail("List-Id: <users.lists.example.org>"), Kind.LIST, "list-id"),
    (mail("List-Post: <mailto:users@lists.example.org>"), Kind.LIST, "list-post"),
    (mail("Mailing-List: contact users-help@example.org; run by ezmlm"), Kind.LIST,
     "mailing-list"),
    (mail("X-Mailman-Version: 2.1"), Kind.LIST, "x-mailman-version"),
    (mail("Precedence: bulk"), Kind.LIST, "Precedence: bulk"),
    (mail("Precedence: junk"), Kind.LIST, "Precedence: junk"),
    (mail("List-Unsubscribe: <mailto:u@x>", "List-Help: <mailto:h@x>"), Kind.LIST,
     "List-Unsubscribe with other List-* headers"),
    (mail("List-Unsubscribe: <mailto:u@x>"), Kind.HUMAN, "no automated-mail marker"),
    (mail("Sender: users-bounces@lists.example.org"), Kind.LIST, "Sender is a list address"),
    (mail("From: x@yahoogroups.com"), Kind.LIST, "From a list host: yahoogroups.com"),
], ids=lambda value: value.decode().split("\n")[1][:50] if isinstance(value, bytes) else None)
def test_rules(raw, kind, reason):
    verdict = verdict_of(raw)
    assert (verdict.kind, verdict.reason[:len(reason)]) == (kind, reason)


def test_first_rule_wins_in_the_documented_order():
    assert [name for name, _ in RULES] == ["own", "bounce", "report", "auto_reply", "list"]
    # a bounce that also carries Auto-Submitted and Precedence is a bounce
    both = mail("From: MAILER-DAEMON@mx.example.net", "Auto-Submitted: auto-replied",
                "Precedence: bulk")
    assert verdict_of(both).kind is Kind.BOUNCE
    # our own mail looping back is "own" even when it looks like an auto-reply
    assert verdict_of(mail("X-Loop: desk@example.org", "Auto-Submitted: auto-replied")).kind \
        is Kind.OWN
    # a read receipt sent by a postmaster is a report, not a bounce
    mdn = mail("From: postmaster@example.net", "Return-Path: <>",
               "Content-Type: multipart/report; report-type=disposition-notification; boundary=x")
    assert verdict_of(mdn).kind is Kind.REPORT


def test_hostile_subject_is_matched_as_text_never_as_a_pattern():
    nasty = mail("Subject: (a+)+$ [unclosed \\ Auto: .* " + "a" * 5000)
    assert verdict_of(nasty).kind is Kind.HUMAN


def test_no_message_text_is_compiled_as_a_regex():
    """Every re.compile/re.search pattern in classify.py is a literal we wrote."""
    tree = ast.parse(inspect.getsource(classify_module))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.func.attr in ("compile", "search", "match", "fullmatch", "split",
                                       "sub", "findall", "finditer")):
            assert isinstance(node.args[0], ast.Constant), ast.unparse(node)
