"""Ingest throughput, from one run: the webhook's accept rate, then end-to-end posts/s through Celery with the local
backend, set against the bare in-process models on the same photos and cores (what end to end is compared with),
with and without cross-post batching (hashtale/worker/batching.py).

    .venv/bin/python -m bench.ingest                         # full run: run it on an otherwise idle machine
    .venv/bin/python -m bench.ingest --posts 8 --lone 2      # a quick check that it runs (figures meaningless)
    .venv/bin/python -m bench.ingest --batches 1,8,32 --stacks redis,embedded

On each stack, for every batch size (1: batching off, today's one post per model call), one after the other:
- bare models: CORES processes with one PyTorch thread each (what `hashtale worker` runs by default), each tagging
  its share of the photos `batch` at a time and then writing their stories `batch` at a time; measured right
  before the end-to-end variant they are set against, because a shared host's speed drifts within a run;
- end to end: PostgreSQL + Redis (production), and the embedded default (SQLite database + kombu's
  SQLite broker, as `hashtale serve` runs): photos POSTed through the webhook app, a `hashtale worker` with
  BATCH_SIZE=batch, from the first POST to the last post done; then lone posts, one at a time, whose median time
  from receipt to done (the database's created_at to updated_at) shows what a post pays for the batch wait.
For the embedded stack it first prints the SQLite broker's fetch rate, kombu's transport against
hashtale/worker/sql_transport.py. Posts/s are wall-clock rates on whatever else the machine is doing; CPU seconds per
post (bare: the model processes; end to end: the worker and its pool) hardly depend on it, so their ratio is the
steadier measure of what Celery, the broker and the database add on a shared machine (though on a virtual machine
the CPU seconds a piece of work takes drift too). Each stack ends with a line setting every variant against the
bare models at the largest batch.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

from sqlalchemy import func, select

from bench import machine
from bench import webhook as bench_webhook
from hashtale.db.schema import Post, PostStatus
from hashtale.db.session import make_engine, make_session_factory, migrate
from hashtale.inference.tritonserver import free_port
from hashtale.settings import PROJECT_ROOT, Settings
from tests.support.brokers import REDIS_URL
from tests.support.data import PHOTOS_DIR
from tests.support.databases import scratch_pg_database
from tests.support.workers import post_photos

CORES = os.cpu_count() or 1
READY_TIMEOUT = 300.0  # seconds for a worker to start and load the models on a busy machine
POLL = 0.1  # seconds
STOP_TIMEOUT = 60.0  # seconds for a worker's warm shutdown
# Photos per variant: enough for runs of several seconds. A run of under a second loses a large share of its
# end-to-end figure to the POLL and to the first tasks' start.
DEFAULT_POSTS = 96
DEFAULT_LONE = 8  # lone posts per end-to-end variant, for the median latency
LONE_GAP = 0.5  # seconds between one lone post done and the next POST: the worker is idle when it comes
DEFAULT_BATCHES = "1,8,32"
DEFAULT_SENDERS = 4  # concurrent webhook clients end to end: posts arrive as from several senders, not one by one
STACKS = {"redis": "PostgreSQL + Redis", "embedded": "embedded (SQLite + SQLite broker)"}
POST_ID_BASE = 10**6  # story seeds of the bare runs: any ids, the work per story does not depend on them
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BROKER_MESSAGES = 300  # messages for the SQLite broker's fetch rate
SETTLE_INTERVAL = 0.5  # seconds
SETTLED_CPU = 0.05  # cores: a process tree using less is idle


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
        port = free_port()
        proc = bw.start_gunicorn(env, port, work / "gunicorn.log")
        try:
            # Warm-up and measured posts use distinct photos, so every measured post writes a file of its own.
            bw.run_load(port, [bw.multipart_body(photo) for photo in photos[:concurrency]], concurrency)
            bodies = [bw.multipart_body(photos[concurrency + i % (len(photos) - concurrency)]) for i in range(posts)]
            seconds, codes = bw.run_load(port, bodies, concurrency)
        finally:
            bw.stop_gunicorn(proc)
            purge_queue(queue)
    print(f"webhook accept rate (gunicorn, hashtale/webhook/gunicorn.conf.py, {concurrency} concurrent connections, "
          f"PostgreSQL + Redis, multipart): {posts / seconds:.0f} posts/s   answers {codes}", flush=True)


def sqlite_broker_rate(work: Path, messages: int = BROKER_MESSAGES) -> None:
    """Where the embedded stack's batching is capped: messages/s that one consumer fetches and acknowledges, one
    at a time as a worker does, on kombu's own SQLAlchemy transport and on ours (hashtale/worker/sql_transport.py)."""
    from kombu import Connection
    from kombu.transport import sqlalchemy as kombu_sqla

    from hashtale.worker import sql_transport

    variants = (("kombu's transport", kombu_sqla.Transport), ("hashtale/worker/sql_transport.py", sql_transport.Transport))
    for name, transport in variants:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='broker-', dir=work)) / 'broker.sqlite'}"  # transport= picks
        with Connection(url, transport=transport) as connection:
            queue = connection.SimpleQueue("bench")
            for n in range(messages):
                queue.put({"n": n})
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(messages):
                queue.get(timeout=5).ack()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            queue.close()
        print(f"SQLite broker, {name}: {messages / seconds:6.0f} messages/s fetched and acknowledged one at a time "
              f"({1000 * seconds / messages:.1f} ms each, {1000 * cpu / messages:.1f} ms of it CPU)", flush=True)


def _bare_process(paths: list[str], threads: int, batch: int, barrier, results) -> None:
    """One process of the bare variant: load the models, wait for the others, then tag and tell its photos,
    `batch` at a time."""
    from hashtale.inference import only
    from hashtale.inference.local import LocalBackend
    from hashtale.worker import pipeline

    settings = Settings.from_env(torch_threads=threads)
    k = settings.hashtags_per_post
    backend = LocalBackend.from_settings(settings)
    backend.check_ready()
    backend.warm_up(batch)  # as a worker process does
    images = [Path(p).read_bytes() for p in paths]
    warm = pipeline.hashtag_rows(POST_ID_BASE, backend.suggest_hashtags(images[0], k))  # first-call costs
    backend.write_story(pipeline.story_request(POST_ID_BASE, warm[0].text, settings))
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, len(images), batch):
        ids = range(POST_ID_BASE + first, POST_ID_BASE + first + len(images[first:first + batch]))
        tagged = backend.suggest_hashtags_batch(images[first:first + batch], k)
        requests = [pipeline.story_request(i, pipeline.hashtag_rows(i, only([result]))[0].text, settings)
                    for i, result in zip(ids, tagged)]
        for i, request, story in zip(ids, requests, backend.write_stories(requests)):
            pipeline.story_row(i, request, only([story]))
    results.put((start, time.perf_counter(), time.process_time() - cpu_start))


def bare_rate(paths: list[Path], processes: int, threads: int, batch: int) -> tuple[float, float]:
    """(posts/s, CPU seconds per post) of the models alone, in `processes` fresh processes (spawned: no PyTorch
    state crosses a fork)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    shares = [[str(p) for p in paths[i::processes]] for i in range(processes)]
    procs = [ctx.Process(target=_bare_process, args=(share, threads, batch, barrier, results)) for share in shares]
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


def wait_settled(pid: int, timeout: float = READY_TIMEOUT) -> None:
    """Until a process tree is idle (a gunicorn whose workers are still importing the app, a worker still warming
    up): what it does before the measured span must not take the cores within it."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_INTERVAL)
        now = tree_cpu_seconds(pid)
        if now - before < SETTLED_CPU * SETTLE_INTERVAL:
            return
        before = now
    raise TimeoutError(f"process {pid} still busy after {timeout:.0f} s")


def model_batches(bind: str) -> dict[str, tuple[float, float]]:
    """model -> (calls, posts) so far, from a worker's /metrics (hashtale_model_batch_size)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(f"http://{bind}/metrics", timeout=10).read().decode()
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("hashtale_model_batch_size_count", "hashtale_model_batch_size_sum"):
                totals.setdefault(sample.labels["model"], [0.0, 0.0])[sample.name.endswith("_sum")] += sample.value
    return {model: (calls, posts) for model, (calls, posts) in totals.items()}


def stop(worker: subprocess.Popen) -> None:
    """Warm shutdown of a worker (SIGTERM to its main process only: a pool process killed on its own may die holding
    the pool's queue lock, and the main process then waits for it forever), then whatever is left of it killed."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_done(sessions, ids: list[int]) -> None:
    while True:
        with sessions() as session:
            left = session.scalar(select(func.count()).select_from(Post).where(
                Post.id.in_(ids), Post.status.not_in([PostStatus.DONE, PostStatus.FAILED])))
        if not left:
            return
        time.sleep(POLL)


@contextmanager
def stack(kind: str, work: Path):
    """(database URL, broker URL, queue) of a fresh stack: PostgreSQL + Redis, or the embedded SQLite files."""
    queue = f"bench-ingest-{uuid.uuid4().hex[:12]}"
    if kind == "embedded":
        folder = Path(tempfile.mkdtemp(prefix="embedded-", dir=work))
        url = f"sqlite:///{folder / 'hashtale.sqlite'}"
        migrate(url)
        yield url, f"sqla+sqlite:///{folder / 'broker.sqlite'}", queue
        return
    with fresh_database() as url:
        try:
            yield url, REDIS_URL, queue
        finally:
            purge_queue(queue)


def lone_breakdown(timings: list[dict[str, dict[str, float]]]) -> str:
    """Where a lone post's time went, from its timings: per stage the medians of its wait for its batch, the rest of
    its time queued (the broker and the worker's main process) and its run, in ms."""
    if not timings:
        return "no lone post"
    parts = []
    for stage in ("tagging", "writing"):
        wait, queued, run = (statistics.median(t[stage][key] for t in timings)
                             for key in ("batch_wait_ms", "queued_ms", "run_ms"))
        parts.append(f"{stage} {wait:.1f} batch wait + {queued - wait:.1f} other queueing + {run:.1f} run")
    return "; ".join(parts) + " ms (medians of its timings)"


def end_to_end(kind: str, batch: int, paths: list[Path], warmup: list[Path], lone: list[Path], concurrency: int,
               work: Path, senders: int) -> tuple[float, float, float, float, str, dict[str, float]]:
    """(posts/s from the first POST to the last post done, the worker's CPU seconds per post, seconds until the
    webhook had accepted every post, the median seconds
    from receipt to done of a lone post, where its time went (lone_breakdown),
    model -> mean posts per model call) through the webhook, the broker, a `hashtale worker` (already warm) and
    the database. `senders` > 0: the measured posts go over HTTP to the webhook under gunicorn from that many
    connections at once; 0: one after another through the app in this process."""
    from hashtale.webhook import create_app

    media = work / f"media-{kind}-{batch}"
    with stack(kind, work) as (url, broker, queue):
        env = {"DATABASE_URL": url, "BROKER_URL": broker, "TASK_QUEUE": queue, "MEDIA_DIR": str(media),
               "BATCH_SIZE": str(batch), "WORKER_METRICS_BIND": f"127.0.0.1:{free_port()}",
               "WORKER_HEARTBEAT_FILE": str(work / f"heartbeat-{kind}-{batch}")}
        client = create_app({"database_url": url, "broker_url": broker, "task_queue": queue,
                             "media_dir": str(media), "secret_key": secrets.token_hex()}).test_client()
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        log = open(work / f"worker-{kind}-{batch}.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "hashtale.cli", "worker", "--concurrency", str(concurrency)],
                                  cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        webhook = None
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            if senders:  # booting while the worker loads its models, not within the measured span
                port = free_port()
                webhook = bench_webhook.start_gunicorn(env, port, work / f"gunicorn-{kind}-{batch}.log")
                bodies = [bench_webhook.multipart_body(path.read_bytes()) for path in paths]
            wait_done(sessions, post_photos(client, warmup, "warmup"))  # the pool processes have loaded the models
            assert time.monotonic() < deadline, "worker too slow to start"
            if senders:
                wait_settled(webhook.pid)
            wait_settled(worker.pid)
            batches_before = model_batches(env["WORKER_METRICS_BIND"])
            start, cpu_start = time.perf_counter(), tree_cpu_seconds(worker.pid)
            if senders:
                try:
                    _seconds, codes = bench_webhook.run_load(port, bodies, senders)
                    accepted = time.perf_counter() - start
                finally:
                    bench_webhook.stop_gunicorn(webhook)
                assert codes == {HTTPStatus.ACCEPTED: len(paths)}, codes
                with sessions() as session:
                    sent = Post.external_id.startswith(bench_webhook.EXTERNAL_ID_PREFIX)
                    ids = list(session.scalars(select(Post.id).where(sent)))
            else:
                ids = post_photos(client, paths, "bench")
                accepted = time.perf_counter() - start
            wait_done(sessions, ids)
            seconds, cpu = time.perf_counter() - start, tree_cpu_seconds(worker.pid) - cpu_start
            batches = {model: (posts - batches_before[model][1]) / (calls - batches_before[model][0])
                       for model, (calls, posts) in model_batches(env["WORKER_METRICS_BIND"]).items()}
            lone_ids = []
            for path in lone:
                time.sleep(LONE_GAP)
                lone_ids += post_photos(client, [path], "lone")
                wait_done(sessions, lone_ids[-1:])
            with sessions() as session:
                failed = session.scalar(select(func.count()).select_from(Post).where(
                    Post.id.in_(ids + lone_ids), Post.status == PostStatus.FAILED))
                spans = session.execute(select(Post.created_at, Post.updated_at).where(Post.id.in_(lone_ids))).all()
                lone_timings = list(session.scalars(select(Post.timings).where(Post.id.in_(lone_ids))))
            assert not failed, f"{failed} posts failed; see {work}"
        finally:
            bench_webhook.stop_gunicorn(webhook)
            stop(worker)
            log.close()
            engine.dispose()
    latency = statistics.median((done - received).total_seconds() for received, done in spans) if spans else 0.0
    return len(paths) / seconds, cpu / len(paths), accepted, latency, lone_breakdown(lone_timings), batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accept-posts", type=int, default=2000, help="posts for the accept rate (default 2000; "
                        "0: skip it)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent webhook connections (default 16)")
    parser.add_argument("--posts", type=int, default=DEFAULT_POSTS, help=f"photos per variant (default {DEFAULT_POSTS})")
    parser.add_argument("--lone", type=int, default=DEFAULT_LONE,
                        help=f"lone posts per end-to-end variant, for the latency (default {DEFAULT_LONE})")
    parser.add_argument("--batches", default=DEFAULT_BATCHES,
                        help=f"batch sizes, comma-separated; 1 = batching off (default {DEFAULT_BATCHES})")
    parser.add_argument("--senders", type=int, default=DEFAULT_SENDERS,
                        help=f"end to end: connections POSTing to the webhook under gunicorn at once (default "
                             f"{DEFAULT_SENDERS}); 0: one post after another through the app in this process")
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"end-to-end stacks (default {','.join(STACKS)})")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    stacks = args.stacks.split(",")

    bw = bench_webhook
    names = (PHOTOS_DIR / "data_list.txt").read_text().split()
    chosen = random.Random(0).sample(names, args.posts + CORES + args.lone)
    paths = [PHOTOS_DIR / n for n in chosen[: args.posts]]
    warmup = [PHOTOS_DIR / n for n in chosen[args.posts: args.posts + CORES]]
    lone = [PHOTOS_DIR / n for n in chosen[args.posts + CORES:]]
    settings = Settings.from_env()
    print(machine.describe())
    sent = (f"POSTed over HTTP by {args.senders} connections at once to the webhook under gunicorn" if args.senders
            else "POSTed one after another through the app in this process")
    print(f"{CORES} processes x 1 thread; {args.posts} real photos per variant, end to end {sent}; stories of "
          f"{settings.story_length} characters; batch wait {settings.batch_wait_ms:g} ms", flush=True)

    with tempfile.TemporaryDirectory(prefix="hashtale-bench-ingest-") as tmp:
        work = Path(tmp)
        if args.accept_posts:
            accept_rate(bw, bw.load_photos(args.concurrency + args.accept_posts), args.accept_posts,
                        args.concurrency, work)
        if "embedded" in stacks:
            sqlite_broker_rate(work)
        for kind in stacks:
            unbatched, bare, ends = None, {}, {}
            for batch in batches:
                # The bare models just before each end-to-end variant: this machine's speed drifts within a run (other
                # tenants of the host), and the ratio must not take that drift in.
                bare[batch] = bare_rate_b, bare_cpu_b = bare_rate(paths, CORES, 1, batch)
                print(f"bare models, batch {batch:2d}: {bare_rate_b:7.3f} posts/s   {bare_cpu_b:6.3f} CPU s/post", flush=True)
                rate, cpu, accepted, latency, lone_times, per_call = end_to_end(kind, batch, paths, warmup, lone, CORES,
                                                                                work, args.senders)
                ends[batch] = rate
                unbatched = rate if batch == 1 else unbatched
                versus_off = f"   = {rate / unbatched:.2f}x batching off" if unbatched and batch != 1 else ""
                print(f"{STACKS[kind]}, {'batching off' if batch == 1 else f'batch {batch}'}:\n"
                      f"  end to end  {rate:7.3f} posts/s   {cpu:6.3f} CPU s/post (worker processes)   "
                      f"= {100 * rate / bare_rate_b:.0f}% of the bare models' posts/s at batch {batch} (just before), "
                      f"{100 * bare_cpu_b / cpu:.0f}% of their CPU efficiency{versus_off}\n"
                      f"  every post accepted by the webhook {accepted:.2f} s after the first POST, the last done "
                      f"{len(paths) / rate:.2f} s after it\n"
                      f"  posts per model call (mean): "
                      + ", ".join(f"{model} {posts:.1f}" for model, posts in sorted(per_call.items())) + "\n"
                      f"  lone post   {latency:7.3f} s from receipt to done (median of {len(lone)}): {lone_times}",
                      flush=True)
            top = max(batches)
            print(f"{STACKS[kind]}, end to end against the bare models at batch {top}: "
                  + ", ".join(f"{'batching off' if b == 1 else f'batch {b}'} {100 * ends[b] / bare[top][0]:.0f}%"
                              for b in batches), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
