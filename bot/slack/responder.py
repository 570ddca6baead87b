"""Posting to a Slack ``response_url`` (card updates, ephemeral replies), with Slack's retries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from cachetools import TTLCache
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.core.models import utcnow
from bot.metrics import SLACK_ERRORS

log = logging.getLogger(__name__)


RESPONSE_URL_USES = 5
"""Slack takes at most five posts through one response_url…"""
RESPONSE_URL_LIFETIME = timedelta(minutes=29)
"""…within 30 minutes of issuing it (a minute spared for clocks and the post's own time)."""
_uses: TTLCache[str, int] = TTLCache(maxsize=50_000, ttl=1800)
"""How often this process used each response_url (it cannot know about other processes)."""

MAX_RATE_LIMIT_WAIT = 5
"""The longest Retry-After the client sleeps through itself; a longer one fails the call at once,
so a post never outlives its outbox lease (the outbox retries it after the wait instead)."""


class CappedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, retrying only when Slack asks for a short wait."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response.headers)
        return wait is not None and wait <= MAX_RATE_LIMIT_WAIT


def retry_after(headers: Any) -> int | None:
    """A Retry-After header's whole seconds (slack_sdk keeps header values as lists), or None."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            text = str(raw).strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None


def retry_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's own retry handlers: 429 with a short Retry-After, and connection errors."""
    return [CappedRateLimitRetryHandler(max_retry_count=2), AsyncConnectionErrorRetryHandler(max_retry_count=2)]


async def post_response(
    url: str | None,
    message: dict[str, Any],
    *,
    replace: bool,
    ephemeral: bool = True,
    issued_at: datetime | None = None,
) -> bool:
    """Send `message` to a response_url (issued by Slack at `issued_at`, when known). True when
    Slack accepted it; never raises. A link past Slack's limits (30 minutes, 5 uses) is not tried."""
    if not url:
        return False
    if issued_at is not None and utcnow() - issued_at > RESPONSE_URL_LIFETIME:
        log.info("a response_url older than %s was not used", RESPONSE_URL_LIFETIME)
        return False
    used = _uses.get(url, 0)
    if used >= RESPONSE_URL_USES:
        log.info("a response_url already used %d times was not used again", used)
        return False
    _uses[url] = used + 1
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
