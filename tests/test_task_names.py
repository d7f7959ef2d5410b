"""Celery task names are the deployment's wire format: queued messages and beat's schedule name a task by this
string, so the names stay `worker.tasks.*` although the module is hashtale.worker.tasks (each task pins `name=`)."""

WIRE_NAMES = {
    "worker.tasks.collect_media_garbage",
    "worker.tasks.enqueue_due_retries",
    "worker.tasks.suggest_hashtags",
    "worker.tasks.sweep_stuck_posts",
    "worker.tasks.write_story",
}


def test_the_registered_task_names_are_the_wire_names():
    import hashtale.worker.tasks  # noqa: F401  (registers the tasks, as the worker does)
    from hashtale.worker.celery_app import celery

    assert {name for name in celery.tasks if not name.startswith("celery.")} == WIRE_NAMES
    assert {entry["task"] for entry in celery.conf.beat_schedule.values()} <= WIRE_NAMES
