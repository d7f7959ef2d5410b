"""A batch fills while the pool is busy, on both brokers (hashtale/worker/batching.py): posts that arrive while the
worker's one pool process runs another post's batch reach the model as ONE call once the process is free, not as one
small call per stage wait. With Redis, Celery's semaphore holds the hand-over back; with the embedded SQLite broker (no
event loop) the batch waits on billiard's semaphore of free processes before it is sealed. And a lone post, which
finds nothing of its stage under way, is not held for a batch at all."""
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
from hashtale.worker.batching import BATCHED_STAGES

pytestmark = pytest.mark.slow  # a Celery worker process

LATER_POSTS = 4  # arrive while the pool process writes the first post's story
BATCH_SIZE = 8  # > LATER_POSTS: only the pool's being busy holds them back, not a full batch
BATCH_WAIT_MS = 20  # far shorter than the first story takes: without filling, each stage wait seals a batch
STORY_LENGTH = 4000  # characters: the first story keeps the one pool process busy while the later posts arrive
STATUS_TIMEOUT = 90.0  # seconds for the worker to start and reach the first post's story
DONE_TIMEOUT = 180.0  # seconds for every post to be done on a busy 2-core machine
POLL = 0.05  # seconds
LONG_WAIT_MS = 20_000  # BATCH_WAIT_MS for the lone post: each stage would hold a batch 10 s


def worker_env(broker: str, request, tmp_path, queue_name: str, **settings) -> dict[str, str]:
    broker_url = (f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}" if broker == "embedded"
                  else request.getfixturevalue("redis_url"))
    database_url = f"sqlite:///{tmp_path / 'hashtale.sqlite'}"
    migrate(database_url)
    return {"DATABASE_URL": database_url, "BROKER_URL": broker_url, "TASK_QUEUE": queue_name,
            "MEDIA_DIR": str(tmp_path / "media"), "WORKER_METRICS_BIND": f"127.0.0.1:{free_port()}",
            "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
            **{name.upper(): str(value) for name, value in settings.items()}}


def webhook_client(env: dict[str, str]):
    return create_app({"database_url": env["DATABASE_URL"], "broker_url": env["BROKER_URL"],
                       "task_queue": env["TASK_QUEUE"], "media_dir": env["MEDIA_DIR"],
                       "secret_key": secrets.token_hex()}).test_client()


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_posts_that_arrive_while_the_pool_is_busy_share_one_model_call(broker, request, tmp_path, photo_paths,
                                                                      queue_name):
    env = worker_env(broker, request, tmp_path, queue_name, batch_size=BATCH_SIZE, batch_wait_ms=BATCH_WAIT_MS,
                     story_length=STORY_LENGTH)
    database_url, bind = env["DATABASE_URL"], env["WORKER_METRICS_BIND"]
    client = webhook_client(env)
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


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_lone_post_is_not_held_for_a_batch(broker, request, tmp_path, photo_paths, queue_name):
    """Nothing of either stage is under way when the lone post's messages arrive: each goes to the pool at once,
    though BATCH_WAIT_MS would let a batch wait 10 s per stage for more posts."""
    env = worker_env(broker, request, tmp_path, queue_name, batch_size=BATCH_SIZE, batch_wait_ms=LONG_WAIT_MS)
    engine = make_engine(env["DATABASE_URL"])
    sessions = make_session_factory(engine)
    try:
        with running_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
            (post_id,) = post_photos(webhook_client(env), photo_paths[:1], "lone")
            statuses = wait_until_final(sessions, [post_id], DONE_TIMEOUT)
            assert statuses == {post_id: PostStatus.DONE}, worker.log()[-4000:]
        with sessions() as session:
            timings = session.get(Post, post_id).timings
    finally:
        engine.dispose()
    stage_wait_ms = LONG_WAIT_MS / BATCHED_STAGES
    for stage in ("tagging", "writing"):
        assert timings[stage]["batch_size"] == 1
        assert timings[stage]["batch_wait_ms"] < stage_wait_ms / 10, timings
