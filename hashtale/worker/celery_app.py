"""The Celery application, configured from settings.

The worker process imports `hashtale.worker.celery_app:celery`; the Flask app calls `celery_init_app(app)` (the
pattern of Flask's Celery example) so that `@shared_task` tasks enqueue on the broker its settings name.
"""
from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown

from hashtale.monitoring import mark_process_dead
from hashtale.settings import Settings
from hashtale.worker import redis_transport, sql_transport
from hashtale.worker.heartbeat import Heartbeat

redis_transport.install()  # before any broker connection: workers must outlive a Redis restart
sql_transport.install()  # the embedded broker polled every 50 ms, not every second

BATCHES_RESERVED = 2  # per pool process: the batch it runs and the one that fills meanwhile
POOL_PROCESS_START_TIMEOUT = 180.0  # seconds: importing torch and loading both models on a busy machine


def make_celery(settings: Settings) -> Celery:
    app = Celery("hashtale", broker=settings.broker_url, include=["hashtale.worker.tasks"])
    app.conf.update(
        task_default_queue=settings.task_queue,
        task_ignore_result=True,  # results go to the SQL database, not a result backend
        task_acks_late=True,  # a message is acknowledged only after its task finished...
        task_reject_on_worker_lost=True,  # ...and redelivered if the worker process died mid-task
        # Acknowledged-late messages count against the prefetch window. Per pool process the worker reserves the
        # batch it runs and the next one (hashtale/worker/batching.py): the next batch fills while the running one
        # computes, so a pool process that frees up gets a full batch at once instead of waiting for messages to arrive.
        worker_prefetch_multiplier=BATCHES_RESERVED * settings.batch_size if settings.batch_size > 1 else 1,
        # A new pool process loads the models before it reports up (hashtale.worker.tasks warms them up): allow for it,
        # or the pool kills and respawns it forever (Celery's default is 4 s).
        worker_proc_alive_timeout=POOL_PROCESS_START_TIMEOUT,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "sweep-stuck-posts": {"task": "worker.tasks.sweep_stuck_posts", "schedule": settings.sweep_interval},
            "enqueue-due-retries": {"task": "worker.tasks.enqueue_due_retries",
                                    "schedule": settings.retry_poll_interval},
            "collect-media-garbage": {"task": "worker.tasks.collect_media_garbage",
                                      "schedule": settings.media_gc_interval},
        },
    )
    app.conf.hashtale_settings = settings
    app.steps["worker"].add(Heartbeat)
    app.set_default()
    return app


# What `celery -A hashtale.worker.celery_app:celery` and `hashtale worker` run.
celery = make_celery(Settings.from_env())


def celery_init_app(flask_app) -> Celery:
    app = make_celery(flask_app.config["SETTINGS"])
    flask_app.extensions["celery"] = app
    return app


@worker_init.connect
def _serve_metrics(sender, **_kwargs) -> None:
    """In the worker's main process, before the pool starts: the metrics server for all its processes."""
    from hashtale.monitoring.exposition import serve

    serve(sender.app.conf.hashtale_settings.worker_metrics_bind)


@worker_process_shutdown.connect
def _retire_metrics(**_kwargs) -> None:
    mark_process_dead(os.getpid())
