"""`python -m bot serve` as a real process, configured only by env vars, driven as Slack would:
one full stop per provider, then its whole log is checked (JSON lines, request ids, no secret)
and its /metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import BOT_TOKEN, INCIDENT, SIGNING_SECRET, AppUnderTest, StartApp, buttons, provider_env
from tests.e2e.processes import ServeProcess, clean_environment, free_port, start_serve
from tests.fakes.slack import FakeSlack

STOPS = [
    ("clevertap", "1457432766", "1457432766"),
    ("sonarly", "65f1a0c0e4b0a1b2c3d4e501", "65f1a0c0e4b0a1b2c3d4e501"),
    ("wwt", "53651994", "53651994"),
    ("altcraft", "101", "101"),
]


@pytest.fixture
async def served(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[ServeProcess]:
    box, box_server = sandbox
    metrics_port = free_port()
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{fake_slack.url}/api",
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        INCIDENT_CHANNEL=INCIDENT,
        LOG_LEVEL="DEBUG",  # the most the app ever logs: still no secret
        METRICS_PORT=str(metrics_port),
        **provider_env(box, box_server.url),
    )
    process = await start_serve(env, tmp_path)
    process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    yield process
    await process.stop()


async def test_serve_process_full_flow_logs_and_metrics(
    served: ServeProcess, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, _ = sandbox
    request_ids = []
    async with httpx.AsyncClient(timeout=10) as http:
        health = await http.get(f"{served.url}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}  # no internals
        app = AppUnderTest(url=served.url, web=None, slack=fake_slack, sandbox=box, http=http)
        for n, (provider, campaign, _) in enumerate(STOPS, start=1):
            ack = await app.command(f"{provider} {campaign} wrong audience")
            request_id = buttons(ack.json())[STOP_ACTION]["value"]
            request_ids.append(request_id)
            await app.click(STOP_ACTION, request_id)
            posts = await fake_slack.wait_for_outcomes(2 * n, timeout=20)
            assert "stopped" in str(posts[-2].body)
        assert (await http.get(f"{served.url}/metrics")).status_code == 404  # never on the Slack port
        metrics = (await http.get(served.metrics_url)).text
    for provider, _, _ in STOPS:
        assert f'stopcampaign_stops_total{{account="default",outcome="stopped",provider="{provider}"}} 1.0' in metrics
    assert 'stopcampaign_commands_total{kind="stop"} 4.0' in metrics
    assert "stopcampaign_provider_request_seconds_bucket" in metrics
    assert "stopcampaign_outbox_depth 0.0" in metrics

    await served.stop()  # all of its output, shutdown included
    records = [json.loads(line) for line in served.lines if line.startswith("{")]
    assert records and len(records) == len([line for line in served.lines if line.strip()])  # JSON lines only
    for request_id in request_ids:  # the request id travels through the lines of its stop
        assert any(r.get("request_id") == request_id and "stop finished" in r["message"] for r in records)
    secrets = [BOT_TOKEN, SIGNING_SECRET]
    for simulator in box.simulators.values():
        values = simulator.account_values("")
        secrets += [str(values[k]) for k in ("passcode", "api_key", "token") if k in values]
    secrets += list(getattr(box["wwt"], "_live_tokens", set()))  # the JWTs the app was given
    assert len(secrets) >= 6
    log = served.log
    for secret in secrets:
        assert secret not in log


async def test_metrics_on_the_slack_port_need_the_bearer_token(start_app: StartApp) -> None:
    app = await start_app(METRICS_TOKEN="metrics-token-0123456789")
    assert (await app.http.get(f"{app.url}/metrics")).status_code == 401
    wrong = await app.http.get(f"{app.url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = await app.http.get(f"{app.url}/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert right.status_code == 200 and "stopcampaign_commands_total" in right.text


async def test_socket_mode_serves_healthz_and_metrics_on_port(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, box_server = sandbox
    port = free_port()
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN="xapp-socket-test-not-real",
        SLACK_API_URL=f"{fake_slack.url}/api/",
        DATABASE_URL=f"sqlite:///{tmp_path / 'socket.db'}",
        PORT=str(port),
        **provider_env(box, box_server.url, ("clevertap",)),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "socket", cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while "socket mode: /healthz and /metrics" not in (lines[-1] if lines else ""):
                raw = await process.stdout.readline()
                assert raw, "socket exited early:\n" + "".join(lines)
                lines.append(raw.decode())
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")  # the socket listens before that line
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200 and "stopcampaign_outbox_depth" in metrics.text
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
