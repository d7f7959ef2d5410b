"""Operating it: Prometheus metrics of a real gunicorn webhook and a real Celery worker move by the expected
amounts, a failed post is a FAILURE in Celery's event stream, and `hashtale worker-health` tells a live worker
from a dead one (a Celery ping over Redis; a heartbeat file on the embedded SQLite broker)."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from celery import Celery
from sqlalchemy import select

from hashtale.db.schema import Post, PostStatus
from hashtale.db.session import make_engine, make_session_factory, migrate
from hashtale.inference.tritonserver import free_port
from hashtale.settings import PROJECT_ROOT, Settings
from tests.support.databases import scratch_pg_database
from tests.support.metrics import sample, scrape
from tests.support.workers import running_worker, wait_until_final
from hashtale.worker.health import check
from hashtale.worker.heartbeat import HEARTBEAT_INTERVAL, STALE_AFTER_BEATS

pytestmark = pytest.mark.slow  # the webhook under gunicorn and Celery worker processes

GOOD_POSTS = 3
START_TIMEOUT = 90.0  # seconds for gunicorn to answer
DONE_TIMEOUT = 180.0  # seconds for the worker to start and finish every post on a busy 2-core machine
EVENT_TIMEOUT = 30.0  # seconds for the task-failed event to arrive after the post failed
POLL = 0.25  # seconds


class EventRecorder:
    """Celery's event stream on the broker, as Flower reads it: every task-failed event, in a thread."""

    def __init__(self, broker_url: str):
        self.app = Celery(broker=broker_url)
        self.failed: list[dict] = []
        self.ready = threading.Event()
        self.receiver = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "event receiver did not start"

    def _run(self) -> None:
        with self.app.connection() as connection:
            self.receiver = self.app.events.Receiver(connection, handlers={"task-failed": self.failed.append,
                                                                           "*": lambda event: None})
            self.ready.set()
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self) -> None:
        self.receiver.should_stop = True
        self.thread.join(timeout=10)


@pytest.fixture
def webhook_server(tmp_path, redis_url, queue_name):
    """gunicorn with the shipped config on a scratch PostgreSQL database; its metrics on a port of their own."""
    with scratch_pg_database("hashtale_monitoring") as (_name, url):
        migrate(url)
        port, metrics_port = free_port(), free_port()
        env = {**os.environ, "DATABASE_URL": url, "BROKER_URL": redis_url, "TASK_QUEUE": queue_name,
               "MEDIA_DIR": str(tmp_path / "media"), "SECRET_KEY": secrets.token_hex(), "WEB_CONCURRENCY": "2",
               "METRICS_BIND": f"127.0.0.1:{metrics_port}", "WORKER_METRICS_BIND": f"127.0.0.1:{free_port()}"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = open(tmp_path / "gunicorn.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "hashtale/webhook/gunicorn.conf.py"),
                                 "--bind", f"127.0.0.1:{port}"], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                try:
                    requests.get(f"{base}/healthz", timeout=2)
                    requests.get(f"http://{env['METRICS_BIND']}/metrics", timeout=2)
                    break
                except (requests.ConnectionError, requests.Timeout):
                    assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                    time.sleep(POLL)
            yield base, env, url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()


@pytest.mark.postgres  # webhook_server: a scratch database on the shared server
def test_metrics_count_posts_tasks_and_a_failed_post_and_celery_sees_the_failure(
        webhook_server, tmp_path, photo_paths):
    base, env, url = webhook_server
    metrics = env["METRICS_BIND"]
    before = scrape(metrics)
    ids = []
    for path in photo_paths[: GOOD_POSTS + 1]:
        response = requests.post(f"{base}/webhook", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                                 data={"external_id": f"monitoring-{path.name}"}, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    assert requests.get(f"{base}/posts/abc", timeout=5).status_code == 404

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:  # the last post's photo vanishes before any worker runs: it will fail
        doomed = session.get(Post, ids[-1])
        (Path(env["MEDIA_DIR"]) / doomed.image_path).unlink()

    queued = scrape(metrics)
    route = {"route": "/webhook", "method": "POST", "status": "202"}
    assert sample(queued, "hashtale_http_requests_total", **route) - sample(before, "hashtale_http_requests_total",
                                                                             **route) == GOOD_POSTS + 1
    assert sample(queued, "hashtale_http_requests_total", route="<unmatched>", method="GET", status="404") >= 1
    assert sample(queued, "hashtale_http_request_duration_seconds_count", route="/webhook") >= GOOD_POSTS + 1
    assert sample(queued, "hashtale_posts", status="received") == GOOD_POSTS + 1
    assert sample(queued, "hashtale_queue_messages", queue=env["TASK_QUEUE"]) == GOOD_POSTS + 1

    events = EventRecorder(env["BROKER_URL"])
    worker_env = {k: env[k] for k in ("DATABASE_URL", "BROKER_URL", "TASK_QUEUE", "MEDIA_DIR", "WORKER_METRICS_BIND")}
    try:
        with running_worker({**worker_env, "STORY_LENGTH": "200"}, tmp_path / "worker.log") as worker:
            statuses = wait_until_final(sessions, ids, DONE_TIMEOUT)
            assert [statuses[i] for i in ids] == [PostStatus.DONE] * GOOD_POSTS + [PostStatus.FAILED]
            deadline = time.monotonic() + EVENT_TIMEOUT
            while not events.failed and time.monotonic() < deadline:
                time.sleep(POLL)
            worked = scrape(env["WORKER_METRICS_BIND"])
            healthy = subprocess.run([sys.executable, "-m", "hashtale.cli", "worker-health"], cwd=PROJECT_ROOT,
                                     env={**os.environ, **worker_env}, capture_output=True, text=True, timeout=60)
            assert healthy.returncode == 0, (healthy.stderr, worker.log()[-3000:])
        dead = subprocess.run([sys.executable, "-m", "hashtale.cli", "worker-health"], cwd=PROJECT_ROOT,
                              env={**os.environ, **worker_env}, capture_output=True, text=True, timeout=60)
        assert dead.returncode == 1 and "did not answer a ping" in dead.stderr
    finally:
        events.stop()

    with sessions() as session:
        reason = session.scalar(select(Post.error).where(Post.id == ids[-1]))
    engine.dispose()
    assert "FileNotFoundError" in reason
    (failure,) = events.failed  # a FAILURE in the event stream, with the post's reason
    assert "PostFailed" in failure["exception"] and "FileNotFoundError" in failure["exception"]

    assert sample(worked, "hashtale_task_runs_total", task="suggest_hashtags", outcome="done") == GOOD_POSTS
    assert sample(worked, "hashtale_task_runs_total", task="suggest_hashtags", outcome="failed") == 1
    assert sample(worked, "hashtale_task_runs_total", task="write_story", outcome="done") == GOOD_POSTS
    assert sample(worked, "hashtale_task_duration_seconds_count", task="write_story") == GOOD_POSTS
    # Batched across posts (hashtale/worker/batching.py): the calls hold every post that reached its model call once.
    calls = sample(worked, "hashtale_model_duration_seconds_count", model="hashtagger", backend="local")
    assert 1 <= calls <= GOOD_POSTS
    assert sample(worked, "hashtale_model_batch_size_sum", model="hashtagger", backend="local") == GOOD_POSTS
    assert sample(worked, "hashtale_model_batch_size_sum", model="storyteller", backend="local") == GOOD_POSTS
    # Every message's wait for its batch, the failed post's too.
    assert sample(worked, "hashtale_batch_wait_seconds_count", task="suggest_hashtags") == GOOD_POSTS + 1
    assert sample(worked, "hashtale_batch_wait_seconds_count", task="write_story") == GOOD_POSTS
    assert sample(worked, "hashtale_post_completion_seconds_count") == GOOD_POSTS

    done = scrape(metrics)
    assert sample(done, "hashtale_posts", status="done") == GOOD_POSTS
    assert sample(done, "hashtale_posts", status="failed") == 1
    assert sample(done, "hashtale_queue_messages", queue=env["TASK_QUEUE"]) == 0


def test_worker_health_on_the_sqlite_broker_reads_the_heartbeat_file(tmp_path, sqlite_url):
    migrate(sqlite_url)
    heartbeat = tmp_path / "worker.heartbeat"
    env = {"DATABASE_URL": sqlite_url, "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
           "MEDIA_DIR": str(tmp_path / "media"), "WORKER_HEARTBEAT_FILE": str(heartbeat), "WORKER_METRICS_BIND": ""}
    settings = Settings.from_env(env)
    assert "no heartbeat file" in check(settings)
    with running_worker(env, tmp_path / "worker.log"):
        assert heartbeat.exists() and check(settings) == ""
    stale = time.time() - (STALE_AFTER_BEATS + 1) * HEARTBEAT_INTERVAL
    os.utime(heartbeat, (stale, stale))  # what a worker that stopped beating leaves
    assert "old" in check(settings)
