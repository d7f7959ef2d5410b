"""Celery tasks. Each takes a post id, re-reads the row, calls a pure function of worker/pipeline.py outside
any transaction, and writes the results idempotently (delete-then-insert under a row lock), so a task that
runs twice leaves exactly one set of rows. The next task is enqueued only after the commit.

suggest_hashtags(post_id): received/tagging → tagging → tagged, then enqueues write_story(post_id)
write_story(post_id):      tagged/writing  → writing → done
sweep_stuck_posts():       re-enqueues posts stuck in a non-final state (run by beat)
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any, Callable

from celery import shared_task
from celery.signals import worker_process_init
from celery.utils.log import get_task_logger
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.schema import FINAL_STATUSES, Hashtag, Post, PostStatus, Story
from db.session import make_engine, make_session_factory
from inference import InferenceBackend, InferenceUnavailable, make_backend
from settings import Settings
from worker import pipeline
from worker.sweep import claim_stuck_posts

logger = get_task_logger(__name__)

TRANSIENT_ERRORS = (InferenceUnavailable, OperationalError)  # retried with backoff; anything else fails the post
ERROR_MAX_CHARS = 2000  # of the reason stored on a failed post
STAGES_PER_POST = 2  # tagging, writing
REDELIVERY_ALLOWANCE = 4  # runs per post beyond its retries (worker deaths, sweep duplicates) before giving up


@dataclass(frozen=True)
class Runtime:
    """What a worker process builds once per settings: database sessions and the inference backend."""

    settings: Settings
    session_factory: sessionmaker[Session]
    backend: InferenceBackend

    @property
    def max_runs(self) -> int:
        return STAGES_PER_POST * (self.settings.task_max_retries + 1) + REDELIVERY_ALLOWANCE


@functools.lru_cache(maxsize=None)
def runtime(settings: Settings) -> Runtime:
    return Runtime(settings, make_session_factory(make_engine(settings.database_url)), make_backend(settings))


def app_settings(app) -> Settings:
    return app.conf.hashtale_settings


@dataclass(frozen=True)
class Stage:
    starts_from: frozenset[PostStatus]  # the second status is a redelivery of a run that died
    running: PostStatus
    finished: PostStatus


TAGGING = Stage(frozenset({PostStatus.RECEIVED, PostStatus.TAGGING}), PostStatus.TAGGING, PostStatus.TAGGED)
WRITING = Stage(frozenset({PostStatus.TAGGED, PostStatus.WRITING}), PostStatus.WRITING, PostStatus.DONE)


def start(rt: Runtime, post_id: int, stage: Stage, read: Callable[[Session, Post], Any]) -> tuple[bool, Any]:
    """Move the post into the stage's running state and read the stage's input, in one short transaction.

    Returns (False, None) when there is nothing to do: the post is gone, already past this stage (a
    duplicate message) or failed.
    """
    with rt.session_factory.begin() as session:
        post = session.get(Post, post_id, with_for_update=True)
        if post is None or post.status not in stage.starts_from:
            logger.info("post %s: %s, nothing to do for %s", post_id,
                        "missing" if post is None else post.status.value, stage.running.value)
            return False, None
        if post.attempts >= rt.max_runs:
            post.move_to(PostStatus.FAILED)
            post.error = f"gave up after {post.attempts} runs (did the worker keep dying on this post?)"
            return False, None
        post.move_to(stage.running)
        post.attempts += 1
        return True, read(session, post)


def finish(rt: Runtime, post_id: int, stage: Stage, replace: Callable[[Session], None]) -> bool:
    """Replace the stage's rows and move the post on, unless another run finished (or failed) it first."""
    with rt.session_factory.begin() as session:
        post = session.get(Post, post_id, with_for_update=True)
        if post is None or post.status != stage.running:
            return False
        replace(session)
        post.move_to(stage.finished)
        post.error = None
    return True


def fail(rt: Runtime, post_id: int, reason: str) -> None:
    with rt.session_factory.begin() as session:
        post = session.get(Post, post_id, with_for_update=True)
        if post is None or post.status in FINAL_STATUSES:
            return
        post.move_to(PostStatus.FAILED)
        post.error = reason[:ERROR_MAX_CHARS]
    logger.warning("post %s failed: %s", post_id, reason)


def backoff(retries: int, settings: Settings) -> float:
    """Seconds before retry number `retries + 1`: exponential, capped, with jitter over the upper half (so
    the retries of many posts that failed together do not hit the recovering server together)."""
    ceiling = min(settings.retry_backoff_max, settings.retry_backoff * 2 ** retries)
    return random.uniform(ceiling / 2, ceiling)


def run_stage(task, post_id: int, stage: Stage, read: Callable[[Session, Post], Any],
              compute: Callable[[Runtime, Any], Any], replace: Callable[[Session, Any], None]) -> bool:
    """The shape shared by both tasks; returns True when this run moved the post to the stage's end."""
    rt = runtime(app_settings(task.app))
    try:
        proceed, inputs = start(rt, post_id, stage, read)
        if not proceed:
            return False
        results = compute(rt, inputs)  # outside any transaction: inference takes a while
        return finish(rt, post_id, stage, lambda session: replace(session, results))
    except TRANSIENT_ERRORS as exc:
        if task.request.retries < rt.settings.task_max_retries:
            logger.info("post %s: transient %s, retry %d", post_id, type(exc).__name__, task.request.retries + 1)
            raise task.retry(exc=exc, countdown=backoff(task.request.retries, rt.settings))
        fail(rt, post_id, f"gave up after {task.request.retries} retries: {type(exc).__name__}: {exc}")
    except Exception as exc:  # permanent: a bad image, a model error; retrying would fail the same way
        fail(rt, post_id, f"{type(exc).__name__}: {exc}")
    return False


def _read_image_path(session: Session, post: Post) -> str:
    return post.image_path


@shared_task(bind=True, name="worker.tasks.suggest_hashtags", max_retries=None)
def suggest_hashtags(self, post_id: int) -> None:
    def compute(rt: Runtime, image_path: str) -> list[Hashtag]:
        image = pipeline.read_image(rt.settings, image_path)
        return pipeline.hashtag_rows(post_id, image, rt.backend, rt.settings.hashtags_per_post)

    def replace(session: Session, rows: list[Hashtag]) -> None:
        session.execute(delete(Hashtag).where(Hashtag.post_id == post_id))
        session.add_all(rows)

    if run_stage(self, post_id, TAGGING, _read_image_path, compute, replace):
        write_story.delay(post_id)


@shared_task(bind=True, name="worker.tasks.write_story", max_retries=None)
def write_story(self, post_id: int) -> None:
    def read(session: Session, post: Post) -> list[str]:
        return list(session.scalars(select(Hashtag.text).where(Hashtag.post_id == post_id).order_by(Hashtag.rank)))

    def compute(rt: Runtime, hashtags: list[str]) -> Story:
        return pipeline.story_row(post_id, hashtags, rt.backend, rt.settings)

    def replace(session: Session, row: Story) -> None:
        session.execute(delete(Story).where(Story.post_id == post_id))
        session.add(row)

    run_stage(self, post_id, WRITING, read, compute, replace)


NEXT_TASK = {
    PostStatus.RECEIVED: suggest_hashtags,
    PostStatus.TAGGING: suggest_hashtags,
    PostStatus.TAGGED: write_story,
    PostStatus.WRITING: write_story,
}


@shared_task(bind=True, name="worker.tasks.sweep_stuck_posts")
def sweep_stuck_posts(self) -> int:
    """Re-enqueue the next task of every post stuck in a non-final state; returns how many."""
    settings = app_settings(self.app)
    stuck = claim_stuck_posts(runtime(settings).session_factory, settings.stuck_after)
    for post_id, status in stuck:
        NEXT_TASK[status].delay(post_id)
    if stuck:
        logger.warning("sweep re-enqueued %d stuck posts: %s", len(stuck), [post_id for post_id, _ in stuck])
    return len(stuck)


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    """In each new worker process: load the models before the first task arrives."""
    from celery import current_app
    from kombu.transport.sqlalchemy import Channel

    # A process forked after the parent opened the SQLite broker must not reuse the parent's connections
    # (SQLAlchemy's advice for multiprocessing); kombu caches its engines on the class.
    for engine, _session_factory in Channel._engines.values():
        engine.dispose(close=False)
    backend = runtime(app_settings(current_app)).backend
    try:
        backend.check_ready()
    except InferenceUnavailable as exc:  # e.g. Triton not up yet: tasks retry until it is
        logger.warning("inference backend not ready yet: %s", exc)
