"""The schema and its upgrades: ``MIGRATIONS`` lists the steps in order, and ``migrate`` applies
the ones a database lacks (each step checks what exists: v1 creates the tables from the current
models). A schema change is a new step at the end of the list.
"""

from __future__ import annotations

import logging
import secrets

import peewee

from mailticket.db import is_sqlite
from mailticket.models import (
    ALL_MODELS,
    PORTAL_KEY,
    THREAD_KEY,
    JSONField,
    Outage,
    OutageLog,
    OutageTicket,
    Outbox,
    PortalRequest,
    PortalRevocation,
    ReportRun,
    SchemaVersion,
    Setting,
    Spike,
    SpikeTopic,
    Ticket,
)

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6D61696C7469  # "mailti": any constant shared by every mailticket process


def migrate(db: peewee.Database) -> int:
    """Bring the schema of ``db`` (bound to the models) up to date; return its version."""
    with db.atomic():
        if not is_sqlite(db):
            # Two daemons (or init-db runs) starting at once must not both create the tables.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.create_tables([SchemaVersion], safe=True)
        current = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0
        for version, step in enumerate(MIGRATIONS, start=1):
            if version > current:
                log.info("database: applying schema version %d", version)
                step(db)
                SchemaVersion.create(version=version)
                current = version
    return current


def _v1(db: peewee.Database) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _v2(db: peewee.Database) -> None:
    """The key of the tokens in our Message-IDs; the outbox records bounces and is searched by
    age (the caps on automatic mail)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    db.create_tables([Setting], safe=True)
    if not Setting.select().where(Setting.name == THREAD_KEY).exists():
        Setting.create(name=THREAD_KEY, value=secrets.token_hex(32))
    columns = {column.name for column in db.get_columns("outbox")}
    if "bounced" not in columns:
        migrator = (SqliteMigrator(db) if is_sqlite(db)
                    else PostgresqlMigrator(db))
        migrate(migrator.add_column("outbox", "bounced", JSONField(null=True)))
    db.execute_sql('CREATE INDEX IF NOT EXISTS "outbox_created_at" ON "outbox" ("created_at")')


_V3_TICKET_COLUMNS = ("group", "agent", "channel", "agency", "resolved_at", "first_response_at",
                      "response_due_at", "sla_warned_at", "sla_breached_at")


def _v3(db: peewee.Database) -> None:
    """Tickets learn the desk's procedure: group, agent, channel, agency and the SLA clocks;
    outbox claims name their sender."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    migrator = SqliteMigrator(db) if is_sqlite(db) else PostgresqlMigrator(db)
    have = {column.name for column in db.get_columns("ticket")}
    fields = Ticket._meta.fields
    steps = [migrator.add_column("ticket", fields[name].column_name, fields[name])
             for name in _V3_TICKET_COLUMNS if fields[name].column_name not in have]
    if "claimed_by" not in {column.name for column in db.get_columns("outbox")}:
        steps.append(migrator.add_column("outbox", "claimed_by", Outbox._meta.fields["claimed_by"]))
    if steps:
        migrate(*steps)
    for name in ("group", "agent", "agency", "response_due_at"):
        column = fields[name].column_name
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "ticket_{column}" ON "ticket" ("{column}")')


def _v4(db: peewee.Database) -> None:
    """Incidents on tickets, the report slots (issue 5), and the indexes the reports use."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    db.create_tables([ReportRun], safe=True)
    if "incident_at" not in {column.name for column in db.get_columns("ticket")}:
        migrator = SqliteMigrator(db) if is_sqlite(db) else PostgresqlMigrator(db)
        migrate(migrator.add_column("ticket", "incident_at", Ticket._meta.fields["incident_at"]))
    db.execute_sql('CREATE INDEX IF NOT EXISTS "ticket_incident_at" ON "ticket" ("incident_at")')
    # The status reports count messages and events by time, and first responses.
    for table, column in (("message", "created_at"), ("event", "at"),
                          ("ticket", "first_response_at")):
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{table}_{column}" ON "{table}" ("{column}")')


def _v5(db: peewee.Database) -> None:
    """The portal: the key its links are signed with, revocations, pending sign-ins and
    requests."""
    db.create_tables([PortalRevocation, PortalRequest], safe=True)
    if not Setting.select().where(Setting.name == PORTAL_KEY).exists():
        Setting.create(name=PORTAL_KEY, value=secrets.token_hex(32))


def _v6(db: peewee.Database) -> None:
    """Outages (issue 11) replace the per-ticket incident flag: each open ticket flagged as an
    incident becomes an open outage titled from its subject, with that ticket linked, opened
    and linked when it was flagged. Flagged tickets already closed were incidents that are over:
    they stay as they are (their history keeps the flag's events). ``incident_at`` is kept (no
    column is dropped) and no longer read."""
    from mailticket.vocabulary import SYSTEM_ACTOR, OutageState, TicketStatus

    db.create_tables([Outage, OutageLog, OutageTicket], safe=True)
    flagged = (Ticket.select(Ticket.number, Ticket.subject, Ticket.incident_at)
               .where(Ticket.incident_at.is_null(False), Ticket.status != TicketStatus.CLOSED)
               .order_by(Ticket.incident_at, Ticket.number))
    for number, subject, since in list(flagged.tuples()):
        if OutageTicket.select().where(OutageTicket.ticket == number).exists():
            continue  # a step run again after a crash (it is one transaction; belt and braces)
        title = " ".join((subject or "").split())[:300] or f"Incident of ticket #{number}"
        outage = Outage.create(title=title, applications=[], agencies=[], public_text="",
                               state=OutageState.OPEN, opened_at=since, updated_at=since,
                               opened_by=SYSTEM_ACTOR)
        OutageTicket.create(outage=outage, ticket=number, linked_at=since,
                            linked_by=SYSTEM_ACTOR)
        OutageLog.create(outage=outage, at=since, author=SYSTEM_ACTOR,
                         text=f"made from ticket #{number}, flagged as an incident (schema v6)")


def _v7(db: peewee.Database) -> None:
    """Spike detection (issue 11, part 3): new tickets' topics, and the spikes alerted."""
    db.create_tables([SpikeTopic, Spike], safe=True)


MIGRATIONS = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
