"""`python -m bot serve` as a real process, configured only by env vars, driven as Slack would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import BOT_TOKEN, INCIDENT, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.e2e.processes import ServeProcess, clean_environment, start_serve
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def served(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[ServeProcess]:
    box, box_server = sandbox
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{fake_slack.url}/api",
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        INCIDENT_CHANNEL=INCIDENT,
        **provider_env(box, box_server.url),
    )
    process = await start_serve(env, tmp_path)
    yield process
    await process.stop()


async def test_serve_process_full_flow(
    served: ServeProcess,
    fake_slack: FakeSlack,
    sandbox: tuple[Sandbox, RunningServer],
) -> None:
    url = served.url
    box, _ = sandbox
    async with httpx.AsyncClient(timeout=10) as http:
        health = await http.get(f"{url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        app = AppUnderTest(url=url, web=None, slack=fake_slack, sandbox=box, http=http)
        ack = await app.command("clevertap 1457432766 wrong audience")
        request_id = buttons(ack.json())[STOP_ACTION]["value"]
        await app.click(STOP_ACTION, request_id)
        posts = await fake_slack.wait_for("chat.postMessage", 2)
    assert "stopped" in str(posts[0].body)
    assert len(box["clevertap"].calls_to("/1/targets/stop.json")) == 1
    log = served.log
    secrets = [BOT_TOKEN, SIGNING_SECRET]
    for simulator in box.simulators.values():
        secrets += [str(v) for k, v in simulator.account_values("").items() if k in ("passcode", "api_key", "token")]
    for secret in secrets:
        assert secret not in log
