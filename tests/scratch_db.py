"""Throwaway PostgreSQL databases for tests and benches: each gets a unique name and is dropped on exit,
so parallel sessions never see each other's rows."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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
