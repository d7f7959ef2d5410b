"""Celery tasks. Each takes a post id, re-reads the row, calls a pure function of hashtale/worker/pipeline.py outside
any transaction, and writes the results idempotently (delete-then-insert under a row lock), so a task that
runs twice leaves exactly one set of rows. The next task is enqueued only after the commit.

suggest_hashtags(post_id): received/tagging → tagging → tagged, then enqueues write_story(post_id)
write_story(post_id):      tagged/writing  → writing → done
enqueue_due_retries():     re-enqueues parked posts whose retry_at has come (run by beat, every few seconds); the
                           first parked post that gets through makes every parked post due at once
sweep_stuck_posts():       re-enqueues posts whose message the broker lost (run by beat, hashtale/worker/sweep.py)
collect_media_garbage():   removes photo files no post references (run by beat, hashtale/webhook/media_gc.py)

An outage of a dependency (Triton, the local models, the database) is not the post's fault: the run is parked,
not failed. It gives its attempt back and sets the post's `retry_at` (exponential backoff with jitter, capped),
and the message is acknowledged. No delayed (ETA) message waits in the broker or in a worker, so a broker restart
loses no retry and strands no worker (kombu's restore of unacknowledged ETA messages crashed workers on a Redis
restart). Only a fault of the post itself fails it: it then ends its task in Celery's FAILURE state with the
reason (PostFailed, declared in `throws`, so it is logged without a traceback and never retried): Flower and
`celery events` see failed posts. Every run is counted by outcome (hashtale/monitoring/: done, parked, failed, skipped).

A worker runs up to BATCH_SIZE posts of a stage as one batch job (hashtale/worker/batching.py): their starts are one
transaction, their model calls one call and their finishes one transaction (a transaction's round trips and commit
cost the worker CPU whatever it writes). Each task still runs, succeeds, fails, parks and is acknowledged as its own
post: a finish the database refuses is retried post by post, so only the post at fault fails.
"""
from __future__ import annotations

import functools
import gc
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from celery import shared_task
from celery.signals import worker_process_init
from celery.utils.log import get_task_logger
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hashtale.db.schema import FINAL_STATUSES, Hashtag, Post, PostStatus, Story, as_utc, utcnow
from hashtale.db.session import make_engine, make_session_factory
from hashtale.inference import InferenceBackend, InferenceUnavailable, StoryRequest, make_backend
from hashtale.monitoring.metrics import MODEL_BATCH, MODEL_LATENCY, POST_COMPLETION, TASK_LATENCY, TASK_RUNS
from hashtale.settings import Settings
from hashtale.worker import batching, pipeline
from hashtale.worker.broker import queue_depth
from hashtale.worker.sweep import RESERVED_GRACE, claim_due_retries, claim_lost_posts, lost_posts, wake_parked_posts

logger = get_task_logger(__name__)

TRANSIENT_ERRORS = (InferenceUnavailable, OperationalError)  # park the post and retry later; others fail it
ERROR_MAX_CHARS = 2000  # of the reason stored on a failed post
STAGES_PER_POST = 2  # tagging, writing
# Runs per post that may start and never end (a worker killed mid-run, a redelivered duplicate) before the post
# is given up: one that kills every worker that takes it (say, out of memory) must not loop forever.
REDELIVERY_ALLOWANCE = 6
MAX_RUNS = STAGES_PER_POST + REDELIVERY_ALLOWANCE


class PostFailed(Exception):
    """The post failed for good; the message is the reason stored on it."""


@dataclass(frozen=True)
class Runtime:
    """What a worker process builds once per settings: database sessions and the inference backend."""

    settings: Settings
    session_factory: sessionmaker[Session]
    backend: InferenceBackend


@functools.lru_cache(maxsize=None)
def runtime(settings: Settings) -> Runtime:
    # One connection for each post of a batch job: its start and finish are one transaction, but its posts park or
    # fail in transactions of their own, all at once in an outage. No overflow: a connection opened and closed per
    # post would cost a server process each time.
    engine = make_engine(settings.database_url, pool_size=max(1, settings.batch_size))
    return Runtime(settings, make_session_factory(engine), make_backend(settings))


def app_settings(app) -> Settings:
    return app.conf.hashtale_settings


@dataclass(frozen=True)
class Stage:
    starts_from: frozenset[PostStatus]  # the second status is a redelivery of a run that died
    running: PostStatus
    finished: PostStatus
    output: type[Hashtag | Story]  # the rows the stage writes, replaced as a whole on every run


TAGGING = Stage(frozenset({PostStatus.RECEIVED, PostStatus.TAGGING}), PostStatus.TAGGING, PostStatus.TAGGED, Hashtag)
WRITING = Stage(frozenset({PostStatus.TAGGED, PostStatus.WRITING}), PostStatus.WRITING, PostStatus.DONE, Story)
# What a stage's run reads when it starts: the locked posts in, each one's input out (in one query for all of them).
Read = Callable[[Session, list[Post]], list[Any]]


def _locked(session: Session, post_ids: list[int]) -> dict[int, Post]:
    """The posts (those that exist), locked in id order: two transactions that lock overlapping posts (a redelivered
    message in another worker's batch) wait for each other instead of deadlocking."""
    query = select(Post).where(Post.id.in_(set(post_ids))).order_by(Post.id).with_for_update()
    return {post.id: post for post in session.scalars(query)}


def each_alone_on_error(batched: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]:
    """`batched(items)`, the posts of a batch in one transaction; if the database refuses it (not an outage), every
    post again in a transaction of its own, so only the post at fault gets the error (as its outcome)."""
    try:
        return batched(items)
    except TRANSIENT_ERRORS:
        raise  # the database is away: every post's own run parks
    except Exception:
        if len(items) == 1:
            raise
    outcomes: list[Any] = []
    for item in items:
        try:
            outcomes += batched([item])
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _per_batch(step: Callable[..., list[Any]], *args: Any) -> batching.BatchCall:
    """`step(*args, items)` as a batch job's shared call (requests that bind the same step and arguments share one
    call), retried post by post where the database refuses it."""
    return functools.partial(each_alone_on_error, functools.partial(step, *args))


def start(rt: Runtime, stage: Stage, read: Read, post_ids: list[int]) -> list[Any]:
    """Move each post into the stage's running state and read the stage's input, in one short transaction for the
    posts of a batch job (hashtale/worker/batching.py). Per post: (True, its input); (False, None) when there is
    nothing to do: the post is gone, already past this stage (a duplicate message) or failed; PostFailed when it
    is given up (committed as failed first)."""
    outcomes: list[Any] = [(False, None)] * len(post_ids)
    with rt.session_factory.begin() as session:
        posts = _locked(session, post_ids)
        proceeding: list[tuple[int, Post]] = []
        for i, post_id in enumerate(post_ids):
            post = posts.get(post_id)
            if post is None or post.status not in stage.starts_from:
                logger.info("post %s: %s, nothing to do for %s", post_id,
                            "missing" if post is None else post.status.value, stage.running.value)
            elif post.attempts < MAX_RUNS:
                post.move_to(stage.running)
                post.attempts += 1
                proceeding.append((i, post))
            else:
                post.move_to(PostStatus.FAILED)
                post.error = f"gave up after {post.attempts} runs (did the worker keep dying on this post?)"
                outcomes[i] = PostFailed(post.error)
        inputs = read(session, [post for _i, post in proceeding]) if proceeding else []
        for (i, _post), given in zip(proceeding, inputs):
            outcomes[i] = (True, given)
    return outcomes


def stage_timing(enqueued_at: datetime, started_at: datetime, finished_at: datetime,
                 share: batching.Share) -> dict[str, float]:
    """One stage's entry in Post.timings, in milliseconds (and posts): from its message's publish to the run's start
    (the broker and the worker, the batch wait included), the batch wait alone, the run (the model call of the whole
    batch included), and the posts of that model call."""
    def ms(seconds: float) -> float:
        return round(1000 * max(0.0, seconds), 1)  # clocks of different processes: never negative

    return {"queued_ms": ms((started_at - as_utc(enqueued_at)).total_seconds()),
            "batch_wait_ms": ms(share.waited),
            "run_ms": ms((finished_at - started_at).total_seconds()),
            "batch_size": share.posts}


@dataclass(frozen=True)
class Finished:
    """One post's finish: whether this run moved it on, and if so, whether it had been parked and when it came."""

    moved: bool
    recovered: bool = False
    received: datetime | None = None


@dataclass(frozen=True)
class StageOutput:
    """A run's results for one post, to write when the stage finishes."""

    post_id: int
    rows: list[Hashtag] | list[Story]
    started_at: datetime
    share: batching.Share


def finish(rt: Runtime, stage: Stage, outputs: list[StageOutput]) -> list[Finished]:
    """In one short transaction for the posts of a batch job: replace each post's rows of the stage, record the
    stage's timing and move the post on, unless another run finished (or failed) it first."""
    finished: list[Finished] = []
    with rt.session_factory.begin() as session:
        posts = _locked(session, [output.post_id for output in outputs])
        moving = []
        for output in outputs:
            post = posts.get(output.post_id)
            if post is None or post.status != stage.running:  # a duplicate's second output too
                finished.append(Finished(False))
                continue
            moving.append(output)
            post.timings = {**(post.timings or {}), stage.running.value: stage_timing(
                post.enqueued_at, output.started_at, utcnow(), output.share)}
            post.move_to(stage.finished)
            post.error = None
            finished.append(Finished(True, post.transient_failures > 0, post.created_at))
            post.transient_failures = 0
            post.enqueued_at = utcnow()  # the next stage's message is published right after this commit
        if moving:
            moved_ids = [output.post_id for output in moving]
            session.execute(delete(stage.output).where(stage.output.post_id.in_(moved_ids)))
            session.add_all([row for output in moving for row in output.rows])
    return finished


def after_finish(rt: Runtime, post_id: int, stage: Stage, finished: Finished) -> None:
    """What follows a post's committed finish: a post that had been parked wakes the others (what they waited for
    is back); a done post's time from receipt to done is observed."""
    if finished.recovered:
        woken = wake_parked_posts(rt.session_factory)
        if woken:
            logger.info("post %s got through after waiting: %d parked posts are due now", post_id, woken)
    if stage.finished is PostStatus.DONE:
        POST_COMPLETION.observe((utcnow() - as_utc(finished.received)).total_seconds())


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


def park(rt: Runtime, post_id: int, stage: Stage, reason: str) -> None:
    """A dependency is unavailable: this run gives its attempt back and the post waits until its retry_at."""
    with rt.session_factory.begin() as session:
        post = session.get(Post, post_id, with_for_update=True)
        if post is None or post.status != stage.running:
            return
        delay = backoff(post.transient_failures, rt.settings)
        post.transient_failures += 1
        post.attempts -= 1
        post.retry_at = utcnow() + timedelta(seconds=delay)
        post.error = f"waiting {delay:.0f} s for a dependency: {reason}"[:ERROR_MAX_CHARS]
    logger.info("post %s parked for %.1f s: %s", post_id, delay, reason)


def run_stage(task, post_id: int, stage: Stage, read: Read, compute: Callable[[Runtime, Any], Any]) -> bool:
    """The shape shared by both tasks; returns True when this run moved the post to the stage's end.
    Raises PostFailed when the post failed for good (after recording why on the post).

    Its three steps are each shared with the other posts of its batch job (hashtale/worker/batching.py): the start
    and the finish are one transaction for all of them, the model call one call."""
    rt = runtime(app_settings(task.app))
    name = task.name.rsplit(".", 1)[-1]
    began, outcome = time.perf_counter(), "skipped"
    try:
        try:
            started_at = utcnow()
            proceed, inputs = batching.submit(_per_batch(start, rt, stage, read), post_id)
            if not proceed:
                return False
            rows = compute(rt, inputs)  # outside any transaction: inference takes a while
            finished = batching.submit(_per_batch(finish, rt, stage), StageOutput(post_id, rows, started_at,
                                                                                  batching.share()))
            if not finished.moved:  # another run finished (or failed) the post first
                return False
            after_finish(rt, post_id, stage, finished)
            outcome = "done"
            return True
        except PostFailed:
            outcome = "failed"
            raise
        except TRANSIENT_ERRORS as exc:
            outcome = "parked"
            try:
                park(rt, post_id, stage, f"{type(exc).__name__}: {exc}")
            except OperationalError as db_exc:  # the database itself is away: the sweep finds the post later
                logger.warning("post %s: could not park (%s); the sweep will re-enqueue it", post_id, db_exc)
            return False
        except Exception as exc:  # permanent: a bad image, a model error; retrying would fail the same way
            reason = f"{type(exc).__name__}: {exc}"
        outcome = "failed"
        fail(rt, post_id, reason)
        raise PostFailed(reason[:ERROR_MAX_CHARS])
    finally:
        TASK_RUNS.labels(name, outcome).inc()
        TASK_LATENCY.labels(name).observe(time.perf_counter() - began)


@contextmanager
def model_call(model: str, settings: Settings, batch: int = 1):
    """Time one call of `model` on the configured backend (hashtale/monitoring/)."""
    began = time.perf_counter()
    yield
    MODEL_LATENCY.labels(model, settings.inference_backend).observe(time.perf_counter() - began)
    MODEL_BATCH.labels(model, settings.inference_backend).observe(batch)


def tag_images(rt: Runtime, images: list[bytes]) -> list:
    """The batched hashtagger call of hashtale/worker/batching.py: images in, one outcome per image out."""
    with model_call("hashtagger", rt.settings, len(images)):
        return rt.backend.suggest_hashtags_batch(images, rt.settings.hashtags_per_post)


def write_stories(rt: Runtime, requests: list[StoryRequest]) -> list:
    """The batched storyteller call of hashtale/worker/batching.py."""
    with model_call("storyteller", rt.settings, len(requests)):
        return rt.backend.write_stories(requests)


def _image_paths(session: Session, posts: list[Post]) -> list[str]:
    return [post.image_path for post in posts]


def _hashtag_lists(session: Session, posts: list[Post]) -> list[list[str]]:
    """Each post's hashtags in rank order."""
    texts: dict[int, list[str]] = {post.id: [] for post in posts}
    query = select(Hashtag.post_id, Hashtag.text).where(Hashtag.post_id.in_(texts)).order_by(Hashtag.post_id,
                                                                                             Hashtag.rank)
    for post_id, text in session.execute(query):
        texts[post_id].append(text)
    return [texts[post.id] for post in posts]


@shared_task(bind=True, name="worker.tasks.suggest_hashtags", throws=(PostFailed,), Strategy=batching.STRATEGY)
def suggest_hashtags(self, post_id: int) -> None:
    def compute(rt: Runtime, image_path: str) -> list[Hashtag]:
        image = pipeline.read_image(rt.settings, image_path)
        return pipeline.hashtag_rows(post_id, batching.submit(functools.partial(tag_images, rt), image))

    if run_stage(self, post_id, TAGGING, _image_paths, compute):
        write_story.delay(post_id)


@shared_task(bind=True, name="worker.tasks.write_story", throws=(PostFailed,), Strategy=batching.STRATEGY)
def write_story(self, post_id: int) -> None:
    def compute(rt: Runtime, hashtags: list[str]) -> list[Story]:
        request = pipeline.story_request(post_id, hashtags, rt.settings)
        return [pipeline.story_row(post_id, request, batching.submit(functools.partial(write_stories, rt), request))]

    run_stage(self, post_id, WRITING, _hashtag_lists, compute)


NEXT_TASK = {
    PostStatus.RECEIVED: suggest_hashtags,
    PostStatus.TAGGING: suggest_hashtags,
    PostStatus.TAGGED: write_story,
    PostStatus.WRITING: write_story,
}


def _enqueue(claimed: list[tuple[int, PostStatus]]) -> None:
    for post_id, status in claimed:
        NEXT_TASK[status].delay(post_id)


@shared_task(bind=True, name="worker.tasks.enqueue_due_retries")
def enqueue_due_retries(self) -> int:
    """Re-enqueue the next task of every parked post whose retry_at has come; returns how many."""
    due = claim_due_retries(runtime(app_settings(self.app)).session_factory)
    _enqueue(due)
    return len(due)


@shared_task(bind=True, name="worker.tasks.sweep_stuck_posts")
def sweep_stuck_posts(self) -> int:
    """Re-enqueue the next task of every post whose message is gone (hashtale/worker/sweep.py); returns how many."""
    settings = app_settings(self.app)
    sessions = runtime(settings).session_factory
    try:
        queued = queue_depth(settings.broker_url, settings.task_queue)
    except Exception as exc:  # the broker is away: every old waiting post counts as lost
        logger.warning("sweep: queue depth unknown (%s)", exc)
        queued = None
    with sessions() as session:
        candidates = lost_posts(session, settings.stuck_after, queued, utcnow())
    if candidates:
        time.sleep(RESERVED_GRACE)  # a message a worker has just reserved starts meanwhile
    lost = claim_lost_posts(sessions, candidates, settings.stuck_after)
    _enqueue(lost)
    if lost:
        logger.warning("sweep re-enqueued %d posts whose message was lost (%s queued): %s", len(lost), queued,
                       [post_id for post_id, _ in lost])
    return len(lost)


@shared_task(bind=True, name="worker.tasks.collect_media_garbage")
def collect_media_garbage(self) -> int:
    """Remove photo files no post references (a commit that failed with the database gone mid-request leaves
    one; hashtale/webhook/media_gc.py); returns how many files were removed."""
    from hashtale.webhook.media_gc import collect
    from hashtale.webhook.storage import MediaStore

    settings = app_settings(self.app)
    result = collect(runtime(settings).session_factory, MediaStore(settings.media_dir))
    if result.removed:
        logger.warning("removed %d unreferenced media files: %s", len(result.removed), result.removed)
    return len(result.removed)


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    """In each new worker process: load the models before the first task arrives."""
    from celery import current_app
    from kombu.transport.sqlalchemy import Channel

    # A process forked after the parent opened the SQLite broker must not reuse the parent's connections
    # (SQLAlchemy's advice for multiprocessing); kombu caches its engines on the class.
    for engine, _session_factory in Channel._engines.values():
        engine.dispose(close=False)
    settings = app_settings(current_app)
    backend = runtime(settings).backend
    try:
        backend.check_ready()
        backend.warm_up(settings.batch_size)
    except InferenceUnavailable as exc:  # e.g. Triton not up yet: tasks retry until it is
        logger.warning("inference backend not ready yet: %s", exc)
    # What the process holds from here on (the models, the libraries) lives as long as it does: out of the garbage
    # collector's reach, a full collection walks only what the tasks create instead of pausing every task of the
    # process to walk the loaded models too.
    gc.freeze()
