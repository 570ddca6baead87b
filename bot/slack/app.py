"""The Bolt app: built over the runtime, listeners registered in one place."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.core.service import StopService
from bot.slack.deps import SlackDeps
from bot.slack.guard import answer_listener_failure
from bot.slack.health import SlackHealth
from bot.slack.listeners import register_listeners
from bot.slack.responder import retry_handlers
from bot.tasks import BackgroundTasks


def _not_token_skipped(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment on its own and warns that the client given
    # wins over it; that is intended here (the client carries no token, `authorize` gives it).
    return "`token` will be unused" not in record.getMessage()


def create_slack_app(
    settings: Settings,
    service: StopService,
    tasks: BackgroundTasks,
    health: SlackHealth | None = None,
    *,
    socket_mode: bool = False,
) -> AsyncApp:
    """Build the Bolt app over the core service; slow work goes to `tasks`; `health` is what the
    process knows is wrong with Slack (the Home tab shows it)."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to talk to Slack")
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required to verify requests from Slack")
    token = settings.slack_bot_token.get_secret_value()

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        # Single workspace, token from config: no auth.test round trip before an ack, so an
        # unreachable Slack Web API can never delay or break the answer to a command.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    # Bolt builds a client per request from `authorize`; give it one without a token (same base URL
    # and retry handlers) so it does not warn that a token would be ignored.
    bolt_client = AsyncWebClient(base_url=settings.slack_api_url, timeout=10, retry_handlers=retry_handlers())
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_not_token_skipped)
    app = AsyncApp(
        client=bolt_client,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        authorize=authorize,
        process_before_response=True,  # listeners ack inline and hand slow work to background tasks
        request_verification_enabled=not socket_mode,
    )
    app.error(answer_listener_failure)
    deps = SlackDeps(
        service=service,
        tasks=tasks,
        incident_channel=settings.incident_channel,
        slack_health=health or SlackHealth(settings.incident_channel),
    )
    register_listeners(app, deps)
    return app
