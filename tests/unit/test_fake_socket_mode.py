"""The fake Socket Mode server against slack_sdk's real aiohttp ``SocketModeClient``.

A tiny Starlette app serves the fake's WebSocket route and ``/api/apps.connections.open``; the
client acks every envelope (with a payload when the envelope accepts one), as Bolt does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.httpserver import RunningServer, start_server
from tests.fakes.socket_mode import FakeSocketMode

APP_TOKEN = "xapp-1-A0FAKEAPP-1-not-a-real-token"
WAIT = 5.0

SHORTCUT = {"type": "shortcut", "callback_id": "stop", "trigger_id": "1.2.x", "user": {"id": "U0ALICE"}}
COMMAND = {
    "command": "/stopcampaign",
    "text": "help",
    "user_id": "U0ALICE",
    "channel_id": "C0CHANNEL",
    "response_url": "https://hooks.slack.test/commands/1",
    "trigger_id": "1.2.y",
}
EVENT = {
    "type": "event_callback",
    "team_id": "T0FAKE",
    "api_app_id": "A0FAKEAPP",
    "event_id": "Ev01",
    "event_time": 1700000000,
    "event": {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": "<@U0BOT> hi",
        "channel": "C0CHANNEL",
        "ts": "1700000000.000100",
    },
}


@dataclass
class Served:
    """The fake, served over HTTP."""

    fake: FakeSocketMode
    server: RunningServer


@dataclass
class Listener:
    """What the client saw, and an ack for every request."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[SocketModeRequest] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def hellos(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "hello"]

    async def wait_for_hellos(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.hellos()) < count:
                self.changed.clear()
                await self.changed.wait()

    async def on_message(self, client: AsyncBaseSocketModeClient, message: dict[str, Any], raw: str | None) -> None:
        self.messages.append(message)
        self.changed.set()

    async def on_request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        self.requests.append(request)
        payload = {"text": f"answered {request.envelope_id}"} if request.accepts_response_payload else None
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    fake = FakeSocketMode()
    base: list[str] = []

    async def connections_open(request: Request) -> JSONResponse:
        return JSONResponse(fake.connections_open(base[0], authorization=request.headers.get("authorization")))

    app = Starlette(routes=[Route("/api/apps.connections.open", connections_open, methods=["POST"]), *fake.routes()])
    server = await start_server(app)
    base.append(server.url)
    try:
        yield Served(fake, server)
    finally:
        await server.stop()


@pytest.fixture
def sdk_errors(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """slack_sdk's log records at WARNING and above (a clean run has none)."""
    caplog.set_level(logging.WARNING, logger="slack_sdk")
    return caplog


def _problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("slack_sdk") and r.levelno >= logging.WARNING]


async def _connect(served: Served, *, ping_interval: float = 5.0) -> tuple[SocketModeClient, Listener]:
    web = AsyncWebClient(base_url=f"{served.server.url}/api/")
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web, ping_interval=ping_interval)
    listener = Listener()
    client.message_listeners.append(listener.on_message)
    client.socket_mode_request_listeners.append(listener.on_request)
    await client.connect()  # type: ignore[no-untyped-call]
    return client, listener


async def test_envelopes_are_acked_and_a_refresh_moves_them_to_a_new_connection(
    served: Served, sdk_errors: pytest.LogCaptureFixture
) -> None:
    fake = served.fake
    client, listener = await _connect(served)
    try:
        await listener.wait_for_hellos(1)
        first = (await fake.wait_for_connections(1))[0]
        assert listener.hellos() == [first.hello]
        assert first.hello == {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": fake.host, "build_number": fake.build_number, "approximate_connection_time": 3600},
            "connection_info": {"app_id": fake.app_id},
        }
        assert [o.token for o in fake.opens] == [APP_TOKEN]
        assert first.ticket == fake.opens[0].ticket

        clicked = await fake.send("interactive", SHORTCUT)
        assert await fake.wait_for_ack(clicked) == {"envelope_id": clicked}

        command = await fake.send("slash_commands", COMMAND, accepts_response_payload=True)
        assert await fake.wait_for_ack(command) == {"envelope_id": command, "payload": {"text": f"answered {command}"}}

        event = await fake.send("events_api", EVENT, retry_attempt=1, retry_reason="timeout")
        assert await fake.wait_for_ack(event) == {"envelope_id": event}
        seen = {r.envelope_id: r for r in listener.requests}
        assert (seen[event].type, seen[event].retry_attempt, seen[event].retry_reason) == ("events_api", 1, "timeout")
        assert (seen[command].type, seen[command].accepts_response_payload) == ("slash_commands", True)
        assert seen[clicked].payload == SHORTCUT
        assert {fake.ack_connection(e) for e in (clicked, command, event)} == {first}

        assert await fake.disconnect("refresh_requested") is first
        second = (await fake.wait_for_connections(2))[1]
        await first.wait_closed()  # the client closes the old connection itself
        await listener.wait_for_hellos(2)
        assert len(fake.opens) == 2 and second.ticket == fake.opens[1].ticket != first.ticket
        assert first.sent[-1] == {
            "type": "disconnect",
            "reason": "refresh_requested",
            "debug_info": {"host": fake.host},
        }
        assert second.hello["num_connections"] == 1

        after = await fake.send("events_api", EVENT)
        assert await fake.wait_for_ack(after) == {"envelope_id": after}
        assert fake.ack_connection(after) is second
        assert fake.unacked() == []
        assert fake.refused == []
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    assert _problems(sdk_errors) == []


@pytest.mark.parametrize("close_code", [None, 1011], ids=["no-closing-handshake", "close-frame"])
async def test_the_client_reconnects_after_a_dropped_connection(served: Served, close_code: int | None) -> None:
    fake = served.fake
    # Without a close frame slack_sdk notices the loss on its monitor's next tick (every
    # ping_interval); with one it reconnects at once.
    client, _listener = await _connect(served, ping_interval=0.5)
    try:
        first = (await fake.wait_for_connections(1))[0]
        assert await fake.drop(close_code=close_code) is first
        assert not first.open and first.dropped
        second = (await fake.wait_for_connections(2))[1]
        assert len(fake.opens) == 2 and second.ticket != first.ticket

        envelope = await fake.send("interactive", SHORTCUT)
        await fake.wait_for_ack(envelope)
        assert fake.ack_connection(envelope) is second
        assert fake.refused == []
    finally:
        await client.close()  # type: ignore[no-untyped-call]


async def test_a_ticket_works_once(served: Served) -> None:
    fake = served.fake
    url = fake.connections_open(served.server.url)["url"]
    assert url.startswith(f"ws://127.0.0.1:{served.server.port}/socket-mode/link?ticket=")
    assert url.endswith(f"&app_id={fake.app_id}")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=WAIT))["type"] == "hello"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url.replace("ticket=", "ticket=forged"))
    assert [r.reason for r in fake.refused] == ["ticket_already_used", "unknown_ticket"]
    assert len(fake.connections) == 1


async def test_waits_are_bounded(served: Served) -> None:
    fake = served.fake
    with pytest.raises(TimeoutError):
        await fake.send("interactive", SHORTCUT, timeout=0.05)  # nobody connected
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.connections_open(served.server.url)["url"]) as ws,
    ):
        await ws.receive_json(timeout=WAIT)  # hello
        envelope = await fake.send("interactive", SHORTCUT)
        assert (await ws.receive_json(timeout=WAIT))["envelope_id"] == envelope
        with pytest.raises(TimeoutError):
            await fake.wait_for_ack(envelope, timeout=0.05)  # this client never acks
        assert [e["envelope_id"] for e in fake.unacked()] == [envelope]


async def test_connections_open_wants_an_app_level_token() -> None:
    fake = FakeSocketMode()
    assert fake.connections_open("ws://x", authorization="Bearer xoxb-bot") == {
        "ok": False,
        "error": "not_allowed_token_type",
    }
    assert fake.connections_open("ws://x", authorization="") == {"ok": False, "error": "not_authed"}
    assert fake.connections_open("https://x/", authorization=f"Bearer {APP_TOKEN}")["url"].startswith(
        "wss://x/socket-mode/link?ticket="
    )
    with pytest.raises(ValueError, match="events_api"):
        await fake.send("interactive", SHORTCUT, retry_attempt=1)
