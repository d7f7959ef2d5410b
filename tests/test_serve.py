"""Acceptance: `hashtale serve` (the README's first command) runs the embedded default — webhook, worker,
beat, local models, SQLite and an SQLite broker — and a posted photo gets hashtags and a story in 30 s."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from hashtale.inference.tritonserver import free_port
from hashtale.models.hashtagger_runtime import DEFAULT_CHECKPOINT as SHIPPED_HASHTAGGER
from hashtale.models.storyteller_runtime import SHIPPED_CHECKPOINT as SHIPPED_STORYTELLER
from hashtale.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow  # `hashtale serve`: the webhook and worker processes

HASHTALE = PROJECT_ROOT / ".venv" / "bin" / "hashtale"
START_TIMEOUT = 90.0  # seconds for the webhook to answer (gunicorn imports Flask, SQLAlchemy, Celery)
RESULT_TIMEOUT = 30.0  # seconds from the 202 to a post with hashtags and a story: the acceptance criterion
STOP_TIMEOUT = 60.0  # seconds for serve to stop its children after SIGTERM
POLL = 0.25  # seconds


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hashtale.sqlite'}",
        "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        "MEDIA_DIR": str(tmp_path / "media"),
    }
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(HASHTALE), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                requests.get(f"{base}/posts/0", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still booting
                assert time.monotonic() < deadline, f"webhook not up after {START_TIMEOUT} s:\n{log_path.read_text()}"
                time.sleep(POLL)
        yield base, proc, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left of the process group
        except ProcessLookupError:
            pass
        proc.wait()


def test_serve_tags_and_tells_a_posted_photo_within_30_seconds(served, coffee_jpeg):
    base, proc, log_path = served
    response = requests.post(f"{base}/webhook", files={"image": ("coffee.jpg", coffee_jpeg, "image/jpeg")},
                             data={"external_id": "coffee-1", "caption": "morning"}, timeout=10)
    accepted_at = time.monotonic()
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "received"

    status_url = base + response.json()["status_url"]
    while True:
        post = requests.get(status_url, timeout=5).json()
        if post["status"] in ("done", "failed") or time.monotonic() - accepted_at > RESULT_TIMEOUT:
            break
        time.sleep(POLL)
    assert post["status"] == "done", (post, log_path.read_text()[-4000:])
    assert 1 <= len(post["hashtags"]) <= 5 and post["hashtags"][0]["rank"] == 1
    assert post["story"]["seed_hashtag"] == post["hashtags"][0]["text"]
    assert post["story"]["hashtags"] == [h["text"] for h in post["hashtags"]]
    assert post["story"]["text"]

    log = log_path.read_text()
    if not SHIPPED_HASHTAGGER.exists() or not SHIPPED_STORYTELLER.exists():
        assert "UNTRAINED" in log  # the service says when it runs without trained weights

    proc.send_signal(signal.SIGTERM)  # serve stops its children itself
    assert proc.wait(timeout=STOP_TIMEOUT) == 0  # a clean stop of webhook, worker and beat


def _children(pid: int) -> list[int]:
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def test_serve_restarts_a_child_that_exits(served, coffee_jpeg):
    """Supervision: the worker is killed (and could as well exit 0, as Celery does on some broker errors): serve
    starts it again and the next post is processed."""
    base, proc, log_path = served
    (worker,) = [pid for pid in _children(proc.pid) if b" worker" in open(f"/proc/{pid}/cmdline", "rb").read()
                 .replace(b"\0", b" ")]
    for pid in [*_children(worker), worker]:  # its pool processes, then the worker itself
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while "worker exited with" not in log_path.read_text():
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(POLL)

    response = requests.post(f"{base}/webhook", files={"image": ("coffee.jpg", coffee_jpeg, "image/jpeg")},
                             data={"external_id": "after-restart"}, timeout=10)
    assert response.status_code == 202, response.text
    status_url = base + response.json()["status_url"]
    deadline = time.monotonic() + START_TIMEOUT + RESULT_TIMEOUT  # the new worker loads the models first
    while (post := requests.get(status_url, timeout=5).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(POLL)
    assert post["status"] == "done" and proc.poll() is None
