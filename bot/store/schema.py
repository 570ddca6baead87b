"""Database tables: stop requests and their append-only audit log (SQLAlchemy Core).

This is the schema at the newest migration; change it only together with a new revision in
``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

stop_requests = Table(
    "stop_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(64), nullable=False),
    Column("campaign_id", String(128), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("requester_json", Text, nullable=False),
    Column("team_id", String(32)),
    Column("channel_id", String(32)),
    Column("response_url", Text),
    Column("response_url_at", DateTime(timezone=True)),
    Column("checking_until", DateTime(timezone=True)),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_by_json", Text),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("ended_by_json", Text),
    Column("end_reason", Text),
    Column("preview_json", Text),
    Column("outcome_json", Text),
    Column("two_person", Boolean, nullable=False, default=False),
    Index("ix_stop_requests_state_expires", "state", "expires_at"),
    Index("ix_stop_requests_created", "created_at"),
    Index("ix_stop_requests_provider_created", "provider", "account", "created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), ForeignKey("stop_requests.id"), nullable=True, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(32), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16)),
    Column("actor", String(128)),
    Column("detail_json", Text, nullable=False, default="{}"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), ForeignKey("stop_requests.id"), nullable=False),
    Column("target", String(16), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("message_ts", String(32)),
    Column("lease_token", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("request_id", "target", name="uq_outbox_request_target"),
    Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

stop_attempts = Table(
    "stop_attempts",
    metadata,
    Column("request_id", String(64), ForeignKey("stop_requests.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("may_have_applied", Boolean, nullable=False, default=False),
    Column("summary", Text, nullable=False, default=""),
    Column("at", DateTime(timezone=True), nullable=False),
)
"""Every stop call of a request: recorded as `sending` before it may leave, then what became of it."""

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(64), primary_key=True),
    Column("members_json", Text, nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=False),
)
"""The last known members of each Slack user group the policy names, and when they were read."""
