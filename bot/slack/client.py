"""The Slack Web API clients the app uses: one to post (with slack_sdk's retries), one for lookups."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.slack.responder import retry_handlers

LOOKUP_TIMEOUT = 2
"""Group lookups run before an ack: a short timeout and no retries (the policy falls back on the
last known members when Slack is slow)."""


def create_web_client(settings: Settings) -> AsyncWebClient:
    """The client that posts: ``SLACK_API_URL`` as base, slack_sdk's retry handlers on."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to talk to Slack")
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=retry_handlers(),
    )


def create_lookup_client(settings: Settings) -> AsyncWebClient:
    """The client for lookups before an ack (user groups): short timeout, no retries."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=LOOKUP_TIMEOUT)
