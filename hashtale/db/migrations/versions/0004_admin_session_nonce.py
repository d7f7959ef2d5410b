"""admins.session_nonce: server-side revocation of admin sessions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for existing admins: no session is valid until their next log-in sets one.
    op.add_column("admins", sa.Column("session_nonce", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admins") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("session_nonce")
