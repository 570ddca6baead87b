"""Slack user groups for the policy: ``usergroups.users.list``, cached for a few minutes.

When Slack cannot be asked, the last known members are used for up to an hour, so a Slack
hiccup during an incident does not lock the on-call team out of the kill switch.
"""

from __future__ import annotations

import asyncio
import time

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.policy import GroupLookupError

FRESH_SECONDS = 300
STALE_SECONDS = 3600


class SlackGroupResolver:
    """Resolves user group ids to member user ids through the Slack Web API."""

    def __init__(self, client: AsyncWebClient, fresh_seconds: float = FRESH_SECONDS) -> None:
        self.client = client
        self._fresh: TTLCache[str, frozenset[str]] = TTLCache(maxsize=256, ttl=fresh_seconds)
        self._stale: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = asyncio.Lock()

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's user ids (cached); raises `GroupLookupError` when Slack cannot tell."""
        cached = self._fresh.get(group_id)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh.get(group_id)
            if cached is not None:
                return cached
            try:
                response = await self.client.usergroups_users_list(usergroup=group_id)
                users = response.get("users")
                if not isinstance(users, list):
                    raise GroupLookupError("Slack's answer had no user list")
                members = frozenset(u for u in users if isinstance(u, str))
            except (SlackApiError, GroupLookupError, OSError, TimeoutError) as exc:
                stale = self._stale.get(group_id)
                if stale is not None and time.monotonic() - stale[0] < STALE_SECONDS:
                    return stale[1]
                data = exc.response.data if isinstance(exc, SlackApiError) else None
                reason = str(data.get("error", "error")) if isinstance(data, dict) else type(exc).__name__
                raise GroupLookupError(str(reason)) from None
            self._fresh[group_id] = members
            self._stale[group_id] = (time.monotonic(), members)
            return members
