"""Helpers shared by the webhook tests: migrated databases on SQLite and PostgreSQL, the app with a real
broker that needs no server (kombu's SQLAlchemy transport on a SQLite file), and photos of every kind."""
from __future__ import annotations

import io
import secrets
import shutil
import sqlite3
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
from kombu import Connection
from PIL import Image
from sqlalchemy import func, select

from db import Post, migrate
from webhook import create_app
from tests.scratch_db import scratch_pg_database
from webhook.read_token import read_token
from webhook.storage import LOCK_DIR

BOMB_SIDE = 20_000  # px: a 400-megapixel PNG that compresses to a few kilobytes
NOISE_SIZE = (64, 48)  # px, small photos that differ from test to test
EXIF_ORIENTATION = 0x0112
ROTATED_90 = 6  # EXIF orientation: the camera was turned; viewers rotate the pixels 90° clockwise


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory):
    """A migrated SQLite file and a migrated PostgreSQL template database, made once per test session."""
    sqlite_file = tmp_path_factory.mktemp("webhook-template") / "template.sqlite"
    migrate(f"sqlite:///{sqlite_file}")
    with sqlite3.connect(sqlite_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, so a copy is complete
    with scratch_pg_database("hashtale_webhook_tpl") as (name, template_url):
        migrate(template_url)
        yield sqlite_file, name


def fresh_database(kind: str, folder: Path, templates) -> tuple[str, callable]:
    """A migrated, empty database of its own: (url, drop)."""
    sqlite_file, template = templates
    if kind == "sqlite":
        copy = folder / f"webhook-{uuid.uuid4().hex[:8]}.sqlite"
        shutil.copyfile(sqlite_file, copy)
        return f"sqlite:///{copy}", lambda: None
    database = scratch_pg_database("hashtale_webhook", template=template)
    _name, url = database.__enter__()
    return url, lambda: database.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, migrated_templates):
    url, drop = fresh_database(request.param, tmp_path, migrated_templates)
    yield url
    drop()


def app_config(database_url: str, folder: Path, queue: str, **overrides) -> dict:
    return {
        "database_url": database_url,
        "broker_url": f"sqla+sqlite:///{folder / 'broker.sqlite'}",
        "media_dir": str(folder / "media"),
        "task_queue": queue,
        "secret_key": secrets.token_hex(),
        "TESTING": True,
        **overrides,
    }


@pytest.fixture
def make_app(database_url, tmp_path, queue_name):
    """Build the app on this test's database, media folder and broker queue; engines disposed at the end."""
    apps = []

    def make(**overrides):
        app = create_app(app_config(database_url, tmp_path, queue_name, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["database"].engine.dispose()


def read_url(app, post_id: int, image: bool = False) -> str:
    """The read API's URL of a post (or of its photo) with the post's read token, as the 202 answer gives it."""
    token = read_token(app.secret_key, post_id)
    return f"/posts/{post_id}{'/image' if image else ''}?token={token}"


def post_count(app) -> int:
    with app.extensions["database"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(Post))


def get_post(app, post_id: int) -> Post:
    with app.extensions["database"].session_factory() as session:
        return session.get(Post, post_id)


def media_files(app) -> list[Path]:
    """Every photo file under the app's media folder (lock files aside)."""
    root = Path(app.config["SETTINGS"].media_dir)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and LOCK_DIR not in p.relative_to(root).parts)


def queued_post_ids(app) -> list[int]:
    """Take every message off this app's task queue: the post ids of the suggest_hashtags tasks."""
    settings = app.config["SETTINGS"]
    ids = []
    with Connection(settings.broker_url) as conn:
        queue = conn.SimpleQueue(settings.task_queue)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            assert message.headers["task"] == "worker.tasks.suggest_hashtags"
            args, _kwargs, _embed = message.decode()
            ids.extend(args)
            message.ack()
        queue.close()
    return ids


def jpeg(array: np.ndarray, **save_args) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", **save_args)
    return buf.getvalue()


def encoded(fmt: str, seed: int | None = None, size: tuple[int, int] = NOISE_SIZE) -> bytes:
    """A small noise photo in `fmt`, different for every seed (so tests never share an image hash)."""
    rng = np.random.default_rng(seed if seed is not None else uuid.uuid4().int % 2**32)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def rotated_jpeg(width: int = 40, height: int = 20) -> bytes:
    """A width x height JPEG whose EXIF says "rotate 90°": upright it is height x width."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


EXIF_TIFF_MAGIC_AT = 9  # the "*" of b"Exif\0\0MM\0*" (Exif.tobytes()): without it the block is unreadable
EXIF_FIRST_TAG_TYPE_AT = 17  # the type of the first tag (Make, ASCII): 0 is no type, so the tag cannot be written back


def photo_with_exif(fmt: str, broken_byte: int | None = None) -> bytes:
    """A 30x20 photo in `fmt` whose EXIF says "rotate 90°" and names a camera; `broken_byte` set to 0 corrupts it."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90
    exif[0x010F] = "Canon"  # Make
    block = bytearray(exif.tobytes())
    if broken_byte is not None:
        block[broken_byte] = 0
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=bytes(block))
    return buf.getvalue()


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid side x side 1-bit PNG of zeros: a few kB on the wire, `side`² pixels once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
