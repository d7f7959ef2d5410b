"""`hashtale migrate`: bring the configured database up to the latest schema."""
from __future__ import annotations

from db.session import migrate
from settings import Settings


def add_arguments(parser) -> None:
    parser.add_argument("--revision", default="head", help="Alembic revision (default: head)")
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL or the embedded SQLite file")


def run(args) -> int:
    url = args.database_url or Settings.from_env().database_url
    migrate(url, args.revision)
    print(f"database at {url.split('@')[-1]} is at {args.revision}")
    return 0
