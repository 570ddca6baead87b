"""The store: one winner per transition, expiry, outcomes and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from bot.core.models import Actor, Outcome, OutcomeStatus, RequestState, StopRequest, utcnow
from bot.store.migrate import alembic_config, head_revision, script_head
from bot.store.repository import Store, StoreError, async_database_url

ALICE = Actor(id="U0ALICE", name="alice")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on SQLite and on PostgreSQL (every test here runs on both)."""
    s = Store.from_url(database_url)
    await s.initialize()
    yield s
    await s.close()


async def new_request(store: Store, request_id: str = "r1", ttl: timedelta = timedelta(minutes=10)) -> StopRequest:
    now = utcnow()
    request = StopRequest(
        id=request_id,
        provider="clevertap",
        account="default",
        campaign_id="1",
        requester=ALICE,
        created_at=now,
        expires_at=now + ttl,
    )
    await store.create(request)
    return request


async def test_exactly_one_concurrent_claim_wins(store: Store) -> None:
    await new_request(store)
    results = await asyncio.gather(*(store.claim_for_execution("r1", ALICE) for _ in range(25)))
    assert results.count(True) == 1
    stored = await store.get("r1")
    assert stored is not None and stored.state is RequestState.EXECUTING and stored.confirmed_by == ALICE


async def test_expired_requests_cannot_be_claimed(store: Store) -> None:
    await new_request(store, ttl=timedelta(seconds=-1))
    assert not await store.claim_for_execution("r1", ALICE)
    assert [r.id for r in await store.due_for_expiry()] == ["r1"]
    assert await store.expire("r1")
    assert not await store.expire("r1")


async def test_pending_unexpired_requests_do_not_expire(store: Store) -> None:
    await new_request(store)
    assert not await store.expire("r1")
    assert await store.due_for_expiry() == []


async def test_cancel_then_nothing_else(store: Store) -> None:
    await new_request(store)
    assert await store.cancel("r1", ALICE)
    assert not await store.claim_for_execution("r1", ALICE)
    assert not await store.cancel("r1", ALICE)


async def test_outcome_and_audit_trail(store: Store) -> None:
    await new_request(store)
    await store.claim_for_execution("r1", ALICE)
    outcome = Outcome(status=OutcomeStatus.STOPPED, provider="clevertap", account="default", campaign_id="1")
    assert await store.finish("r1", outcome)
    assert not await store.finish("r1", outcome)
    stored = await store.get("r1")
    assert stored is not None and stored.outcome is not None and stored.outcome.status is OutcomeStatus.STOPPED
    trail = await store.audit("r1")
    assert [(e.event, e.from_state, e.to_state) for e in trail] == [
        ("created", None, "pending"),
        ("confirmed", "pending", "executing"),
        ("outcome", "executing", "done"),
    ]
    assert trail[1].actor == "U0ALICE"


async def test_unknown_request(store: Store) -> None:
    assert await store.get("nope") is None
    assert not await store.claim_for_execution("nope", ALICE)


def test_database_urls_map_to_async_drivers() -> None:
    assert async_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_migrations_are_idempotent_and_checked(database_url: str) -> None:
    store = Store.from_url(database_url)
    try:
        with pytest.raises(StoreError, match="run `python -m bot migrate`"):
            await store.initialize(migrate=False)
        await store.initialize()
        await store.initialize()
        await store.initialize(migrate=False)  # at head now: no error
    finally:
        await store.close()


async def test_a_first_release_database_is_upgraded(tmp_path: Path) -> None:
    """A database made by the first release's create_all (no revision table) is stamped and upgraded."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store.from_url(url)
    async with old.engine.begin() as conn:
        await conn.run_sync(lambda sync: command_upgrade_to(sync, "0001"))
        await conn.execute(text("DROP TABLE alembic_version"))
    await old.close()
    store = Store.from_url(url)
    await store.initialize()
    await new_request(store)
    await store.record(None, "refused", ALICE, {"rule": "channel"})  # 0002: audit lines without a request
    assert await store.get("r1") is not None
    await store.close()


def command_upgrade_to(conn: Any, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def test_the_known_head_matches_the_migration_scripts() -> None:
    assert script_head() == head_revision()


async def test_a_preview_stored_before_the_deferred_insert_committed_waits_for_it(store: Store) -> None:
    """The preview can come back before this process's deferred insert of its request has been
    written (a busy database): it is kept, after the row it belongs to, never lost to a
    foreign-key error."""
    from bot.core.models import CampaignInfo

    now = utcnow()
    request = StopRequest(
        id="deferred", provider="clevertap", account="default", campaign_id="1", requester=ALICE,
        created_at=now, expires_at=now + timedelta(minutes=10),
    )
    await store.create(request, defer=True)  # the insert is only scheduled
    await store.set_preview(request.id, CampaignInfo(name="Diwali push", state="running"))
    stored = await store.get(request.id)
    assert stored is not None and stored.preview is not None and stored.preview.name == "Diwali push"
    assert [e.event for e in await store.audit(request.id)] == ["created", "preview"]


async def test_a_live_record_left_started_after_its_outcome_is_made_due_again(store: Store) -> None:
    """The outcome can be stored while the record's first message is being posted (its flip of
    "started" rows sees none yet); the next outbox pass makes the record due for its update."""
    from sqlalchemy import update

    from bot.store.schema import stop_requests

    request = await new_request(store, "record")
    assert await store.claim_for_execution(request.id, ALICE, deliveries=[("channel", "C0")])
    [post] = await store.due_deliveries(request.id)
    lease = await store.claim_delivery(post.id, 30)
    assert await store.delivered(post, "1700.1", lease, started=True)
    assert await store.due_deliveries() == []  # started: waiting for the outcome
    async with store.engine.begin() as conn:  # the outcome landed without seeing the started row
        await conn.execute(update(stop_requests).where(stop_requests.c.id == request.id).values(state="done"))
    [due] = await store.due_deliveries()
    assert due.id == post.id and due.message_ts == "1700.1"
