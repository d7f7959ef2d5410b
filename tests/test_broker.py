"""What the sweep and the metrics ask of the broker: the depth of a queue, on Redis and on the SQLite broker."""
from __future__ import annotations

import uuid

import pytest
from kombu import Connection

import hashtale.worker.celery_app  # noqa: F401  (installs our transports before any connection, as every process does)
from tests.support.brokers import REDIS_URL
from hashtale.worker import sql_transport
from hashtale.worker.broker import has_fanout, queue_depth


@pytest.fixture(params=["redis", "sqlite"])
def broker_url(request, tmp_path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")  # only this parameter needs the server
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"


def test_queue_depth_counts_waiting_messages_and_an_empty_queue_is_zero(broker_url):
    queue = f"depth-{uuid.uuid4().hex[:8]}"
    assert queue_depth(broker_url, queue) == 0  # never declared
    with Connection(broker_url) as connection:
        simple = connection.SimpleQueue(queue)
        for n in range(3):
            simple.put({"n": n})
        assert queue_depth(broker_url, queue) == 3
        simple.get(timeout=5).ack()
        assert queue_depth(broker_url, queue) == 2
        simple.clear()
        assert queue_depth(broker_url, queue) == 0  # declared, drained: Redis has deleted the list
        simple.close()


def test_only_the_sqlite_broker_lacks_fanout(tmp_path):
    # The transport's capabilities, read from the URL: no server is asked.
    assert has_fanout(REDIS_URL) and not has_fanout(f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")


def test_the_embedded_broker_is_polled_every_50_ms_not_every_second(tmp_path):
    with Connection(f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}") as connection:
        assert isinstance(connection.transport, sql_transport.Transport)
        assert connection.transport.polling_interval == sql_transport.POLLING_INTERVAL == 0.05
