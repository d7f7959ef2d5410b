"""The webhook's request path, variant by variant, in one run.

1. Parsing one multipart post: Werkzeug's parser against the fast path of hashtale/webhook/multipart.py.
2. The accept rate under gunicorn with the shipped config (hashtale/webhook/gunicorn.conf.py), multipart and JSON posts
   of
   real photos, each with its own external id, at a fixed number of concurrent keep-alive connections; with the
   server's CPU time per post (all gunicorn workers, from /proc), which does not depend on what else runs.

    .venv/bin/python -m bench.webhook                      # PostgreSQL + Redis on 127.0.0.1 (production setup)
    .venv/bin/python -m bench.webhook --embedded           # SQLite + kombu's SQLAlchemy broker (hashtale serve)
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from werkzeug.datastructures import FileStorage
from werkzeug.test import EnvironBuilder, encode_multipart
from werkzeug.wrappers import Request

from bench import machine
from hashtale.db import migrate
from hashtale.inference.tritonserver import free_port
from hashtale.settings import PROJECT_ROOT
from tests.support.brokers import REDIS_URL
from tests.support.data import PHOTOS_DIR
from tests.support.databases import PG_ADMIN_URL
from hashtale.webhook import multipart

PARSE_REPEATS = 500
WARMUP_POSTS = 200
EXTERNAL_ID_PREFIX = "bench-"  # of every post a bench sends: "bench-<uuid>"
START_TIMEOUT = 120.0  # seconds for gunicorn to import the app
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_photos(count: int) -> list[bytes]:
    """`count` distinct real photos (fewer if the set is smaller): each post then writes a file of its own."""
    names = (PHOTOS_DIR / "data_list.txt").read_text().split()
    return [(PHOTOS_DIR / name).read_bytes() for name in random.Random(0).sample(names, min(count, len(names)))]


def multipart_body(photo: bytes) -> tuple[str, bytes]:
    fields = {"external_id": f"{EXTERNAL_ID_PREFIX}{uuid.uuid4().hex}", "caption": "a photo",
              "image": FileStorage(io.BytesIO(photo), filename="photo.jpg", content_type="image/jpeg")}
    boundary, body = encode_multipart(fields)
    return f"multipart/form-data; boundary={boundary}", body


def json_body(photo: bytes) -> tuple[str, bytes]:
    doc = {"external_id": f"{EXTERNAL_ID_PREFIX}{uuid.uuid4().hex}", "caption": "a photo",
           "image": base64.b64encode(photo).decode()}
    return "application/json", json.dumps(doc).encode()


def bench_parsers(photos: list[bytes]) -> None:
    bodies = [multipart_body(photos[i % len(photos)]) for i in range(PARSE_REPEATS)]

    def werkzeug(content_type: str, body: bytes) -> bytes:
        environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
        return Request(environ).files["image"].read()

    def fast(content_type: str, body: bytes) -> bytes:
        boundary = content_type.partition("boundary=")[2]
        return multipart.parse(body, boundary).files["image"]

    print(f"multipart parse of one post ({PARSE_REPEATS} real photos, CPU time):")
    for name, parse in (("werkzeug", werkzeug), ("fast path", fast)):
        start = time.process_time()
        for content_type, body in bodies:
            parse(content_type, body)
        print(f"  {name:<10} {(time.process_time() - start) / PARSE_REPEATS * 1e6:8.0f} µs/post")


async def _client(host: str, port: int, requests: list[bytes], codes: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while requests:
        writer.write(requests.pop())
        status = await reader.readline()
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await reader.readexactly(length)
        code = int(status.split()[1])
        codes[code] = codes.get(code, 0) + 1
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


def run_load(port: int, bodies: list[tuple[str, bytes]], concurrency: int) -> tuple[float, dict[int, int]]:
    requests = [(f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body for ctype, body in bodies]
    codes: dict[int, int] = {}

    async def main() -> None:
        await asyncio.gather(*(_client("127.0.0.1", port, requests, codes) for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start, codes


def worker_cpu_seconds(master_pid: int) -> float:
    total = 0
    for children in Path(f"/proc/{master_pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / CLOCK_TICKS


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "hashtale/webhook/gunicorn.conf.py", "-b", f"127.0.0.1:{port}"],
        # A PostgreSQL deployment refuses to start without a SECRET_KEY (hashtale/settings/secret_key.py).
        cwd=PROJECT_ROOT, env={"SECRET_KEY": secrets.token_hex(), **os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            _, codes = run_load(port, [json_body(b"")], 1)  # answered once the app is imported (400: empty image)
            if codes:
                return proc
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(log.read_text())


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    """Stop a gunicorn started by start_gunicorn (its whole process group), if it is running."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts per variant (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--embedded", action="store_true", help="SQLite + SQLAlchemy broker instead of PostgreSQL + Redis")
    args = parser.parse_args()

    print(machine.describe())
    photos = load_photos(WARMUP_POSTS + 2 * args.posts)
    bench_parsers(photos)

    work = Path(tempfile.mkdtemp(prefix="hashtale-bench-webhook-"))
    queue = f"hashtale-bench-{uuid.uuid4().hex[:12]}"
    pg_name = f"hashtale_bench_{uuid.uuid4().hex[:12]}"
    server = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    if args.embedded:
        database_url, broker_url = f"sqlite:///{work / 'hashtale.sqlite'}", f"sqla+sqlite:///{work / 'broker.sqlite'}"
    else:
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        database_url, broker_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name, REDIS_URL
    migrate(database_url)
    env = {"DATABASE_URL": database_url, "BROKER_URL": broker_url, "MEDIA_DIR": str(work / "media"),
           "TASK_QUEUE": queue}
    port = free_port()
    proc = start_gunicorn(env, port, work / "gunicorn.log")
    try:
        conf = runpy.run_path(str(PROJECT_ROOT / "hashtale" / "webhook" / "gunicorn.conf.py"))
        print(f"accept rate under gunicorn ({conf['workers']} workers x {conf['threads']} threads), "
              f"{args.concurrency} connections, "
              f"{'SQLite + SQLAlchemy broker' if args.embedded else 'PostgreSQL + Redis'}:")
        run_load(port, [multipart_body(photos[i % len(photos)]) for i in range(WARMUP_POSTS)], args.concurrency)
        for variant, (name, encode) in enumerate((("multipart", multipart_body), ("JSON", json_body))):
            first = WARMUP_POSTS + variant * args.posts  # photos no earlier post used
            bodies = [encode(photos[(first + i) % len(photos)]) for i in range(args.posts)]
            cpu_before = worker_cpu_seconds(proc.pid)
            seconds, codes = run_load(port, bodies, args.concurrency)
            cpu = worker_cpu_seconds(proc.pid) - cpu_before
            print(f"  {name:<10} {args.posts / seconds:7.0f} posts/s   server CPU {cpu / args.posts * 1e3:5.2f} ms/post"
                  f"   answers {codes}")
    finally:
        stop_gunicorn(proc)
        if not args.embedded:
            import redis

            redis.Redis.from_url(REDIS_URL).delete(queue)
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        server.dispose()
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
