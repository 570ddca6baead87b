"""Fixtures for end-to-end tests: fake Slack, provider sandbox and the real app, all over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.config import load_config
from bot.httpserver import RunningServer, start_server
from bot.providers.registry import adapter_class
from bot.runtime import Runtime
from bot.sandbox.server import Sandbox, start_sandbox
from bot.web import create_web_app
from tests.fakes.slack import FakeSlack

SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-e2e-bot-token-not-real"
INCIDENT = "C0INCIDENT"
CHANNEL = "C0CHANNEL"
REQUESTER = "U0ALICE"
OTHER = "U0BOB"


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


@dataclass
class AppUnderTest:
    """The running app plus helpers that talk to it as Slack would."""

    url: str
    web: Any
    slack: FakeSlack
    sandbox: Sandbox
    http: httpx.AsyncClient
    server: RunningServer | None = None

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.web.state.runtime
        return runtime

    async def post_signed(self, body: bytes, content_type: str, **sign_args: Any) -> httpx.Response:
        headers = {"Content-Type": content_type, **sign(body, **sign_args)}
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    async def command(
        self, text: str, *, user: str = REQUESTER, channel: str = CHANNEL, **sign_args: Any
    ) -> httpx.Response:
        form = {
            "token": "legacy-unused",
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "marketing-oncall",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/stopcampaign",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": self.slack.response_url(),
            "trigger_id": "123.456.abc",
        }
        return await self.post_signed(urlencode(form).encode(), "application/x-www-form-urlencoded", **sign_args)

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = REQUESTER,
        payload_extra: dict[str, Any] | None = None,
        response_url: str | None = None,
    ) -> httpx.Response:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": "T0FAKE", "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
            "api_app_id": "A0APP",
            "token": "legacy-unused",
            "container": {
                "type": "message",
                "message_ts": "1700000000.000001",
                "channel_id": CHANNEL,
                "is_ephemeral": True,
            },
            "trigger_id": "123.456.def",
            "channel": {"id": CHANNEL, "name": "marketing-oncall"},
            "response_url": response_url or self.slack.response_url(),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "stopcampaign_buttons",
                    "type": "button",
                    "value": value,
                    "action_ts": "1700000000.1",
                }
            ],
        }
        payload.update(payload_extra or {})
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post_signed(body, "application/x-www-form-urlencoded")


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The buttons of a Block Kit message, by action_id."""
    found: dict[str, dict[str, Any]] = {}
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = element
    return found


def message_text(message: dict[str, Any]) -> str:
    """Everything readable in a message: its text fallback and all block texts."""
    return json.dumps(message, ensure_ascii=False)


StartApp = Callable[..., Awaitable[AppUnderTest]]


def provider_env(box: Sandbox, url: str, providers: tuple[str, ...] | None = None) -> dict[str, str]:
    """Env vars that configure each provider's default account (all, or `providers`) on the sandbox."""
    env: dict[str, str] = {}
    for provider, named in box.accounts(url).items():
        if providers is not None and provider not in providers:
            continue
        klass = adapter_class(provider)
        assert klass is not None
        for key, value in named["sandbox"].items():
            env[f"{klass.env_prefix}{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    server = await start_server(slack.app)
    slack.url = server.url
    yield slack
    slack.release()
    await server.stop()


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, RunningServer]]:
    box, server = await start_sandbox()
    yield box, server
    box.release_held()
    await server.stop()


@pytest.fixture
async def start_app(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[StartApp]:
    """Start the real app (env overrides as keyword arguments); stopped at the end of the test."""
    box, box_server = sandbox
    started: list[tuple[RunningServer, httpx.AsyncClient]] = []

    async def start(providers: tuple[str, ...] | None = None, **overrides: str) -> AppUnderTest:
        env = provider_env(box, box_server.url, providers)
        env |= {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{fake_slack.url}/api/",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
            "INCIDENT_CHANNEL": INCIDENT,
            "PROVIDER_TIMEOUT_SECONDS": "0.5",
            "PROVIDER_DEADLINE_SECONDS": "3",
        }
        env.update(overrides)
        env = {k: v for k, v in env.items() if v}
        web = create_web_app(load_config(env))
        server = await start_server(web, lifespan="on")
        http = httpx.AsyncClient(timeout=10)
        started.append((server, http))
        ready = await http.get(f"{server.url}/healthz")  # queued until the lifespan has started
        assert ready.status_code == 200, ready.text
        return AppUnderTest(url=server.url, web=web, slack=fake_slack, sandbox=box, http=http, server=server)

    yield start
    box.release_held()
    for server, http in started:
        await http.aclose()
        await server.stop()


@pytest.fixture
async def app(start_app: StartApp) -> AppUnderTest:
    """The app with the default e2e configuration."""
    return await start_app()
