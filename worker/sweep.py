"""The periodic sweep: find posts stuck in a non-final state, so their task can be enqueued again.

A broker that loses a message (Redis restarted without persistence, a whole worker killed while its
message was unacknowledged on a transport that never redelivers) would otherwise lose the post. The tasks
are idempotent, so a re-enqueued post that was merely slow costs a duplicate run, never a duplicate row.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from db.schema import FINAL_STATUSES, Post, PostStatus, utcnow

SWEEP_BATCH = 1000  # posts re-enqueued per sweep at most; the rest wait for the next sweep


def claim_stuck_posts(session_factory: sessionmaker[Session], stuck_after: float,
                      now: datetime | None = None) -> list[tuple[int, PostStatus]]:
    """Posts untouched for `stuck_after` seconds in a non-final state, oldest first.

    Their `updated_at` is set to now in the same transaction, so the next sweep leaves them alone for
    another `stuck_after` seconds. The caller enqueues them after this returns (after the commit).
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stuck_after)
    with session_factory.begin() as session:
        rows = session.execute(
            select(Post.id, Post.status)
            .where(Post.status.not_in(FINAL_STATUSES), Post.updated_at < cutoff)
            .order_by(Post.updated_at, Post.id)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)  # a post locked by a running task is not stuck
        ).all()
        if rows:
            session.execute(update(Post).where(Post.id.in_([r.id for r in rows])).values(updated_at=now))
    return [(r.id, r.status) for r in rows]
