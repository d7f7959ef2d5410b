"""stories.hashtags: the hashtag set a story is conditioned on

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stories", sa.Column("hashtags", sa.JSON(), nullable=True))
    stories = sa.table("stories", sa.column("id", sa.Integer), sa.column("seed_hashtag", sa.String),
                       sa.column("hashtags", sa.JSON))
    connection = op.get_bind()
    # Stories written before 0003 were primed with their seed hashtag alone.
    for story_id, seed in connection.execute(sa.select(stories.c.id, stories.c.seed_hashtag)).all():
        connection.execute(stories.update().where(stories.c.id == story_id).values(hashtags=[seed]))
    with op.batch_alter_table("stories") as batch:
        batch.alter_column("hashtags", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("hashtags")
