"""The user group resolver against the fake Slack Web API over HTTP, with a real store: one
lookup per group shared by every caller, known members used when Slack is slow, a refresh
failure logged once, and a cold cache that refuses after a short wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.policy import GroupLookupError
from bot.httpserver import start_server
from bot.slack.groups import SlackGroupResolver
from bot.store.repository import Store
from tests.fakes.slack import Failure, FakeSlack

ONCALL, LEADS = "S0ONCALL", "S0LEADS"
LOOKUPS = "usergroups.users.list"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    server = await start_server(fake.app)
    fake.url = server.url
    fake.groups.update({ONCALL: ["U0ALICE", "U0BOB"], LEADS: ["U0BOB"]})
    yield fake
    fake.release()
    await server.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store.from_url(f"sqlite:///{tmp_path / 'groups.db'}")
    await s.initialize()
    yield s
    await s.close()


@pytest.fixture
async def resolver(slack: FakeSlack, store: Store) -> AsyncIterator[SlackGroupResolver]:
    """A resolver whose lookups last until the fake answers (a hang: until `release()`)."""
    client = AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/", timeout=60)
    groups = SlackGroupResolver(client, store)
    yield groups
    slack.release()
    await groups.aclose()


async def test_concurrent_callers_share_one_lookup_and_use_stored_members(
    slack: FakeSlack, store: Store, resolver: SlackGroupResolver
) -> None:
    await store.save_group_members(ONCALL, ["U0ALICE"])
    slack.fail(LOOKUPS, Failure(kind="hang"))
    answers = await asyncio.gather(*(resolver.members(ONCALL) for _ in range(5)))
    assert answers == [frozenset({"U0ALICE"})] * 5
    assert len(slack.of(LOOKUPS)) == 1
    assert await resolver.members(LEADS) == frozenset({"U0BOB"})  # another group is not held up
    slack.release()
    await resolver.wait_idle()


async def test_members_slack_gives_after_an_outage_are_used_and_stored(
    slack: FakeSlack, store: Store, resolver: SlackGroupResolver
) -> None:
    """Slack down (fast errors): the stored members decide; back: its members decide and are kept."""
    await store.save_group_members(ONCALL, ["U0ALICE"])
    slack.down = True
    for _ in range(3):
        assert await resolver.members(ONCALL) == frozenset({"U0ALICE"})
        await resolver.wait_idle()
    assert len(slack.of(LOOKUPS)) == 3  # each call after a failed lookup asks again, one at a time
    slack.down = False
    assert await resolver.members(ONCALL) == frozenset({"U0ALICE", "U0BOB"})
    await resolver.wait_idle()
    saved = await store.group_members(ONCALL)
    assert saved is not None and sorted(saved[0]) == ["U0ALICE", "U0BOB"]


async def test_a_failing_refresh_is_logged_once_per_outage(
    slack: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.save_group_members(ONCALL, ["U0ALICE"])
    client = AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/", timeout=60)
    resolver = SlackGroupResolver(client, store, fresh_seconds=0)  # every call asks Slack
    caplog.set_level(logging.INFO, logger="bot.slack.groups")

    async def outage() -> list[str]:
        caplog.clear()
        slack.down = True
        for _ in range(4):
            await resolver.members(ONCALL)
            await resolver.wait_idle()
        slack.down = False
        await resolver.members(ONCALL)
        await resolver.wait_idle()
        return [r.levelname for r in caplog.records]

    # Once that the refresh failed, once that the known members decide, once that Slack is back;
    # and the same for the next outage.
    assert await outage() == ["WARNING", "WARNING", "INFO"]
    assert await outage() == ["WARNING", "WARNING", "INFO"]
    await resolver.aclose()


async def test_a_cold_cache_refuses_after_a_short_wait(slack: FakeSlack, resolver: SlackGroupResolver) -> None:
    slack.fail(LOOKUPS, Failure(kind="hang"))
    with pytest.raises(GroupLookupError, match=r"no answer within .* and its members were never read"):
        await resolver.members(ONCALL)
    slack.release()
    await resolver.wait_idle()
    assert await resolver.members(ONCALL) == frozenset({"U0ALICE", "U0BOB"})


async def test_members_too_old_are_not_used(slack: FakeSlack, store: Store) -> None:
    await store.save_group_members(ONCALL, ["U0ALICE"])
    client = AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/", timeout=60)
    resolver = SlackGroupResolver(client, store, max_age_seconds=0)
    slack.down = True
    with pytest.raises(GroupLookupError, match=r"could not be asked \(.+\) and the last known members are 0 h old"):
        await resolver.members(ONCALL)
    await resolver.aclose()
