"""The database under the store: the connection, one writer at a time on SQLite, the clock, the audit log.

`Database` is the base of every part of the store (`bot.store.repository.Store` puts them
together); it knows no table but the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from bot.core.models import Actor, RequestState, utcnow
from bot.core.timebox import within
from bot.store.migrate import current_revision, head_revision, upgrade
from bot.store.schema import audit_log


class StoreError(Exception):
    """The database could not be used; the message says what to check."""


def async_database_url(url: str) -> str:
    """Map a plain database URL to its async driver (``sqlite://`` → ``sqlite+aiosqlite://``)."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


PING_SECONDS = 2.0
"""How long a health check waits for the database."""

def one_line(exc: BaseException) -> str:
    """An error as one short line: its type and the first line of its message (SQLAlchemy adds a
    background link on later lines), without a password that a driver may echo."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", first)
    return f"{type(exc).__name__}: {first}"[:240] if first else type(exc).__name__


def aware(value: datetime | None) -> datetime | None:
    """A database timestamp as an aware UTC datetime (SQLite gives naive ones)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Database:
    """An async SQLAlchemy engine with the store's conventions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite takes one writer at a time; writers queued in its busy handler wait in steps of up
        # to 100 ms and unfairly, so this process hands the write lock out itself, in order.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (one at a time per process on SQLite)."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Build a store for a database URL (not yet connected)."""
        async_url = async_database_url(url)
        try:
            engine = create_async_engine(async_url, pool_pre_ping=not async_url.startswith("sqlite"))
        except Exception as exc:  # SQLAlchemy raises several types for bad URLs
            raise StoreError(f"DATABASE_URL is not usable: {type(exc).__name__}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    async def initialize(self, migrate: bool = True) -> None:
        """Bring the schema to the newest revision, or with `migrate` off, check that it is there."""
        try:
            if migrate:
                await upgrade(self.engine)
                return
            current = await current_revision(self.engine)
        except Exception as exc:
            raise StoreError(f"DATABASE_URL: cannot open the database ({one_line(exc)})") from None
        if current != head_revision():
            raise StoreError(
                f"the database schema is at revision {current or 'none'}, this code needs {head_revision()}: "
                "run `python -m bot migrate` (the Procfile's release phase does it)"
            )

    async def _now(self, conn: AsyncConnection) -> datetime:
        """The database's clock (UTC), so that leases and heartbeats written by processes on
        different hosts compare on one clock. SQLite is a file on this host: its clock is ours."""
        if self.engine.dialect.name == "sqlite":
            return utcnow()
        value = (await conn.execute(select(func.now()))).scalar_one()
        return aware(value) or utcnow()

    async def db_now(self) -> datetime:
        """The database's current time (UTC)."""
        async with self.engine.connect() as conn:
            return await self._now(conn)

    async def ping(self, timeout: float = PING_SECONDS) -> bool:
        """True when the database answers a trivial query within `timeout` seconds (a frozen
        database must not freeze whoever asks, such as ``/healthz``)."""
        async def query() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))

        try:
            await within(timeout, query())
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Release the connection pool."""
        await self.engine.dispose()

    async def record(
        self, request_id: str | None, event_name: str, actor: Actor | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit line that changes no state (refusals, delivery failures…)."""
        async with self._writing() as conn:
            await append_audit(conn, request_id, event_name, None, None, actor, detail or {})


async def append_audit(
    conn: AsyncConnection,
    request_id: str | None,
    event_name: str,
    from_state: str | None,
    to_state: RequestState | None,
    actor: Actor | None,
    detail: dict[str, Any],
) -> None:
    """Add one line to the audit log, inside the caller's transaction."""
    await conn.execute(
        insert(audit_log).values(
            request_id=request_id,
            at=utcnow(),
            event=event_name,
            from_state=from_state,
            to_state=to_state.value if to_state else None,
            actor=actor.id if actor else None,
            detail_json=json.dumps(detail, default=str),
        )
    )


def _sqlite_pragmas(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, safe against corruption
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
