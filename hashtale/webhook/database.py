"""The database as a Flask extension: one engine per app, one session per request, closed at teardown."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hashtale.db.session import make_engine, make_session_factory

EXTENSION = "database"


@dataclass(frozen=True)
class _State:
    engine: Engine
    session_factory: sessionmaker[Session]


class Database:
    def __init__(self, app: Flask | None = None):
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        # No ping on checkout: it is a round trip on every post. After a database restart, the first request on
        # a dead pooled connection answers 503 (the sender retries) and SQLAlchemy then renews the whole pool.
        # One connection per gunicorn thread: what a process can use at once, and what the compose file's sizing counts.
        settings = app.config["SETTINGS"]
        engine = make_engine(settings.database_url, pre_ping=False, pool_size=settings.webhook_threads)
        app.extensions[EXTENSION] = _State(engine, make_session_factory(engine))
        app.teardown_appcontext(self._close_session)

    @property
    def session(self) -> Session:
        """This request's session, opened on first use."""
        if "db_session" not in g:
            g.db_session = current_app.extensions[EXTENSION].session_factory()
        return g.db_session

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()  # rolls back whatever the view left uncommitted


db = Database()
