"""What the service asks of its Celery broker besides sending and receiving: can it broadcast, and how many
messages wait in a queue. Works for every kombu transport the project uses (Redis, RabbitMQ, SQLAlchemy)."""
from __future__ import annotations

from amqp.exceptions import NotFound
from kombu import Connection
from kombu.exceptions import ChannelError

FANOUT = "fanout"
TIMEOUT = 2.0  # seconds to reach the broker
NOT_FOUND = "404"  # AMQP's reply code for a queue nobody declared (kombu's virtual transports give it as text)


def has_fanout(broker_url: str) -> bool:
    """Whether the broker can broadcast (Celery's remote control, events, Flower need it)."""
    return FANOUT in Connection(broker_url).transport.implements.exchange_type


def queue_depth(broker_url: str, queue: str) -> int:
    """Messages waiting in `queue` (not those a worker has taken). Raises if the broker cannot be reached."""
    with Connection(broker_url, connect_timeout=TIMEOUT, transport_options={"socket_timeout": TIMEOUT}) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT)
        try:
            _name, messages, _consumers = connection.default_channel.queue_declare(queue, passive=True)
        except (ChannelError, NotFound) as exc:
            if str(getattr(exc, "code", "")) != NOT_FOUND:
                raise
            return 0  # Redis: no worker has declared the queue yet, so nothing waits in it
    return messages
