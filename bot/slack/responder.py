"""Posting to a Slack ``response_url`` (card updates, ephemeral replies), with Slack's retries.

A response_url comes in a signed payload and is stored with the request (the card's link), so a
payload that names another host must not make the app post there: only Slack's own hosts are
posted to, plus the origin of ``SLACK_API_URL`` when that is not Slack's (a self-hosted fake, the
tests), as `ResponseUrlPolicy` decides. The policy is set once at start (`configure_response_urls`)
from the settings; until then, and in any process that never sets it, only Slack's hosts are taken.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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

SLACK_DOMAIN = "slack.com"
"""Slack's response_urls are ``https://hooks.slack.com/…``; any ``https://*.slack.com`` is Slack's too."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9.:-]+")
"""A host name or IP address as `urlsplit` gives it (lower case, IPv6 without brackets); no escapes."""


Origin = tuple[str, str, int]
"""Scheme, lower-case host and port of a URL (the port filled in from the scheme)."""


def _origin(url: str) -> Origin | None:
    """`url`'s origin, or None for anything but a plain absolute http(s) URL. Strict on purpose, so no
    other URL parser (aiohttp's) can read another host out of it: ASCII only, no spaces, controls or
    backslashes, no user info (``https://hooks.slack.com@elsewhere/``), no escapes in the host."""
    if not url.isascii() or any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or not _HOST.fullmatch(host) or "@" in parts.netloc:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _host_of(url: str) -> str:
    """The host a URL names, for a log line (never the path or query: a response_url is a credential)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return repr(host[:80]) if host else "(no host)"


def _is_slack(origin: Origin) -> bool:
    scheme, host, port = origin
    return scheme == "https" and port == 443 and (host == SLACK_DOMAIN or host.endswith("." + SLACK_DOMAIN))


@dataclass(frozen=True)
class ResponseUrlPolicy:
    """Where a response_url may be posted: Slack's hosts (``https://hooks.slack.com``, ``https://*.slack.com``,
    port 443), plus `extra_origin` (scheme, host and port exactly)."""

    extra_origin: Origin | None = None

    @classmethod
    def for_api_url(cls, api_url: str) -> ResponseUrlPolicy:
        """Slack's hosts, plus the origin of `api_url` (``SLACK_API_URL``) when that is not Slack's."""
        origin = _origin(api_url)
        return cls(None if origin is None or _is_slack(origin) else origin)

    def allows(self, url: str) -> bool:
        """Whether the app may post to `url`."""
        origin = _origin(url)
        return origin is not None and (_is_slack(origin) or origin == self.extra_origin)


SLACK_ONLY = ResponseUrlPolicy()
"""Slack's hosts and nothing else."""
_configured = SLACK_ONLY


def configure_response_urls(api_url: str) -> ResponseUrlPolicy:
    """Once at start: let response_urls also reach the origin of ``SLACK_API_URL`` when it is not Slack's."""
    global _configured
    _configured = ResponseUrlPolicy.for_api_url(api_url)
    return _configured


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
    policy: ResponseUrlPolicy | None = None,
) -> bool:
    """Send `message` to a response_url (issued by Slack at `issued_at`, when known). True when
    Slack accepted it; never raises. A link past Slack's limits (30 minutes, 5 uses) is not tried,
    nor one at a host `policy` (by default the one set at start) does not allow."""
    if not url:
        return False
    if not (policy if policy is not None else _configured).allows(url):
        log.warning("did not post to a response_url at %s: not a Slack host (nor SLACK_API_URL's)", _host_of(url))
        SLACK_ERRORS.labels("response_url", "host refused").inc()
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
