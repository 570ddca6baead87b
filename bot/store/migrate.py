"""Schema migrations (Alembic), run on a connection of the app's own async engine.

On start the app upgrades the schema to the newest revision (under an advisory lock on
PostgreSQL, so several processes starting at once take turns); a PostgreSQL deploy also runs
``python -m bot migrate`` in its Procfile ``release:`` phase, before any web process starts.
A database created by the first release (tables, no revision table) is stamped at 0001 first.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x5C0FFEE  # pg_advisory_xact_lock key shared by every stopcampaign process


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine) -> str:
    """Bring the schema to the newest revision; returns it."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    return head_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = conn
    tables = inspect(conn)
    if tables.has_table("stop_requests") and not tables.has_table("alembic_version"):
        command.stamp(config, "0001")
    command.upgrade(config, "head")
