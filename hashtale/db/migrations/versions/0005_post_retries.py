"""posts.retry_at, transient_failures, enqueued_at: retries outside the broker, a sweep that knows what is queued

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("transient_failures", sa.Integer(), nullable=False, server_default="0"))
        # Existing posts: as if enqueued when they were last touched.
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_posts_retry_at", ["retry_at"])
    op.execute("UPDATE posts SET enqueued_at = updated_at")
    with op.batch_alter_table("posts") as batch:
        batch.alter_column("enqueued_at", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_index("ix_posts_retry_at")
        batch.drop_column("enqueued_at")
        batch.drop_column("transient_failures")
        batch.drop_column("retry_at")
