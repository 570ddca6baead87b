"""Posting to a Slack ``response_url`` (card updates, ephemeral replies), with Slack's retries."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.metrics import SLACK_ERRORS

log = logging.getLogger(__name__)


def retry_handlers() -> list[Any]:
    """slack_sdk's own retry handlers: 429 with Retry-After, and connection errors."""
    return [AsyncRateLimitErrorRetryHandler(max_retry_count=2), AsyncConnectionErrorRetryHandler(max_retry_count=2)]


async def post_response(url: str | None, message: dict[str, Any], *, replace: bool, ephemeral: bool = True) -> bool:
    """Send `message` to a response_url. True when Slack accepted it; never raises."""
    if not url:
        return False
    body: dict[str, Any] = dict(message)
    if replace:
        body["replace_original"] = True
    else:
        body["replace_original"] = False
        body["response_type"] = "ephemeral" if ephemeral else "in_channel"
    client = AsyncWebhookClient(url, timeout=10, retry_handlers=retry_handlers())
    try:
        response = await client.send_dict(body)
    except Exception as exc:
        log.warning("response_url post failed: %s", type(exc).__name__)
        SLACK_ERRORS.labels("response_url", type(exc).__name__).inc()
        return False
    if response.status_code != 200:
        log.warning("response_url answered HTTP %s", response.status_code)
        SLACK_ERRORS.labels("response_url", f"HTTP {response.status_code}").inc()
        return False
    return True
