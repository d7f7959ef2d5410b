"""A batch fills while the pool is busy, on both brokers (hashtale/worker/batching.py): posts that arrive while the
worker's one pool process runs another post's batch reach the model as ONE call once the process is free, not as one
small call per stage wait. With Redis, Celery's semaphore holds the hand-over back; with the embedded SQLite broker (no
event loop) the batch waits on billiard's semaphore of free processes before it is sealed."""
from __future__ import annotations

import secrets
import time

import pytest
from sqlalchemy import select

from hashtale.db.schema import Post, PostStatus
from hashtale.db.session import make_engine, make_session_factory, migrate
from hashtale.inference.tritonserver import free_port
from tests.support.metrics import sample, scrape
from tests.support.workers import post_photos, running_worker, wait_until_final
from hashtale.webhook import create_app

pytestmark = pytest.mark.slow  # a Celery worker process

LATER_POSTS = 4  # arrive while the pool process writes the first post's story
BATCH_SIZE = 8  # > LATER_POSTS: only the pool's being busy holds them back, not a full batch
BATCH_WAIT_MS = 20  # far shorter than the first story takes: without filling, each stage wait seals a batch
STORY_LENGTH = 4000  # characters: the first story keeps the one pool process busy while the later posts arrive
STATUS_TIMEOUT = 90.0  # seconds for the worker to start and reach the first post's story
DONE_TIMEOUT = 180.0  # seconds for every post to be done on a busy 2-core machine
POLL = 0.05  # seconds


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_posts_that_arrive_while_the_pool_is_busy_share_one_model_call(broker, request, tmp_path, photo_paths,
                                                                      queue_name):
    broker_url = (f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}" if broker == "embedded"
                  else request.getfixturevalue("redis_url"))
    database_url = f"sqlite:///{tmp_path / 'hashtale.sqlite'}"
    migrate(database_url)
    bind = f"127.0.0.1:{free_port()}"
    env = {"DATABASE_URL": database_url, "BROKER_URL": broker_url, "TASK_QUEUE": queue_name,
           "MEDIA_DIR": str(tmp_path / "media"), "WORKER_METRICS_BIND": bind,
           "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"), "BATCH_SIZE": str(BATCH_SIZE),
           "BATCH_WAIT_MS": str(BATCH_WAIT_MS), "STORY_LENGTH": str(STORY_LENGTH)}
    client = create_app({"database_url": database_url, "broker_url": broker_url, "task_queue": queue_name,
                         "media_dir": env["MEDIA_DIR"], "secret_key": secrets.token_hex()}).test_client()
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with running_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
            (first,) = post_photos(client, photo_paths[:1], "first")
            deadline = time.monotonic() + STATUS_TIMEOUT
            while True:
                with sessions() as session:
                    if session.scalar(select(Post.status).where(Post.id == first)) == PostStatus.WRITING:
                        break
                assert time.monotonic() < deadline, worker.log()[-4000:]
                time.sleep(POLL)
            later = post_photos(client, photo_paths[1:1 + LATER_POSTS], "later")
            statuses = wait_until_final(sessions, [first, *later], DONE_TIMEOUT)
            assert set(statuses.values()) == {PostStatus.DONE}, worker.log()[-4000:]
            worked = scrape(bind)
    finally:
        engine.dispose()
    labels = {"model": "hashtagger", "backend": "local"}
    tagging = (sample(worked, "hashtale_model_batch_size_count", **labels),
               sample(worked, "hashtale_model_batch_size_sum", **labels))
    assert tagging == (2, 1 + LATER_POSTS)  # the first post alone, then every later post in one call
