"""Shared fixtures: databases (SQLite always, PostgreSQL when MAILTICKET_TEST_POSTGRES is set).

Server fixtures (Dovecot, the SMTP sink, headless Chromium) live in tests/servers/ and are
registered here.
"""

from __future__ import annotations

import os
import uuid

import peewee
import pytest

from mailticket import db as dbmod

pytest_plugins = [
    "tests.servers.browser",
    "tests.servers.dovecot",
    "tests.servers.smtpsink",
    "tests.servers.portal",
]

POSTGRES_ENV = "MAILTICKET_TEST_POSTGRES"


def backends() -> list[str]:
    backends = ["sqlite"]
    if os.environ.get(POSTGRES_ENV):
        backends.append("postgres")
    return backends


def postgres_url() -> str:
    value = os.environ.get(POSTGRES_ENV, "")
    if value in ("1", "true", "yes"):
        return "postgresql://postgres@127.0.0.1:5432/test"
    return value


def create_postgres_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database: (url, name)."""
    base = postgres_url()
    admin = dbmod.open_database(base)
    name = "mt_" + uuid.uuid4().hex[:12]
    admin.connect()
    admin.execute_sql(f'CREATE DATABASE "{name}"')
    admin.close()
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}", name


def drop_postgres_database(name: str) -> None:
    admin = dbmod.open_database(postgres_url())
    admin.connect()
    admin.execute_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    admin.execute_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def fresh_postgres_url():
    """A throwaway PostgreSQL database (a new database per test)."""
    url, name = create_postgres_database()
    yield url
    drop_postgres_database(name)


@pytest.fixture(params=backends())
def database_url(request, tmp_path):
    """A fresh, empty database URL: SQLite in tmp_path, and PostgreSQL when enabled."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailticket.db'}"
    else:
        yield request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def database(database_url) -> peewee.Database:
    """An open, migrated database bound to the models."""
    from mailticket.wiring import attach, detach

    db = attach(database_url)
    yield db
    detach(database_url)


def app_on_backend(request, tmp_path_factory, name: str):
    """A built app on a fresh database of ``request.param`` ("sqlite" or "postgres"), for a
    module-scoped fixture parametrized with backends(); the database is dropped afterwards."""
    from mailticket.wiring import build
    from tests.helpers import settings_for

    tmp = tmp_path_factory.mktemp(name)
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / (name + '.db')}"
    else:
        url, database = create_postgres_database()
    application = build(settings_for(tmp, url))
    yield application
    application.close()
    if database:
        drop_postgres_database(database)
