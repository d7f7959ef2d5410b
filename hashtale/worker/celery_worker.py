"""`hashtale worker`: a Celery worker for the configured broker and queue (thin wrapper around
`celery -A hashtale.worker.celery_app:celery worker`). By default one process per core, each with one PyTorch thread:
posts are independent, so processes scale better than threads inside one forward pass."""
from __future__ import annotations

import argparse
import os

from hashtale.monitoring import prepare_multiprocess_dir
from hashtale.settings import Settings
from hashtale.worker.broker import has_fanout


def add_arguments(parser) -> None:
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    parser.add_argument("--beat", action="store_true", help="also run beat (the periodic sweep) in this worker")
    parser.add_argument("--schedule", default=None, help="beat's schedule file (with --beat)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--events", action=argparse.BooleanOptionalAction, default=None,
                        help="send task events (Flower, `celery events`); default: on where the broker has fanout "
                             "(Redis, RabbitMQ), which the embedded SQLite broker has not")


PROCESS_TORCH_THREADS = 1  # per pool process, unless TORCH_THREADS says otherwise


def pool_settings(settings: Settings) -> Settings:
    """The settings of the pool processes, however many: TORCH_THREADS=0 becomes one PyTorch thread per process.
    Parallelism comes from the processes (and a batch's posts in one call). Intra-op threads meet at every operation:
    the storyteller runs thousands of tiny steps per story, and on a machine whose cores are busy with anything else
    (the webhook, the database, another worker) threads that wait for each other at each step make a story many
    times slower, where one thread per process loses next to nothing when the machine is idle."""
    if settings.torch_threads:
        return settings
    return settings.with_(torch_threads=PROCESS_TORCH_THREADS)


def run(args) -> int:
    settings = pool_settings(Settings.from_env())
    prepare_multiprocess_dir("worker")  # before prometheus_client is imported (by the tasks)
    from hashtale.worker.celery_app import celery

    celery.conf.hashtale_settings = settings  # what the tasks, the batching strategy and the forked pool read

    argv = ["worker", "--concurrency", str(args.concurrency), "--loglevel", args.loglevel,
            "--queues", celery.conf.task_default_queue]
    events = has_fanout(settings.broker_url) if args.events is None else args.events
    if events:
        argv.append("--task-events")
    if args.beat:
        argv.append("--beat")
        if args.schedule:
            argv += ["--schedule", args.schedule]
    celery.worker_main(argv)
    return 0
