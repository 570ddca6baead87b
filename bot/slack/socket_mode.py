"""Socket Mode as Slack runs it: every envelope is acknowledged, whatever Bolt or slack_sdk made of it.

Bolt's own handler sends no acknowledgement when the app answers anything but 200, so Slack
delivers a refused payload again and again. Here a refused payload (already logged once by the
listener that refused it) and a payload Bolt cannot even route are acknowledged all the same, with
one log line; a 200 answer goes back as Bolt's handler sends it (with the response payload for
commands and forms, where the envelope accepts one).

Some envelopes never reach Bolt: slack_sdk's client drops an envelope without ``type`` or
``payload`` (no ack, so Slack delivers it again), and raises, with a traceback and no ack, on a
``payload`` that is null, a list or a number, or on a message that is not JSON. Its subclass here
checks each message's shape before slack_sdk reads it: a malformed envelope is acknowledged (when it
has an ``envelope_id``) with one log line and goes no further; anything else is left to slack_sdk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from time import monotonic
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.config import ConfigError, Settings
from bot.core.service import StopService
from bot.slack.app import create_slack_app
from bot.slack.health import SlackHealth
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)

PING_INTERVAL = 10.0
"""Seconds between the client's pings (Bolt's default); a link silent for four of them is replaced."""
CONTROL_MESSAGES = frozenset({"hello", "disconnect"})
"""Messages Slack sends outside envelopes (no ``envelope_id``, nothing to acknowledge)."""


def envelope_problem(message: dict[str, Any]) -> str | None:
    """What makes `message` an envelope slack_sdk and Bolt cannot take, or None when it is one they can
    (a string ``envelope_id`` and ``type``, and a ``payload`` that is an object)."""
    envelope_id = message.get("envelope_id")
    if not isinstance(envelope_id, str) or not envelope_id:
        return "it has no envelope_id"
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        return "it has no type"
    if "payload" not in message:
        return "it has no payload"
    payload = message["payload"]
    if payload is None:
        return "its payload is null"
    if not isinstance(payload, dict):
        return f"its payload is {_json_kind(payload)}, not an object"
    return None


def _json_kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """An envelope id (or whatever came in its place) fit for one log line."""
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text[:64])


class AcknowledgingSocketModeClient(SocketModeClient):
    """slack_sdk's aiohttp Socket Mode client, acknowledging the envelopes it would drop or choke on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener_runs: set[asyncio.Future[None]] = set()
        """Listener runs under way (asyncio keeps only weak references to tasks)."""

    async def process_message(self) -> None:
        """Take the next message off the queue; one that is not a JSON object is logged once and dropped."""
        raw_message = await self.message_queue.get()
        if raw_message is None or not str(raw_message).strip():
            return  # Slack sends empty messages now and then; slack_sdk skips them too
        try:
            message = json.loads(raw_message)
        except (ValueError, RecursionError):
            log.warning("ignored a Socket Mode message that is not JSON (%d characters)", len(raw_message))
            return
        if not isinstance(message, dict):
            log.warning("ignored a Socket Mode message that is %s, not an object", _json_kind(message))
            return
        run = asyncio.ensure_future(self.run_message_listeners(message, raw_message))  # one task each, as slack_sdk
        self._listener_runs.add(run)
        run.add_done_callback(self._listener_runs.discard)

    async def run_message_listeners(self, message: dict[str, Any], raw_message: str) -> None:
        """Acknowledge a malformed envelope with one log line; hand everything else to slack_sdk."""
        kind = message.get("type")
        control = isinstance(kind, str) and kind in CONTROL_MESSAGES  # hello, disconnect: slack_sdk's own
        problem = None if control else envelope_problem(message)
        if problem is None:
            await super().run_message_listeners(message, raw_message)
            return
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            log.warning("ignored a Socket Mode message of type %s without an envelope_id (nothing to acknowledge)",
                        _shown(kind))
            return
        log.warning("refused a Socket Mode envelope %s (acknowledged): %s", _shown(envelope_id), problem)
        try:
            await self.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))
        except Exception as exc:  # the link went away meanwhile: Slack delivers it again on the next one
            log.warning("could not acknowledge Socket Mode envelope %s (%s)", _shown(envelope_id), type(exc).__name__)


class AcknowledgingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler over `AcknowledgingSocketModeClient`, acknowledging every envelope."""

    def __init__(self, app: AsyncApp, app_token: str, *, ping_interval: float = PING_INTERVAL) -> None:
        # Bolt's __init__ would build (and start) a plain client first; build ours alone instead.
        self.app = app
        self.app_token = app_token
        self.client = AcknowledgingSocketModeClient(
            app_token=app_token, logger=app.logger, web_client=app.client, ping_interval=ping_interval
        )
        self.client.socket_mode_request_listeners.append(self.handle)

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Run the envelope through Bolt and acknowledge it."""
        start = monotonic()
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception as exc:  # a payload Bolt cannot route: acked, so Slack does not resend it
            log.warning("refused a Slack %s envelope %s: %s", req.type, _shown(req.envelope_id), type(exc).__name__)
            log.debug("socket mode envelope failure", exc_info=exc)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        if response.status == 200:
            await send_async_response(client, req, response, start)
            return
        log.debug("acknowledged a %s envelope answered %s", req.type, response.status)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


def socket_mode_handler(
    settings: Settings,
    service: StopService,
    tasks: BackgroundTasks,
    health: SlackHealth,
    *,
    ping_interval: float = PING_INTERVAL,
) -> AcknowledgingSocketModeHandler:
    """The Bolt app over the core, behind a Socket Mode connection (``SLACK_APP_TOKEN``)."""
    if settings.slack_app_token is None:
        raise ConfigError("SLACK_APP_TOKEN: required by Socket Mode")
    app = create_slack_app(settings, service, tasks, health, socket_mode=True)
    return AcknowledgingSocketModeHandler(app, settings.slack_app_token.get_secret_value(), ping_interval=ping_interval)
