"""`hashtale serve`: the embedded default in one command.

Runs the webhook (waitress: hashtale/webhook/embedded_server.py) and a Celery worker with an embedded beat (for the
sweep) as child processes, with whatever the environment configures — by default SQLite for the posts, kombu's
SQLAlchemy transport on a second SQLite file as the broker (a real broker that needs no server) and the models in the
worker process. Posts are processed asynchronously, exactly as in the full stack.

Supervision: a child that exits, for whatever reason and with whatever code (a Celery worker exits 0 on some
broker errors), is started again, after RESTART_DELAY seconds doubling per quick successive exit up to
RESTART_DELAY_MAX (a child that ran HEALTHY_AFTER seconds starts from RESTART_DELAY again). SIGINT/SIGTERM stop
everything.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hashtale.db.session import migrate
from hashtale.settings import Settings

DEFAULT_PORT = 8080
SUPERVISE_INTERVAL = 0.5  # seconds between checks that the children are alive
STOP_GRACE = 20.0  # seconds a child gets to finish its current request or task before SIGKILL
RESTART_DELAY = 1.0  # seconds before a child that exited is started again
RESTART_DELAY_MAX = 30.0  # seconds
HEALTHY_AFTER = 60.0  # seconds of running after which a child's next exit is treated as a first one


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="Celery worker processes (default: one per core)")


def _commands(args, schedule: Path) -> dict[str, list[str]]:
    return {
        "webhook": [sys.executable, "-m", "hashtale.webhook.embedded_server", "--host", args.host, "--port", str(args.port)],
        "worker": [sys.executable, "-m", "hashtale.cli", "worker", "--concurrency", str(args.concurrency),
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
        commands = _commands(args, Path(beat_dir) / "schedule")
        children = {name: _Child(name, command) for name, command in commands.items()}
        try:
            while not stopping:
                for child in children.values():
                    child.supervise()
                time.sleep(SUPERVISE_INTERVAL)
        finally:
            _stop({name: child.proc for name, child in children.items() if child.proc is not None})
    return 0


class _Child:
    """One supervised child process: started now, and again whenever it exits (with a growing delay)."""

    def __init__(self, name: str, command: list[str]):
        self.name, self.command = name, command
        self.delay = RESTART_DELAY
        self.restart_at: float | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=os.environ.copy())
        self.started = time.monotonic()
        self.restart_at = None

    def supervise(self) -> None:
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            return
        self.delay = RESTART_DELAY if now - self.started >= HEALTHY_AFTER else min(2 * self.delay, RESTART_DELAY_MAX)
        print(f"hashtale serve: {self.name} exited with {code}; restarting in {self.delay:.0f} s",
              file=sys.stderr, flush=True)
        self.restart_at = now + self.delay
