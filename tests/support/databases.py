"""Databases for tests and benches: throwaway PostgreSQL databases (each with a unique name, dropped on exit, so
parallel sessions never see each other's rows), migrated templates, and the fixtures built on them.

A template is migrated once per test session, and only when a test asks for one: a session of SQLite-only
tests never connects to PostgreSQL.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from hashtale.db import migrate
from hashtale.db.session import session_factory_for

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASE_KINDS = ("sqlite", "postgresql")  # the values of `database_url`'s parameter


def pg_database_url(name: str) -> str:
    """The URL of database `name` on the server PG_ADMIN_URL points at."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@contextmanager
def scratch_pg_database(prefix: str, template: str | None = None) -> Iterator[tuple[str, str]]:
    """Create database `<prefix>_<random>` (a copy of `template` if given); yield (name, url); drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
    try:
        yield name, pg_database_url(name)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def fresh_database(kind: str, folder: Path, template) -> tuple[str, Callable[[], None]]:
    """A migrated, empty database of its own, copied from `template` (the `<kind>_template` fixture): (url, drop)."""
    if kind == "sqlite":
        copy = folder / f"hashtale-{uuid.uuid4().hex[:8]}.sqlite"
        shutil.copyfile(template, copy)
        return f"sqlite:///{copy}", lambda: None
    database = scratch_pg_database("hashtale_test", template=template)
    _name, url = database.__enter__()
    return url, lambda: database.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, made once per test session."""
    sqlite_file = tmp_path_factory.mktemp("template") / "template.sqlite"
    migrate(f"sqlite:///{sqlite_file}")
    with sqlite3.connect(sqlite_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, so a copy is complete
    return sqlite_file


@pytest.fixture(scope="session")
def postgresql_template() -> str:
    """The name of a migrated PostgreSQL template database, made once per test session."""
    with scratch_pg_database("hashtale_tpl") as (name, template_url):
        migrate(template_url)
        yield name


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request, tmp_path) -> str:
    """A migrated, empty database of this test's own (so counts are exact): SQLite, or PostgreSQL."""
    url, drop = fresh_database(request.param, tmp_path, request.getfixturevalue(f"{request.param}_template"))
    yield url
    drop()


@pytest.fixture
def sessions(database_url) -> sessionmaker[Session]:
    with session_factory_for(database_url) as factory:
        yield factory


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    with scratch_pg_database("hashtale_test") as (_name, url):
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hashtale.sqlite'}"
