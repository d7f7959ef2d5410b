"""Helpers shared by the admin-review tests: real posts (photo file + rows) written the way the pipeline leaves them."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session

from db.schema import Hashtag, Post, PostStatus, Story
from review.admins import create_admin

GRID = (7, 7)  # the hashtagger's attention grid
PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def add_post(
    session: Session, media_dir: Path, image: bytes, n: int, tags: list[str], *, story: str | None = "Once upon a time.",
    status: PostStatus = PostStatus.DONE, tagger: tuple[str, str] = ("sat-effnetlite0", "v1"),
    writer: tuple[str, str] = ("char-lstm", "v1"), rng: np.random.Generator | None = None,
) -> Post:
    """Post number `n` (created n minutes after T0) with its photo stored under media_dir."""
    rng = rng or np.random.default_rng(n)
    sha = hashlib.sha256(image).hexdigest()
    path = media_dir / f"{sha}.jpg"
    if not path.exists():
        media_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    with Image.open(path) as img:
        width, height = img.size
    post = Post(external_id=f"post-{n}", image_sha256=sha, image_path=path.name, image_format="JPEG", width=width,
                height=height, caption=f"caption {n}", author=f"author{n % 7}", status=status,
                created_at=T0 + timedelta(minutes=n), updated_at=T0 + timedelta(minutes=n))
    for rank, text in enumerate(tags, start=1):
        attention = rng.dirichlet(np.ones(GRID[0] * GRID[1])).astype(float).tolist()
        post.hashtags.append(Hashtag(rank=rank, text=text, score=round(0.9 / rank, 3), attention=attention,
                                     attention_shape=list(GRID), model_name=tagger[0], model_version=tagger[1]))
    if story is not None:
        post.story = Story(seed_hashtag=tags[0], text=story, length=500, temperature=0.8, top_k=20, random_seed=n,
                           model_name=writer[0], model_version=writer[1])
    session.add(post)
    session.flush()
    return post


def add_admin(session: Session, username: str) -> int:
    return create_admin(session, username, PASSWORD).id


def csrf_token(html: str) -> str:
    return CSRF_INPUT.search(html).group(1)


def log_in(client: FlaskClient, username: str) -> None:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"csrf_token": token, "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
