"""A confirmed stop is an order: it goes out and is told truly, whatever fails around it.

Each test breaks one thing the app leans on (the shared limiter's Redis, the database, Slack,
the process itself) and checks that every confirmed stop still reaches the provider and that
the channel hears one true account of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.models import OutcomeStatus, RequestState
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text
from tests.e2e.processes import free_port
from tests.fakes.slack import Failure

S = OutcomeStatus
CLEVERTAP_STOP = "/1/targets/stop.json"


async def confirm(app: AppUnderTest, text: str) -> str:
    """Open a card and click Stop; return the request id."""
    ack = await app.command(text)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    answer = await app.click(STOP_ACTION, request_id)
    assert answer.status_code == 200
    return str(request_id)


@pytest.mark.parametrize(
    ("text", "provider"),
    [
        ("clevertap 1457432766", "clevertap"),
        ("sonarly 65f1a0c0e4b0a1b2c3d4e501", "sonarly"),
        ("wwt 53651994", "wwt"),
        ("altcraft 101", "altcraft"),
    ],
)
async def test_an_unreachable_redis_never_blocks_a_stop(start_app: StartApp, text: str, provider: str) -> None:
    """REDIS_URL points at a closed port: the stop goes out under this process's own limits."""
    app = await start_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    request_id = await confirm(app, f"{text} redis down")
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE and stored.outcome is not None
    assert stored.outcome.status is S.STOPPED, stored.outcome.detail
    posts = [p for p in app.slack.outcomes() if request_id in message_text(p.body)]
    assert len(posts) == 2
    health = await app.http.get(f"{app.url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert "rate_limits" in health.json()["degraded"]


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A redis-server of this test alone (on a free port), so that the test can kill it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async with asyncio.timeout(10):
        while b"Ready to accept connections" not in await process.stdout.readline():
            pass
    yield f"redis://127.0.0.1:{port}/0", process
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_redis_going_away_mid_run_never_blocks_a_stop(
    start_app: StartApp, own_redis: tuple[str, asyncio.subprocess.Process]
) -> None:
    url, redis_server = own_redis
    app = await start_app(REDIS_URL=url)
    first = await confirm(app, "clevertap 1457432766 redis up")
    await app.slack.wait_for_outcomes(2)
    assert (await app.http.get(f"{app.url}/healthz")).json()["status"] == "ok"
    redis_server.kill()
    await redis_server.wait()
    app.sandbox["clevertap"].campaigns["1457432766"].state = "running"
    second = await confirm(app, "clevertap 1457432766 redis gone")
    await app.slack.wait_for_outcomes(4)
    await app.runtime.tasks.wait_idle()
    for request_id in (first, second):
        stored = await app.runtime.store.get(request_id)
        assert stored is not None and stored.outcome is not None
        assert stored.outcome.status is S.STOPPED, stored.outcome.detail
    assert len(app.sandbox["clevertap"].calls_to(CLEVERTAP_STOP, "POST")) == 2
    health = await app.http.get(f"{app.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "degraded"


async def test_a_post_slack_rate_limits_for_longer_than_its_lease_is_made_once(start_app: StartApp) -> None:
    """Slack answers chat.postMessage with 429 and a Retry-After longer than the outbox lease,
    twice; two processes share the database: the channel still gets the outcome exactly once."""
    lease = "20"
    first = await start_app(OUTBOX_LEASE_SECONDS=lease)
    second = await start_app(OUTBOX_LEASE_SECONDS=lease)
    first.slack.fail("chat.postMessage", Failure(kind="ratelimit", retry_after=int(lease) // 2 + 1), times=2)
    request_id = await confirm(first, "clevertap 1457432766 slack rate limits")
    await first.slack.wait_for_outcomes(2, timeout=60)
    await first.runtime.wait_for_delivery_pass()
    await second.runtime.wait_for_delivery_pass()
    assert await first.runtime.store.outbox_depth() == 0
    calls = [p for p in first.slack.of("chat.postMessage") if request_id in message_text(p.body)]
    assert len(calls) == 2 + 2, [p.body["channel"] for p in calls]  # 2 refused, then one per channel; no third
    messages = [m for m in first.slack.messages() if request_id in message_text(m.body)]
    assert sorted(m.body["channel"] for m in messages) == sorted([CHANNEL, INCIDENT])
    assert all(" is stopping " not in message_text(m.body) for m in messages)
