"""Reading and appending review history. Pure functions over a session the caller owns (and commits).

Current values are derived, never stored: a reviewer's current review is their highest revision for the post,
a post's review state is its newest `ReviewStateChange` (none: unreviewed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ScalarSelect, Select, func, select
from sqlalchemy.orm import Session, selectinload

from hashtale.db.reviews import (
    Admin, Closeness, HashtagVerdict, Review, ReviewState, ReviewStateChange, ReviewTagChange, TagChange,
)
from hashtale.db.schema import HASHTAG_TEXT_MAX, Hashtag, Post, Story

# A hashtag is one word: letters, digits, underscore (HARRISON's tag_list.txt separates tags by spaces).
TAG_PATTERN = re.compile(rf"^\w{{1,{HASHTAG_TEXT_MAX}}}$")


class ReviewConflict(Exception):
    """The form was based on a review that is no longer the reviewer's latest (another tab, a concurrent save)."""


class NotYourReview(Exception):
    """A reviewer tried to revise someone else's review."""


class InvalidTag(ValueError):
    pass


@dataclass(frozen=True)
class ReviewAnswers:
    hashtag_relevant: bool  # Q1
    story_meaningful: bool | None  # Q2 (None when the post has no story)
    story_closeness: Closeness | None  # Q3
    relevant_ranks: frozenset[int]  # ranks of the suggested hashtags judged relevant
    tags: tuple[str, ...]  # the post's hashtags as the reviewer corrected them, normalised
    note: str | None
    decision: ReviewState | None  # APPROVED / REJECTED, or None: just record the review


def normalize_tag(raw: str) -> str:
    tag = raw.strip().lstrip("#").lower()
    if not TAG_PATTERN.match(tag):
        raise InvalidTag(f"not a hashtag: {raw!r} (one word of letters, digits or _)")
    return tag


def parse_tags(raw: str) -> tuple[str, ...]:
    """'#beach, sunset  #sea' -> ('beach', 'sunset', 'sea'): distinct, in the order given."""
    tags = [normalize_tag(part) for part in re.split(r"[\s,]+", raw) if part.strip().lstrip("#")]
    return tuple(dict.fromkeys(tags))


def newest_state_changes() -> Select:
    """Rows (post_id, state, review_id) of the newest state change of every post that has one."""
    newest = select(func.max(ReviewStateChange.id).label("id")).group_by(ReviewStateChange.post_id).subquery()
    return select(ReviewStateChange.post_id, ReviewStateChange.state, ReviewStateChange.review_id).join(
        newest, ReviewStateChange.id == newest.c.id
    )


def current_state_of(post_id) -> ScalarSelect:
    """The newest state of the post `post_id` (a column or value), NULL if none: one index seek per post."""
    return (
        select(ReviewStateChange.state)
        .where(ReviewStateChange.post_id == post_id)
        .order_by(ReviewStateChange.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def current_state(session: Session, post_id: int) -> ReviewState:
    return session.scalar(select(current_state_of(post_id))) or ReviewState.UNREVIEWED


def latest_reviews() -> Select:
    """Every reviewer's current review of every post they reviewed (Review entities)."""
    newest = (
        select(Review.post_id, Review.reviewer_id, func.max(Review.revision).label("revision"))
        .group_by(Review.post_id, Review.reviewer_id)
        .subquery()
    )
    return select(Review).join(
        newest,
        (Review.post_id == newest.c.post_id)
        & (Review.reviewer_id == newest.c.reviewer_id)
        & (Review.revision == newest.c.revision),
    )


def current_review(session: Session, post_id: int, reviewer_id: int) -> Review | None:
    """The reviewer's current review of the post: their highest revision (None: they never reviewed it)."""
    return session.scalars(
        select(Review)
        .where(Review.post_id == post_id, Review.reviewer_id == reviewer_id)
        .order_by(Review.revision.desc())
        .limit(1)
    ).first()


def reviews_of_post(session: Session, post_id: int) -> list[Review]:
    """All revisions by all reviewers, oldest first (the post page shows the history)."""
    return list(
        session.scalars(
            select(Review)
            .where(Review.post_id == post_id)
            .options(selectinload(Review.verdicts), selectinload(Review.tag_changes), selectinload(Review.reviewer))
            .order_by(Review.id)
        )
    )


def _model_label(output: Hashtag | Story) -> str:
    return f"{output.model_name}:{output.model_version}"


def submit_review(
    session: Session, post: Post, reviewer: Admin, answers: ReviewAnswers, base_review_id: int | None
) -> Review:
    """Append `reviewer`'s next revision for `post` (and a state change if it changes the state).

    `base_review_id` is the review the form was filled from: it must be the reviewer's own current review
    (None if they had none), so a reviewer can neither overwrite someone else's review nor a newer one of
    their own. Raises NotYourReview, ReviewConflict. The caller commits; a concurrent save of the same
    revision fails on the (post, reviewer, revision) unique constraint at commit.
    """
    if base_review_id is not None:
        base = session.get(Review, base_review_id)
        if base is None or base.post_id != post.id:
            raise ReviewConflict(f"review {base_review_id} is not a review of post {post.id}")
        if base.reviewer_id != reviewer.id:
            raise NotYourReview(f"review {base_review_id} belongs to another reviewer")
    current = current_review(session, post.id, reviewer.id)
    if (current.id if current else None) != base_review_id:
        raise ReviewConflict("this review was changed since the form was opened; reload the post")

    suggested = [h.text for h in post.hashtags]
    review = Review(
        post_id=post.id,
        reviewer_id=reviewer.id,
        revision=current.revision + 1 if current else 1,
        hashtag_relevant=answers.hashtag_relevant,
        story_meaningful=answers.story_meaningful if post.story else None,
        story_closeness=answers.story_closeness if post.story else None,
        note=answers.note or None,
        hashtag_model=_model_label(post.hashtags[0]) if post.hashtags else None,
        story_model=_model_label(post.story) if post.story else None,
        verdicts=[
            HashtagVerdict(hashtag_id=h.id, rank=h.rank, text=h.text, relevant=h.rank in answers.relevant_ranks)
            for h in post.hashtags
        ],
        tag_changes=[ReviewTagChange(text=t, change=TagChange.REMOVED) for t in suggested if t not in answers.tags]
        + [ReviewTagChange(text=t, change=TagChange.ADDED) for t in answers.tags if t not in suggested],
    )
    session.add(review)
    state = current_state(session, post.id)
    # An explicit decision is always recorded (who approved, with which tags); a plain review only marks new posts.
    new_state = answers.decision or (ReviewState.REVIEWED if state is ReviewState.UNREVIEWED else None)
    if new_state is not None:
        session.add(ReviewStateChange(post_id=post.id, state=new_state, admin_id=reviewer.id, review=review))
    session.flush()
    return review
