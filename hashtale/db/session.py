"""Engines, sessions and migrations. Callers own their sessions and keep transactions short."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000  # webhook threads and worker processes share one SQLite file


def make_engine(url: str, pre_ping: bool = True, pool_size: int | None = None) -> Engine:
    """`pre_ping`: test each pooled connection on checkout (one round trip) so a database restart fails nothing.
    `pool_size`: at most this many connections (no overflow), so a deployment can size its processes against the
    server's max_connections; None: SQLAlchemy's default (5, plus 10 overflow)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        sizing = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
        return create_engine(url, pool_pre_ping=pre_ping, **sizing)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_factory_for(url: str, **engine_args) -> Iterator[sessionmaker[Session]]:
    """Sessions on an engine of their own, disposed on exit: what a one-shot command or a test needs."""
    engine = make_engine(url, **engine_args)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None: no schema yet)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def migrate(url: str, revision: str = "head") -> str | None:
    """Bring the database at `url` to `revision`, up or down (creating the SQLite file if needed); returns the
    revision it is at afterwards. "head" is the newest revision, "base" an empty schema."""
    config = alembic_config(url)
    current = current_revision(url)  # also creates the SQLite parent folder
    script = ScriptDirectory.from_config(config)
    target = script.get_revision(revision) if revision not in ("head", "base") else None  # raises if unknown
    below_current = current is not None and (
        revision == "base" or (target is not None and target.revision != current
                               and target.revision in {r.revision for r in script.iterate_revisions(current, "base")}))
    if below_current:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)
    return current_revision(url)
