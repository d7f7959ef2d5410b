"""The admin app in tests (on the test's own `database_url`), and real posts (photo file + rows) written the way the
pipeline leaves them, admins and their log-in."""
from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from hashtale.db.reviews import Admin
from hashtale.db.schema import Hashtag, Post, PostStatus, Story
from hashtale.webhook import create_app

GRID = (7, 7)  # the hashtagger's attention grid
PASSWORD = "correct horse battery"
TEST_HASH_ITERATIONS = 1000
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(database_url, tmp_path) -> Flask:
    return create_app({
        "database_url": database_url,
        "media_dir": str(tmp_path / "media"),
        "broker_url": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",  # never used: the admin pages enqueue nothing
        "secret_key": uuid.uuid4().hex,
    })


def add_post(
    session: Session, media_dir: Path, image: bytes, n: int, tags: list[str], *,
    story: str | None = "Once upon a time.",
    status: PostStatus = PostStatus.DONE, tagger: tuple[str, str] = ("sat-effnetlite0", "v1"),
    writer: tuple[str, str] = ("char-lstm", "v1"), ) -> Post:
    """Post number `n` (created n minutes after T0) with its photo stored under media_dir."""
    rng = np.random.default_rng(n)  # attention maps differ per post, the same every run
    sha = hashlib.sha256(image).hexdigest()
    path = media_dir / f"{sha}.jpg"
    if not path.exists():
        media_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    with Image.open(path) as img:
        width, height = img.size
    post = Post(external_id=f"post-{n}-{uuid.uuid4().hex[:8]}", image_sha256=sha, image_path=path.name,
                image_format="JPEG", width=width, height=height, caption=f"caption {n}", author=f"author{n % 7}",
                status=status, created_at=T0 + timedelta(minutes=n), updated_at=T0 + timedelta(minutes=n))
    for rank, text in enumerate(tags, start=1):
        attention = rng.dirichlet(np.ones(GRID[0] * GRID[1])).astype(float).tolist()
        post.hashtags.append(Hashtag(rank=rank, text=text, score=round(0.9 / rank, 3), attention=attention,
                                     attention_shape=list(GRID), model_name=tagger[0], model_version=tagger[1]))
    if story is not None:
        post.story = Story(seed_hashtag=tags[0], hashtags=list(tags), text=story, length=500, temperature=0.8, top_k=20, random_seed=n,
                           model_name=writer[0], model_version=writer[1])
    session.add(post)
    session.flush()
    return post


@functools.cache
def _cheap_hash() -> str:
    # A real salted hash, with few iterations: scrypt (the default) is made to be slow, and tests log in often.
    return generate_password_hash(PASSWORD, method=f"pbkdf2:sha256:{TEST_HASH_ITERATIONS}")


def add_admin(session: Session, username: str) -> int:
    """An admin whose password is PASSWORD (`hashtale create-admin` is tested on its own)."""
    admin = Admin(username=username, password_hash=_cheap_hash())
    session.add(admin)
    session.flush()
    return admin.id


def csrf_token(html: str) -> str:
    return CSRF_INPUT.search(html).group(1)


def log_in(client: FlaskClient, username: str) -> None:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"csrf_token": token, "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
