"""`hashtale migrate`: bring the configured database to a schema revision (the latest by default), up or down."""
from __future__ import annotations

import sys

from alembic.util import CommandError

from hashtale.db.arguments import add_database_url, database_url
from hashtale.db.session import migrate


def add_arguments(parser) -> None:
    parser.add_argument("--revision", default="head",
                        help="Alembic revision to go to, up or down (default: head; base: no schema)")
    add_database_url(parser)


def run(args) -> int:
    url = database_url(args)
    try:
        now = migrate(url, args.revision)
    except CommandError as exc:  # an unknown revision
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"database at {url.split('@')[-1]} is at {now or 'base (no schema)'}")
    return 0
