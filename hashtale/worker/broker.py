"""What the service asks of its Celery broker besides sending and receiving: can it broadcast, and how many
messages wait in a queue. Works for every kombu transport the project uses (Redis, RabbitMQ, SQLAlchemy)."""
from __future__ import annotations

from amqp.exceptions import ChannelError as AmqpChannelError
from kombu import Connection
from kombu.exceptions import ChannelError

FANOUT = "fanout"
TIMEOUT = 2.0  # seconds to reach the broker
NOT_FOUND = "404"  # AMQP's reply code for a missing queue (kombu's virtual transports give it as the first argument)


def has_fanout(broker_url: str) -> bool:
    """Whether the broker can broadcast (Celery's remote control, events, Flower need it)."""
    return FANOUT in Connection(broker_url).transport.implements.exchange_type


def connect(broker_url: str) -> Connection:
    """A connection that gives up after TIMEOUT seconds (connecting, and on Redis each command), established."""
    options = {} if Connection(broker_url).transport_cls.startswith("sqla") else {"socket_timeout": TIMEOUT}
    connection = Connection(broker_url, connect_timeout=TIMEOUT, transport_options=options)  # sqla: engine kwargs
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT)
    except BaseException:
        connection.release()
        raise
    return connection


def queue_depth(broker_url: str, queue: str) -> int:
    """Messages waiting in `queue` (not those a worker has taken). Raises if the broker cannot be reached."""
    with connect(broker_url) as connection:
        try:
            _name, messages, _consumers = connection.default_channel.queue_declare(queue, passive=True)
        except (ChannelError, AmqpChannelError) as exc:
            if NOT_FOUND not in (str(getattr(exc, "code", "")), str(exc.args[0]) if exc.args else ""):
                raise
            return 0  # Redis keeps no empty list: an empty (or never used) queue is a missing key
    return messages
