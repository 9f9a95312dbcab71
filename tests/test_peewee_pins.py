"""Pins on the peewee details the sender's hand-built outcome SQL leans on (installed peewee).

``sender._outcome_sql`` builds ``UPDATE outbox SET ... WHERE id = ? AND claimed_until = ?``
once per shape, from ``Model._meta.table_name``, the fields' ``column_name`` and the
database's ``param`` marker; ``Sender._claim`` reads ``Database.for_update``.
"""

from __future__ import annotations

import importlib.metadata

import peewee
import pytest

from mailticket.models import Outbox

WHY = (f"peewee {importlib.metadata.version('peewee')}: a detail mailticket.sender's outcome SQL "
       "relies on changed; adapt sender._outcome_sql / Sender._claim (and this pin)")


@pytest.mark.parametrize("database", [peewee.SqliteDatabase(":memory:"),
                                      peewee.PostgresqlDatabase("unconnected")],
                         ids=["sqlite", "postgres"])
def test_table_name_and_columns_are_what_peewee_itself_writes(database):
    """Rendering SQL needs no connection, so PostgreSQL's quoting is checked here too."""
    with database.bind_ctx([Outbox]):
        sql, _ = Outbox.update(status="sent").where(
            (Outbox.id == 1) & (Outbox.claimed_until.is_null())).sql()
    assert f'UPDATE "{Outbox._meta.table_name}" SET "{Outbox.status.column_name}"' in sql, WHY
    assert f'"{Outbox.id.column_name}" = ' in sql, WHY
    assert Outbox._meta.primary_key is Outbox.id, WHY


def test_parameter_markers_and_row_locks_per_database():
    assert (peewee.SqliteDatabase.param, peewee.PostgresqlDatabase.param) == ("?", "%s"), WHY
    assert (peewee.SqliteDatabase.for_update, peewee.PostgresqlDatabase.for_update) == (
        False, True), WHY


MODELS_WHY = (f"peewee {importlib.metadata.version('peewee')}: a private detail "
              "mailticket.models.BaseModel.create (or db._Postgres) relies on changed; adapt it")


def test_a_model_keeps_its_values_in_data_and_its_changes_in_dirty():
    """BaseModel.create reads ``__data__`` (the field values by name, the primary key absent
    or None before the INSERT) and clears ``_dirty`` after it, as Model.create does."""
    from mailticket.models import Ticket

    with peewee.SqliteDatabase(":memory:").bind_ctx([Ticket]):
        ticket = Ticket(subject="s", status="new", requester="ann@example.org")
        assert ticket.__data__["subject"] == "s", MODELS_WHY
        assert ticket.__data__.get("number") is None, MODELS_WHY
        assert "subject" in ticket._dirty, MODELS_WHY
        ticket._dirty.clear()
        assert not ticket.dirty_fields, MODELS_WHY


def test_a_database_keeps_its_connection_and_transactions_per_thread_in_state():
    """db._Postgres.cursor looks at ``_state.conn`` and ``_state.transactions`` and calls
    ``_state.reset()`` to forget a connection the server dropped."""
    db = peewee.SqliteDatabase(":memory:")
    assert db._state.conn is None and db._state.transactions == [], MODELS_WHY
    db.connect()
    with db.atomic():
        assert db._state.conn is not None and len(db._state.transactions) == 1, MODELS_WHY
    db._state.reset()
    assert db._state.conn is None, MODELS_WHY
