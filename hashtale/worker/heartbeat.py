"""The worker's heartbeat file: a worker step that touches WORKER_HEARTBEAT_FILE now and every HEARTBEAT_INTERVAL
seconds from the worker's timer. `hashtale worker-health` (hashtale/worker/health.py) reads its age where no Celery ping
can reach the worker (the embedded SQLite broker has no fanout)."""
from __future__ import annotations

from pathlib import Path

from celery import bootsteps

HEARTBEAT_INTERVAL = 10.0  # seconds
STALE_AFTER_BEATS = 3  # a file older than this many intervals: the worker is gone or stuck


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()  # sets the modification time of an existing file too


class Heartbeat(bootsteps.StartStopStep):
    """A worker step: touch the heartbeat file now and every HEARTBEAT_INTERVAL on the worker's timer."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.path = Path(worker.app.conf.hashtale_settings.worker_heartbeat_file)
        self.tref = None

    def start(self, worker):
        touch(self.path)
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_INTERVAL, touch, (self.path,))

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
