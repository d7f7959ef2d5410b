"""The queue: posts newest first, filtered by status, review state, hashtag and date, one page at a time."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import abort, render_template, request
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from db.reviews import ReviewState, ReviewStateChange
from db.schema import Hashtag, Post, PostStatus
from review.history import current_state_of, normalize_tag
from webhook.admin import bp
from webhook.database import db
from webhook.integers import parse_int

PAGE_SIZE = 50  # posts per page


@dataclass(frozen=True)
class QueueFilters:
    status: PostStatus | None = None
    review: ReviewState | None = None
    tag: str | None = None
    since: date | None = None  # inclusive, UTC
    until: date | None = None  # inclusive, UTC

    @classmethod
    def from_args(cls, args) -> "QueueFilters":
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


def page_number(args) -> int:
    """The 1-based page of the query string; raises ValueError with a message for the 400 page."""
    raw = args.get("page", "").strip()
    return parse_int(raw, minimum=1) if raw else 1


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


@bp.get("/")
def queue():
    try:
        filters = QueueFilters.from_args(request.args)
        page = page_number(request.args)
    except ValueError as exc:
        abort(400, description=str(exc))
    rows, total = list_posts(db.session, filters, page)
    pages = max(1, -(-total // PAGE_SIZE))
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/queue.html", rows=rows, total=total, page=page, pages=pages, filters=filters, args=args,
        statuses=list(PostStatus), review_states=list(ReviewState),
    )
