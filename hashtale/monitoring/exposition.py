"""The metrics endpoint of a service: an HTTP server (its own port, 127.0.0.1 by default, so never public
unless an operator binds it wider) that adds up every process's samples and reads the gauges that live
elsewhere (posts by status from the database, messages waiting in the broker's queue) at scrape time."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from hashtale.monitoring.metrics import NAMESPACE

logger = logging.getLogger(__name__)


def parse_bind(bind: str) -> tuple[str, int]:
    """"host:port" -> (host, port)."""
    host, _, port = bind.rpartition(":")
    return host or "127.0.0.1", int(port)


class PostsCollector:
    """hashtale_posts{status}: the posts table's count per status, one GROUP BY per scrape."""

    def __init__(self, database_url: str):
        from hashtale.db.session import make_engine

        self.engine = make_engine(database_url)

    def collect(self):
        from hashtale.db.schema import Post, PostStatus

        family = GaugeMetricFamily(f"{NAMESPACE}_posts", "Posts by status", labels=["status"])
        try:
            with self.engine.connect() as conn:
                counts = dict(conn.execute(select(Post.status, func.count()).group_by(Post.status)).all())
        except Exception as exc:  # the database is down: no sample, and /readyz says why
            logger.warning("posts gauge unavailable: %s", exc)
            return
        for status in PostStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family


class QueueCollector:
    """hashtale_queue_messages{queue}: messages waiting in the task queue (not those a worker has taken)."""

    def __init__(self, broker_url: str, queue: str):
        self.broker_url, self.queue = broker_url, queue

    def collect(self):
        from hashtale.worker.broker import queue_depth

        family = GaugeMetricFamily(f"{NAMESPACE}_queue_messages", "Messages waiting in the broker's queue",
                                   labels=["queue"])
        try:
            messages = queue_depth(self.broker_url, self.queue)
        except Exception as exc:  # the broker is down
            logger.warning("queue gauge unavailable: %s", exc)
            return
        family.add_metric([self.queue], messages)
        yield family


def serve(bind: str, settings=None) -> None:
    """Start the metrics server in a daemon thread of this process. With `settings`, the database and broker
    gauges are included (the webhook's server has them; the worker's serves its processes' samples only)."""
    if not bind:
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    if settings is not None:
        registry.register(PostsCollector(settings.database_url))
        registry.register(QueueCollector(settings.broker_url, settings.task_queue))
    host, port = parse_bind(bind)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # the port is taken: the service runs on, unmonitored, and says so
        logger.error("metrics server not started on %s: %s", bind, exc)
        return
    logger.info("metrics on http://%s:%d/metrics", host, port)
