"""A policy of user groups while Slack's ``usergroups.users.list`` hangs (issue 18, item 1).

Slack gives up on a command's answer after 3 s, so every command here is sent with an HTTP
client whose timeout is 3 s: an answer that comes later fails the request. The lookup client's
own timeout is raised for these tests, so a hung ``usergroups.users.list`` lasts until the test
calls ``release()`` (the fake then answers it with an error): nothing here races a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.slack import client as slack_client
from bot.slack.blocks import STOP_ACTION
from bot.slack.groups import SlackGroupResolver
from tests import slack_requests
from tests.e2e.conftest import CHANNEL, AppUnderTest, StartApp, buttons, message_text, sign
from tests.fakes.slack import Failure

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
ONCALL, LEADS = "S0ONCALL", "S0LEADS"
SONARLY_RUNNING = "65f1a0c0e4b0a1b2c3d4e501"
SLACK_BUDGET = 3.0
"""Seconds Slack waits for the answer to a command before it tells the user it failed."""
LOOKUPS = "usergroups.users.list"

PRODUCTION = f"""
[policy]
requesters = ["{ONCALL}", "{LEADS}"]
confirmers = ["{ONCALL}", "{LEADS}"]
channels = ["{CHANNEL}"]

[policy.providers.sonarly]
two_person = true
confirmers = ["{LEADS}"]
"""
"""The README's locked-down production policy, with a two-person rule for one provider."""

REQUESTERS_ONLY = f"""
[policy]
requesters = ["{ONCALL}"]

[policy.providers.sonarly]
requesters = ["{LEADS}"]
"""

APPROVALS = f"""
[policy]
requesters = ["{ALICE}"]
two_person = true
confirmers = ["{LEADS}"]
"""
"""Alice asks without a group lookup; a lead approves: the approval is the check that needs Slack."""


@pytest.fixture(autouse=True)
def hang_until_released(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung group lookup lasts until ``release()``, not until the lookup client gives up."""
    monkeypatch.setattr(slack_client, "LOOKUP_TIMEOUT", 60)


@pytest.fixture
async def within_budget() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that gives up when Slack would: 3 s."""
    async with httpx.AsyncClient(timeout=SLACK_BUDGET) as http:
        yield http


async def start(start_app: StartApp, tmp_path: Path, policy: str) -> AppUnderTest:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    app = await start_app(STOPCAMPAIGN_CONFIG=str(path))
    app.slack.groups.update({ONCALL: [ALICE, BOB], LEADS: [BOB]})
    return app


async def store_members(app: AppUnderTest, members: dict[str, list[str]]) -> None:
    """What an earlier process read from Slack, kept in the store (this one has nothing in memory)."""
    for group, users in members.items():
        await app.runtime.store.save_group_members(group, users)


def resolver(app: AppUnderTest) -> SlackGroupResolver:
    found = app.runtime.service.lifecycle.policy.resolver
    assert isinstance(found, SlackGroupResolver)
    return found


async def command(app: AppUnderTest, http: httpx.AsyncClient, text: str, user: str) -> httpx.Response:
    """``/stopcampaign <text>`` as Slack sends it, answered within Slack's 3 s or failing."""
    body = slack_requests.command_body(text, app.slack.response_url(), user=user, channel=CHANNEL)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    answer = await http.post(f"{app.url}/slack/events", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def has_card(answer: httpx.Response) -> bool:
    return STOP_ACTION in buttons(answer.json())


async def test_commands_are_answered_from_stored_members_while_slack_hangs(
    start_app: StartApp, tmp_path: Path, within_budget: httpx.AsyncClient
) -> None:
    """Production policy, members stored, Slack hung: three concurrent commands all get their card
    within 3 s, sharing one lookup per group; once Slack answers again, the refresh stores the new
    members and they decide the next command."""
    app = await start(start_app, tmp_path, PRODUCTION)
    await store_members(app, {ONCALL: [ALICE, BOB], LEADS: [BOB]})
    app.slack.fail(LOOKUPS, Failure(kind="hang"), times=2)  # one per group: all there should be

    answers = await asyncio.gather(
        *(command(app, within_budget, "clevertap 1457432766", user) for user in (ALICE, BOB, ALICE))
    )
    for answer in answers:
        assert has_card(answer), message_text(answer.json())
    # One lookup per group for all three commands (requesters and confirmers share it too).
    assert sorted(c.body["usergroup"] for c in app.slack.of(LOOKUPS)) == [LEADS, ONCALL]
    outsider = await command(app, within_budget, "clevertap 1457432766", DAVE)
    assert "Not allowed" in message_text(outsider.json()) and not has_card(outsider)

    app.slack.groups.update({ONCALL: [ALICE, CAROL], LEADS: [ALICE]})  # BOB left both, CAROL joined on-call
    app.slack.release()
    await resolver(app).wait_idle()  # the hung lookups ended (with an error): nothing learned
    assert has_card(await command(app, within_budget, "clevertap 1457432766", ALICE))
    await resolver(app).wait_idle()  # that command's refresh asked Slack again, which answered
    for group, members in ((ONCALL, [ALICE, CAROL]), (LEADS, [ALICE])):
        saved = await app.runtime.store.group_members(group)
        assert saved is not None and sorted(saved[0]) == members
    assert has_card(await command(app, within_budget, "clevertap 1457432766", CAROL))
    assert "Not allowed" in message_text((await command(app, within_budget, "clevertap 1457432766", BOB)).json())


async def test_a_requesters_only_policy_refuses_nobody_while_slack_hangs(
    start_app: StartApp, tmp_path: Path, within_budget: httpx.AsyncClient
) -> None:
    app = await start(start_app, tmp_path, REQUESTERS_ONLY)
    await store_members(app, {ONCALL: [ALICE, BOB]})
    app.slack.fail(LOOKUPS, Failure(kind="hang"), times=1)
    answers = await asyncio.gather(
        *(command(app, within_budget, "clevertap 1457432766", user) for user in (ALICE, BOB, ALICE))
    )
    for answer in answers:
        assert has_card(answer), message_text(answer.json())
    assert len(app.slack.of(LOOKUPS)) == 1


async def test_an_approval_under_a_group_reaches_the_provider_while_slack_hangs(
    start_app: StartApp, tmp_path: Path, within_budget: httpx.AsyncClient
) -> None:
    """Two-person rule, confirmers = a group, Slack hung: the approval's policy check uses the
    stored members and the provider gets the stop while the lookup still hangs."""
    app = await start(start_app, tmp_path, APPROVALS)
    await store_members(app, {LEADS: [BOB]})
    app.slack.fail(LOOKUPS, Failure(kind="hang"), times=1)
    asked = await command(app, within_budget, f"sonarly {SONARLY_RUNNING} wrong list", ALICE)
    assert has_card(asked), message_text(asked.json())
    request_id = buttons(asked.json())[STOP_ACTION]["value"]

    payload = slack_requests.block_actions_payload(
        request_id, app.slack.response_url(), user=BOB, channel=CHANNEL, action_id=STOP_ACTION
    )
    body = slack_requests.interactive_body(payload)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    clicked = await within_budget.post(f"{app.url}/slack/events", content=body, headers=headers)
    assert clicked.status_code == 200
    await app.sandbox["sonarly"].wait_for_calls(1, "/stop", "POST")  # Slack is still hung
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.confirmed_by is not None and stored.confirmed_by.id == BOB
    app.slack.release()
    await resolver(app).wait_idle()


async def test_a_cold_cache_refuses_clearly_within_the_budget(
    start_app: StartApp, tmp_path: Path, within_budget: httpx.AsyncClient
) -> None:
    """Nothing stored and Slack hung: the command is refused within 3 s, saying the membership is
    unknown; once Slack answers, the same user gets the card."""
    app = await start(start_app, tmp_path, REQUESTERS_ONLY)
    app.slack.fail(LOOKUPS, Failure(kind="hang"), times=1)
    refused = await command(app, within_budget, "clevertap 1457432766", ALICE)
    text = message_text(refused.json())
    assert not has_card(refused) and f"Membership of <!subteam^{ONCALL}> is unknown" in text, text
    app.slack.release()
    await resolver(app).wait_idle()
    assert has_card(await command(app, within_budget, "clevertap 1457432766", ALICE))


async def test_a_hung_group_does_not_hold_up_another_group(
    start_app: StartApp, tmp_path: Path, within_budget: httpx.AsyncClient
) -> None:
    """The on-call group's lookup hangs; a command that needs only the leads group is answered
    from Slack at once, and one that needs on-call is refused within 3 s (nothing stored)."""
    app = await start(start_app, tmp_path, REQUESTERS_ONLY)
    app.slack.fail(LOOKUPS, Failure(kind="hang"), times=1)  # the first lookup: on-call's
    hung = asyncio.create_task(command(app, within_budget, "clevertap 1457432766", ALICE))
    await app.slack.wait_for(LOOKUPS, 1)
    leads = await command(app, within_budget, f"sonarly {SONARLY_RUNNING}", BOB)
    assert has_card(leads), message_text(leads.json())
    assert "is unknown" in message_text((await hung).json())
    app.slack.release()
    await resolver(app).wait_idle()
