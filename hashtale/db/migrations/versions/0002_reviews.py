"""admins and review history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CLOSENESS = ("none", "slight", "strong")
TAG_CHANGES = ("added", "removed")
REVIEW_STATES = ("unreviewed", "reviewed", "approved", "rejected")


def _enum(values, name):
    return sa.Enum(*values, name=name, native_enum=False, length=16, create_constraint=True)


def upgrade() -> None:
    op.create_index("ix_hashtags_text_post_id", "hashtags", ["text", "post_id"])

    op.create_table(
        "admins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("username"),
    )

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("admins.id"), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("hashtag_relevant", sa.Boolean(), nullable=False),
        sa.Column("story_meaningful", sa.Boolean(), nullable=True),
        sa.Column("story_closeness", _enum(CLOSENESS, "story_closeness"), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("hashtag_model", sa.String(130), nullable=True),
        sa.Column("story_model", sa.String(130), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("post_id", "reviewer_id", "revision"),
    )
    op.create_index("ix_reviews_post_id", "reviews", ["post_id"])
    op.create_index("ix_reviews_reviewer_id", "reviews", ["reviewer_id"])
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"])

    op.create_table(
        "hashtag_verdicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hashtag_id", sa.Integer(), sa.ForeignKey("hashtags.id", ondelete="SET NULL"), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(128), nullable=False),
        sa.Column("relevant", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("review_id", "rank"),
    )
    op.create_index("ix_hashtag_verdicts_review_id", "hashtag_verdicts", ["review_id"])
    op.create_index("ix_hashtag_verdicts_hashtag_id", "hashtag_verdicts", ["hashtag_id"])

    op.create_table(
        "review_tag_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.String(128), nullable=False),
        sa.Column("change", _enum(TAG_CHANGES, "tag_change"), nullable=False),
        sa.UniqueConstraint("review_id", "text"),
    )
    op.create_index("ix_review_tag_changes_review_id", "review_tag_changes", ["review_id"])

    op.create_table(
        "review_state_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", _enum(REVIEW_STATES, "review_state"), nullable=False),
        sa.Column("admin_id", sa.Integer(), sa.ForeignKey("admins.id"), nullable=False),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_state_changes_post_id_id", "review_state_changes", ["post_id", "id"])
    op.create_index("ix_review_state_changes_state", "review_state_changes", ["state"])


def downgrade() -> None:
    op.drop_table("review_state_changes")
    op.drop_table("review_tag_changes")
    op.drop_table("hashtag_verdicts")
    op.drop_table("reviews")
    op.drop_table("admins")
    op.drop_index("ix_hashtags_text_post_id", table_name="hashtags")
