"""Pins on the peewee details the sender's hand-built outcome SQL leans on (installed peewee).

``sender._outcome_sql`` builds ``UPDATE outbox SET ... WHERE id = ? AND claimed_until = ?``
once per shape, from ``Model._meta.table_name``, the fields' ``column_name`` and the
database's ``param`` marker; ``Sender._claim`` reads ``Database.for_update``.
"""

from __future__ import annotations

import importlib.metadata

import peewee

from mailticket.models import Outbox

WHY = (f"peewee {importlib.metadata.version('peewee')}: a detail mailticket.sender's outcome SQL "
       "relies on changed; adapt sender._outcome_sql / Sender._claim (and this pin)")


def test_table_name_and_columns_are_what_peewee_itself_writes():
    with peewee.SqliteDatabase(":memory:").bind_ctx([Outbox]):
        sql, _ = Outbox.update(status="sent").where(
            (Outbox.id == 1) & (Outbox.claimed_until.is_null())).sql()
    assert f'UPDATE "{Outbox._meta.table_name}" SET "{Outbox.status.column_name}"' in sql, WHY
    assert f'"{Outbox.id.column_name}" = ' in sql, WHY
    assert Outbox._meta.primary_key is Outbox.id, WHY


def test_parameter_markers_and_row_locks_per_database():
    assert (peewee.SqliteDatabase.param, peewee.PostgresqlDatabase.param) == ("?", "%s"), WHY
    assert (peewee.SqliteDatabase.for_update, peewee.PostgresqlDatabase.for_update) == (
        False, True), WHY
