"""Prometheus metrics of the webhook and the worker, in prometheus_client's multiprocess mode.

gunicorn's workers and Celery's prefork children are separate processes, so each writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and one exposition server per service (in gunicorn's master, in the Celery main process:
`hashtale.monitoring.exposition`) adds them up. That variable must be set before prometheus_client is first imported in
a process: `prepare_multiprocess_dir` runs first thing in the gunicorn config and in `hashtale worker`.

Names (all prefixed `hashtale_`):
- http_requests_total{route, method, status}, http_request_duration_seconds{route}   (webhook)
- task_runs_total{task, outcome}, task_duration_seconds{task}                          (worker; outcome: done,
  parked (a dependency is down), failed, skipped = a duplicate or a post already past the stage)
- model_duration_seconds{model, backend}, model_batch_size{model, backend}             (worker: one call)
- batch_wait_seconds{task}                 (worker: a message's wait for its batch, hashtale/worker/batching.py)
- post_completion_seconds                                                              (receipt to done)
- posts{status}, queue_messages{queue}                                                 (read at scrape time)
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(service: str) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR for this process and its children, emptied: samples of an earlier run of
    the service would otherwise be added to this one's. An operator's directory is used, a fresh one made else."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        folder = Path(configured)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"hashtale-metrics-{service}-"))
        os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def mark_process_dead(pid: int) -> None:
    """Drop the live-gauge files of a child that exited (counters and histograms keep their samples)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
