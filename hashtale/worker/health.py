"""`hashtale worker-health`: is this host's Celery worker alive? Exit 0 if so, 1 if not (compose, Kubernetes).

- A broker with fanout (Redis, RabbitMQ): the worker node of this host (`celery@<hostname>`, the name
  `hashtale worker` runs under) must answer a Celery ping, as `celery inspect ping` does.
- The embedded SQLite broker has no fanout, so no ping can reach a worker: the worker touches
  WORKER_HEARTBEAT_FILE every HEARTBEAT_INTERVAL seconds from its timer (hashtale/worker/heartbeat.py), and a file older
  than STALE_AFTER_BEATS intervals means the worker is gone or stuck.
"""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from hashtale.settings import Settings
from hashtale.worker.broker import has_fanout
from hashtale.worker.heartbeat import HEARTBEAT_INTERVAL, STALE_AFTER_BEATS

PING_TIMEOUT = 5.0  # seconds


def node_name() -> str:
    return f"celery@{socket.gethostname()}"


def check(settings: Settings) -> str:
    """'' when healthy, else the reason."""
    if has_fanout(settings.broker_url):
        from hashtale.worker.celery_app import celery

        replies = celery.control.ping(destination=[node_name()], timeout=PING_TIMEOUT)
        return "" if replies else f"{node_name()} did not answer a ping within {PING_TIMEOUT:.0f} s"
    path = Path(settings.worker_heartbeat_file)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"no heartbeat file {path}"
    limit = STALE_AFTER_BEATS * HEARTBEAT_INTERVAL
    return "" if age <= limit else f"heartbeat {path} is {age:.0f} s old (limit {limit:.0f} s)"


def add_arguments(parser) -> None:
    pass


def run(_args) -> int:
    reason = check(Settings.from_env())
    if reason:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    print("healthy")
    return 0
