"""Content-addressed photo files under settings.media_dir.

A photo lives at `ab/cd/<sha256><suffix>`: identical uploads share one file, and a file never changes once
written (temp file + fsync + rename, so readers never see half a photo). A per-hash lock, held by the caller
across "write file + commit row" and across "check references + remove file", keeps a failed request from
removing a file that a concurrent request with the same photo has just committed.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hashtale.models.image import FORMATS

LOCK_DIR = ".locks"
LOCK_STRIPE_HEX = 2  # leading hex digits of the hash naming a lock file: 256 lock files, few collisions
TEMP_PREFIX = ".incoming-"
FILE_MODE = 0o644


class MediaStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()  # a relative MEDIA_DIR means the working directory, for every reader

    def relative_path(self, sha256: str, image_format: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}{FORMATS[image_format].suffix}"

    def absolute(self, relative: str) -> Path:
        return self.root / relative

    @contextmanager
    def locked(self, sha256: str) -> Iterator[None]:
        """Exclusive lock shared by every process writing to this media folder, for one stripe of hashes."""
        lock_path = self.root / LOCK_DIR / f"{sha256[:LOCK_STRIPE_HEX]}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except FileNotFoundError:  # a new media folder
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def put(self, relative: str, data: bytes) -> bool:
        """Write `data` at `relative` atomically and durably; False if the file was already there.

        Call under `locked(sha256)`: the temp name is then this file's alone.
        """
        path = self.absolute(relative)
        if path.exists():  # same name, same content: the name is the content's hash
            return False
        tmp = path.with_name(TEMP_PREFIX + path.name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        except FileNotFoundError:  # first photo of this folder
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # the photo is on disk before the row that points to it is committed
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)  # ...and so is its name
        return True

    def remove(self, relative: str) -> None:
        self.absolute(relative).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
