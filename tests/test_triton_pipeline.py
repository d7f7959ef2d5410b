"""Acceptance (Triton wiring): photos posted to the webhook, PostgreSQL, Redis, a real Celery worker process
with INFERENCE_BACKEND=triton, and a real tritonserver on the shipped triton_repo/. Then tritonserver is
stopped while posts are in flight: their tasks retry (InferenceUnavailable) and finish once it is back.

One server and one worker for the module; the restart test runs last.
"""
from __future__ import annotations

import secrets
import time

import pytest
from sqlalchemy import select

from hashtale.db.schema import Hashtag, Post, PostStatus, Story
from hashtale.db.session import make_engine, make_session_factory, migrate
from hashtale.inference.repository import REPOSITORY, weights_path
from hashtale.inference.tritonserver import TritonServer
from hashtale.models.checkpoint import file_version
from tests.support.workers import post_photos, running_worker, wait_until_final
from hashtale.webhook import create_app

pytestmark = pytest.mark.slow  # a tritonserver and Celery worker processes

K = 5
# characters: ~0.2-0.3 s a story through Triton, so that posts are still in flight when the first is done and the
# server stops (at 60 characters, with the faster encoder, four posts could all finish within a poll or two)
STORY_LENGTH = 1500
DONE_TIMEOUT = 300.0  # seconds: includes a tritonserver restart on a busy 2-core machine
# seconds: parked posts are looked at again every second, at most 3 s after their last failure
PARKING = {"RETRY_BACKOFF": "0.5", "RETRY_BACKOFF_MAX": "3", "RETRY_POLL_INTERVAL": "1"}
POLL = 0.1  # seconds


@pytest.fixture(scope="module")
def server():
    with TritonServer(REPOSITORY) as server:
        yield server


@pytest.fixture(scope="module")
def database(pg_url):
    migrate(pg_url)
    engine = make_engine(pg_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def pipeline(server, database, pg_url, redis_url, tmp_path_factory):
    """(webhook test client, session factory, worker) wired to one queue, the Triton backend over gRPC."""
    root = tmp_path_factory.mktemp("triton-pipeline")
    queue = f"hashtale-triton-{root.name}"
    media = root / "media"
    client = create_app({"database_url": pg_url, "broker_url": redis_url, "task_queue": queue,
                         "media_dir": str(media), "secret_key": secrets.token_hex(), "TESTING": True}).test_client()
    env = {"DATABASE_URL": pg_url, "BROKER_URL": redis_url, "TASK_QUEUE": queue, "MEDIA_DIR": str(media),
           "STORY_LENGTH": str(STORY_LENGTH), "HASHTAGS_PER_POST": str(K), "INFERENCE_BACKEND": "triton",
           "TRITON_URL": server.grpc_url, "TRITON_PROTOCOL": "grpc", "TRITON_TIMEOUT": "60", **PARKING}
    with running_worker(env, root / "worker.log", concurrency=1, beat=True) as worker:  # beat: due retries
        yield client, database, worker


def assert_done_through_triton(sessions, post_ids):
    tagger_version = file_version(weights_path(REPOSITORY, "hashtagger"))
    writer_version = file_version(weights_path(REPOSITORY, "storyteller"))
    with sessions() as session:
        for post_id in post_ids:
            post = session.get(Post, post_id)
            tags = session.scalars(select(Hashtag).where(Hashtag.post_id == post_id).order_by(Hashtag.rank)).all()
            (story,) = session.scalars(select(Story).where(Story.post_id == post_id)).all()
            assert post.status == PostStatus.DONE and post.error is None
            assert 1 <= len(tags) <= K and [t.rank for t in tags] == list(range(1, len(tags) + 1))
            assert len({t.text for t in tags}) == len(tags)  # the emitted set: distinct
            assert {t.model_version for t in tags} == {tagger_version}  # the weights Triton serves
            assert story.model_version == writer_version and story.seed_hashtag == tags[0].text and story.text
            assert story.hashtags == [t.text for t in tags]


def test_posts_go_through_triton_into_postgresql(pipeline, photo_paths):
    client, sessions, worker = pipeline
    post_ids = post_photos(client, photo_paths[:2], "through-triton")
    statuses = wait_until_final(sessions, post_ids, DONE_TIMEOUT)
    assert set(statuses.values()) == {PostStatus.DONE}, worker.log()[-4000:]
    assert_done_through_triton(sessions, post_ids)


def test_stopping_triton_mid_flight_loses_nothing(pipeline, server, photo_paths):
    client, sessions, worker = pipeline
    in_flight = post_photos(client, photo_paths[10:14], "triton-restart")
    # The posts are tagged in one batch and write their stories together: stop once the stories have begun. What
    # the server is running then, it finishes (SIGTERM drains); what arrives after, it refuses.
    wait_for(lambda: {PostStatus.WRITING, PostStatus.DONE} & set(statuses(sessions, in_flight)), DONE_TIMEOUT)
    server.stop()
    parked = worker.log().count("parked for")
    while_down = post_photos(client, photo_paths[14:16], "triton-down")
    wait_for(lambda: worker.log().count("parked for") > parked, DONE_TIMEOUT)  # the outage parks posts...
    post_ids = in_flight + while_down
    assert PostStatus.FAILED not in statuses(sessions, post_ids)  # ...and fails none
    server.start()
    final = wait_until_final(sessions, post_ids, DONE_TIMEOUT)
    assert set(final.values()) == {PostStatus.DONE}, worker.log()[-4000:]
    assert_done_through_triton(sessions, post_ids)
    with sessions() as session:  # parked runs gave their attempts back: two runs a post, as without the outage
        posts = [session.get(Post, i) for i in post_ids]
        assert [p.attempts for p in posts] == [2] * len(posts) and {p.transient_failures for p in posts} == {0}


def statuses(sessions, post_ids) -> list[PostStatus]:
    with sessions() as session:
        return list(session.scalars(select(Post.status).where(Post.id.in_(post_ids))))


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met after {timeout} s"
        time.sleep(POLL)
