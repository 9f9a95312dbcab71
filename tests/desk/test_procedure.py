"""The desk's procedure on a real database: new tickets go to the level 1 group, agents assign
and escalate them (level 1 -> 2 -> 3 as the config allows), level 2 resolves and hands them back,
the user is asked to verify; every change is an event and tells whoever must act."""

from __future__ import annotations

import email
from datetime import datetime
from email.policy import default

import pytest

from mailticket.db import transaction
from mailticket.errors import InvalidRequest
from mailticket.intake.items import RawMail
from mailticket.models import Event, Outbox, Ticket
from mailticket.wiring import build
from tests.helpers import Clock, make_mail, settings_for

GROUPS = """\
groups:
  desk:    {level: 1, members: ["Ada Lovelace <ada@desk.example.test>", "Al <al@desk.example.test>"]}
  network: {level: 2, members: ["Nora <nora@desk.example.test>"], address: network@desk.example.test}
  apps:    {level: 2, members: ["Alan Kay <alan@desk.example.test>"]}
  lead:    {level: 3, members: ["Lee <lee@desk.example.test>"]}
new_tickets_to: desk
escalation: {desk: [network, apps], network: [lead], apps: [lead]}
"""


@pytest.fixture
def make_app(tmp_path, database_url):
    """Apps with the GROUPS config (or ``extra``) and desk settings changed by keyword."""
    from dataclasses import replace

    apps = []

    def make(extra=GROUPS, **desk):
        settings = settings_for(tmp_path, database_url, extra=extra)
        if desk:
            settings = replace(settings, desk=replace(settings.desk, **desk))
        apps.append(build(settings, clock=Clock()))
        return apps[-1]

    yield make
    for made in apps:
        made.close()


@pytest.fixture
def app(make_app):
    return make_app()


def new_ticket(app, subject="Network is slow", sender="Ann <ann@example.org>"):
    [result] = app.pipeline.process_batch([RawMail("test", subject, make_mail(
        subject=subject, sender=sender))])
    return result.ticket


def act(app, method, *args):
    with transaction(app.db):
        return getattr(app.desk, method)(*args)


def mails(kind):
    return [(o.recipients, email.message_from_bytes(bytes(o.content), policy=default))
            for o in Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)]


def history(number):
    return [(e.kind, e.actor, e.detail) for e in
            Event.select().where(Event.ticket == number).order_by(Event.id)]


def test_new_tickets_go_to_the_configured_group(app):
    number = new_ticket(app)
    ticket = Ticket.get_by_id(number)
    assert (ticket.group, ticket.agent, ticket.status) == ("desk", None, "new")


def test_assign_names_an_agent_by_name_local_part_or_address_and_tells_them(app):
    number = new_ticket(app)
    act(app, "assign", number, "ada", "nora")
    ticket = Ticket.get_by_id(number)
    assert (ticket.agent, ticket.status) == ("nora@desk.example.test", "open")
    [(to, mail)] = mails("assigned")
    assert to == ["nora@desk.example.test"]
    assert f"[DESK #{number}]" in mail["Subject"]
    assert "Nora <nora@desk.example.test>" in mail.get_body(("plain",)).get_content()
    assert ("assigned", "ada", "Nora <nora@desk.example.test>") in history(number)
    act(app, "assign", number, "ada", "Alan Kay")
    act(app, "assign", number, "ada", "ada@desk.example.test")
    assert Ticket.get_by_id(number).agent == "ada@desk.example.test"


@pytest.mark.parametrize("who, problem", [
    ("zed", "no agent 'zed' (agents: Ada Lovelace <ada@desk.example.test>, Al <al@"),
    ("al", None),  # "al" is Al's local part: exact beats the "Alan" first name
])
def test_assign_refuses_an_unknown_agent(app, who, problem):
    number = new_ticket(app)
    if problem is None:
        act(app, "assign", number, "ada", who)
        assert Ticket.get_by_id(number).agent == "al@desk.example.test"
        return
    with pytest.raises(InvalidRequest) as raised:
        act(app, "assign", number, "ada", who)
    assert str(raised.value).startswith(problem)
    assert Ticket.get_by_id(number).agent is None


def test_escalation_follows_the_configured_chain_and_tells_the_group(app):
    number = new_ticket(app)
    act(app, "assign", number, "ada", "ada")
    act(app, "escalate", number, "ada", "network", "Switch on floor 3 drops packets.")
    ticket = Ticket.get_by_id(number)
    assert (ticket.group, ticket.agent, ticket.status) == ("network", None, "open")
    [(to, mail)] = mails("escalated")
    assert to == ["network@desk.example.test"]  # the group's own address
    body = mail.get_body(("plain",)).get_content()
    assert "from desk to network (level 2)" in body and "drops packets" in body
    act(app, "escalate", number, "nora", "lead", "Needs a new switch: budget.")
    assert Ticket.get_by_id(number).group == "lead"
    assert mails("escalated")[-1][0] == ["lee@desk.example.test"]  # no address: the members
    kinds = [(k, d.split(":")[0]) for k, _, d in history(number) if k == "escalated"]
    assert kinds == [("escalated", "desk -> network (level 2)"),
                     ("escalated", "network -> lead (level 3)")]


@pytest.mark.parametrize("first, target, problem", [
    (None, "nowhere", "no group 'nowhere' (groups: desk, network, apps, lead)"),
    (None, "lead", "desk does not escalate to lead (it escalates to: network, apps)"),
    (None, "desk", "ticket #{n} is already with desk"),
    ("network", "apps", "network does not escalate to apps (it escalates to: lead)"),
])
def test_escalation_outside_the_chain_is_refused_with_the_reason(app, first, target, problem):
    number = new_ticket(app)
    if first:
        act(app, "escalate", number, "ada", first, "over to you")
    before = history(number)
    with pytest.raises(InvalidRequest) as raised:
        act(app, "escalate", number, "ada", target, "please")
    assert str(raised.value) == problem.format(n=number)
    assert history(number) == before


def test_an_empty_escalation_message_is_refused(app):
    number = new_ticket(app)
    with pytest.raises(InvalidRequest, match="escalation message text is empty"):
        act(app, "escalate", number, "ada", "network", "  ")


def test_level_2_resolves_the_ticket_goes_back_to_the_desk_and_the_user_is_asked(app):
    number = new_ticket(app)
    act(app, "escalate", number, "ada", "network", "slow links")
    act(app, "resolve", number, "nora", "Replaced the switch.")
    ticket = Ticket.get_by_id(number)
    assert (ticket.status, ticket.group, ticket.resolution) == ("resolved", "desk",
                                                                "Replaced the switch.")
    assert ticket.resolved_at == datetime(2026, 11, 24, 9, 0)
    [(to, mail)] = mails("handed_back")
    assert to == ["ada@desk.example.test", "al@desk.example.test"]
    [(to, mail)] = mails("resolved")
    assert to == ["ann@example.org"]
    body = mail.get_body(("plain",)).get_content()
    assert "Replaced the switch." in body and "reply to this message" in body
    assert mail.get_body(("html",)) is not None
    with pytest.raises(InvalidRequest, match="already resolved"):
        act(app, "resolve", number, "nora", "again")


def test_the_users_reply_to_a_resolved_ticket_sends_it_back_to_open(app):
    number = new_ticket(app)
    act(app, "resolve", number, "ada", "Restarted the router.")
    app.pipeline.process_batch([RawMail("test", "reply", make_mail(
        subject=f"Re: [DESK #{number}] Resolved", sender="ann@example.org",
        body="Still slow."))])
    assert Ticket.get_by_id(number).status == "open"


def test_agents_of_the_groups_may_write_to_any_ticket(app):
    number = new_ticket(app)
    app.pipeline.process_batch([RawMail("test", "agent", make_mail(
        subject=f"Re: [DESK #{number}] Escalated", sender="Nora <nora@desk.example.test>",
        body="Looking at it."))])
    kinds = [k for k, _, _ in history(number)]
    assert "unverified_mail" not in kinds and kinds.count("reply") == 1  # worked as the agent's


def test_a_closed_ticket_cannot_be_escalated(app):
    number = new_ticket(app)
    act(app, "close", number, "ada", "done")
    with pytest.raises(InvalidRequest, match="is closed; reopen it first"):
        act(app, "escalate", number, "ada", "network", "more")


# --- agents by mail ------------------------------------------------------------------------------

def agent_mail(app, number, body, sender="Nora <nora@desk.example.test>", to=None, key=None,
               headers=None):
    [result] = app.pipeline.process_batch([RawMail("test", key or body[:40], make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender=sender, body=body,
        to=to or "desk@example.test", headers=headers))])
    return result


def test_an_agents_mail_is_relayed_to_the_requester_from_the_desk(app):
    number = new_ticket(app)
    agent_mail(app, number, "Hello Ann,\n\nplease restart your laptop.\n")
    [(to, mail)] = mails("reply")
    assert to == ["ann@example.org"]
    assert mail["From"].addresses[0].addr_spec == "desk@example.test"
    assert f"[DESK #{number}]" in mail["Subject"] and mail["In-Reply-To"]
    assert "please restart your laptop" in mail.get_body(("plain",)).get_content()
    ticket = Ticket.get_by_id(number)
    assert ticket.status == "open" and ticket.first_response_at is not None
    assert mails("agent_report") == []  # no commands: nothing to report


def test_commands_at_the_top_are_run_removed_from_the_relay_and_reported(app):
    number = new_ticket(app)
    agent_mail(app, number, "#assign nora\n#escalate network switch on 3 drops packets\n"
                            "#frobnicate now\n\nHello Ann, the network team has it now.\n")
    ticket = Ticket.get_by_id(number)
    assert (ticket.group, ticket.agent) == ("network", None)  # escalation clears the agent
    [(_, relayed)] = mails("reply")
    text = relayed.get_body(("plain",)).get_content()
    assert "#assign" not in text and "the network team has it now" in text
    [(to, report)] = mails("agent_report")
    assert to == ["nora@desk.example.test"]
    lines = report.get_body(("plain",)).get_content()
    assert "#assign nora: assigned to nora@desk.example.test" in lines
    assert "#escalate network switch on 3 drops packets: escalated to network" in lines
    assert "#frobnicate now: unknown command, nothing done (commands: #assign" in lines
    assert "Your text was sent to the requester" in lines
    [(_, escalated)] = mails("escalated")
    assert "switch on 3 drops packets" in escalated.get_body(("plain",)).get_content()


def test_a_failing_command_is_reported_and_the_others_still_run(app):
    number = new_ticket(app)
    agent_mail(app, number, "#escalate moon\n#assign al\n")
    assert Ticket.get_by_id(number).agent == "al@desk.example.test"
    [(_, report)] = mails("agent_report")
    lines = report.get_body(("plain",)).get_content()
    assert "#escalate moon: not done: no group 'moon'" in lines
    assert "Nothing was sent to the requester" in lines
    assert mails("reply") == []


def test_resolve_by_mail_takes_the_text_as_the_resolution_and_sends_it_once(app):
    number = new_ticket(app)
    agent_mail(app, number, "#resolve\nReplaced the switch on floor 3.\n")
    ticket = Ticket.get_by_id(number)
    assert (ticket.status, ticket.resolution) == ("resolved", "Replaced the switch on floor 3.")
    assert mails("reply") == []  # the user gets it in the "resolved" mail, not twice
    assert "Replaced the switch" in mails("resolved")[0][1].get_body(("plain",)).get_content()


def test_comment_command_or_comment_address_makes_an_internal_note(make_app):
    from mailticket.models import Message

    app = make_app(comment_address="desk-comment@example.test")
    number = new_ticket(app)
    agent_mail(app, number, "#comment\nAnn's laptop is on the old VLAN.\n", key="c1")
    agent_mail(app, number, "Checked the VLAN: fine.\n", key="c2",
               to="Desk comments <desk-comment@example.test>")
    assert mails("reply") == []  # the user sees neither
    assert [k for k, _, _ in history(number) if k == "comment"] == ["comment", "comment"]
    notes = [(m.author, m.body) for m in Message.select().where(Message.direction == "note")
             .order_by(Message.id)]
    assert notes == [("Nora", "Ann's laptop is on the old VLAN."),
                     ("Nora", "Checked the VLAN: fine.")]
    # A user writing to the comment address is just a user: no note, no command.
    [result] = app.pipeline.process_batch([RawMail("test", "u", make_mail(
        subject=f"Re: [DESK #{number}]", sender="ann@example.org", body="#close\n",
        to="desk-comment@example.test"))])
    assert Ticket.get_by_id(number).status != "closed"


def test_mail_from_an_agent_address_without_a_trusted_pass_is_a_users_when_required(make_app):
    extra = GROUPS + "agents_require_authentication: true\ntrusted_authserv_ids: [mx.desk.test]\n"
    app = make_app(extra=extra)
    number = new_ticket(app)
    agent_mail(app, number, "#close\nforged close\n", key="forged")
    assert Ticket.get_by_id(number).status == "new"
    assert mails("agent_report") == []
    agent_mail(app, number, "#close\nreal close\n", key="real", headers={
        "Authentication-Results": "mx.desk.test; dkim=pass header.d=desk.example.test; "
                                  "spf=pass smtp.mailfrom=nora@desk.example.test"})
    assert Ticket.get_by_id(number).status == "closed"
    # A pass from a server we do not trust counts for nothing.
    number = new_ticket(app, subject="second")
    agent_mail(app, number, "#close\nspoofed\n", key="spoofed", headers={
        "Authentication-Results": "mx.evil.test; dkim=pass header.d=desk.example.test"})
    assert Ticket.get_by_id(number).status == "new"


def test_staff_notifications_are_answered_to_the_comment_address(make_app):
    app = make_app(comment_address="desk-comment@example.test")
    number = new_ticket(app)
    act(app, "escalate", number, "ada", "network", "over to you")
    [(_, escalated)] = mails("escalated")
    assert escalated["Reply-To"].addresses[0].addr_spec == "desk-comment@example.test"
    assert mails("ack")[0][1]["Reply-To"] is None  # users answer the desk itself


def test_files_an_agent_attaches_are_relayed_to_the_requester(app):
    number = new_ticket(app)
    [result] = app.pipeline.process_batch([RawMail("test", "files", make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender="nora@desk.example.test",
        body="Here is the setup guide.\n",
        attachments=[("VPN guide é.pdf", "application/pdf", b"%PDF-1.4 guide"),
                     ("steps.txt", "text/plain", b"1. restart\n")]))])
    [(to, mail)] = mails("reply")
    assert to == ["ann@example.org"]
    files = {part.get_filename(): part.get_content() for part in mail.iter_attachments()}
    assert files == {"VPN guide é.pdf": b"%PDF-1.4 guide", "steps.txt": "1. restart\n"}
    assert "setup guide" in mail.get_body(("plain",)).get_content()


def test_incident_by_mail_opens_an_outage_from_the_ticket(app):
    """The old #incident flag is an outage now (schema v6): the command opens one."""
    from mailticket.models import Outage, OutageTicket

    number = new_ticket(app, subject="Mail is down")
    agent_mail(app, number, "#incident\nMail is down for the whole floor.\n", key="i1")
    [outage] = Outage.select()
    assert (outage.title, outage.state) == ("Mail is down", "open")
    assert [link.ticket_id for link in OutageTicket.select()] == [number]
    [(_, report)] = mails("agent_report")
    assert (f"#incident: outage #{outage.number} opened from this ticket"
            in report.get_body(("plain",)).get_content())
    with pytest.raises(InvalidRequest, match=f"already linked to outage #{outage.number}"):
        act(app, "outage_from_ticket", number, "ada")
    with pytest.raises(InvalidRequest, match=f"outage unlink {outage.number} {number}"):
        act(app, "incident_off", number)
    assert [d for k, _, d in history(number) if k == "outage"] == [
        f"linked to outage #{outage.number}: Mail is down"]


def test_mail_to_the_report_notes_address_is_kept_but_is_no_ticket(make_app):
    from mailticket.models import Message

    app = make_app(report_notes_address="desk-notes@example.test")
    [result] = app.pipeline.process_batch([RawMail("test", "n1", make_mail(
        subject="Payroll app: maintenance tonight 22:00", sender="apps@example.org",
        to="desk-notes@example.test", body="Expect 30 minutes of downtime."))])
    assert (result.ticket, result.detail) == (None, "report_note")
    note = Message.get(Message.decision == "report_note")
    assert (note.sender, note.ticket_id) == ("apps@example.org", None)
    assert Ticket.select().count() == 0 and Outbox.select().count() == 0
