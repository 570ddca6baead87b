"""The Slack Web API clients the app uses: one to post (with slack_sdk's retries), one for lookups."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.slack.responder import retry_handlers

LOOKUP_TIMEOUT = 5
"""How long one user group lookup may take, with no retries. Lookups run in the background
(`bot.slack.groups`): a decision waits on one for well under the 2 s before a command's ack and
then uses the last known members, so this bounds only how long a hung lookup keeps its group
from being asked again."""


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
    """The client for user group lookups: `LOOKUP_TIMEOUT`, no retries."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=LOOKUP_TIMEOUT)
