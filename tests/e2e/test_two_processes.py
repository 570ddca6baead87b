"""Two `serve` processes on one PostgreSQL database: every request reaches the provider once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.base import SandboxCampaign
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.conftest import DatabaseFactory
from tests.e2e.conftest import BOT_TOKEN, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.e2e.processes import ServeProcess, clean_environment, start_serve
from tests.fakes.slack import FakeSlack

REQUESTS = 24
CLICKS_PER_PROCESS = 4  # per request, on each process: 8 clicks a request, 192 in all


@pytest.fixture
async def two_processes(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer], postgres_database: DatabaseFactory
) -> AsyncIterator[list[ServeProcess]]:
    box, box_server = sandbox
    database = await postgres_database()
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{fake_slack.url}/api/",
        DATABASE_URL=database,
        **provider_env(box, box_server.url),
    )
    # Both start at once: the schema migration runs under an advisory lock, once.
    processes = await asyncio.gather(start_serve(env, tmp_path), start_serve(env, tmp_path))
    yield list(processes)
    await asyncio.gather(*(p.stop() for p in processes))


async def test_concurrent_clicks_on_two_processes_stop_each_campaign_once(
    two_processes: list[ServeProcess], fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, _ = sandbox
    campaigns = {"sonarly": [], "altcraft": []}  # type: dict[str, list[str]]
    for n in range(REQUESTS // 2):
        sonarly_id = f"66aa00000000000000000{n:03d}"
        box["sonarly"].campaigns[sonarly_id] = SandboxCampaign(sonarly_id, f"Load {n}", "running", size=10)
        campaigns["sonarly"].append(sonarly_id)
        altcraft_id = str(9000 + n)
        box["altcraft"].campaigns[altcraft_id] = SandboxCampaign(altcraft_id, f"Load {n}", "Active", kind="broadcast")
        campaigns["altcraft"].append(altcraft_id)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
        apps = [AppUnderTest(url=p.url, web=None, slack=fake_slack, sandbox=box, http=http) for p in two_processes]
        request_ids: list[str] = []
        targets = [(provider, campaign) for provider, ids in campaigns.items() for campaign in ids]
        for i, (provider, campaign) in enumerate(targets):
            ack = await apps[i % 2].command(f"{provider} {campaign} load test")
            request_ids.append(buttons(ack.json())[STOP_ACTION]["value"])

        clicks = []
        urls: list[str] = []
        for request_id in request_ids:
            for app in apps:
                for _ in range(CLICKS_PER_PROCESS):
                    url = fake_slack.response_url()
                    urls.append(url)
                    clicks.append(app.click(STOP_ACTION, request_id, response_url=url))
        random.Random(7).shuffle(clicks)
        answers = await asyncio.gather(*clicks)

    assert all(a.status_code == 200 for a in answers)
    await fake_slack.wait_for_outcomes(REQUESTS, timeout=60)

    stops = Counter()  # type: Counter[str]
    for call in box["sonarly"].calls_to("/stop", "POST"):
        stops[call.path.split("/")[-2]] += 1
    for call in box["altcraft"].calls_to("/campaigns/deactivate", "POST"):
        stops[str(call.json()["id"])] += 1
    expected = set(campaigns["sonarly"]) | set(campaigns["altcraft"])
    assert set(stops) == expected
    assert all(count == 1 for count in stops.values()), stops

    # Every click was answered: each click's response_url got the card update or a notice.
    async with asyncio.timeout(30):
        while {c.path for c in fake_slack.of("response_url")} < {httpx.URL(u).path for u in urls}:
            await fake_slack.wait_for("response_url", len(fake_slack.of("response_url")) + 1)
    assert len(fake_slack.outcomes()) == REQUESTS
    for process in two_processes:
        tracebacks = [line for line in process.log.splitlines() if "Traceback" in line]
        assert not tracebacks, "\n\n".join(line[-2500:] for line in tracebacks)
