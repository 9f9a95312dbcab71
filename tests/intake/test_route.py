"""route(): the decision for every kind of mail, with plain values and no database."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mailticket.desk.views import TicketView
from mailticket.intake.route import Action, find_tag, route, tag_pattern
from mailticket.mail import tokens
from mailticket.mail.classify import Kind, Verdict
from mailticket.mail.parse import Address, ParsedMail

NOW = datetime(2026, 11, 24, 12, 0)
TAG = tag_pattern("DESK")
WINDOW = timedelta(days=30)
HUMAN = Verdict(Kind.HUMAN, "no automated-mail marker")


def mail(subject="Printer broken", sender="ann@example.org", in_reply_to=(), references=()):
    return ParsedMail(
        message_id="<m1@example.org>", message_id_synthesized=False,
        sender=Address("Ann", sender) if sender else None, reply_to=(), to=(), cc=(),
        subject=subject, date=None, in_reply_to=tuple(in_reply_to),
        references=tuple(references), body="text", attachments=(),
    )


class Tickets:
    def __init__(self, *tickets, threads=None):
        self.by_number = {t.number: t for t in tickets}
        self.threads = threads or {}

    def ticket(self, number):
        return self.by_number.get(number)

    def ticket_for_message_ids(self, ids):
        for message_id in ids:
            if message_id in self.threads:
                return self.by_number[self.threads[message_id]]
        return None


def ticket(number=42, status="open", requester="ann@example.org", cc=(), closed_days_ago=None):
    closed_at = NOW - timedelta(days=closed_days_ago) if closed_days_ago is not None else None
    return TicketView(number, status, requester, frozenset(cc), closed_at)


def decide(m, lookup=None, verdict=HUMAN):
    return route(m, verdict, lookup or Tickets(), tag=TAG, reopen_window=WINDOW, now=NOW)


@pytest.mark.parametrize("subject, number", [
    ("[DESK #42] Printer", 42),
    ("Re: [DESK #42] Printer", 42),
    ("RE: AW: Fwd: [DESK #42] Printer", 42),
    ("AW: [desk #7]", 7),
    ("Printer [DESK#9]", 9),
    ("[OTHER #42] Printer", None),
    ("DESK #42", None),
    ("[DESK #] nothing", None),
    ("", None),
])
def test_tag_is_found_through_any_prefix(subject, number):
    assert find_tag(subject, TAG) == number


def test_prefix_with_regex_characters_is_taken_literally():
    pattern = tag_pattern("A.B")
    assert find_tag("[A.B #3]", pattern) == 3
    assert find_tag("[AxB #3]", pattern) is None


def test_new_mail_makes_a_ticket_and_is_acknowledged():
    decision = decide(mail())
    assert decision.action is Action.NEW_TICKET
    assert decision.acknowledge


def test_reply_with_tag_is_a_follow_up():
    decision = decide(mail("Re: [DESK #42] Printer"), Tickets(ticket()))
    assert (decision.action, decision.ticket, decision.acknowledge) == (Action.FOLLOW_UP, 42, False)


def test_reply_without_tag_follows_the_thread():
    lookup = Tickets(ticket(), threads={"<ack@desk>": 42})
    decision = decide(mail("Re: Printer", in_reply_to=["<ack@desk>"]), lookup)
    assert (decision.action, decision.ticket) == (Action.FOLLOW_UP, 42)
    decision = decide(mail("Re: Printer", references=["<x@y>", "<ack@desk>"]), lookup)
    assert (decision.action, decision.ticket) == (Action.FOLLOW_UP, 42)


def test_tag_naming_no_ticket_starts_a_new_one_and_says_so():
    decision = decide(mail("Re: [DESK #999] Printer"), Tickets(ticket()))
    assert decision.action is Action.NEW_TICKET
    assert decision.unknown_tag == 999
    assert decision.acknowledge


def test_reply_to_closed_ticket_within_window_reopens():
    lookup = Tickets(ticket(status="closed", closed_days_ago=3))
    decision = decide(mail("Re: [DESK #42] Printer"), lookup)
    assert (decision.action, decision.ticket) == (Action.REOPEN, 42)


def test_cc_may_reopen_too():
    lookup = Tickets(ticket(status="closed", closed_days_ago=3, cc={"bob@example.org"}))
    decision = decide(mail("Re: [DESK #42]", sender="Bob@Example.org"), lookup)
    assert decision.action is Action.REOPEN


def test_reply_after_the_window_opens_a_linked_ticket():
    lookup = Tickets(ticket(status="closed", closed_days_ago=31))
    decision = decide(mail("Re: [DESK #42] Printer"), lookup)
    assert (decision.action, decision.ticket, decision.acknowledge) == (Action.NEW_LINKED, 42, True)


def test_stranger_cannot_reopen_a_closed_ticket():
    lookup = Tickets(ticket(status="closed", closed_days_ago=1))
    decision = decide(mail("Re: [DESK #42]", sender="eve@example.net"), lookup)
    assert decision.action is Action.NEW_LINKED


@pytest.mark.parametrize("kind", [Kind.AUTO_REPLY, Kind.BOUNCE, Kind.LIST, Kind.REPORT])
def test_automated_mail_is_never_acknowledged(kind):
    verdict = Verdict(kind, "marker")
    assert decide(mail(), verdict=verdict).action is Action.IGNORE
    attached = decide(mail("Automatic reply: [DESK #42] Printer"), Tickets(ticket()), verdict)
    assert (attached.action, attached.ticket, attached.acknowledge) == (Action.ATTACH, 42, False)


def test_automated_mail_never_reopens():
    lookup = Tickets(ticket(status="closed", closed_days_ago=1))
    decision = decide(mail("Out of office: [DESK #42]"), lookup, Verdict(Kind.AUTO_REPLY, "x"))
    assert decision.action is Action.ATTACH


def test_our_own_mail_is_ignored_even_with_a_tag():
    decision = decide(mail("[DESK #42] Printer"), Tickets(ticket()), Verdict(Kind.OWN, "From"))
    assert decision.action is Action.IGNORE


def test_mail_without_sender_is_quarantined():
    assert decide(mail(sender=None)).action is Action.QUARANTINE


# --- who may touch a ticket (keyed tokens in our Message-IDs) ----------------------------------

KEY = b"k" * 32


def decide_with_key(m, lookup, verdict=HUMAN, **kwargs):
    return route(m, verdict, lookup, tag=TAG, reopen_window=WINDOW, now=NOW, thread_key=KEY,
                 **kwargs)


@pytest.mark.parametrize("status", ["new", "open", "resolved"])
def test_a_tag_from_someone_not_on_the_ticket_is_unverified(status):
    decision = decide_with_key(mail("Re: [DESK #42] close it", sender="mallory@example.net"),
                               Tickets(ticket(status=status)))
    assert (decision.action, decision.ticket) == (Action.UNVERIFIED, 42)
    assert "mallory@example.net" in decision.reason and not decision.acknowledge


def test_policy_new_ticket_opens_a_linked_ticket_for_an_outsider():
    decision = decide_with_key(mail("Re: [DESK #42]", sender="mallory@example.net"),
                               Tickets(ticket()), outsider_mail="new_ticket")
    assert (decision.action, decision.ticket, decision.acknowledge) == (Action.NEW_LINKED, 42, True)


def test_a_reply_to_our_mail_with_a_valid_token_is_trusted_from_anyone():
    ours = tokens.message_id(KEY, "example.test", 42)
    decision = decide_with_key(mail("Re: [DESK #42]", sender="carol@example.org",
                                    references=[ours]), Tickets(ticket()))
    assert decision.action is Action.FOLLOW_UP


def test_a_token_for_another_ticket_or_key_does_not_vouch():
    other_ticket = tokens.message_id(KEY, "example.test", 41)
    other_key = tokens.message_id(b"x" * 32, "example.test", 42)
    for thread in (other_ticket, other_key):
        decision = decide_with_key(mail("Re: [DESK #42]", sender="carol@example.org",
                                        in_reply_to=[thread]),
                                   Tickets(ticket(), ticket(number=41)))
        assert decision.action is Action.UNVERIFIED


def test_a_valid_token_finds_the_ticket_without_tag_or_stored_message():
    ours = tokens.message_id(KEY, "example.test", 42)
    decision = decide_with_key(mail("Re: your request", in_reply_to=[ours]), Tickets(ticket()))
    assert (decision.action, decision.ticket) == (Action.FOLLOW_UP, 42)


def test_requester_and_cc_are_trusted_without_a_thread():
    lookup = Tickets(ticket(cc=["bob@example.org"]))
    for sender in ("ann@example.org", "BOB@example.org"):
        assert decide_with_key(mail("Re: [DESK #42]", sender=sender), lookup).action \
            is Action.FOLLOW_UP


def test_an_outsider_on_a_closed_ticket_still_gets_a_new_linked_ticket():
    decision = decide_with_key(mail("Re: [DESK #42]", sender="mallory@example.net"),
                               Tickets(ticket(status="closed", closed_days_ago=1)))
    assert decision.action is Action.NEW_LINKED and decision.acknowledge


def test_a_bounce_finds_the_ticket_of_the_mail_it_returns():
    ours = tokens.message_id(KEY, "example.test", 42)
    bounce = Verdict(Kind.BOUNCE, "multipart/report; report-type=delivery-status")
    decision = decide_with_key(mail("Undelivered Mail Returned to Sender",
                                    sender="mailer-daemon@mx.example.org"),
                               Tickets(ticket()), verdict=bounce, about=[ours])
    assert (decision.action, decision.ticket) == (Action.ATTACH, 42)


def test_agents_may_touch_any_ticket():
    decision = decide_with_key(mail("Re: [DESK #42]", sender="Lead@Example.test"),
                               Tickets(ticket()), agents=frozenset({"lead@example.test"}))
    assert decision.action is Action.FOLLOW_UP
