"""The review queue: posts newest first, filtered by status, review state, hashtag and date, one page at a time,
and the next post down it that nobody has reviewed. Pure functions over a session the caller owns."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, selectinload

from hashtale.db.reviews import ReviewState, ReviewStateChange
from hashtale.db.schema import Hashtag, Post, PostStatus
from hashtale.review.history import current_state_of, normalize_tag

PAGE_SIZE = 50  # posts per page


@dataclass(frozen=True)
class QueueFilters:
    status: PostStatus | None = None
    review: ReviewState | None = None
    tag: str | None = None
    since: date | None = None  # inclusive, UTC
    until: date | None = None  # inclusive, UTC

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "QueueFilters":
        """Query-string values -> filters; raises ValueError with a message for the 400 page."""
        def parse(key, convert):
            raw = args.get(key, "").strip()
            if not raw:
                return None
            try:
                return convert(raw)
            except ValueError as exc:
                raise ValueError(f"bad {key}: {raw!r}") from exc

        return cls(
            status=parse("status", PostStatus),
            review=parse("review", ReviewState),
            tag=parse("tag", normalize_tag),
            since=parse("since", _day),
            until=parse("until", _day),
        )


@dataclass(frozen=True)
class QueueRow:
    id: int
    created_at: datetime
    status: PostStatus
    review: ReviewState
    author: str | None
    caption: str | None
    hashtags: list[tuple[str, float]]  # (text, score), best first


def _day(raw: str) -> date:
    day = date.fromisoformat(raw)
    if day == date.max:  # the day after it, the end of an `until` range, does not exist
        raise ValueError("the last representable day")
    return day


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def list_posts(session: Session, filters: QueueFilters, page: int) -> tuple[list[QueueRow], int]:
    """One page of the queue (1-based) and the number of posts matching the filters."""
    # A correlated subquery, not a join on "newest change per post": both databases then seek the
    # (post_id, id) index once per post they need instead of grouping the whole table per row.
    state = current_state_of(Post.id)
    conditions = []
    if filters.status is not None:
        conditions.append(Post.status == filters.status)
    if filters.review is ReviewState.UNREVIEWED:
        conditions.append(~exists().where(ReviewStateChange.post_id == Post.id))
    elif filters.review is not None:
        conditions.append(state == filters.review)
    if filters.tag is not None:
        conditions.append(exists().where(Hashtag.post_id == Post.id, Hashtag.text == filters.tag))
    if filters.since is not None:
        conditions.append(Post.created_at >= _start_of(filters.since))
    if filters.until is not None:
        conditions.append(Post.created_at < _start_of(filters.until + timedelta(days=1)))

    total = session.scalar(select(func.count(Post.id)).where(*conditions))
    rows = session.execute(
        select(Post.id, Post.created_at, Post.status, Post.author, Post.caption, state.label("state"))
        .where(*conditions)
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    tags: dict[int, list[tuple[str, float]]] = {row.id: [] for row in rows}
    for post_id, text, score in session.execute(
        select(Hashtag.post_id, Hashtag.text, Hashtag.score).where(Hashtag.post_id.in_(tags)).order_by(Hashtag.rank)
    ):
        tags[post_id].append((text, score))
    return [
        QueueRow(row.id, row.created_at, row.status, row.state or ReviewState.UNREVIEWED, row.author, row.caption,
                 tags[row.id])
        for row in rows
    ], total


def post_for_review(session: Session, post_id: int) -> Post | None:
    """The post with its hashtags and story loaded, as its review page shows it."""
    return session.scalar(
        select(Post).where(Post.id == post_id).options(selectinload(Post.hashtags), selectinload(Post.story))
    )


def next_unreviewed(session: Session, post: Post) -> int | None:
    """The next post down the queue (newest first) that nobody has reviewed yet."""
    reviewed = select(ReviewStateChange.post_id)
    return session.scalar(
        select(Post.id)
        .where(Post.id.not_in(reviewed), (Post.created_at < post.created_at)
               | ((Post.created_at == post.created_at) & (Post.id < post.id)))
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(1)
    )
