"""Real Celery worker processes for integration tests: started with `hashtale worker`, always killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from hashtale.db.schema import FINAL_STATUSES, Hashtag, Post, PostStatus, Story
from hashtale.settings import PROJECT_ROOT

READY_TIMEOUT = 60.0  # seconds for a worker to import torch, load the models and connect
POLL = 0.2  # seconds


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1, beat: bool = False):
        self.log_path = log_path
        args = [sys.executable, "-m", "hashtale.cli", "worker", "--concurrency", str(concurrency)]
        if beat:
            args += ["--beat", "--schedule", str(log_path.with_suffix(".schedule"))]
        self._log = open(log_path, "ab")
        # Own session: the worker, its pool children and beat are killed together.
        self.proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=PROJECT_ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(POLL)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.log()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # orphaned pool children, if any
        except ProcessLookupError:
            pass
        self._log.close()


@contextmanager
def running_worker(env: dict[str, str], log_path: Path, **kwargs):
    worker = WorkerProcess(env, log_path, **kwargs)
    try:
        yield worker.wait_ready()
    finally:
        worker.kill()


def post_photos(client, paths: list[Path], tag: str) -> list[int]:
    """POST each photo to the webhook (a Flask test client) with external id "<tag>-<folder>-<file name>" (file names
    repeat across the photo folders); returns post ids."""
    ids = []
    for path in paths:
        response = client.post("/webhook", data={"image": (path.open("rb"), path.name),
                                                 "external_id": f"{tag}-{path.parent.name}-{path.name}"})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def wait_until_final(session_factory, post_ids: list[int], timeout: float) -> dict[int, PostStatus]:
    """Poll the database until every post is done or failed; returns id -> status (raises on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_factory() as session:
            statuses = dict(session.execute(select(Post.id, Post.status).where(Post.id.in_(post_ids))).all())
        if all(statuses.get(i) in FINAL_STATUSES for i in post_ids):
            return statuses
        if time.monotonic() > deadline:
            raise TimeoutError(f"posts not final after {timeout} s: {statuses}")
        time.sleep(POLL)


def result_counts(session_factory, post_id: int) -> tuple[int, int]:
    """(hashtag rows, story rows) of one post."""
    with session_factory() as session:
        tags = session.scalar(select(func.count()).select_from(Hashtag).where(Hashtag.post_id == post_id))
        stories = session.scalar(select(func.count()).select_from(Story).where(Story.post_id == post_id))
    return tags, stories
