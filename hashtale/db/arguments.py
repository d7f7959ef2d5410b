"""The `--database-url` option of every command that opens the database, and its default."""
from __future__ import annotations

import argparse

from hashtale.settings import Settings


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL or the embedded SQLite file")


def database_url(args: argparse.Namespace) -> str:
    """The command's --database-url, else the configured one."""
    return args.database_url or Settings.from_env().database_url
