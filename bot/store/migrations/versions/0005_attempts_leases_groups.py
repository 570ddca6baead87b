"""The attempt log, the click time, outbox lease tokens, and the last known members of policy user groups.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``stop_attempts``, ``outbox.lease_token``, ``stop_requests.confirmed_at`` and ``group_members``."""
    op.create_table(
        "stop_attempts",
        sa.Column("request_id", sa.String(64), sa.ForeignKey("stop_requests.id"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("may_have_applied", sa.Boolean, nullable=False, default=False),
        sa.Column("summary", sa.Text, nullable=False, default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(32)))
    with op.batch_alter_table("stop_requests") as batch:
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("members_json", sa.Text, nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("group_members")
    with op.batch_alter_table("stop_requests") as batch:
        batch.drop_column("confirmed_at")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lease_token")
    op.drop_table("stop_attempts")
