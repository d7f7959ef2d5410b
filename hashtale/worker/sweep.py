"""The beat's two bookkeeping jobs, as queries: posts that are due again after an outage, and posts whose message
the broker lost.

Lost messages (Redis restarted without persistence, a worker killed holding an unacknowledged message) would
otherwise lose the post. A post merely waiting behind a backlog must NOT be sent again: every duplicate is a wasted
run and a longer queue. The broker's queue is first in, first out, and every publish stamps the post's
`enqueued_at`, so with `queued` messages waiting, the messages of the `queued` most recently enqueued waiting posts
are the ones still there; a waiting post older than those has had its message taken. Taken but not started is a
message a worker has just reserved: the sweep looks again after RESERVED_GRACE, and a post whose run started by
then is not lost. Duplicates and other queues' messages only make `queued` larger, so the sweep errs on the side
of sending nothing; a post it misses is found by a later sweep, once the queue has drained past it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hashtale.db.schema import Post, PostStatus, utcnow

SWEEP_BATCH = 1000  # posts re-enqueued per sweep at most; the rest wait for the next sweep
WAITING = (PostStatus.RECEIVED, PostStatus.TAGGED)  # a message for the next stage should be in the queue
RUNNING = (PostStatus.TAGGING, PostStatus.WRITING)  # a worker has the post, or had it and died (or parked it)
RESERVED_GRACE = 2.0  # seconds for a worker to start a message it has reserved


def _dead_runs(cutoff: datetime):
    """Running, not parked, silent since `cutoff`: a run that died."""
    return Post.status.in_(RUNNING) & Post.retry_at.is_(None) & (Post.updated_at < cutoff)


def _old_waiting(cutoff: datetime):
    """Waiting for a message published before `cutoff`."""
    return Post.status.in_(WAITING) & Post.retry_at.is_(None) & (Post.enqueued_at < cutoff)


def lost_posts(session: Session, stuck_after: float, queued: int | None, now: datetime) -> list[int]:
    """Ids of posts whose message is gone, untouched for `stuck_after` seconds: waiting posts beyond the queue's
    window (all of them when `queued` is None: the queue could not be read), and runs that died (running, not
    parked). A read: the caller claims them."""
    cutoff = now - timedelta(seconds=stuck_after)
    dead = session.scalars(
        select(Post.id).where(_dead_runs(cutoff))
        .order_by(Post.updated_at, Post.id).limit(SWEEP_BATCH)
    ).all()
    still_queued = (
        select(Post.id).where(Post.status.in_(WAITING)).order_by(Post.enqueued_at.desc(), Post.id.desc())
        .limit(queued).scalar_subquery()
    ) if queued else None
    waiting = select(Post.id).where(_old_waiting(cutoff))
    if still_queued is not None:
        waiting = waiting.where(Post.id.not_in(still_queued))
    beyond = session.scalars(waiting.order_by(Post.enqueued_at, Post.id).limit(SWEEP_BATCH)).all()
    return list(dead) + list(beyond)


def claim_lost_posts(session_factory: sessionmaker[Session], candidates: list[int], stuck_after: float,
                     now: datetime | None = None) -> list[tuple[int, PostStatus]]:
    """The candidates that are still lost (same test, row-locked, skipping posts a task holds), stamped as
    enqueued now so that the next sweep leaves them alone; the caller enqueues them after this returns."""
    if not candidates:
        return []
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stuck_after)
    with session_factory.begin() as session:
        rows = session.execute(
            select(Post.id, Post.status)
            .where(Post.id.in_(candidates), _old_waiting(cutoff) | _dead_runs(cutoff))
            .order_by(Post.id)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            session.execute(update(Post).where(Post.id.in_([r.id for r in rows]))
                            .values(enqueued_at=now, updated_at=now))
    return [(r.id, r.status) for r in rows]


def claim_due_retries(session_factory: sessionmaker[Session], now: datetime | None = None
                      ) -> list[tuple[int, PostStatus]]:
    """Parked posts whose retry_at has come: un-parked and stamped as enqueued now, for the caller to enqueue."""
    now = now or utcnow()
    with session_factory.begin() as session:
        rows = session.execute(
            select(Post.id, Post.status).where(Post.retry_at <= now).order_by(Post.retry_at, Post.id)
            .limit(SWEEP_BATCH).with_for_update(skip_locked=True)
        ).all()
        if rows:
            session.execute(update(Post).where(Post.id.in_([r.id for r in rows]))
                            .values(retry_at=None, enqueued_at=now, updated_at=now))
    return [(r.id, r.status) for r in rows]


def wake_parked_posts(session_factory: sessionmaker[Session], now: datetime | None = None) -> int:
    """A parked post just got through: the dependency it waited for is back, so every parked post is due now
    (the beat's next enqueue_due_retries sends them) rather than at the end of its backoff, which after a long
    outage is up to RETRY_BACKOFF_MAX away. Returns how many were woken."""
    now = now or utcnow()
    with session_factory.begin() as session:
        return session.execute(update(Post).where(Post.retry_at > now).values(retry_at=now)).rowcount
