"""The transactions a batch job shares (hashtale/worker/tasks.py: start and finish write the posts of a batch in one
transaction), on PostgreSQL, which enforces what SQLite lets through: a write the database refuses for one post
fails that post alone, and a post twice in one batch is written once."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from hashtale.db.schema import HASHTAG_TEXT_MAX, Hashtag, Post, PostStatus, utcnow
from hashtale.settings import Settings
from hashtale.worker import batching
from hashtale.worker.tasks import (
    TAGGING,
    Finished,
    StageOutput,
    each_alone_on_error,
    finish,
    runtime,
    start,
)
from tests.support.databases import fresh_database

WAIT = batching.Share(0.01, 3)


@pytest.fixture
def rt(postgresql_template, tmp_path):
    url, drop = fresh_database("postgresql", tmp_path, postgresql_template)
    worker = runtime(Settings(database_url=url, media_dir=str(tmp_path)))
    yield worker
    worker.session_factory.kw["bind"].dispose()  # its connections, before the database is dropped
    drop()


def tagging_posts(rt, count: int) -> list[int]:
    """`count` posts that a tagging run has started."""
    with rt.session_factory.begin() as session:
        posts = [Post(external_id=uuid.uuid4().hex, image_sha256="0" * 64, image_path="ab/cd.jpg",
                      image_format="JPEG", width=1, height=1, status=PostStatus.RECEIVED, attempts=0)
                 for _ in range(count)]
        session.add_all(posts)
        session.flush()
        ids = [post.id for post in posts]
    started = start(rt, TAGGING, lambda _session, posts: [post.image_path for post in posts], ids)
    assert started == [(True, "ab/cd.jpg")] * count
    return ids


def output(post_id: int, *texts: str) -> StageOutput:
    rows = [Hashtag(post_id=post_id, rank=rank, text=text, score=0.5, attention=[1.0], attention_shape=[1, 1],
                    model_name="test", model_version="1") for rank, text in enumerate(texts, start=1)]
    return StageOutput(post_id, rows, utcnow() - timedelta(seconds=1), WAIT)


def stored(rt, post_id: int) -> tuple[PostStatus, list[str]]:
    with rt.session_factory() as session:
        texts = list(session.scalars(select(Hashtag.text).where(Hashtag.post_id == post_id).order_by(Hashtag.rank)))
        return session.get(Post, post_id).status, texts


def test_a_write_the_database_refuses_fails_only_its_own_post(rt):
    first, refused, last = tagging_posts(rt, 3)
    outcomes = each_alone_on_error(lambda items: finish(rt, TAGGING, items),
                                   [output(first, "leopard"), output(refused, "x" * (HASHTAG_TEXT_MAX + 1)),
                                    output(last, "sea", "boat")])
    assert outcomes[0].moved and outcomes[2].moved
    assert isinstance(outcomes[1], DBAPIError)  # its task fails the post with this reason
    assert stored(rt, first) == (PostStatus.TAGGED, ["leopard"])
    assert stored(rt, refused) == (PostStatus.TAGGING, [])  # nothing of it written
    assert stored(rt, last) == (PostStatus.TAGGED, ["sea", "boat"])


def test_a_post_twice_in_one_batch_is_written_once(rt):
    (post_id,) = tagging_posts(rt, 1)
    finished = finish(rt, TAGGING, [output(post_id, "leopard"), output(post_id, "wildcat")])
    assert finished == [Finished(True, False, finished[0].received), Finished(False)]
    assert stored(rt, post_id) == (PostStatus.TAGGED, ["leopard"])
