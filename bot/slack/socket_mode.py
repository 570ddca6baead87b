"""Socket Mode as Slack runs it: every envelope is acknowledged, whatever Bolt made of it.

Bolt's own handler sends no acknowledgement when the app answers anything but 200, so Slack
delivers a refused payload again and again. Here a refused payload (already logged once by the
listener that refused it) and a payload Bolt cannot even route are acknowledged all the same, with
one log line; a 200 answer goes back as Bolt's handler sends it (with the response payload for
commands and forms, where the envelope accepts one).
"""

from __future__ import annotations

import logging
from time import monotonic

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
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


class AcknowledgingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, acknowledging every envelope."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Run the envelope through Bolt and acknowledge it."""
        start = monotonic()
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception as exc:  # a payload Bolt cannot route: acked, so Slack does not resend it
            log.warning("refused a Slack %s envelope: %s", req.type, type(exc).__name__)
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
