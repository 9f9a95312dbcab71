"""Schema v6: the outage tables, and the tickets flagged with the old ``#incident`` becoming
outages when a v5 database is brought up to date."""

from __future__ import annotations

from datetime import datetime

import peewee

from mailticket.migrations import MIGRATIONS, migrate
from mailticket.models import (
    Outage,
    OutageLog,
    OutageTicket,
    SchemaVersion,
    Spike,
    SpikeTopic,
    Ticket,
)
from mailticket.wiring import attach, detach


def _a_version_5_database(database_url: str) -> peewee.Database:
    database = attach(database_url)  # migrated to the latest: then taken back to v5
    with database.atomic():
        database.drop_tables([Spike, SpikeTopic, OutageTicket, OutageLog, Outage])
        SchemaVersion.delete().where(SchemaVersion.version > 5).execute()
    return database


def test_flagged_open_tickets_become_open_outages_with_their_ticket(database_url):
    database = _a_version_5_database(database_url)
    since = datetime(2026, 12, 1, 9, 30)
    with database.atomic():
        flagged = Ticket.create(subject="Records system  down", status="open",
                                requester="ann@example.org", incident_at=since)
        untitled = Ticket.create(subject="", status="new", requester="bob@example.org",
                                 incident_at=since.replace(hour=10))
        over = Ticket.create(subject="Old incident", status="closed",
                             requester="cy@example.org", incident_at=since.replace(day=1))
        Ticket.create(subject="Printer", status="open", requester="dee@example.org")
    assert "outage" not in database.get_tables()

    assert migrate(database) == len(MIGRATIONS) >= 7
    outages = list(Outage.select().order_by(Outage.number))
    assert [(o.title, o.state, o.opened_at, o.opened_by) for o in outages] == [
        ("Records system down", "open", since, "mailticket"),
        (f"Incident of ticket #{untitled.number}", "open", since.replace(hour=10), "mailticket")]
    links = [(link.outage_id, link.ticket_id, link.linked_at)
             for link in OutageTicket.select().order_by(OutageTicket.id)]
    assert links == [(outages[0].number, flagged.number, since),
                     (outages[1].number, untitled.number, since.replace(hour=10))]
    assert not OutageTicket.select().where(OutageTicket.ticket == over.number).exists()
    assert OutageLog.select().count() == 2
    assert migrate(database) == len(MIGRATIONS) and Outage.select().count() == 2  # applied once
    detach(database_url)


def test_a_ticket_is_linked_to_an_outage_once(database):
    import pytest

    ticket = Ticket.create(subject="x", status="open", requester="ann@example.org")
    outage = Outage.create(title="t", state="open", opened_by="ada")
    OutageTicket.create(outage=outage, ticket=ticket, linked_by="ada")
    with pytest.raises(peewee.IntegrityError), database.atomic():
        OutageTicket.create(outage=outage, ticket=ticket, linked_by="al")
