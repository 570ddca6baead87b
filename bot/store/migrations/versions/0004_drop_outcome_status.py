"""Drop ``stop_requests.outcome_status``: written on every outcome, never queried (the outcome JSON has it).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the unused column (batch mode: SQLite rebuilds the table)."""
    with op.batch_alter_table("stop_requests") as batch:
        batch.drop_column("outcome_status")


def downgrade() -> None:
    """Bring the column back (empty)."""
    with op.batch_alter_table("stop_requests") as batch:
        batch.add_column(sa.Column("outcome_status", sa.String(32)))
