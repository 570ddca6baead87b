"""Shared test configuration and fixtures (databases)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=150, deadline=None)
settings.load_profile("default")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

DatabaseFactory = Callable[[], Awaitable[str]]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the PostgreSQL tests, not skip them")
        pytest.skip(message)


@pytest.fixture
async def postgres_database() -> AsyncIterator[DatabaseFactory]:
    """Creates fresh, empty PostgreSQL databases on demand; drops them afterwards."""
    created: list[str] = []

    async def create() -> str:
        admin = await _admin()
        name = f"stopcampaign_test_{secrets.token_hex(6)}"
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        return _with_database(POSTGRES_URL, name)

    yield create
    if created:
        admin = await _admin()
        try:
            for name in created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_database: DatabaseFactory) -> str:
    """A fresh database of each kind the app supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return await postgres_database()


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_url() -> str:
    """The test Redis (keys are namespaced per test with a random prefix by the tests)."""
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the Redis tests, not skip them")
        pytest.skip(message)
    finally:
        await client.aclose()
    return REDIS_URL
