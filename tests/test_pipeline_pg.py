"""Acceptance (production wiring): real photos posted to the webhook, PostgreSQL as the database, Redis as
the broker, a real Celery worker process with the local models; the rows end up in PostgreSQL."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from hashtale.db.schema import Hashtag, Post, PostStatus, Story
from hashtale.db.session import make_engine, make_session_factory, migrate
from tests.support.webhook import read_url
from tests.support.workers import post_photos, running_worker, wait_until_final
from hashtale.webhook import create_app
from hashtale.worker import pipeline

pytestmark = pytest.mark.slow  # Celery worker processes

N_PHOTOS = 6
K = 5
STORY_LENGTH = 120  # characters: the pipeline is the same at 500, the test is faster
DONE_TIMEOUT = 180.0  # seconds for the worker to start and process every post on a busy 2-core machine


def test_posted_photos_are_tagged_and_told_in_postgresql(pg_url, redis_url, queue_name, photo_paths, tmp_path):
    migrate(pg_url)
    media = tmp_path / "media"
    config = {"database_url": pg_url, "broker_url": redis_url, "task_queue": queue_name, "media_dir": str(media),
              "secret_key": secrets.token_hex(), "TESTING": True}
    client = create_app(config).test_client()
    photos = photo_paths[:: len(photo_paths) // N_PHOTOS][:N_PHOTOS]  # spread over the set

    post_ids = post_photos(client, photos, queue_name)

    env = {"DATABASE_URL": pg_url, "BROKER_URL": redis_url, "TASK_QUEUE": queue_name, "MEDIA_DIR": str(media),
           "STORY_LENGTH": str(STORY_LENGTH)}
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    try:
        with running_worker(env, tmp_path / "worker.log", concurrency=2) as worker:
            statuses = wait_until_final(sessions, post_ids, DONE_TIMEOUT)
            assert set(statuses.values()) == {PostStatus.DONE}, worker.log()[-4000:]

        with sessions() as session:
            for post_id in post_ids:
                post = session.get(Post, post_id)
                tags = session.scalars(select(Hashtag).where(Hashtag.post_id == post_id).order_by(Hashtag.rank)).all()
                (story,) = session.scalars(select(Story).where(Story.post_id == post_id)).all()
                assert post.attempts == 2 and post.error is None
                assert 1 <= len(tags) <= K and [t.rank for t in tags] == list(range(1, len(tags) + 1))
                assert len({t.text for t in tags}) == len(tags)  # the emitted set: distinct
                assert story.seed_hashtag == tags[0].text and story.random_seed == pipeline.story_seed(post_id)
                assert story.hashtags == [t.text for t in tags]
                assert story.length == STORY_LENGTH and story.text

        shown = client.get(read_url(client.application, post_ids[0])).get_json()  # and the webhook's read API shows them
        assert shown["status"] == "done" and 1 <= len(shown["hashtags"]) <= K and shown["story"]["text"]
    finally:
        engine.dispose()
