"""Photo files no post references, and `hashtale gc-media` that removes them.

A refused post leaves no file: its INSERT fails before the file is written, or its failed commit removes the
file. One case is left: the commit fails and the database cannot even be asked whether another post uses the
file (it went down mid-request). Such files, and temp files of a process killed mid-write, are what this removes.
Each file is checked and removed under its hash's lock (hashtale/webhook/storage.py), so a request that is writing
the same photo and committing its post is never undercut.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from hashtale.db.schema import Post
from hashtale.webhook.storage import LOCK_DIR, TEMP_PREFIX, MediaStore

PHOTO_NAME = re.compile(r"(?P<sha256>[0-9a-f]{64})\.[a-z]+")
TEMP_GRACE = 3600.0  # seconds; a temp file older than this belongs to no live write


@dataclass
class Collected:
    kept: int = 0  # photos some post references
    removed: list[str] = field(default_factory=list)  # relative paths of removed photos and temp files


def remove_unreferenced(session: Session, store: MediaStore, sha256: str, relative: str) -> bool:
    """Remove the photo at `relative` unless a post references its hash. Call under `store.locked(sha256)`."""
    if session.scalar(select(exists().where(Post.image_sha256 == sha256))):
        return False
    store.remove(relative)
    return True


def _photos(store: MediaStore) -> Iterator[tuple[str, str | None]]:
    """(relative path, sha256 or None for a temp file) of every file under the store but its locks."""
    for path in sorted(store.root.rglob("*")):
        relative = path.relative_to(store.root)
        if not path.is_file() or relative.parts[0] == LOCK_DIR:
            continue
        if path.name.startswith(TEMP_PREFIX):
            yield relative.as_posix(), None
        elif match := PHOTO_NAME.fullmatch(path.name):
            yield relative.as_posix(), match["sha256"]


def collect(sessions: sessionmaker[Session], store: MediaStore, temp_grace: float = TEMP_GRACE) -> Collected:
    result = Collected()
    for relative, sha256 in _photos(store):
        if sha256 is None:
            if time.time() - store.absolute(relative).stat().st_mtime > temp_grace:
                store.remove(relative)
                result.removed.append(relative)
            continue
        with store.locked(sha256), sessions() as session:
            if remove_unreferenced(session, store, sha256, relative):
                result.removed.append(relative)
            else:
                result.kept += 1
    return result


def add_arguments(parser) -> None:
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL or the embedded SQLite file")
    parser.add_argument("--media-dir", default=None, help="default: $MEDIA_DIR")


def run(args) -> int:
    from hashtale.db.session import make_engine, make_session_factory
    from hashtale.settings import Settings

    settings = Settings.from_env()
    engine = make_engine(args.database_url or settings.database_url)
    try:
        result = collect(make_session_factory(engine), MediaStore(args.media_dir or settings.media_dir))
    finally:
        engine.dispose()
    for relative in result.removed:
        print(f"removed {relative}")
    print(f"{len(result.removed)} files removed, {result.kept} photos in use")
    return 0
