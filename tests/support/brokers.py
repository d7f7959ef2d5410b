"""The shared Redis (a Celery broker) and a queue name of each test's own."""
from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # fails loudly if Redis is down: .ci/run starts it
    client.close()
    return REDIS_URL


@pytest.fixture
def queue_name() -> str:
    """A Celery queue no other test (or test session) uses."""
    return f"hashtale-test-{uuid.uuid4().hex[:12]}"
