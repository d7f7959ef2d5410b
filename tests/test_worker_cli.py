"""`hashtale worker`'s pool settings: the cores shared out among the pool processes, through Settings only."""
from __future__ import annotations

import os

from hashtale.settings import Settings
from hashtale.worker.celery_worker import pool_settings


def test_pytorch_default_threads_become_the_cores_shared_out_among_the_processes(monkeypatch):
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert pool_settings(Settings(torch_threads=0), 1).torch_threads == cores
    assert pool_settings(Settings(torch_threads=0), cores * 2).torch_threads == 1  # never 0: PyTorch's default
    assert "TORCH_THREADS" not in os.environ  # one source: the settings the pool reads, not the environment


def test_a_configured_thread_count_is_kept():
    assert pool_settings(Settings(torch_threads=3), 8).torch_threads == 3
