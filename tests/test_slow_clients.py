"""The embedded default's web server (waitress) reads requests whole before a thread runs the app: 64 stalled
clients do not keep normal requests from being answered, and a body cut short stores nothing."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from hashtale.db.schema import Post
from hashtale.db.session import make_engine, migrate
from hashtale.inference.tritonserver import free_port
from hashtale.settings import PROJECT_ROOT
from tests.support.slow_clients import TRICKLE, probe, stalled_client

pytestmark = pytest.mark.slow  # servers of its own held by dozens of stalled connections

STALLED = 64
PROBES = 40
START_TIMEOUT = 120.0  # seconds


@pytest.fixture
def embedded_server(tmp_path, sqlite_url):
    migrate(sqlite_url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": sqlite_url, "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
           "MEDIA_DIR": str(tmp_path / "media"), "METRICS_BIND": ""}
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "hashtale.webhook.embedded_server", "--port", str(port)], cwd=PROJECT_ROOT,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while probe(port) is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_stalled_clients_do_not_stall_normal_requests(embedded_server):
    stop = threading.Event()
    clients = [threading.Thread(target=stalled_client, args=(embedded_server, i % 2 == 1, stop), daemon=True)
               for i in range(STALLED)]
    for client in clients:
        client.start()
    try:
        time.sleep(2 * TRICKLE)  # every stalled client is connected and trickling
        answered = [probe(embedded_server) is not None for _ in range(PROBES)]
    finally:
        stop.set()
    assert all(answered), f"{answered.count(False)} of {PROBES} normal requests got no answer"


def test_a_body_cut_short_stores_nothing(embedded_server, sqlite_url, tmp_path, coffee_jpeg):
    boundary = "cut"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"c.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + coffee_jpeg + f"\r\n--{boundary}--\r\n".encode()
    with socket.create_connection(("127.0.0.1", embedded_server), timeout=10) as sock:
        sock.sendall(f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                     f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    time.sleep(1.0)  # the server has seen the disconnect
    assert probe(embedded_server) is not None
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Post)) == 0
    engine.dispose()
    assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file() and ".locks" not in p.parts]
