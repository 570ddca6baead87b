"""Slack user groups for the policy: ``usergroups.users.list``, cached for a few minutes.

Every answer from Slack is also kept in the store with the time it was read, so that when Slack
cannot be asked (an outage, a rate limit) the last known members are used, even right after a
restart with a cold cache, for up to ``GROUP_MEMBERS_MAX_AGE_SECONDS``: a Slack hiccup during an
incident does not lock the on-call team out of the kill switch. Past that age, membership is
unknown and the policy's refusal says so.

A command has 3 s for its answer, so a lookup never makes a decision wait long on Slack:

- Slack is asked by one refresh per group at a time, in the background; every decision that
  needs the group meanwhile shares it (no herd of identical calls, and a hung group never holds
  up another group).
- When the members are known (in memory or stored, young enough), a decision waits for Slack's
  answer at most `ANSWER_WAIT_SECONDS`, then uses the known members; the refresh goes on and
  stores what Slack says when it does.
- When nothing usable is known, a decision waits at most `COLD_WAIT_SECONDS` (well inside the
  budget before an ack) and then the membership is unknown.

A failing refresh is logged once per outage, not per command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.policy import GroupLookupError
from bot.core.ports import Store

log = logging.getLogger(__name__)

FRESH_SECONDS = 300
MAX_AGE_SECONDS = 86_400
ANSWER_WAIT_SECONDS = 0.5
"""How long a decision waits for Slack when the group's members are known, before using them."""
COLD_WAIT_SECONDS = 1.0
"""How long a decision waits for Slack when no usable members are known, before refusing (the
policy check and the insert get 2 s before a command's ack; Slack allows 3)."""

_Answer = frozenset[str] | GroupLookupError
"""What one refresh learned: the members, or why Slack could not tell."""


@dataclass(frozen=True)
class _Known:
    """Members Slack gave, and when (``time.monotonic()``; earlier than start for stored ones)."""

    members: frozenset[str]
    read_at: float

    def age(self) -> float:
        return time.monotonic() - self.read_at


@dataclass(frozen=True)
class _Refresh:
    """One group's lookup under way: its answer as soon as Slack gives it, and the task that
    asks and then stores it."""

    answer: asyncio.Future[_Answer]
    task: asyncio.Task[None]


class _Unknown(Exception):
    """No usable members are known; the message completes "Slack could not be asked (…) …"."""


class SlackGroupResolver:
    """Resolves user group ids to member user ids through the Slack Web API, remembered in the store."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: Store | None = None,
        *,
        fresh_seconds: float = FRESH_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        answer_wait: float = ANSWER_WAIT_SECONDS,
        cold_wait: float = COLD_WAIT_SECONDS,
    ) -> None:
        self.client = client
        self.store = store
        self.max_age = float(max_age_seconds)
        self.answer_wait = answer_wait
        self.cold_wait = max(cold_wait, answer_wait)
        self._fresh: TTLCache[str, frozenset[str]] = TTLCache(maxsize=256, ttl=fresh_seconds)
        self._known: dict[str, _Known] = {}
        self._refreshing: dict[str, _Refresh] = {}
        self._failing: dict[str, str] = {}
        """Groups whose last refresh failed, with why (logged when it started failing)."""
        self._falling_back: set[str] = set()
        """Groups answered from known members since Slack last answered (logged the first time)."""

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's user ids; raises `GroupLookupError` saying why when nobody can tell.

        Waits on Slack at most `answer_wait` when members are known, `cold_wait` when not."""
        cached = self._fresh.get(group_id)
        if cached is not None:
            return cached
        started = time.monotonic()
        answer = self._refresh(group_id).answer
        await asyncio.wait({answer}, timeout=self.answer_wait)  # never cancels the shared lookup
        if isinstance(members := _members(answer), frozenset):
            return members
        try:
            known = await self._last_known(group_id)
        except _Unknown as unknown:
            why = str(unknown)
        else:
            self._note_fallback(group_id, known, _reason(answer, time.monotonic() - started))
            return known.members
        # Nothing usable is known: Slack may still answer within the cold wait.
        if not answer.done():
            await asyncio.wait({answer}, timeout=max(0.0, self.cold_wait - (time.monotonic() - started)))
        if isinstance(members := _members(answer), frozenset):
            return members
        raise GroupLookupError(f"Slack could not be asked ({_reason(answer, time.monotonic() - started)}) {why}")

    async def wait_idle(self) -> None:
        """Wait until no lookup is under way (its answer stored); tests wait on this, not on time."""
        while self._refreshing:
            await asyncio.wait([r.task for r in self._refreshing.values()])

    async def aclose(self) -> None:
        """Stop the lookups under way (at shutdown)."""
        tasks = [r.task for r in self._refreshing.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _refresh(self, group_id: str) -> _Refresh:
        """The group's lookup under way, started when there is none."""
        refresh = self._refreshing.get(group_id)
        if refresh is not None:
            return refresh
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._read(group_id, answer), name=f"group-members-{group_id}")
        refresh = _Refresh(answer, task)
        self._refreshing[group_id] = refresh

        def finished(_: asyncio.Task[None]) -> None:
            if self._refreshing.get(group_id) is refresh:
                del self._refreshing[group_id]

        task.add_done_callback(finished)
        return refresh

    async def _read(self, group_id: str, answer: asyncio.Future[_Answer]) -> None:
        """Ask Slack, hand the answer to whoever waits, then keep it (memory and store)."""
        try:
            try:
                members = await self._ask_slack(group_id)
            except GroupLookupError as exc:
                self._note_failure(group_id, str(exc))
                answer.set_result(exc)
                return
            except Exception as exc:  # anything else from the HTTP stack: still just "Slack could not tell"
                error = GroupLookupError(f"the lookup failed ({type(exc).__name__})")
                self._note_failure(group_id, str(error))
                answer.set_result(error)
                return
            self._fresh[group_id] = members
            self._known[group_id] = _Known(members, time.monotonic())
            if self._failing.pop(group_id, None) is not None or group_id in self._falling_back:
                log.info("Slack answers again for the members of %s", group_id)
            self._falling_back.discard(group_id)
            answer.set_result(members)
            await self._remember(group_id, members)
        finally:
            if not answer.done():  # cancelled at shutdown
                answer.set_result(GroupLookupError("the lookup was stopped"))

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

    async def _last_known(self, group_id: str) -> _Known:
        """The last known members young enough to use (memory, else the store), or `_Unknown`."""
        known = self._known.get(group_id)
        if known is not None and known.age() <= self.max_age:
            return known
        if self.store is None:
            raise _Unknown(self._too_old(known.age()) if known is not None else "and no members are known")
        try:
            async with asyncio.timeout(self.cold_wait):
                saved = await self.store.group_members(group_id)
                now = await self.store.db_now()
        except Exception as exc:
            raise _Unknown(f"nor the store ({type(exc).__name__})") from None
        if saved is not None:
            members, read_at = saved
            stored = _Known(frozenset(members), time.monotonic() - (now - read_at).total_seconds())
            if known is None or stored.read_at > known.read_at:
                known = stored
        if known is None:
            raise _Unknown("and its members were never read")
        self._known[group_id] = known
        if known.age() > self.max_age:
            raise _Unknown(self._too_old(known.age()))
        return known

    def _too_old(self, age: float) -> str:
        return (
            f"and the last known members are {age / 3600:.0f} h old, "
            f"more than the {self.max_age / 3600:g} h allowed"
        )

    def _note_failure(self, group_id: str, reason: str) -> None:
        """Log a failed refresh once per outage (then only at debug level)."""
        if group_id in self._failing:
            log.debug("Slack still cannot tell the members of %s (%s)", group_id, reason)
        else:
            log.warning("Slack could not tell the members of %s (%s); until it does, the last known members "
                        "decide (if young enough)", group_id, reason)
        self._failing[group_id] = reason

    def _note_fallback(self, group_id: str, known: _Known, reason: str) -> None:
        """Log the first decision taken on known members since Slack last answered."""
        if group_id in self._falling_back:
            return
        self._falling_back.add(group_id)
        log.warning("Slack could not be asked for %s (%s); using members read %.0f s ago",
                    group_id, reason, known.age())


def _members(answer: asyncio.Future[_Answer]) -> _Answer | None:
    """The answer if it came (None while Slack is still being asked)."""
    return answer.result() if answer.done() else None


def _reason(answer: asyncio.Future[_Answer], waited: float) -> str:
    """Why Slack's answer could not be used: its error, or that it had not come yet."""
    result = _members(answer)
    if isinstance(result, GroupLookupError):
        return str(result)
    return f"no answer within {waited:.1f} s"
