"""`hashtale serve`: the embedded default in one command.

Runs the webhook (gunicorn) and a Celery worker with an embedded beat (for the sweep) as child processes,
with whatever the environment configures — by default SQLite for the posts, kombu's SQLAlchemy transport on
a second SQLite file as the broker (a real broker that needs no server) and the models in the worker
process. Posts are processed asynchronously, exactly as in the full stack. Stops everything when any child
exits or on SIGINT/SIGTERM.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from db.session import migrate
from settings import PROJECT_ROOT, Settings

DEFAULT_PORT = 8080
GUNICORN_CONF = PROJECT_ROOT / "webhook" / "gunicorn.conf.py"  # the webhook's tuned processes and threads
SUPERVISE_INTERVAL = 0.5  # seconds between checks that the children are alive
STOP_GRACE = 20.0  # seconds a child gets to finish its current request or task before SIGKILL


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="Celery worker processes (default: one per core)")


def _commands(args, schedule: Path) -> dict[str, list[str]]:
    return {
        "webhook": [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF), "--bind", f"{args.host}:{args.port}"],
        "worker": [sys.executable, "-m", "cli", "worker", "--concurrency", str(args.concurrency),
                   "--beat", "--schedule", str(schedule)],
    }


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: the running task finishes
    deadline = time.monotonic() + STOP_GRACE
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args) -> int:
    settings = Settings.from_env()
    migrate(settings.database_url)
    Path(settings.media_dir).mkdir(parents=True, exist_ok=True)
    print(f"hashtale serve: webhook on http://{args.host}:{args.port}  database {settings.database_url.split('@')[-1]}"
          f"  broker {settings.broker_url.split('@')[-1]}  inference {settings.inference_backend}", flush=True)

    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with tempfile.TemporaryDirectory(prefix="hashtale-beat-") as beat_dir:
        children = {name: subprocess.Popen(cmd, env=os.environ.copy())
                    for name, cmd in _commands(args, Path(beat_dir) / "schedule").items()}
        try:
            while not stopping:
                exited = [name for name, proc in children.items() if proc.poll() is not None]
                if exited:
                    print(f"hashtale serve: {', '.join(exited)} exited; stopping", file=sys.stderr, flush=True)
                    return 1
                time.sleep(SUPERVISE_INTERVAL)
        finally:
            _stop(children)
    return 0
