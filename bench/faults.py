"""The fault campaign, as an operator would run it: real PostgreSQL, Redis, tritonserver, gunicorn and Celery worker
processes of our own (so they can be stopped), and faults injected while posts flow.

    .venv/bin/python -m bench.faults                      # the acceptance run: a 10-minute Triton outage
    .venv/bin/python -m bench.faults --outage 60          # a shorter outage (faster, same checks)

1. Triton stops for --outage seconds while posts flow; Redis is restarted (losing every queued message) while the
   posts wait: 0 posts may fail, the worker must keep running with no manual step, and every post must be done
   within 2 minutes of Triton's return.
2. PostgreSQL stops (immediate shutdown) under load, with the webhook's pools warm, and starts again: refused posts
   (503) must leave no file, and every file a row (and every row its file). A commit that fails with the database
   gone mid-request can leave its photo (nobody can ask the database whether the row exists); beat's media garbage
   collection removes it (every MEDIA_GC_INTERVAL), so the check waits for one collection and reports both counts.
3. A backlog of --backlog times what the worker does in STUCK_AFTER seconds is posted with the worker stopped, then
   drained: duplicate messages (the sweep re-enqueueing posts that were only waiting) must stay <= 5 % of posts.
Each check prints PASS or FAIL with its figures; the exit code is the number of failed checks.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from sqlalchemy import func, select

from hashtale.db.schema import FINAL_STATUSES, Post, PostStatus
from hashtale.db.session import make_engine, make_session_factory, migrate
from hashtale.inference.tritonserver import TritonServer, free_port
from hashtale.settings import PROJECT_ROOT
from tests.support.data import PHOTOS_DIR
from tests.support.servers import PostgresServer, RedisServer
from tests.support.workers import WorkerProcess

QUEUE = "faults"
# seconds: quick enough for a bench, the same mechanisms as production's defaults
TIMINGS = {"STUCK_AFTER": "20", "SWEEP_INTERVAL": "10", "RETRY_BACKOFF": "1", "RETRY_BACKOFF_MAX": "30",
           "RETRY_POLL_INTERVAL": "2", "TRITON_TIMEOUT": "30", "MEDIA_GC_INTERVAL": "15"}
RETURN_DEADLINE = 120.0  # seconds from Triton's return to every post done
DUPLICATE_LIMIT = 0.05  # of posts
START_TIMEOUT = 300.0  # seconds for a process to come up on a busy 2-core machine
POLL = 0.5  # seconds


def photos(start: int, count: int) -> list[Path]:
    names = (PHOTOS_DIR / "data_list.txt").read_text().split()
    return [PHOTOS_DIR / name for name in names[start:start + count]]


class Stack:
    """Our own servers and processes, in a temporary folder."""

    def __init__(self, root: Path, outage_timings: dict[str, str]):
        self.root = root
        self.postgres = PostgresServer()
        self.redis = RedisServer(free_port(), root)
        self.triton = TritonServer(log_path=root / "triton.log")
        self.port, self.metrics_port, self.worker_metrics_port = free_port(), free_port(), free_port()
        self.env = {"DATABASE_URL": self.postgres.url, "BROKER_URL": self.redis.url, "TASK_QUEUE": QUEUE,
                    "MEDIA_DIR": str(root / "media"), "SECRET_KEY": secrets.token_hex(), "STORY_LENGTH": "300",
                    "INFERENCE_BACKEND": "triton", "TRITON_PROTOCOL": "grpc",
                    "METRICS_BIND": f"127.0.0.1:{self.metrics_port}",
                    "WORKER_METRICS_BIND": f"127.0.0.1:{self.worker_metrics_port}", **outage_timings}
        self.webhook: subprocess.Popen | None = None
        self.worker: WorkerProcess | None = None

    def start(self) -> None:
        self.postgres.start()
        self.redis.start()
        migrate(self.postgres.url)
        self.triton.start()
        self.env["TRITON_URL"] = self.triton.grpc_url
        self.webhook = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "hashtale/webhook/gunicorn.conf.py", "-b", f"127.0.0.1:{self.port}"],
            cwd=PROJECT_ROOT, env={**os.environ, **self.env}, stdout=(self.root / "webhook.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (self.root / "webhook.log").read_text()[-3000:]
            time.sleep(POLL)
        self.start_worker()
        self.sessions = make_session_factory(make_engine(self.postgres.url))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_worker(self) -> None:
        self.worker = WorkerProcess(self.env, self.root / f"worker-{time.monotonic():.0f}.log", concurrency=2,
                                    beat=True).wait_ready(START_TIMEOUT)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        if self.webhook is not None and self.webhook.poll() is None:
            os.killpg(self.webhook.pid, signal.SIGTERM)
            self.webhook.wait(60)
        self.triton.close()
        self.redis.crash()
        self.postgres.close()

    def post(self, path: Path, tag: str) -> int | None:
        """The post's id, or None when the webhook refused it (the body says why)."""
        try:
            external_id = f"{tag}-{path.relative_to(PHOTOS_DIR)}"  # file names repeat across the photo folders
            response = requests.post(f"{self.base}/webhook", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                                     data={"external_id": external_id}, timeout=30)
        except requests.RequestException:
            return None
        return response.json()["id"] if response.status_code == 202 else None

    def statuses(self, ids: list[int]) -> dict[PostStatus, int]:
        with self.sessions() as session:
            rows = session.execute(select(Post.status, func.count()).where(Post.id.in_(ids)).group_by(Post.status))
            return dict(rows.all())

    def wait_final(self, ids: list[int], timeout: float) -> float:
        """Seconds until every post is done or failed (raises on timeout)."""
        began = time.monotonic()
        while sum(n for s, n in self.statuses(ids).items() if s in FINAL_STATUSES) < len(set(ids)):
            assert time.monotonic() - began < timeout, self.statuses(ids)
            time.sleep(POLL)
        return time.monotonic() - began

    def worker_runs(self, outcome: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.worker_metrics_port}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("hashtale_task_runs_total{") and f'outcome="{outcome}"' in line)


def report(name: str, ok: bool, figures: str) -> int:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {figures}", flush=True)
    return 0 if ok else 1


def triton_outage(stack: Stack, outage: float, posts: int) -> int:
    ids = [stack.post(p, "outage") for p in photos(0, posts // 2)]
    stack.triton.stop()
    down_at = time.monotonic()
    ids += [stack.post(p, "outage") for p in photos(posts // 2, posts - posts // 2)]
    time.sleep(min(30.0, outage / 2))
    stack.redis.crash()  # every queued message is lost while the posts are parked
    stack.redis.start()
    time.sleep(max(0.0, outage - (time.monotonic() - down_at)))
    stack.triton.start()
    returned = time.monotonic()
    ids = [i for i in ids if i is not None]
    stack.wait_final(ids, RETURN_DEADLINE * 5)
    done_after = time.monotonic() - returned
    statuses = stack.statuses(ids)
    alive = stack.worker.proc.poll() is None and "Unrecoverable error" not in stack.worker.log()
    failures = report("Triton outage with a Redis restart", statuses.get(PostStatus.FAILED, 0) == 0 and alive,
                      f"{len(ids)} posts, outage {outage:.0f} s, failed {statuses.get(PostStatus.FAILED, 0)}, "
                      f"worker alive {alive}, parked runs {stack.worker_runs('parked'):.0f}")
    return failures + report("all done within 2 minutes of Triton's return", done_after <= RETURN_DEADLINE,
                             f"{done_after:.1f} s")


def postgres_stop(stack: Stack, seconds: float) -> int:
    results: list[int | None] = []
    paths = photos(1000, 4000)
    stop = threading.Event()

    def client(offset: int) -> None:
        for path in paths[offset::8]:
            if stop.is_set():
                return
            results.append(stack.post(path, "pg-stop"))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds / 4)  # the pools are warm: requests have been answered
    stack.postgres.stop()
    time.sleep(seconds / 2)
    stack.postgres.start()
    time.sleep(seconds / 4)
    stop.set()
    for t in threads:
        t.join()
    accepted = [i for i in results if i is not None]
    stack.wait_final(accepted, START_TIMEOUT * 2)
    orphans_at_once, missing = orphans(stack)
    time.sleep(2 * float(TIMINGS["MEDIA_GC_INTERVAL"]))  # one collection by beat
    orphans_after_gc, missing_after_gc = orphans(stack)
    return report("PostgreSQL stopped under load", not orphans_after_gc and not missing and not missing_after_gc
                  and len(accepted) < len(results),
                  f"{len(results)} posts sent, {len(results) - len(accepted)} refused, files without a row "
                  f"{len(orphans_at_once)} at once and {len(orphans_after_gc)} after beat's collection, rows without "
                  f"a file {len(missing)}")


def orphans(stack: Stack) -> tuple[set[str], set[str]]:
    """(photo files no post references, referenced photos that are missing), relative to MEDIA_DIR."""
    media = Path(stack.env["MEDIA_DIR"])
    files = {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file() and not p.name.startswith(".")
             and ".locks" not in p.parts}
    with stack.sessions() as session:
        referenced = set(session.scalars(select(Post.image_path)))
    return files - referenced, {p for p in referenced if not (media / p).exists()}


def backlog(stack: Stack, factor: float) -> int:
    probe = [stack.post(p, "rate") for p in photos(6000, 20)]
    rate = len(probe) / stack.wait_final(probe, START_TIMEOUT)  # posts/s end to end, a lower bound
    count = int(factor * rate * float(TIMINGS["STUCK_AFTER"]))
    stack.worker.kill()
    ids = [stack.post(p, "backlog") for p in photos(6100, count)]
    ids = [i for i in ids if i is not None]
    stack.start_worker()
    skipped_before = stack.worker_runs("skipped")
    began = time.monotonic()
    stack.wait_final(ids, count / max(rate, 0.1) * 10 + START_TIMEOUT)
    drained = time.monotonic() - began
    duplicates = stack.worker_runs("skipped") - skipped_before  # a run that found its post past its stage
    resent = stack.worker.log().count("whose message was lost")
    return report("backlog drained without duplicates", duplicates <= DUPLICATE_LIMIT * len(ids),
                  f"{len(ids)} posts ({factor:.0f} x {rate:.1f} posts/s x {TIMINGS['STUCK_AFTER']} s), drained in "
                  f"{drained:.0f} s, duplicate runs {duplicates:.0f} ({100 * duplicates / max(1, len(ids)):.1f} %), "
                  f"sweeps that re-enqueued {resent}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=600.0, help="seconds Triton stays down")
    parser.add_argument("--posts", type=int, default=40, help="posts in flight around the Triton outage")
    parser.add_argument("--pg-seconds", type=float, default=20.0, help="length of the load around the PostgreSQL stop")
    parser.add_argument("--backlog", type=float, default=5.0, help="backlog in STUCK_AFTER windows of work")
    parser.add_argument("--phases", default="triton,postgres,backlog", help="which checks to run, comma-separated")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hashtale-faults-"))
    print(f"logs in {root}", flush=True)
    stack = Stack(root, TIMINGS)
    try:
        stack.start()
        phases = args.phases.split(",")
        failures = triton_outage(stack, args.outage, args.posts) if "triton" in phases else 0
        failures += postgres_stop(stack, args.pg_seconds) if "postgres" in phases else 0
        failures += backlog(stack, args.backlog) if "backlog" in phases else 0
    finally:
        stack.stop()
    if not failures:
        shutil.rmtree(root, ignore_errors=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
