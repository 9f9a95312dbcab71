"""The automated greeting: while an outage is open, a new ticket that matches it is linked to it
in the ticket's own transaction and its acknowledgement says the desk knows (the rule, as a table
with no database, then through intake and ``ticket new`` on a real database)."""

from __future__ import annotations

from datetime import datetime

import pytest

from mailticket.db import transaction
from mailticket.desk.greeting import Candidate, best_match
from mailticket.desk.outages import resolve
from mailticket.intake.items import RawMail
from mailticket.models import Event, OutageLog, OutageTicket, Ticket
from mailticket.vocabulary import SYSTEM_ACTOR
from tests.conftest import backends
from tests.desk.test_outages import SPD, act, app, linked, mails, new_ticket, text  # noqa: F401
from tests.desk.test_procedure import agent_mail
from tests.helpers import make_mail

RMS = ("records", "records system", "RMS")
T0, T1 = datetime(2026, 12, 7, 8, 0), datetime(2026, 12, 7, 9, 0)


def outage(number, names=(), scope=(), at=T0):
    return Candidate(number, at, tuple(names), frozenset(a.casefold() for a in scope))


@pytest.mark.parametrize("subject, body, agency, outages, expected", [
    # An application's names as whole words or phrases, any case, in subject or body.
    ("RMS is down", "", None, [outage(1, [RMS])], 1),
    ("help", "the rms\nwill not load", None, [outage(1, [RMS])], 1),
    ("help", "the Records   System fails", None, [outage(1, [RMS])], 1),
    ("help", "(RMS)!", None, [outage(1, [RMS])], 1),
    ("farms and rmsx", "recordsystem", None, [outage(1, [RMS])], None),
    ("Printer jams", "", SPD, [outage(1, [RMS])], None),
    # A name with regex characters is a plain string.
    ("C++ build is down", "", None, [outage(1, [("C++",)])], 1),
    ("C build is down", "", None, [outage(1, [("C.+",)])], None),
    # A scope alone: the requester's agency in it; no agency known is in no scope.
    ("Printer jams", "", SPD, [outage(1, scope=[SPD])], 1),
    ("Printer jams", "", "springfield police   department".upper(), [outage(1, scope=[SPD])], 1),
    ("Printer jams", "", "Springfield Fire Department", [outage(1, scope=[SPD])], None),
    ("Printer jams", "", None, [outage(1, scope=[SPD])], None),
    # Both: the application named AND the agency in scope.
    ("RMS is down", "", SPD, [outage(1, [RMS], [SPD])], 1),
    ("RMS is down", "", "Springfield Fire Department", [outage(1, [RMS], [SPD])], None),
    ("Printer jams", "", SPD, [outage(1, [RMS], [SPD])], None),
    # Every user, no application: never matched automatically (it would take in everything).
    ("RMS is down", "", SPD, [outage(1)], None),
    # Several: the most specific, then the most recently opened.
    ("RMS is down", "", SPD, [outage(1, [RMS]), outage(2, [RMS], [SPD]), outage(3, scope=[SPD])], 2),
    ("RMS is down", "", SPD, [outage(3, scope=[SPD], at=T1), outage(1, [RMS])], 1),
    ("RMS and mail", "", None, [outage(1, [RMS], at=T1), outage(2, [("mail",)])], 1),
    ("RMS and mail", "", None, [outage(1, [RMS]), outage(2, [("mail",)], at=T1)], 2),
])
def test_the_rule(subject, body, agency, outages, expected):
    found = best_match(outages, subject, body, agency)
    assert (found.number if found else None) == expected


def greeted(number):
    """The acknowledgement of ticket ``number``: its plain text and its HTML."""
    [(_, _, mail)] = [m for m in mails("ack") if m[1] == number]
    return text(mail), mail.get_body(("html",)).get_content()


def test_a_matching_new_mail_is_linked_and_its_ack_carries_the_public_text(app):
    records = act(app, "open_outage", "ada", "Records system down", applications=["records"],
                  public_text="The records system is down since 08:00.\nWe expect it by noon.")
    act(app, "open_outage", "ada", "Mail is slow", applications=["mail"], public_text="Slow.")
    number = new_ticket(app, "Cannot search", sender="Ann <ann@example.org>")
    other = new_ticket(app, "Help", sender="Bob <bob@example.org>")
    assert linked(records.number) == []
    [result] = app.pipeline.process_batch([RawMail("test", "rms", make_mail(
        subject="Search fails", body="Since this morning the RMS shows an error.\n"))])
    assert linked(records.number) == [result.ticket]
    [link] = OutageTicket.select().where(OutageTicket.ticket == result.ticket)
    assert link.linked_by == SYSTEM_ACTOR and link.settled_at is None
    plain, html = greeted(result.ticket)
    assert "We already know about a problem" in plain and "Records system down" in plain
    assert "We expect it by noon." in plain and "when it is fixed" in plain
    assert "We expect it by noon." in html and "Records system down" in html
    assert "We already know" not in greeted(number)[0] + greeted(other)[0]
    events = [e.detail for e in Event.select().where(Event.ticket == result.ticket,
                                                     Event.kind == "outage")]
    assert events == [f"linked to outage #{records.number} automatically: Records system down"]
    assert (f"linked new ticket #{result.ticket} automatically"
            in [e.text for e in OutageLog.select().where(OutageLog.outage == records.number)])


def test_hostile_outage_text_is_escaped_in_the_html_ack(app):
    act(app, "open_outage", "ada", "<b>RMS</b> down", applications=["records"],
        public_text="<script>alert(1)</script>")
    number = new_ticket(app, "RMS is down")
    plain, html = greeted(number)
    assert "<script>" in plain  # plain text is plain
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;RMS" in html


def test_an_agency_scope_matches_its_agencys_new_tickets_only(app):
    spd = act(app, "open_outage", "ada", "Network down at the SPD", agencies=[SPD],
              public_text="The SPD's network is down.")
    mine = new_ticket(app, "Printer jams", sender="Cop <cop@spd.example.gov>")
    fire = new_ticket(app, "Printer jams", sender="ff@fire.springfield.example.gov")
    nobody = new_ticket(app, "Printer jams", sender="someone@example.org")
    assert linked(spd.number) == [mine]
    assert "The SPD's network is down." in greeted(mine)[0]
    assert "We already know" not in greeted(fire)[0] + greeted(nobody)[0]


def test_phone_and_walk_in_tickets_are_greeted_too(app):
    records = act(app, "open_outage", "ada", "Records down", applications=["records"],
                  public_text="Known.")
    with transaction(app.db):
        phoned = app.desk.open_by_agent("ada", "k.nguyen.spd@mail.example.org", "phone",
                                        "Cannot log in", "She says RMS times out").number
        walked = app.desk.open_by_agent("ada", "walkin@spd.example.gov", "walk-in",
                                        "Printer", "Out of toner").number
    assert linked(records.number) == [phoned]
    assert "Known." in greeted(phoned)[0] and "Known." not in greeted(walked)[0]


def test_an_outage_no_longer_open_greets_nobody(app):
    records = act(app, "open_outage", "ada", "Records down", applications=["records"])
    first = new_ticket(app, "RMS is down")
    assert linked(records.number) == [first]
    resolve(app.desk, app.db, records.number, "ada", "Fixed.")
    later = new_ticket(app, "RMS is down again", sender="Bob <bob@example.org>")
    assert linked(records.number) == [first]
    assert Ticket.get_by_id(first).status == "closed"
    assert "We already know" not in greeted(later)[0]


def test_follow_ups_and_agents_mail_are_not_linked(app):
    number = new_ticket(app, "Printer jams", sender="Cop <cop@spd.example.gov>")
    records = act(app, "open_outage", "ada", "Records down", applications=["records"])
    # The requester's follow-up names the application: still the same ticket, not linked.
    app.pipeline.process_batch([RawMail("test", "f1", make_mail(
        subject=f"Re: [DESK #{number}] Printer jams", sender="Cop <cop@spd.example.gov>",
        body="And now RMS is down too.\n"))])
    # An agent's mail about the ticket is the agent's, not a new ticket.
    agent_mail(app, number, "Is the RMS down for you too?\n", key="a1")
    assert linked(records.number) == []
    assert Ticket.select().count() == 1 and len(mails("ack")) == 1
    # A linked ticket's follow-up is not linked (or acknowledged) again.
    again = new_ticket(app, "RMS is down", sender="Bob <bob@example.org>")
    app.pipeline.process_batch([RawMail("test", "f2", make_mail(
        subject=f"Re: [DESK #{again}] RMS is down", sender="Bob <bob@example.org>",
        body="RMS still down.\n"))])
    assert linked(records.number) == [again]
    assert len(mails("ack")) == 2


def test_an_outage_without_public_text_links_but_says_nothing_yet(app):
    records = act(app, "open_outage", "ada", "Ann's RMS search fails", applications=["records"])
    number = new_ticket(app, "RMS is down")
    assert linked(records.number) == [number]
    assert "We already know" not in greeted(number)[0]  # its title may be a user's words
    act(app, "update_outage", records.number, "ada", None, title="Records system down")
    act(app, "update_outage", records.number, "ada", "Searches fail.")
    later = new_ticket(app, "RMS is down", sender="Bob <bob@example.org>")
    assert "Records system down" in greeted(later)[0] and "Searches fail." in greeted(later)[0]


# PostgreSQL only: on SQLite one writer at a time, so the resolve and intake never interleave.
@pytest.mark.parametrize("database_url", [b for b in backends() if b == "postgres"],
                         indirect=True)
def test_a_ticket_is_not_linked_to_an_outage_whose_resolve_began_meanwhile(app):
    """PostgreSQL, several processes: a resolve marks the outage resolving under an update
    lock; intake, which read it as open, waits for it and then does not link (were it linked
    after the resolve counted the tickets, it would never be closed nor its user told)."""
    import threading
    import time

    records = act(app, "open_outage", "ada", "Records down", applications=["records"],
                  public_text="Known.")
    began, release, results = threading.Event(), threading.Event(), []

    def resolver():
        with transaction(app.db):
            app.desk.begin_resolve(records.number, "ada", "Fixed.")
            began.set()
            release.wait(10)
        app.db.close()

    def intake():
        results.append(new_ticket(app, "RMS is down"))
        app.db.close()

    threads = [threading.Thread(target=resolver)]
    threads[0].start()
    assert began.wait(10)
    threads.append(threading.Thread(target=intake))
    threads[1].start()
    time.sleep(0.5)
    waited = threads[1].is_alive()  # on the outage's lock
    release.set()
    for thread in threads:
        thread.join(10)
    assert waited and len(results) == 1
    assert linked(records.number) == []
    assert "We already know" not in greeted(results[0])[0]
