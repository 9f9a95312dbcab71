"""Builds the parts (database, templates, store, mailer, desk, pipeline) from the settings, the
same way for the daemon and the command line, and binds the models to the one database.

One process serves one database. The peewee models are bound to it (``models.database_proxy``)
here and nowhere else; every part also gets the database explicitly, for its transactions.
Any number of apps may be open on the same database URL (they share its ``Database`` object,
whose connections are per thread); opening an app on a different database while another app
is still open is refused with a clear error, since the models cannot point at two databases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import peewee

from mailticket import db as dbmod
from mailticket.config import Settings
from mailticket.desk.tickets import Desk
from mailticket.errors import ConfigError
from mailticket.intake.pipeline import Pipeline
from mailticket.mail.compose import Composer
from mailticket.migrations import migrate as migrate_schema
from mailticket.models import database_proxy, utcnow
from mailticket.outbox import Mailer
from mailticket.portal.links import Links
from mailticket.storage import Store

_lock = threading.Lock()
_attached: dict[str, tuple[peewee.Database, int]] = {}  # url -> (database, how many hold it)


def attach(url: str, *, migrate: bool = True) -> peewee.Database:
    """The database at ``url``, connected, with the models bound to it (and its schema brought
    up to date unless ``migrate`` is false). Pair every call with ``detach(url)``."""
    with _lock:
        if url in _attached:
            database, holders = _attached[url]
            _attached[url] = (database, holders + 1)
        else:
            if _attached:
                [other] = _attached
                raise ConfigError(
                    f"database: this process already serves {dbmod.safe_url(other)}; one process "
                    f"serves one database (close the other app before opening {dbmod.safe_url(url)})")
            database = dbmod.open_database(url)
            database_proxy.initialize(database)
            _attached[url] = (database, 1)
    try:
        database.connect(reuse_if_open=True)
        if migrate:
            migrate_schema(database)
    except BaseException:
        detach(url)
        raise
    return database


def detach(url: str) -> None:
    """Let go of the database ``attach`` gave; the last holder closes it. The models stay bound
    to it (a later query reconnects) until an app attaches another database."""
    with _lock:
        database, holders = _attached[url]
        if holders > 1:
            _attached[url] = (database, holders - 1)
            return
        del _attached[url]
    database.close()


@dataclass
class App:
    settings: Settings
    db: peewee.Database
    composer: Composer
    mailer: Mailer
    desk: Desk
    pipeline: Pipeline
    store: Store
    closed: bool = False

    @property
    def links(self) -> Links | None:
        """The portal's links (None without a ``web`` section)."""
        return self.mailer.links

    def close(self) -> None:
        """Let go of the database: the last app on it closes it."""
        if not self.closed:
            self.closed = True
            detach(self.settings.database)


def build(settings: Settings, *, clock: Callable[[], datetime] = utcnow,
          after_commit: Callable[[], None] | None = None, migrate: bool = True) -> App:
    composer = Composer(settings.templates)
    composer.check()
    database = attach(settings.database, migrate=migrate)
    store = Store(settings.storage)
    links = (Links(settings.web, database, reopen_window_days=settings.desk.reopen_window_days,
                   clock=clock) if settings.web is not None else None)
    mailer = Mailer(settings, database, composer, clock=clock, links=links)
    desk = Desk(settings, database, mailer, store, clock=clock)
    pipeline = Pipeline(database, settings, desk, clock=clock, after_commit=after_commit)
    return App(settings, database, composer, mailer, desk, pipeline, store)
