"""The database: opened from a URL (sqlite:///PATH or postgresql://...), transactions,
savepoints and prepared statements. Binding the models to it is the wiring's job
(``wiring.attach``); the schema is ``migrations.py``'s.

One place says how a transaction starts: SQLite takes the write lock up front (BEGIN IMMEDIATE)
so that two writers never deadlock on a lock upgrade; PostgreSQL uses its default.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import peewee

from mailticket.errors import ConfigError, TemporaryFailure

log = logging.getLogger(__name__)

def open_database(url: str) -> peewee.Database:
    """A database object for URL (not yet connected, not bound to the models)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db: peewee.Database = peewee.SqliteDatabase(path, timeout=30, pragmas={
            "journal_mode": "wal",
            # FULL: a commit is on disk when it returns; we answer 250 and move mail after it.
            "synchronous": "full",
            "foreign_keys": 1,
            "busy_timeout": 30000,
        })
    elif url.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(url)
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise ConfigError(
                "database: PostgreSQL needs the psycopg2 driver: pip install 'mailticket[postgres]'"
            ) from None
        db = _Postgres(
            unquote(parsed.path.lstrip("/")) or "mailticket",
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or None,
            port=parsed.port or None,
            # A lock held elsewhere (a long admin query) must not stall intake for ever: after
            # this the statement fails, the batch is abandoned and retried (SMTP intake: 451).
            options="-c lock_timeout=30s",
        )
    else:
        raise ConfigError(f"database: unsupported URL {url!r}")
    return db


class _Postgres(peewee.PostgresqlDatabase):
    """PostgreSQL that recovers from a connection the server dropped (restart, failover, an
    idle-session kill): the dead connection is forgotten outside a transaction, and the next
    statement opens a new one; a BEGIN that meets one is run again on a new connection. Any
    other statement that met the dead connection has failed, and with it its transaction,
    which the caller retries."""

    def cursor(self, named_cursor=None):
        conn = self._state.conn
        if conn is not None and not self._state.transactions and (conn.closed or _hung_up(conn)):
            self._forget(conn)
        return super().cursor(named_cursor)

    def begin(self, *args, **kwargs):
        """BEGIN, and once more on a new connection when it met one the server had dropped:
        nothing has happened in the transaction yet, so nothing is lost or done twice. The look
        in ``cursor`` misses a drop that happened a moment ago (pg_terminate_backend returns
        before the server's goodbye arrives), and the first mail after a failover must not be
        answered 451 for that."""
        try:
            super().begin(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError):
            conn = self._state.conn
            if conn is None or not conn.closed or self._state.transactions:
                raise
            self._forget(conn)
            super().begin(*args, **kwargs)

    def _forget(self, conn: Any) -> None:
        log.warning("database: the connection to PostgreSQL was lost; reconnecting")
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self._state.reset()


def _hung_up(conn: Any) -> bool:
    """Between transactions the server has nothing to say: a readable socket means it closed
    the connection (restart, failover, pg_terminate_backend). Costs no round trip, so the
    first mail after a failover is not answered 451."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def safe_url(url: str) -> str:
    """A database URL with its password shown as ``***``."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


@contextmanager
def transaction(db: peewee.Database) -> Iterator[None]:
    """The one way to open a read-write transaction."""
    try:
        ctx = db.atomic("IMMEDIATE") if is_sqlite(db) else db.atomic()
        with ctx:
            yield
    except peewee.OperationalError as exc:
        if "locked" in str(exc) or "could not serialize" in str(exc):
            raise TemporaryFailure(f"database busy: {exc}") from exc
        raise TemporaryFailure(f"database unavailable: {exc}") from exc
    except peewee.InterfaceError as exc:
        raise TemporaryFailure(f"database unavailable: {exc}") from exc


@contextmanager
def reading(db: peewee.Database) -> Iterator[None]:
    """A read-only transaction (one consistent view of the data) that never waits for a writer:
    on SQLite a deferred one, a WAL reader, so pages read while intake writes."""
    try:
        ctx = db.atomic("DEFERRED") if is_sqlite(db) else db.atomic()
        with ctx:
            yield
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        raise TemporaryFailure(f"database unavailable: {exc}") from exc


def savepoint(db: peewee.Database):
    """A nested transaction: rolling it back leaves the outer one intact."""
    return db.atomic()


class Prepared:
    """A query whose SQL is built once per kind of database and then run with new parameters.

    peewee builds the SQL string anew on every call, which cost more than running the query for
    the lookups made for every incoming message. ``build`` receives one marker value per
    parameter and must use each exactly once, in the order ``execute`` will pass them.
    """

    def __init__(self, build: Callable[..., peewee.Query], arity: int):
        self.build = build
        self.markers = tuple(f"\x00param{i}\x00" for i in range(arity))
        self._sql: dict[type, str] = {}

    def sql_for(self, db: peewee.Database) -> str:
        if isinstance(db, peewee.DatabaseProxy):
            db = db.obj
        sql = self._sql.get(type(db))
        if sql is None:
            sql, params = self.build(*self.markers).sql()
            if tuple(params) != self.markers:
                raise ValueError(f"prepared query parameters out of order: {params!r}")
            self._sql[type(db)] = sql
        return sql

    def execute(self, db: peewee.Database, *params: object):
        return db.execute_sql(self.sql_for(db), params)

    def first(self, db: peewee.Database, *params: object):
        return self.execute(db, *params).fetchone()
