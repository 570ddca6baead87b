"""Fixtures for end-to-end tests: fake Slack, provider sandbox and the real app, all over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import load_config
from bot.httpserver import RunningServer, start_server
from bot.providers.registry import adapter_class
from bot.runtime import Runtime
from bot.sandbox.server import Sandbox, start_sandbox
from bot.web import create_web_app
from tests import slack_requests
from tests.fakes.slack import FakeSlack

SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-e2e-bot-token-not-real"
INCIDENT = "C0INCIDENT"
CHANNEL = "C0CHANNEL"
REQUESTER = "U0ALICE"
OTHER = "U0BOB"
STARTUP_CHECK = ("auth.test", "conversations.info")
"""What `serve` asks Slack once at start (the token, the incident channel), before any request."""


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    return slack_requests.sign(body, secret, timestamp)


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
        body = slack_requests.command_body(text, self.slack.response_url(), user=user, channel=channel)
        return await self.post_signed(body, "application/x-www-form-urlencoded", **sign_args)

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = REQUESTER,
        payload_extra: dict[str, Any] | None = None,
        response_url: str | None = None,
        surface: str | None = None,
        channel: str = CHANNEL,
    ) -> httpx.Response:
        """A click on the button `action_id` carrying `value`, as Slack sends it from `surface`
        (by default where that button usually is)."""
        payload = slack_requests.block_actions_payload(
            value, response_url or self.slack.response_url(), user=user, channel=channel, action_id=action_id,
            surface=surface,
        )
        payload.update(payload_extra or {})
        return await self.interactive(payload)

    async def interactive(self, payload: dict[str, Any]) -> httpx.Response:
        """Post an interactive payload (``payload=<json>``) as Slack does."""
        return await self.post_signed(slack_requests.interactive_body(payload), "application/x-www-form-urlencoded")


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
        app = AppUnderTest(url=server.url, web=web, slack=fake_slack, sandbox=box, http=http, server=server)
        await app.runtime.tasks.wait_idle()  # the start-up check of Slack (token, incident channel) is done
        return app

    yield start
    box.release_held()
    for server, http in started:
        await http.aclose()
        await server.stop()


@pytest.fixture
async def app(start_app: StartApp) -> AppUnderTest:
    """The app with the default e2e configuration."""
    return await start_app()
