"""Schema migrations (Alembic), run on a connection of the app's own async engine.

On start the app upgrades the schema to the newest revision (under an advisory lock on
PostgreSQL, so several processes starting at once take turns); a PostgreSQL deploy also runs
``python -m bot migrate`` in its Procfile ``release:`` phase, before any web process starts.
A database created by the first release (tables, no revision table) is stamped at 0001 first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0006"
"""The newest revision (a test checks it against the scripts). Knowing it without importing
Alembic keeps the start of an up-to-date process fast: Alembic loads only to migrate."""
_LOCK_KEY = 0x5C0FFEE  # pg_advisory_xact_lock key shared by every stopcampaign process


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    return HEAD


def script_head() -> str | None:
    """The newest revision according to the migration scripts themselves (for the consistency test)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> str:
    """Bring the schema to the newest revision (a quick read first: Alembic only when needed)."""
    if await current_revision(engine) == HEAD:
        return HEAD
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    return HEAD


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
    except DBAPIError:
        return None  # no revision table yet
    return str(row[0]) if row else None


def _upgrade(conn: Connection) -> None:
    from alembic import command

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = conn
    tables = inspect(conn)
    if tables.has_table("stop_requests") and not tables.has_table("alembic_version"):
        command.stamp(config, "0001")
    command.upgrade(config, "head")
