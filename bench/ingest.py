"""Ingest throughput, from one run: the webhook's accept rate, end-to-end posts/s through Celery with the local
backend, and the bare in-process models on the same photos (what end to end is compared with).

    .venv/bin/python bench/ingest.py                 # PostgreSQL + Redis on 127.0.0.1 (production setup)
    .venv/bin/python bench/ingest.py --posts 8       # fewer photos per model variant (faster, noisier)

Variants use the same 2 cores in two ways: one process with two PyTorch threads, and two processes with one
thread each (what `hashtale worker` runs by default). Each end-to-end figure is set against the bare figure
with the same processes and threads. Posts/s are wall-clock rates on whatever else the machine is doing; CPU
seconds per post (bare: the model processes; end to end: the worker and its pool) hardly depend on it, so their
ratio is the steadier measure of what Celery, Redis and PostgreSQL add on a shared machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from db.schema import Post, PostStatus  # noqa: E402
from db.session import make_engine, make_session_factory, migrate  # noqa: E402
from settings import PROJECT_ROOT, Settings  # noqa: E402
from tests.scratch_db import scratch_pg_database  # noqa: E402
from tests.worker_process import post_photos  # noqa: E402

PHOTOS = PROJECT_ROOT.parent / "shared" / "datasets" / "photos"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CORES = os.cpu_count() or 1
READY_TIMEOUT = 300.0  # seconds for a worker to start and load the models on a busy machine
POLL = 0.1  # seconds
# Photos per model variant: enough for runs of several seconds. At ~16 posts/s, 12 posts took under a second
# and the end-to-end figure lost ~20 % to the 0.1 s poll and to the first tasks' start (73 % of bare, 92 % with 96).
DEFAULT_POSTS = 96
POST_ID_BASE = 10**6  # story seeds of the bare runs: any ids, the work per story does not depend on them
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_bench_webhook():
    """bench/webhook.py's gunicorn launcher and load generator (one implementation for both benches)."""
    spec = importlib.util.spec_from_file_location("bench_webhook", Path(__file__).with_name("webhook.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def fresh_database():
    with scratch_pg_database("hashtale_bench") as (_name, url):
        migrate(url)
        yield url


def purge_queue(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(queue)
    client.close()


def accept_rate(bw, photos: list[bytes], posts: int, concurrency: int, work: Path) -> None:
    queue = f"bench-ingest-{uuid.uuid4().hex[:12]}"
    with fresh_database() as url:
        env = {"DATABASE_URL": url, "BROKER_URL": REDIS_URL, "MEDIA_DIR": str(work / "accept-media"),
               "TASK_QUEUE": queue}
        port = bw.free_port()
        proc = bw.start_gunicorn(env, port, work / "gunicorn.log")
        try:
            # Warm-up and measured posts use distinct photos, so every measured post writes a file of its own.
            bw.run_load(port, [bw.multipart_body(photo) for photo in photos[:concurrency]], concurrency)
            bodies = [bw.multipart_body(photos[concurrency + i % (len(photos) - concurrency)]) for i in range(posts)]
            seconds, codes = bw.run_load(port, bodies, concurrency)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            purge_queue(queue)
    print(f"webhook accept rate (gunicorn, webhook/gunicorn.conf.py, {concurrency} concurrent connections, "
          f"PostgreSQL + Redis, multipart): {posts / seconds:.0f} posts/s   answers {codes}", flush=True)


def _bare_process(paths: list[str], threads: int, barrier, results) -> None:
    """One process of the bare variant: load the models, wait for the others, then tag and tell its photos."""
    from inference.local import LocalBackend
    from worker import pipeline

    settings = Settings.from_env(torch_threads=threads)
    backend = LocalBackend.from_settings(settings)
    backend.check_ready()
    images = [Path(p).read_bytes() for p in paths]
    warm = pipeline.hashtag_rows(POST_ID_BASE, images[0], backend, settings.hashtags_per_post)  # first-call costs
    pipeline.story_row(POST_ID_BASE, warm[0].text, backend, settings)
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    for i, image in enumerate(images):
        tags = pipeline.hashtag_rows(POST_ID_BASE + i, image, backend, settings.hashtags_per_post)
        pipeline.story_row(POST_ID_BASE + i, tags[0].text, backend, settings)
    results.put((start, time.perf_counter(), time.process_time() - cpu_start))


def bare_rate(paths: list[Path], processes: int, threads: int) -> tuple[float, float]:
    """(posts/s, CPU seconds per post) of the models alone, in `processes` fresh processes (spawned: no PyTorch
    state crosses a fork)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    shares = [[str(p) for p in paths[i::processes]] for i in range(processes)]
    procs = [ctx.Process(target=_bare_process, args=(share, threads, barrier, results)) for share in shares]
    for p in procs:
        p.start()
    spans = [results.get() for _ in procs]
    for p in procs:
        p.join()
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return len(paths) / wall, sum(cpu for _, _, cpu in spans) / len(paths)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (a Celery worker and its pool), all threads, from /proc."""
    pids = [pid] + [int(c) for children in Path(f"/proc/{pid}/task").glob("*/children")
                    for c in children.read_text().split()]
    total = 0
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / CLOCK_TICKS


def wait_done(sessions, ids: list[int]) -> None:
    while True:
        with sessions() as session:
            left = session.scalar(select(func.count()).select_from(Post).where(
                Post.id.in_(ids), Post.status.not_in([PostStatus.DONE, PostStatus.FAILED])))
        if not left:
            return
        time.sleep(POLL)


def end_to_end_rate(paths: list[Path], warmup: list[Path], concurrency: int, work: Path) -> tuple[float, float]:
    """(posts/s from the first POST to the last post done, the worker's CPU seconds per post) through the webhook
    app, Redis, a Celery worker process (`hashtale worker`, already warm) and PostgreSQL."""
    from webhook import create_app

    queue = f"bench-ingest-{uuid.uuid4().hex[:12]}"
    media = work / f"media-{concurrency}"
    with fresh_database() as url:
        env = {"DATABASE_URL": url, "BROKER_URL": REDIS_URL, "TASK_QUEUE": queue, "MEDIA_DIR": str(media)}
        client = create_app({"database_url": url, "broker_url": REDIS_URL, "task_queue": queue,
                             "media_dir": str(media), "secret_key": secrets.token_hex()}).test_client()
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        log = open(work / f"worker-{concurrency}.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "cli", "worker", "--concurrency", str(concurrency)],
                                  cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            warm_ids = post_photos(client, warmup, "warmup")
            wait_done(sessions, warm_ids)  # every pool process has loaded the models and run once
            assert time.monotonic() < deadline, "worker too slow to start"
            start, cpu_start = time.perf_counter(), tree_cpu_seconds(worker.pid)
            ids = post_photos(client, paths, "bench")
            wait_done(sessions, ids)
            seconds, cpu = time.perf_counter() - start, tree_cpu_seconds(worker.pid) - cpu_start
            with sessions() as session:
                failed = session.scalar(select(func.count()).select_from(Post).where(
                    Post.id.in_(ids), Post.status == PostStatus.FAILED))
            assert not failed, f"{failed} posts failed; see {work}"
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()
            log.close()
            engine.dispose()
            purge_queue(queue)
    return len(paths) / seconds, cpu / len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accept-posts", type=int, default=2000, help="posts for the accept rate (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent webhook connections (default 16)")
    parser.add_argument("--posts", type=int, default=DEFAULT_POSTS, help=f"photos per model variant (default {DEFAULT_POSTS})")
    args = parser.parse_args()

    bw = load_bench_webhook()
    names = (PHOTOS / "data_list.txt").read_text().split()
    chosen = random.Random(0).sample(names, args.posts + CORES)
    paths, warmup = [PHOTOS / n for n in chosen[: args.posts]], [PHOTOS / n for n in chosen[args.posts:]]
    story_length = Settings.from_env().story_length
    print(f"{CORES} cores; {args.posts} real photos per model variant; stories of {story_length} characters", flush=True)

    with tempfile.TemporaryDirectory(prefix="hashtale-bench-ingest-") as tmp:
        work = Path(tmp)
        accept_rate(bw, bw.load_photos(args.concurrency + args.accept_posts), args.accept_posts, args.concurrency, work)
        for processes, threads in ((1, CORES), (CORES, 1)):
            bare, bare_cpu = bare_rate(paths, processes, threads)
            e2e, e2e_cpu = end_to_end_rate(paths, warmup[:processes], processes, work)
            print(f"{processes} process(es) x {threads} thread(s):\n"
                  f"  bare models  {bare:7.3f} posts/s   {bare_cpu:6.2f} CPU s/post\n"
                  f"  end to end   {e2e:7.3f} posts/s   {e2e_cpu:6.2f} CPU s/post (worker processes)   "
                  f"= {100 * e2e / bare:.0f}% of bare posts/s, {100 * bare_cpu / e2e_cpu:.0f}% of bare CPU efficiency",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
