"""kombu's Redis transport, with one fix that keeps workers alive across a Redis restart.

When the broker connection drops, kombu drops its connection object (the transport's `client` becomes None), but a
worker still talks to Redis through the old channel: closing it restores the worker's unacknowledged messages
(QoS.restore_unacked_once), and a task that finishes acknowledges its message. Each builds a new Redis client from
the connection's parameters and raises AttributeError there, which Celery does not count as a connection error:
the worker logs "Unrecoverable error" and exits with code 0 (kombu 5.7.0; whenever a worker holds unacknowledged
messages: a running task with acks_late, a gathered batch, delayed retries). Here that is a redis ConnectionError,
which kombu and Celery handle as one: the restore and the ack are skipped and logged, the worker reconnects. The
messages stay in Redis's unacked hash, which any worker restores after `visibility_timeout`, or, if Redis lost them
with its restart, the sweep re-enqueues their posts (hashtale/worker/sweep.py); the tasks are idempotent either way.
"""
from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES, redis

SCHEMES = ("redis", "rediss")


class Channel(redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:  # the connection is already gone
            raise redis.redis.exceptions.ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous)


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    """Make redis:// and rediss:// broker URLs use this transport in this process."""
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
