"""Outages on a real database: opening one (the lead and outages.notify told at once), linking
and unlinking tickets, its scope and impact, telling its users, advising partners and the
agencies' contacts, and resolving it exactly once, in batches that resume after an
interruption."""

from __future__ import annotations

import email
from collections import Counter
from datetime import datetime
from email.policy import default
from pathlib import Path

import pytest

from mailticket.db import transaction
from mailticket.desk.outages import impact, resolve
from mailticket.errors import ConfigError, InvalidRequest, UnknownOutage, UnknownTicket
from mailticket.intake.items import RawMail
from mailticket.jobs import run_job
from mailticket.models import Event, Outage, OutageLog, OutageTicket, Outbox, Ticket
from mailticket.wiring import build
from tests.desk.test_procedure import GROUPS, agent_mail
from tests.helpers import Clock, make_mail, settings_for

DIRECTORY = Path(__file__).resolve().parents[2] / "config" / "directory.example.yaml"
OUTAGES = f"""\
directory: {DIRECTORY}
desk_alerts: []
outages:
  notify: [appsupport@desk.example.test, Lee@desk.example.test]
  partners: [noc@partner.example.net]
  applications:
    records: {{names: [records system, RMS], related: [portal, notifications]}}
    mail: {{related: [calendar]}}
""".replace("desk_alerts: []\n", "")
WEB = "web: {listen: '127.0.0.1:18080', base_url: 'https://desk.example.test'}\n"

SPD = "Springfield Police Department"


@pytest.fixture
def app(tmp_path, database_url):
    made = build(settings_for(tmp_path, database_url, extra=GROUPS + OUTAGES + WEB),
                 clock=Clock(datetime(2026, 12, 7, 9, 0)))
    yield made
    made.close()


def new_ticket(app, subject="Records system is down", sender="Cop <cop@spd.example.gov>",
               cc=None):
    [result] = app.pipeline.process_batch([RawMail("test", f"{subject}{sender}{cc}", make_mail(
        subject=subject, sender=sender, cc=cc))])
    return result.ticket


def act(app, method, *args, **kwargs):
    with transaction(app.db):
        return getattr(app.desk, method)(*args, **kwargs)


def mails(kind):
    return [(o.recipients, o.ticket_id, email.message_from_bytes(bytes(o.content), policy=default))
            for o in Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)]


def text(mail):
    return mail.get_body(("plain",)).get_content()


def linked(number):
    return [link.ticket_id for link in
            OutageTicket.select().where(OutageTicket.outage == number).order_by(OutageTicket.ticket)]


def test_opening_from_a_ticket_links_it_and_tells_the_lead_and_notify_at_once(app):
    number = new_ticket(app)
    outage = act(app, "open_outage", "ada", "  Records system   down ", applications=["rms"],
                 agencies=["spd"], public_text="We know; we are on it.", from_ticket=number)
    outage = Outage.get_by_id(outage.number)
    assert (outage.title, outage.applications, outage.agencies, outage.state) == (
        "Records system down", ["records"], [SPD], "open")
    assert (outage.opened_by, outage.opened_at, outage.public_text) == (
        "ada", datetime(2026, 12, 7, 9, 0), "We know; we are on it.")
    assert linked(outage.number) == [number]
    [(to, ticket, mail)] = mails("outage_opened")
    assert (to, ticket) == (["lee@desk.example.test", "appsupport@desk.example.test"], None)
    body = text(mail)
    assert f"Outage #{outage.number} opened: Records system down" == mail["Subject"]
    for line in ("Applications: records", f"Scope:        agencies: {SPD}",
                 "Tickets:      1 (1 open)", "email            1", "Users:        1",
                 "Reach:        subset", "Related:      portal, notifications",
                 "We know; we are on it."):
        assert line in body
    assert [e.text for e in OutageLog.select().order_by(OutageLog.id)] == [
        "opened: Records system down", f"linked ticket #{number}"]
    assert ("outage", "ada", f"linked to outage #{outage.number}: Records system down") in [
        (e.kind, e.actor, e.detail) for e in Event.select().where(Event.ticket == number)]


@pytest.mark.parametrize("call, error", [
    (dict(title=" "), "the outage's title is empty"),
    (dict(applications=["payroll"]), "no application 'payroll' in outages.applications "
                                     "(applications: records, mail)"),
    (dict(agencies=["Nowhere PD"]), "no agency 'Nowhere PD' in the directory"),
    (dict(from_ticket=999), "no ticket #999"),
])
def test_bad_input_when_opening_is_an_error_and_opens_nothing(app, call, error):
    call = dict(call)  # the parameter is shared by the backends
    with pytest.raises((InvalidRequest, UnknownTicket), match=error.replace("(", r"\(")
                       .replace(")", r"\)")):
        act(app, "open_outage", "ada", call.pop("title", "Down"), **call)
    assert Outage.select().count() == 0 and Outbox.select().count() == 0


def test_linking_and_unlinking_and_their_errors_change_nothing(app):
    first, second, closed = (new_ticket(app, f"Down {i}") for i in range(3))
    act(app, "close", closed, "ada", "fixed")
    outage = act(app, "open_outage", "ada", "Records down")
    assert act(app, "link_tickets", outage.number, "ada", [first, first]) == [first]
    for tickets, error, kind in (
            ([second, closed], f"ticket #{closed} is closed", InvalidRequest),
            ([second, 424242], "no ticket #424242", UnknownTicket),
            ([second, first], f"ticket #{first} is already linked to outage #{outage.number}",
             InvalidRequest)):
        with pytest.raises(kind, match=error):
            act(app, "link_tickets", outage.number, "ada", tickets)
        assert linked(outage.number) == [first]  # second was not linked either
    with pytest.raises(UnknownOutage, match="no outage #77"):
        act(app, "link_tickets", 77, "ada", [second])
    with pytest.raises(InvalidRequest, match=f"ticket #{second} is not linked"):
        act(app, "unlink_tickets", outage.number, "ada", [first, second])
    assert linked(outage.number) == [first]
    assert act(app, "unlink_tickets", outage.number, "ada", [first]) == [first]
    assert linked(outage.number) == []


def test_the_figures_count_channels_users_agencies_and_the_reach(app):
    # Made before the outage is opened: after, the greeting would link those that name it.
    by_mail = new_ticket(app, sender="cop@spd.example.gov", cc="Chief <chief@spd.example.gov>")
    again = new_ticket(app, "Still down", sender="cop@spd.example.gov")
    with transaction(app.db):
        phoned = app.desk.open_by_agent("ada", "k.nguyen.spd@mail.example.org", "phone",
                                        "RMS down", "Called in").number
        walked = app.desk.open_by_agent("ada", "walkin@spd.example.gov", "walk-in",
                                        "RMS down", "At the desk").number
    outage = act(app, "open_outage", "ada", "Records down", applications=["records system"],
                 agencies=[SPD])
    act(app, "link_tickets", outage.number, "ada", [by_mail, again, phoned, walked])
    figures = impact(Outage.get_by_id(outage.number), app.settings)
    assert figures.tickets == figures.open_tickets == 4
    assert dict(figures.channels) == {"email": 2, "phone": 1, "walk-in": 1, "voicemail": 0,
                                      "portal": 0}
    assert figures.users == 4  # cop (twice), chief (a Cc), k.nguyen, walkin
    assert figures.agencies == ((SPD, 4),)
    assert (figures.reach, figures.outside, figures.related) == (
        "subset", 0, ("portal", "notifications"))

    fire = new_ticket(app, sender="ff@fire.springfield.example.gov")
    nobody = new_ticket(app, sender="someone@example.org")
    act(app, "link_tickets", outage.number, "ada", [fire, nobody])
    act(app, "close", again, "ada", "works for me")
    figures = impact(Outage.get_by_id(outage.number), app.settings)
    assert (figures.tickets, figures.open_tickets, figures.users) == (6, 5, 6)
    assert figures.agencies == ((SPD, 4), ("Springfield Fire Department", 1), ("(no agency)", 1))
    assert (figures.reach, figures.outside) == ("beyond its scope", 2)
    everyone = act(app, "open_outage", "ada", "Mail down", applications=["mail"])
    assert impact(everyone, app.settings).reach == "all users"
    assert impact(everyone, app.settings).related == ("calendar",)


def test_an_update_tells_each_open_tickets_users_once_threaded_with_their_own_link(app):
    ann = new_ticket(app, sender="Ann <ann@spd.example.gov>", cc="bob@spd.example.gov")
    cy = new_ticket(app, "Also down", sender="cy@spd.example.gov")
    done = new_ticket(app, "Down too", sender="dee@spd.example.gov")
    outage = act(app, "open_outage", "ada", "Records down", from_ticket=ann)
    act(app, "link_tickets", outage.number, "ada", [cy, done])
    act(app, "close", done, "ada", "it came back for her")
    assert act(app, "update_outage", outage.number, "ada", "Back by 11:00.") == 0
    assert mails("outage_update") == []
    assert act(app, "update_outage", outage.number, "ada", "Back by noon.", notify=True) == 2
    sent = mails("outage_update")
    assert sorted((to[0], ticket) for to, ticket, _ in sent) == sorted([
        ("ann@spd.example.gov", ann), ("bob@spd.example.gov", ann), ("cy@spd.example.gov", cy)])
    for to, ticket, mail in sent:
        assert f"[DESK #{ticket}]" in mail["Subject"] and "Back by noon." in text(mail)
        assert mail["In-Reply-To"] and "https://desk.example.test/t/" in text(mail)
    links = {to[0]: text(mail).rsplit("/t/", 1)[1].split()[0] for to, _, mail in sent}
    assert len(set(links.values())) == 3  # each recipient's own
    assert Outage.get_by_id(outage.number).public_text == "Back by noon."
    with pytest.raises(InvalidRequest, match="the public text is empty"):
        act(app, "update_outage", outage.number, "ada", "  ")


def test_partners_and_the_affected_agencies_contacts_are_advised(app):
    outage = act(app, "open_outage", "ada", "Records down", public_text="Down since 9.")
    with pytest.raises(InvalidRequest, match="names no agency and none of its tickets has one"):
        act(app, "advise", outage.number, "ada", "contacts")
    act(app, "link_tickets", outage.number, "ada", [new_ticket(app)])
    assert act(app, "advise", outage.number, "ada", "partners") == ["noc@partner.example.net"]
    contacts = act(app, "advise", outage.number, "ada", "contacts")
    assert contacts == ["rokafor@spd.example.gov", "lmorales@spd.example.gov",
                        "registrar@sangamon.example.gov", "jtac@sangamon.example.gov"]
    (partners, _, first), (to, _, second) = mails("outage_advice")
    assert partners == ["noc@partner.example.net"] and to == contacts
    assert "Down since 9." in text(first) and "To our partners" in text(first)
    assert "To the contacts of" in text(second)


def test_resolving_closes_each_open_ticket_once_tells_its_users_and_sums_up(app):
    ann = new_ticket(app, sender="Ann <ann@spd.example.gov>", cc="bob@spd.example.gov")
    cy = new_ticket(app, "Also down", sender="cy@spd.example.gov")
    early = new_ticket(app, "Down too", sender="dee@spd.example.gov")
    outage = act(app, "open_outage", "ada", "Records down", from_ticket=ann, agencies=[SPD])
    act(app, "link_tickets", outage.number, "ada", [cy, early])
    act(app, "close", early, "ada", "it came back for her")
    before = {o.id for o in Outbox.select()}

    assert resolve(app.desk, app.db, outage.number, "nora", "The server was restarted.") == (
        3, True)
    resolved = Outage.get_by_id(outage.number)
    assert (resolved.state, resolved.resolved_by, resolved.public_text) == (
        "resolved", "nora", "The server was restarted.")
    assert {t.number: (t.status, t.resolution) for t in Ticket.select()} == {
        ann: ("closed", "The server was restarted."), cy: ("closed", "The server was restarted."),
        early: ("closed", "it came back for her")}
    closed = [(to, ticket, mail) for to, ticket, mail in mails("closed") if ticket != early]
    assert sorted((to[0], ticket) for to, ticket, _ in closed) == sorted([
        ("ann@spd.example.gov", ann), ("bob@spd.example.gov", ann), ("cy@spd.example.gov", cy)])
    assert all("The server was restarted." in text(m) and "has been closed" in m["Subject"]
               for _, _, m in closed)
    new = [o for o in Outbox.select().order_by(Outbox.id) if o.id not in before]
    assert Counter(o.kind for o in new) == {"closed": 3, "outage_resolved": 1}
    [(to, _, summary)] = mails("outage_resolved")
    assert to == ["lee@desk.example.test", "appsupport@desk.example.test"]
    assert "2 ticket(s) closed" in text(summary) and "Tickets:      3" in text(summary)
    assert {link.ticket_id: link.settled for link in OutageTicket.select()} == {
        ann: "closed", cy: "closed", early: "already closed"}

    with pytest.raises(InvalidRequest, match=f"outage #{outage.number} is already resolved"):
        resolve(app.desk, app.db, outage.number, "nora", "again")
    for call in (("link_tickets", outage.number, "ada", [ann]),
                 ("update_outage", outage.number, "ada", "x")):
        with pytest.raises(InvalidRequest, match=f"outage #{outage.number} is resolved"):
            act(app, *call)
    assert Outbox.select().count() == len(before) + 4


def test_an_interrupted_resolve_resumes_and_tells_everyone_exactly_once(app):
    tickets = [new_ticket(app, f"Down {i}", sender=f"user{i}@spd.example.gov",
                          cc=f"boss{i % 3}@spd.example.gov") for i in range(23)]
    outage = act(app, "open_outage", "ada", "Records down")
    act(app, "link_tickets", outage.number, "ada", tickets)
    for number in tickets[:2]:
        act(app, "close", number, "ada", "fixed before")
    already = Outbox.select().where(Outbox.kind == "closed").count()

    # Two batches of 4, then the process "dies" (the next batch never starts).
    assert resolve(app.desk, app.db, outage.number, "nora", "Restarted.", batch_size=4,
                   max_batches=2) == (8, False)
    assert Outage.get_by_id(outage.number).state == "resolving"
    assert OutageTicket.select().where(OutageTicket.settled_at.is_null(False)).count() == 8
    with pytest.raises(InvalidRequest, match="is resolving"):
        act(app, "link_tickets", outage.number, "ada", [new_ticket(app, "late")])
    # A second resolve goes on (with the first resolution), then the job finds nothing left.
    assert resolve(app.desk, app.db, outage.number, "al", "Other words", batch_size=4,
                   max_batches=1) == (4, False)
    assert run_job("outage-resolve", app.desk, app.db, datetime(2026, 12, 7, 10, 0)) == (
        f"#{outage.number}: 11 ticket(s), resolved")
    assert run_job("outage-resolve", app.desk, app.db, datetime(2026, 12, 7, 10, 1)) == (
        "nothing to resume")

    assert {t.status for t in Ticket.select().where(Ticket.number.in_(tickets))} == {"closed"}
    per = Counter((o.ticket_id, r) for o in Outbox.select().where(Outbox.kind == "closed")
                  for r in o.recipients)
    for i, number in enumerate(tickets):
        assert per[(number, f"user{i}@spd.example.gov")] == 1
        assert per[(number, f"boss{i % 3}@spd.example.gov")] == 1
    assert sum(per.values()) == already + 2 * 21
    assert all(t.resolution == "Restarted." for t in Ticket.select().where(
        Ticket.number.in_(tickets[2:])))
    assert len(mails("outage_resolved")) == 1


def test_the_report_lists_the_outages_not_yet_resolved_with_their_figures(tmp_path, database_url):
    from mailticket.reports.runner import gather_for

    reports = ("reports: {morning: {at: '07:30', to: [r@desk.example.test], "
               "timezone: UTC, days: mon-sun},\n"
               "          fire: {at: '07:30', to: [f@desk.example.test], timezone: UTC, "
               "days: mon-sun, agency: Springfield Fire Department},\n"
               "          spd: {at: '07:30', to: [s@desk.example.test], timezone: UTC, "
               "days: mon-sun, agency: springfield police department}}\n")
    made = build(settings_for(tmp_path, database_url, extra=GROUPS + OUTAGES + reports),
                 clock=Clock(datetime(2026, 12, 7, 9, 0)))
    try:
        a = new_ticket(made, sender="cop@spd.example.gov", cc="chief@spd.example.gov")
        b = new_ticket(made, "Mail down", sender="x@example.org")
        records = act(made, "open_outage", "ada", "Records down", applications=["records"],
                      agencies=[SPD], from_ticket=a)
        mail = act(made, "open_outage", "ada", "Mail down", from_ticket=b)
        resolve(made.desk, made.db, mail.number, "ada", "fixed")
        at = datetime(2026, 12, 8, 7, 30)
        data = gather_for(made.db, made.settings, made.settings.reports.get("morning"), at, at)
        [line] = data.incidents
        assert (line.number, line.subject, line.users_affected, line.tickets, line.reach,
                line.applications) == (records.number, "Records down", 2, 1, "subset",
                                       ("records",))
        # A report for one agency: outages for all users, or naming it, or with its tickets.
        everyone = act(made, "open_outage", "ada", "Phones down")
        for name, wanted in (("fire", [everyone.number]),
                             ("spd", [records.number, everyone.number])):
            data = gather_for(made.db, made.settings, made.settings.reports.get(name), at, at)
            assert [line.number for line in data.incidents] == wanted
        run_job("reports", made.desk, made.db, at)
        [(_, _, report)] = [m for m in mails("report") if m[0] == ["r@desk.example.test"]]
        body = text(report)
        assert f"#{records.number}" in body and "Records down [records]" in body
        assert "1 tickets (1 open): 1 email" in body and f"reach: subset; {SPD} 1" in body
        assert "Mail down" not in body.split("INCIDENTS AFFECTING USERS")[1].split("FIGURES")[0]
    finally:
        made.close()


def test_agents_link_and_open_outages_by_mail_and_users_cannot(app):
    number = new_ticket(app, "Network is slow")
    outage = act(app, "open_outage", "ada", "Network down")
    agent_mail(app, number, f"#outage {outage.number}\n", key="o1")
    assert linked(outage.number) == [number]
    other = new_ticket(app, "Payroll is down", sender="pay@example.org")
    agent_mail(app, other, "#outage open Payroll outage\nLooking into it.\n", key="o2")
    [opened] = Outage.select().where(Outage.title == "Payroll outage")
    assert linked(opened.number) == [other]
    agent_mail(app, other, "#outage 999\n", key="o3")
    agent_mail(app, other, "#outage soon\n", key="o4")
    reports = [text(m) for _, _, m in mails("agent_report")]
    assert f"#outage {outage.number}: linked to outage #{outage.number}" in reports[0]
    assert f"outage #{opened.number} opened from this ticket" in reports[1]
    assert "#outage 999: not done: no outage #999" in reports[2]
    assert "#outage soon: not done: #outage takes an outage number, open or spike" in reports[3]
    # The same line from the requester is words to the desk, never a command.
    app.pipeline.process_batch([RawMail("test", "u1", make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender="Cop <cop@spd.example.gov>",
        body=f"#outage open Mine\n#outage {opened.number}\n"))])
    assert Outage.select().count() == 2 and linked(opened.number) == [other]


def test_unknown_outage_commands_in_mail_are_not_run_for_closed_tickets(app):
    number = new_ticket(app, "Network is slow")
    outage = act(app, "open_outage", "ada", "Network down")
    act(app, "close", number, "ada", "done")
    agent_mail(app, number, f"#outage {outage.number}\n", key="c1")
    assert linked(outage.number) == []
    [(_, _, report)] = mails("agent_report")
    assert f"ticket #{number} is closed" in text(report)


@pytest.mark.parametrize("section, error", [
    ("outages: {notify: [nope]}", "outages.notify[0]"),
    ("outages: {partners: x@example.org}", "outages.partners: expected a list of addresses"),
    ("outages: {colour: red}", "outages.colour: unknown key"),
    ("outages: {applications: {records: {names: [RMS]}, rms2: {names: [rms]}}}",
     "outages.applications.rms2.names: 'rms' already names application records"),
    ("outages: {applications: {records: {nmes: [x]}}}", "outages.applications.records.nmes"),
    ("outages: {spike: {tickets: 1}}", "outages.spike.tickets"),
    ("outages: {spike: {within: soon}}", "outages.spike.within"),
])
def test_config_errors_name_the_key(tmp_path, database_url, section, error):
    with pytest.raises(ConfigError) as caught:
        settings_for(tmp_path, database_url, extra=section + "\n")
    assert any(error in problem for problem in caught.value.problems), caught.value.problems


def test_without_applications_configured_any_name_is_taken(tmp_path, database_url):
    made = build(settings_for(tmp_path, database_url), clock=Clock())
    try:
        outage = act(made, "open_outage", "ada", "Down", applications=[" Payroll  app "])
        assert outage.applications == ["Payroll app"]
        with pytest.raises(InvalidRequest, match="no directory is configured"):
            act(made, "open_outage", "ada", "Down", agencies=["SPD"])
        assert made.desk.outage_staff() == []  # nobody to tell: logged, nothing queued
        assert Outbox.select().count() == 0
    finally:
        made.close()
