"""kombu's SQLAlchemy transport (the embedded default's broker: a table in an SQLite file), made fit to batch.

kombu's transport fetches one message per transaction, on an SQLite file in its default rollback-journal mode with
a full sync at every commit, and polls an empty queue once a second. A fetch then waits for the disk each time
(bench/ingest.py prints the rate), so a worker's batch window (BATCH_WAIT_MS) saw about one message, and an idle
worker added up to a second per stage to every lone post. Here:
- the file runs in WAL mode with `synchronous=NORMAL`: a commit no longer waits for the disk, and readers never
  block the writer. A power loss (not a process crash) may undo the last commits: a lost publish leaves its post
  waiting past the queue's window, which the sweep re-enqueues (hashtale/worker/sweep.py); a lost acknowledgement
  redelivers a message, and tasks are idempotent;
- an empty queue is polled every POLLING_INTERVAL, one indexed SELECT.
Neither can be set through transport options: the SQLAlchemy transport hands its options to `create_engine`.
"""
from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES, sqlalchemy
from sqlalchemy import event

from hashtale.db.session import (  # the webhook, the beat and the worker publish and fetch on one file
    SQLITE_BUSY_TIMEOUT_MS,
)

SCHEMES = ("sqla", "sqlalchemy")
POLLING_INTERVAL = 0.05  # seconds between polls of an empty queue


class Channel(sqlalchemy.Channel):
    def _engine_from_config(self):
        engine = super()._engine_from_config()
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine


class Transport(sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def install() -> None:
    """Make sqla+ and sqlalchemy+ broker URLs use this transport in this process."""
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
