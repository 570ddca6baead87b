"""Two `serve` processes share CleverTap's limits through Redis: the sandbox, limited like the
real API (3/s, 3 in flight), never answers 429. Without Redis each process keeps the limits
alone, and together they overrun them (the control case, which shows the test can fail)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.base import SandboxCampaign, real_limits
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.conftest import DatabaseFactory
from tests.e2e.conftest import BOT_TOKEN, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.e2e.processes import ServeProcess, clean_environment, start_serve
from tests.fakes.slack import FakeSlack

STOPS = 18

Storm = Callable[[dict[str, str]], Awaitable[int]]


@pytest.fixture
async def storm(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer], postgres_database: DatabaseFactory
) -> Storm:
    box, box_server = sandbox

    async def run(extra_env: dict[str, str]) -> int:
        """Stop STOPS CleverTap campaigns at once through two processes; return the sandbox's 429 count."""
        simulator = box["clevertap"]
        limits = real_limits("clevertap")
        simulator.set_limits(limits.rate_per_second, limits.max_in_flight)
        ids = [str(3_000_000_000 + n) for n in range(STOPS)]
        for campaign in ids:
            simulator.campaigns[campaign] = SandboxCampaign(campaign, f"Storm {campaign}", "running")
        env = clean_environment(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=f"{fake_slack.url}/api/",
            DATABASE_URL=await postgres_database(),
            PROVIDER_DEADLINE_SECONDS="30",
            **provider_env(box, box_server.url, ("clevertap",)),
            **extra_env,
        )
        started = await asyncio.gather(start_serve(env, tmp_path), start_serve(env, tmp_path))
        processes: list[ServeProcess] = list(started)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                apps = [AppUnderTest(url=p.url, web=None, slack=fake_slack, sandbox=box, http=http) for p in processes]
                requests = []
                for n, campaign in enumerate(ids):
                    app = apps[n % 2]
                    ack = await app.command(f"clevertap {campaign} storm")
                    requests.append((app, buttons(ack.json())[STOP_ACTION]["value"]))
                answers = await asyncio.gather(*(app.click(STOP_ACTION, request_id) for app, request_id in requests))
                assert all(a.status_code == 200 for a in answers)
                await fake_slack.wait_for_outcomes(STOPS, timeout=90)
        finally:
            await asyncio.gather(*(p.stop() for p in processes))
        if simulator.rejected_429 == 0:
            stopped = [c for c in simulator.calls_to("/1/targets/stop.json") if not c.limited]
            assert {str(c.json()["id"]) for c in stopped} == set(ids)  # every campaign was stopped, once
            assert len(stopped) == STOPS
        return simulator.rejected_429

    return run


async def test_limits_shared_through_redis_hold_across_processes(storm: Storm, redis_url: str) -> None:
    assert await storm({"REDIS_URL": redis_url, "REDIS_PREFIX": f"test-{secrets.token_hex(4)}"}) == 0


async def test_without_redis_two_processes_overrun_the_limits(storm: Storm) -> None:
    assert await storm({}) > 0
