"""The database schema (SQLAlchemy 2.0 typed ORM). Alembic migrations in hashtale/db/migrations mirror it."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Enum, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Column widths, in characters. Migrations keep their own literals: they record the schema as it was.
EXTERNAL_ID_MAX = 128  # Instagram media ids are ~20 digits
SHA256_HEX = 64
IMAGE_PATH_MAX = 512  # relative to settings.media_dir: "ab/cd/<sha256>.webp" is 75
IMAGE_FORMAT_MAX = 8  # Pillow's format name, a key of hashtale.models.image.FORMATS
AUTHOR_MAX = 256
HASHTAG_TEXT_MAX = 128  # also the longest hashtag a reviewer may type (hashtale/review/history.py)
MODEL_NAME_MAX = 64
MODEL_VERSION_MAX = 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the database, zone-aware: SQLite hands back naive datetimes, and every timestamp we
    write is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class PostStatus(str, enum.Enum):
    """received → tagging → tagged → writing → done; any non-final state may go to failed."""

    RECEIVED = "received"
    TAGGING = "tagging"
    TAGGED = "tagged"
    WRITING = "writing"
    DONE = "done"
    FAILED = "failed"


FINAL_STATUSES = frozenset({PostStatus.DONE, PostStatus.FAILED})

# Allowed transitions of the state machine. TAGGING→TAGGING and WRITING→WRITING are a task that
# was redelivered after its worker died mid-run.
TRANSITIONS: dict[PostStatus, frozenset[PostStatus]] = {
    PostStatus.RECEIVED: frozenset({PostStatus.TAGGING, PostStatus.FAILED}),
    PostStatus.TAGGING: frozenset({PostStatus.TAGGING, PostStatus.TAGGED, PostStatus.FAILED}),
    PostStatus.TAGGED: frozenset({PostStatus.WRITING, PostStatus.FAILED}),
    PostStatus.WRITING: frozenset({PostStatus.WRITING, PostStatus.DONE, PostStatus.FAILED}),
    PostStatus.DONE: frozenset(),
    PostStatus.FAILED: frozenset({PostStatus.RECEIVED}),  # an admin may requeue a failed post
}


class InvalidTransition(ValueError):
    pass


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (VARCHAR + CHECK), portable across PostgreSQL and SQLite.
    return Enum(cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16)


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_MAX), unique=True)
    image_sha256: Mapped[str] = mapped_column(String(SHA256_HEX), index=True)
    image_path: Mapped[str] = mapped_column(String(IMAGE_PATH_MAX))  # relative to settings.media_dir
    image_format: Mapped[str] = mapped_column(String(IMAGE_FORMAT_MAX))  # "JPEG", "PNG", "WEBP"
    width: Mapped[int] = mapped_column(Integer)  # px, after EXIF orientation
    height: Mapped[int] = mapped_column(Integer)
    caption: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(AUTHOR_MAX))
    status: Mapped[PostStatus] = mapped_column(_enum(PostStatus, "post_status"), default=PostStatus.RECEIVED, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # task runs that started and did not end parked
    # A post parked by an outage of a dependency (hashtale/worker/tasks.py): when it is due again, and how many
    # transient failures in a row brought it there (the backoff's exponent).
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    transient_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When its latest message was published: the broker's queue is FIFO, so this tells the sweep which posts'
    # messages are still queued (hashtale/worker/sweep.py).
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Where each finished stage's time went: {"tagging"|"writing": {"queued_ms", "batch_wait_ms", "run_ms",
    # "batch_size"}} (hashtale/worker/tasks.py's stage_timing); None until a stage finished.
    timings: Mapped[dict[str, dict[str, float]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True)

    hashtags: Mapped[list[Hashtag]] = relationship(
        back_populates="post", order_by="Hashtag.rank", cascade="all, delete-orphan"
    )
    story: Mapped[Story | None] = relationship(back_populates="post", cascade="all, delete-orphan")

    def move_to(self, status: PostStatus) -> None:
        if status not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"post {self.id}: {self.status.value} → {status.value} is not allowed")
        self.status = status


class Hashtag(Base):
    __tablename__ = "hashtags"
    __table_args__ = (UniqueConstraint("post_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)  # 1 = best
    text: Mapped[str] = mapped_column(String(HASHTAG_TEXT_MAX))
    score: Mapped[float] = mapped_column(Float)  # model probability of this tag, 0..1
    attention: Mapped[list[float]] = mapped_column(JSON)  # row-major grid of weights summing to 1
    attention_shape: Mapped[list[int]] = mapped_column(JSON)  # [rows, cols], e.g. [7, 7]
    model_name: Mapped[str] = mapped_column(String(MODEL_NAME_MAX))
    model_version: Mapped[str] = mapped_column(String(MODEL_VERSION_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    post: Mapped[Post] = relationship(back_populates="hashtags")


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), unique=True)
    seed_hashtag: Mapped[str] = mapped_column(String(HASHTAG_TEXT_MAX))  # the top hashtag, hashtags[0]
    hashtags: Mapped[list[str]] = mapped_column(JSON)  # the post's hashtags the story is conditioned on, best first
    text: Mapped[str] = mapped_column(Text)
    length: Mapped[int] = mapped_column(Integer)  # requested characters
    temperature: Mapped[float] = mapped_column(Float)
    top_k: Mapped[int] = mapped_column(Integer)
    random_seed: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(MODEL_NAME_MAX))
    model_version: Mapped[str] = mapped_column(String(MODEL_VERSION_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    post: Mapped[Post] = relationship(back_populates="story")
