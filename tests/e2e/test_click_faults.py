"""Faults around clicks and revisions, over real HTTP with Slack's own payload shapes: Check again
is exclusive (one check, one re-sent stop, in one process or two), a revision supersedes posts
of the old outcome still under way, a resumed stop never waits behind housekeeping, and a click
from someone the policy keeps out of a request says no more than `status` would."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from bot.core.models import Actor, utcnow
from bot.sandbox.base import Fault, FaultKind
from bot.slack.blocks import CANCEL_ACTION, CHECK_AGAIN_ACTION, STOP_ACTION
from bot.store.schema import stop_requests
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text
from tests.fakes.slack import Failure

RUNNING = "1457432766"
STOP_PATH = "/1/targets/stop.json"


async def provider_error_outcome(app: AppUnderTest, campaign: str = RUNNING) -> str:
    """A stop that ends `provider_error` (CleverTap answers 503 to every call), announced in both channels."""
    simulator = app.sandbox["clevertap"]
    simulator.add_fault(Fault(kind=FaultKind.STATUS, status=503, times=None))
    request_id: str = buttons((await app.command(f"clevertap {campaign} x")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "provider_error"
    simulator.faults.clear()
    return request_id


async def test_check_again_clicked_twice_in_a_row_checks_once(app: AppUnderTest) -> None:
    request_id = await provider_error_outcome(app)
    simulator = app.sandbox["clevertap"]
    simulator.add_fault(Fault(kind=FaultKind.STATUS, status=503, times=None))  # the check finds it open again
    before = len(simulator.calls_to(STOP_PATH, "POST"))
    await app.click(CHECK_AGAIN_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    after_first = len(simulator.calls_to(STOP_PATH, "POST"))
    assert after_first > before  # CleverTap's stop is repeat-safe: the check sent it once more
    await app.click(CHECK_AGAIN_ACTION, request_id)  # the second click of a double click
    await app.runtime.tasks.wait_idle()
    assert len(simulator.calls_to(STOP_PATH, "POST")) == after_first
    assert "checking this stop again right now, or just did" in message_text(app.slack.of("response_url")[-1].body)


async def test_check_again_is_one_check_across_two_processes(start_app: StartApp) -> None:
    first = await start_app()
    second = await start_app()  # the same database: two processes of one deployment
    requests = [await provider_error_outcome(first, f"14574327{60 + i}") for i in range(4)]
    simulator = first.sandbox["clevertap"]
    # Slow enough for more clicks to come while a check runs, under the stop's own timeout (0.5 s).
    simulator.add_fault(Fault(kind=FaultKind.LATENCY, delay=0.3, match="/targets/stop"))
    before = len(simulator.calls_to(STOP_PATH, "POST"))
    for n, request_id in enumerate(requests, start=1):
        await first.click(CHECK_AGAIN_ACTION, request_id)
        await simulator.wait_for_calls(before + n, STOP_PATH, "POST")  # the first check is under way…
        await asyncio.gather(  # …when more clicks come, on both processes
            *(app.click(CHECK_AGAIN_ACTION, request_id) for app in (second, first, second) for _ in range(3))
        )
    await first.runtime.tasks.wait_idle()
    await second.runtime.tasks.wait_idle()
    resent = len(simulator.calls_to(STOP_PATH, "POST")) - before
    assert resent == len(requests), f"{resent} stops re-sent for {len(requests)} checks"
    for request_id in requests:
        trail = [e.event for e in await first.runtime.store.audit(request_id)]
        assert trail.count("checked_again") == 1, trail


async def test_a_revision_supersedes_an_outcome_post_still_under_way(app: AppUnderTest) -> None:
    simulator = app.sandbox["clevertap"]
    simulator.add_fault(Fault(kind=FaultKind.STATUS, status=503, times=None))
    app.slack.hold("chat.update", INCIDENT)  # Slack holds the incident channel's update (under its timeout)
    request_id = buttons((await app.command(f"clevertap {RUNNING} x")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, request_id)
    # The channel reads "provider error"; the incident channel's update of it is in flight.
    await app.slack.wait_until(lambda: any(c.body.get("channel") == INCIDENT for c in app.slack.of("chat.update")))
    await app.slack.wait_for_outcomes(1)
    simulator.faults.clear()
    await app.click(CHECK_AGAIN_ACTION, request_id)  # the stop is sent again: stopped
    await app.slack.wait_until(lambda: any("stopped" in message_text(m.body) for m in app.slack.messages()))
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "stopped"
    app.slack.release()  # the old outcome's post completes now…
    await app.slack.wait_until(lambda: len([c for c in app.slack.of("chat.update")
                                            if c.body.get("channel") == INCIDENT and c.ts]) >= 1)
    await app.runtime.wait_for_delivery_pass()
    await app.runtime.wait_for_delivery_pass()
    now = {m.body["channel"]: message_text(m.body) for m in app.slack.messages()}
    assert set(now) == {CHANNEL, INCIDENT}
    for channel, text in now.items():  # …and is followed by the current one: no channel contradicts
        assert "stopped" in text and "provider error" not in text, channel
    assert await app.runtime.store.outbox_depth() == 0


async def test_a_stuck_stop_is_resumed_before_expired_cards_are_updated(start_app: StartApp) -> None:
    app = await start_app(STUCK_EXECUTING_SECONDS="4", REQUEST_TTL_SECONDS="60")
    pending = [buttons((await app.command(f"clevertap {RUNNING} sweep {i}")).json())[STOP_ACTION]["value"]
               for i in range(30)]
    stuck = buttons((await app.command("clevertap 1457432767 resume me")).json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    app.slack.fail("response_url", Failure(kind="hang"), times=1000)  # every card update hangs from now on
    store = app.runtime.store
    async with store.engine.begin() as conn:  # 30 cards past their expiry, and a click whose process died
        await conn.execute(update(stop_requests).where(stop_requests.c.id.in_(pending))
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await store.claim_for_execution(stuck, Actor(id="U0ALICE", source="slack"))
    async with store.engine.begin() as conn:
        await conn.execute(update(stop_requests).where(stop_requests.c.id == stuck)
                           .values(updated_at=utcnow() - timedelta(minutes=5)))
    simulator = app.sandbox["clevertap"]
    await simulator.wait_for_calls(1, STOP_PATH, timeout=15)  # resumed while the card updates still hang
    await app.slack.wait_for_outcomes(2)
    app.slack.release()


async def test_a_click_by_someone_kept_out_of_the_request_says_only_not_allowed(
    start_app: StartApp, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\nrequesters = ["U0ALICE"]\n')
    app = await start_app(STOPCAMPAIGN_CONFIG=str(policy))
    request_id = buttons((await app.command(f"clevertap {RUNNING} x")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    for action in (STOP_ACTION, CANCEL_ACTION):
        await app.click(action, request_id, user="U0MALLORY")
        await app.runtime.tasks.wait_idle()
        said = message_text(app.slack.of("response_url")[-1].body)
        assert "Not allowed" in said and "stopped" not in said and "already" not in said, said
    status = await app.command(f"status {request_id}", user="U0MALLORY")
    assert "Not allowed" in message_text(status.json())
