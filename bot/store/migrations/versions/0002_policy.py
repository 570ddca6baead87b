"""Two-person approval, refusals without a request, history by provider.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The approval mode of requests; audit lines may stand without a request."""
    with op.batch_alter_table("stop_requests") as batch:
        batch.add_column(sa.Column("two_person", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_stop_requests_provider_created", "stop_requests", ["provider", "account", "created_at"])
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("request_id", existing_type=sa.String(64), nullable=True)


def downgrade() -> None:
    """Undo 0002 (audit lines without a request are deleted)."""
    op.execute("DELETE FROM audit_log WHERE request_id IS NULL")
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("request_id", existing_type=sa.String(64), nullable=False)
    op.drop_index("ix_stop_requests_provider_created", "stop_requests")
    with op.batch_alter_table("stop_requests") as batch:
        batch.drop_column("two_person")
