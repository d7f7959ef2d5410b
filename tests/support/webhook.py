"""The webhook app in tests: built on the test's own database (`database_url`), media folder and a real broker that
needs no server (kombu's SQLAlchemy transport on a SQLite file), and what a test reads back from it."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import func, select

from hashtale.db import Post
from hashtale.webhook import create_app
from hashtale.webhook.read_token import read_token
from hashtale.webhook.storage import LOCK_DIR


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
