"""Slack user groups for the policy: ``usergroups.users.list``, cached for a few minutes.

Every answer from Slack is also kept in the store with the time it was read, so that when Slack
cannot be asked (an outage, a rate limit) the last known members are used, even right after a
restart with a cold cache, for up to ``GROUP_MEMBERS_MAX_AGE_SECONDS``: a Slack hiccup during an
incident does not lock the on-call team out of the kill switch. Past that age, membership is
unknown and the policy's refusal says so.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.policy import GroupLookupError
from bot.core.ports import Store

log = logging.getLogger(__name__)

FRESH_SECONDS = 300
MAX_AGE_SECONDS = 86_400


class SlackGroupResolver:
    """Resolves user group ids to member user ids through the Slack Web API, remembered in the store."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store | None = None,
        *,
        fresh_seconds: float = FRESH_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
    ) -> None:
        self.client = client
        self.store = store
        self.max_age = timedelta(seconds=max_age_seconds)
        self._fresh: TTLCache[str, frozenset[str]] = TTLCache(maxsize=256, ttl=fresh_seconds)
        self._lock = asyncio.Lock()

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's user ids; raises `GroupLookupError` saying why when nobody can tell."""
        cached = self._fresh.get(group_id)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh.get(group_id)
            if cached is not None:
                return cached
            try:
                members = await self._ask_slack(group_id)
            except GroupLookupError as exc:
                return await self._last_known(group_id, str(exc))
            self._fresh[group_id] = members
            await self._remember(group_id, members)
            return members

    async def _ask_slack(self, group_id: str) -> frozenset[str]:
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            data = exc.response.data
            raise GroupLookupError(str(data.get("error", "error")) if isinstance(data, dict) else "error") from None
        except (OSError, TimeoutError) as exc:
            raise GroupLookupError(f"Slack did not answer ({type(exc).__name__})") from None
        users = response.get("users")
        if not isinstance(users, list):
            raise GroupLookupError("Slack's answer had no user list")
        return frozenset(u for u in users if isinstance(u, str))

    async def _remember(self, group_id: str, members: frozenset[str]) -> None:
        if self.store is None:
            return
        try:
            await self.store.save_group_members(group_id, sorted(members))
        except Exception as exc:  # the answer is still good; only the fallback is older
            log.warning("could not keep the members of %s: %s", group_id, type(exc).__name__)

    async def _last_known(self, group_id: str, reason: str) -> frozenset[str]:
        if self.store is None:
            raise GroupLookupError(f"Slack could not be asked ({reason}) and no members are known")
        try:
            saved = await self.store.group_members(group_id)
            now = await self.store.db_now()
        except Exception as exc:
            store_error = type(exc).__name__
            raise GroupLookupError(f"Slack could not be asked ({reason}) nor the store ({store_error})") from None
        if saved is None:
            raise GroupLookupError(f"Slack could not be asked ({reason}) and its members were never read")
        members, read_at = saved
        age = now - read_at
        if age > self.max_age:
            hours = age.total_seconds() / 3600
            raise GroupLookupError(
                f"Slack could not be asked ({reason}) and the last known members are {hours:.0f} h old, "
                f"more than the {self.max_age.total_seconds() / 3600:g} h allowed"
            )
        log.warning("Slack could not be asked for %s (%s); using members read %s ago", group_id, reason, age)
        return frozenset(members)
