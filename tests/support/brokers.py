"""Redis for the tests (a Celery broker) and a queue name of each test's own.

The session starts a redis-server of its own (the binary is all it needs), unless TEST_REDIS_URL names one to use;
so a test that uses Redis never depends on the machine's server being up. REDIS_URL is the machine's server, for
the benches."""
from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    if "TEST_REDIS_URL" in os.environ:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.ping()  # fails loudly if the named server is down
        client.close()
        yield REDIS_URL
        return
    from hashtale.inference.tritonserver import free_port
    from tests.support.servers import RedisServer

    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.crash()


@pytest.fixture
def queue_name() -> str:
    """A Celery queue no other test (or test session) uses."""
    return f"hashtale-test-{uuid.uuid4().hex[:12]}"
