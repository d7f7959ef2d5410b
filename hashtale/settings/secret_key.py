"""The key that signs admin sessions and CSRF tokens.

There is no built-in default: anyone who knows the key can forge an admin session cookie. So
- `SECRET_KEY` (or `SECRET_KEY_FILE`) set: used, if it is at least MIN_LENGTH characters;
- unset with the embedded default (a SQLite database file): a random key is generated on first run and kept,
  mode 0600, in `secret_key` beside the database file, so every process and every restart signs with the same
  key (created atomically: the first writer wins, every other process reads its key);
- unset anywhere else (PostgreSQL, a deployment): refused, with a message that says what to set.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

MIN_LENGTH = 32  # characters; a generated key has 64 hex digits (256 bits)
KEY_BYTES = 32
KEY_FILE_NAME = "secret_key"
KEY_FILE_MODE = 0o600


class MissingSecretKey(RuntimeError):
    """No usable SECRET_KEY for a deployment that must be given one."""


def embedded_key_file(database_url: str) -> Path | None:
    """Where the embedded default keeps its generated key: beside its SQLite database file (None otherwise)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).absolute().parent / KEY_FILE_NAME


def resolve_secret_key(secret_key: str, database_url: str) -> str:
    if secret_key:
        if len(secret_key) < MIN_LENGTH:
            raise MissingSecretKey(f"SECRET_KEY must be at least {MIN_LENGTH} characters "
                                   f"(generate one: python -c 'import secrets; print(secrets.token_hex())')")
        return secret_key
    key_file = embedded_key_file(database_url)
    if key_file is None:
        raise MissingSecretKey("SECRET_KEY (or SECRET_KEY_FILE) is required unless the database is the embedded "
                               "SQLite default; generate one: python -c 'import secrets; print(secrets.token_hex())'")
    return _read_or_create(key_file)


def _read_or_create(path: Path) -> str:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)  # atomic, and fails if another process created the key first
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise MissingSecretKey(f"{path} holds no usable key; delete it to generate a new one")
    return key
