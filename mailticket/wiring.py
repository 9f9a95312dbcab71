"""Builds the parts (database, templates, store, mailer, desk, pipeline) from the settings, the
same way for the daemon and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import peewee

from mailticket import db as dbmod
from mailticket.config import Settings
from mailticket.desk.tickets import Desk
from mailticket.intake.pipeline import Pipeline
from mailticket.mail.compose import Composer
from mailticket.models import utcnow
from mailticket.outbox import Mailer
from mailticket.storage import Store


@dataclass
class App:
    settings: Settings
    db: peewee.Database
    composer: Composer
    mailer: Mailer
    desk: Desk
    pipeline: Pipeline
    store: Store


def build(settings: Settings, *, clock: Callable[[], datetime] = utcnow,
          after_commit: Callable[[], None] | None = None, migrate: bool = True) -> App:
    composer = Composer(settings.templates)
    composer.check()
    database = dbmod.connect(settings.database, create=migrate)
    store = Store(settings.storage)
    mailer = Mailer(settings, composer, clock=clock)
    desk = Desk(settings, mailer, store, clock=clock)
    pipeline = Pipeline(database, settings, desk, clock=clock, after_commit=after_commit)
    return App(settings, database, composer, mailer, desk, pipeline, store)
