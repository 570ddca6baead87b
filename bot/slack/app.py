"""The Bolt app: built from settings and the runtime, listeners registered in one place."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.runtime import Runtime
from bot.slack.deps import SlackDeps
from bot.slack.groups import SlackGroupResolver
from bot.slack.guard import reject_malformed
from bot.slack.listeners import register_listeners
from bot.slack.notifier import SlackNotifier
from bot.slack.responder import retry_handlers


def create_web_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: ``SLACK_API_URL`` as base, slack_sdk's retry handlers on."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to talk to Slack")
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=retry_handlers(),
    )


def create_slack_app(runtime: Runtime, *, socket_mode: bool = False) -> AsyncApp:
    """Build the Bolt app over the runtime's service, and make Slack its notifier."""
    settings = runtime.config.settings
    client = create_web_client(settings)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required to verify requests from Slack")

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        # Single workspace, token from config: no auth.test round trip before an ack, so an
        # unreachable Slack Web API can never delay or break the answer to a command.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    # Bolt builds a client per request from `authorize`; give it one without a token (same base URL
    # and retry handlers) so it does not warn that a token would be ignored.
    bolt_client = AsyncWebClient(base_url=settings.slack_api_url, timeout=10, retry_handlers=retry_handlers())
    app = AsyncApp(
        client=bolt_client,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        authorize=authorize,
        process_before_response=True,  # listeners ack inline and hand slow work to background tasks
        request_verification_enabled=not socket_mode,
    )
    app.use(reject_malformed)
    runtime.set_notifier(SlackNotifier(client, settings.incident_channel))
    # Group lookups run before an ack: a client of their own, short timeout and no retries
    # (the policy falls back on the last known members when Slack is slow).
    lookup_client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=2)
    runtime.service.policy.resolver = SlackGroupResolver(lookup_client)
    register_listeners(app, SlackDeps(service=runtime.service, tasks=runtime.tasks))
    return app
