"""When Slack issued a request's reply link (a click in the request's conversation brings a newer
one), and who holds a "Check again" on a done request until when.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``stop_requests.response_url_at`` (null: issued with the command, at ``created_at``) and
    ``stop_requests.checking_until`` (a Check again under way, or just done: other clicks wait)."""
    with op.batch_alter_table("stop_requests") as batch:
        batch.add_column(sa.Column("response_url_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("checking_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("stop_requests") as batch:
        batch.drop_column("checking_until")
        batch.drop_column("response_url_at")
