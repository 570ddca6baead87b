"""`python -m bot serve` as a real process, configured only by env vars, driven as Slack would."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import BOT_TOKEN, INCIDENT, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, list[str]]]:
    box, box_server = sandbox
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLEVERTAP_", "SLACK_", "SONARLY_", "WWT_", "ALTCRAFT_"))
    }
    env.update(
        {
            "PORT": str(port),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{fake_slack.url}/api",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "INCIDENT_CHANNEL": INCIDENT,
            **provider_env(box, box_server.url),
            "PYTHONUNBUFFERED": "1",
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        cwd=str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while True:  # wait for the process to say it listens, reading its log as it comes
            raw = await process.stdout.readline()
            assert raw, "serve exited early:\n" + "".join(lines)
            lines.append(raw.decode())
            if "stopcampaign ready" in lines[-1]:
                break

    async def drain() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            lines.append(raw.decode())

    reader = asyncio.create_task(drain())
    yield f"http://127.0.0.1:{port}", process, lines
    process.terminate()
    async with asyncio.timeout(20):
        await process.wait()
    await reader


async def test_serve_process_full_flow(
    served: tuple[str, asyncio.subprocess.Process, list[str]],
    fake_slack: FakeSlack,
    sandbox: tuple[Sandbox, RunningServer],
) -> None:
    url, _, lines = served
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
    log = "".join(lines)
    secrets = [BOT_TOKEN, SIGNING_SECRET]
    for simulator in box.simulators.values():
        secrets += [str(v) for k, v in simulator.account_values("").items() if k in ("passcode", "api_key", "token")]
    for secret in secrets:
        assert secret not in log
