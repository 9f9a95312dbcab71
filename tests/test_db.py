"""The database layer: schema, transactions, recovery from a dropped PostgreSQL connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from mailticket import db as dbmod
from mailticket.errors import TemporaryFailure
from mailticket.migrations import MIGRATIONS
from mailticket.models import ALL_MODELS, SchemaVersion, Ticket, thread_key
from mailticket.db import _hung_up
from mailticket.migrations import migrate
from mailticket.wiring import attach, detach
from tests.conftest import backends
from tests.servers import wait_until
from tests.helpers import write_config

REPO = Path(__file__).resolve().parents[1]

POSTGRES_ONLY = [b for b in backends() if b == "postgres"]


def test_migrate_is_idempotent(database):
    latest = len(MIGRATIONS)
    assert migrate(database) == migrate(database) == latest
    assert SchemaVersion.select().count() == latest


def test_a_version_1_database_is_brought_up_to_date(database_url):
    """A database made by the first release (no bounced column, no key, no ticket procedure
    columns) gains them, keeping its rows."""
    database = attach(database_url, migrate=False)
    with database.atomic():
        database.create_tables([SchemaVersion, *ALL_MODELS])
        Ticket.create(subject="old", status="open", requester="ann@example.org")
        database.execute_sql('ALTER TABLE "outbox" DROP COLUMN "bounced"')
        for column in ("group", "channel", "response_due_at", "incident_at"):
            if dbmod.is_sqlite(database):
                database.execute_sql(f'DROP INDEX IF EXISTS "ticket_{column}"')
            database.execute_sql(f'ALTER TABLE "ticket" DROP COLUMN "{column}"')
        SchemaVersion.create(version=1)
    assert "bounced" not in {c.name for c in database.get_columns("outbox")}
    assert migrate(database) == len(MIGRATIONS)
    assert "bounced" in {c.name for c in database.get_columns("outbox")}
    assert len(thread_key(database)) == 32
    assert {"group", "channel", "response_due_at", "incident_at"} <= {
        c.name for c in database.get_columns("ticket")}
    old = Ticket.get()
    assert (old.subject, old.channel, old.group) == ("old", "email", None)
    detach(database_url)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_a_connection_dropped_by_the_server_is_replaced(backend, fresh_postgres_url):
    database = attach(fresh_postgres_url)
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    admin = psycopg2.connect(fresh_postgres_url.replace("postgresql://", "postgres://"))
    admin.autocommit = True
    admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    wait_until(lambda: _hung_up(database._state.conn), what="the server to close it")
    # Noticed before it is used (no round trip): the next transaction simply works.
    with dbmod.transaction(database):
        assert Ticket.select().count() == 0
    detach(fresh_postgres_url)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_a_connection_that_dies_inside_a_transaction_fails_it_as_temporary(backend,
                                                                         fresh_postgres_url):
    database = attach(fresh_postgres_url)
    with pytest.raises(TemporaryFailure):
        with dbmod.transaction(database):
            pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
            admin = psycopg2.connect(fresh_postgres_url.replace("postgresql://", "postgres://"))
            admin.autocommit = True
            admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
            admin.close()
            Ticket.select().count()
    with dbmod.transaction(database):  # the next one works on a new connection
        assert Ticket.select().count() == 0
    detach(fresh_postgres_url)


@pytest.mark.parametrize("backend", POSTGRES_ONLY)
def test_two_processes_migrating_at_once_both_succeed(backend, fresh_postgres_url, tmp_path):
    config = write_config(tmp_path, fresh_postgres_url)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs = [subprocess.Popen([sys.executable, "-m", "mailticket", "--config", str(config),
                              "init-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            for _ in range(4)]
    outputs = [(run.wait(60), run.stdout.read().decode()) for run in runs]
    assert [code for code, _ in outputs] == [0, 0, 0, 0], outputs
