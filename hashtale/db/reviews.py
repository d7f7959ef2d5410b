"""Admin review tables (SQLAlchemy 2.0 typed ORM, same `Base` as hashtale.db.schema). Migration: 0002_reviews.

Nothing here is ever updated or deleted by the application: a reviewer who changes their mind appends a new
`Review` with the next `revision`, and every change of a post's review state is a new `ReviewStateChange` row.
The current review of a reviewer is their highest revision; the current state of a post is its newest state change
(no row: unreviewed). Both are derived in hashtale/review/history.py (`current_review`, `current_state`), never stored.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hashtale.db.schema import HASHTAG_TEXT_MAX, Base, Hashtag, Post, _enum, utcnow

USERNAME_MAX = 64  # characters
PASSWORD_HASH_MAX = 256  # werkzeug's scrypt hashes are ~160 characters
MODEL_LABEL_MAX = 130  # "name:version": MODEL_NAME_MAX + 1 + MODEL_VERSION_MAX fit (migration 0002)
SESSION_NONCE_MAX = 64  # characters; secrets.token_hex(32)


# The admin queue's tag filter: finds a tag's posts from the index alone, without reading the rows' attention maps.
Index("ix_hashtags_text_post_id", Hashtag.text, Hashtag.post_id)


class ReviewState(str, enum.Enum):
    UNREVIEWED = "unreviewed"  # never stored: the absence of any state change
    REVIEWED = "reviewed"
    APPROVED = "approved"  # its tags may be exported as training data
    REJECTED = "rejected"


class Closeness(str, enum.Enum):
    """How close the story's context is to the image's (the original study's third question)."""

    NONE = "none"
    SLIGHT = "slight"
    STRONG = "strong"


class TagChange(str, enum.Enum):
    ADDED = "added"  # the reviewer added a hashtag the model did not suggest
    REMOVED = "removed"  # the reviewer removed a suggested hashtag from the post's tags


class Admin(Base):
    """A person who may log in to the admin pages and review posts."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(PASSWORD_HASH_MAX))  # werkzeug.security, never the password
    # Copied into each session cookie at log-in and checked on every request; log-out replaces it, which revokes
    # every session of this admin (a signed cookie alone cannot be taken back). Migration: 0004.
    session_nonce: Mapped[str | None] = mapped_column(String(SESSION_NONCE_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Review(Base):
    """One reviewer's answers about one post, at one revision. Later revisions supersede, never replace."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("post_id", "reviewer_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("admins.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per (post, reviewer)
    hashtag_relevant: Mapped[bool] = mapped_column(Boolean)  # Q1: is the (top) hashtag relevant to the image?
    story_meaningful: Mapped[bool | None] = mapped_column(Boolean)  # Q2; NULL when the post has no story
    story_closeness: Mapped[Closeness | None] = mapped_column(_enum(Closeness, "story_closeness"))  # Q3; NULL: no story
    note: Mapped[str | None] = mapped_column(Text)
    # "name:version" of the models whose output was judged, so reports stay per model after a post is re-run.
    hashtag_model: Mapped[str | None] = mapped_column(String(MODEL_LABEL_MAX))
    story_model: Mapped[str | None] = mapped_column(String(MODEL_LABEL_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    post: Mapped[Post] = relationship()
    reviewer: Mapped[Admin] = relationship()
    verdicts: Mapped[list[HashtagVerdict]] = relationship(
        back_populates="review", order_by="HashtagVerdict.rank", cascade="all, delete-orphan"
    )
    tag_changes: Mapped[list[ReviewTagChange]] = relationship(
        back_populates="review", order_by="ReviewTagChange.text", cascade="all, delete-orphan"
    )

    def corrected_tags(self) -> list[str]:
        """The post's hashtags as this reviewer would have them: suggested minus removed, plus added."""
        removed = {c.text for c in self.tag_changes if c.change is TagChange.REMOVED}
        added = [c.text for c in self.tag_changes if c.change is TagChange.ADDED]
        return [v.text for v in self.verdicts if v.text not in removed] + added


class HashtagVerdict(Base):
    """Is this suggested hashtag relevant to the image? One per suggested hashtag per review."""

    __tablename__ = "hashtag_verdicts"
    __table_args__ = (UniqueConstraint("review_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), index=True)
    # SET NULL: if the worker ever re-tags a post, the verdict keeps its own copy of what was judged.
    hashtag_id: Mapped[int | None] = mapped_column(ForeignKey("hashtags.id", ondelete="SET NULL"), index=True)
    rank: Mapped[int] = mapped_column(Integer)  # copied from the hashtag: 1 = the model's best
    text: Mapped[str] = mapped_column(String(HASHTAG_TEXT_MAX))
    relevant: Mapped[bool] = mapped_column(Boolean)

    review: Mapped[Review] = relationship(back_populates="verdicts")


class ReviewTagChange(Base):
    __tablename__ = "review_tag_changes"
    __table_args__ = (UniqueConstraint("review_id", "text"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(HASHTAG_TEXT_MAX))
    change: Mapped[TagChange] = mapped_column(_enum(TagChange, "tag_change"))

    review: Mapped[Review] = relationship(back_populates="tag_changes")


class ReviewStateChange(Base):
    """A post entered `state` by `admin`'s action (with the review they submitted at that moment)."""

    __tablename__ = "review_state_changes"
    # The newest change per post is looked up for every row of the admin queue.
    __table_args__ = (Index("ix_review_state_changes_post_id_id", "post_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    state: Mapped[ReviewState] = mapped_column(_enum(ReviewState, "review_state"), index=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id"))
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    review: Mapped[Review | None] = relationship()
