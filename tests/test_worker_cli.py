"""`hashtale worker`'s pool settings: one PyTorch thread per pool process unless configured, through Settings only."""
from __future__ import annotations

import os

from hashtale.settings import Settings
from hashtale.worker.celery_worker import pool_settings


def test_pytorch_default_threads_become_one_thread_per_pool_process(monkeypatch):
    monkeypatch.delenv("TORCH_THREADS", raising=False)
    # never 0 (PyTorch's default: a thread per core in every process, whatever the pool's size)
    assert pool_settings(Settings(torch_threads=0)).torch_threads == 1
    assert "TORCH_THREADS" not in os.environ  # one source: the settings the pool reads, not the environment


def test_a_configured_thread_count_is_kept():
    assert pool_settings(Settings(torch_threads=3)).torch_threads == 3
