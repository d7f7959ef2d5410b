"""The queue page: the review queue (hashtale/review/queue.py) filtered by the query string, one page at a time."""
from __future__ import annotations

from flask import abort, render_template, request

from hashtale.db.reviews import ReviewState
from hashtale.db.schema import PostStatus
from hashtale.review.queue import PAGE_SIZE, QueueFilters, list_posts
from hashtale.webhook.admin import bp
from hashtale.webhook.database import db
from hashtale.webhook.integers import parse_int


def page_number(args) -> int:
    """The 1-based page of the query string; raises ValueError with a message for the 400 page."""
    raw = args.get("page", "").strip()
    return parse_int(raw, minimum=1) if raw else 1


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
