"""Slack outages: the outcome is stored first and delivered from the outbox once Slack answers,
even by another process after a restart; permanent refusals are recorded, not retried forever."""

from __future__ import annotations

from bot.core.models import RequestState
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text
from tests.fakes.slack import Failure


async def stop_one(app: AppUnderTest) -> str:
    request_id: str = buttons((await app.command("clevertap 1457432766 wrong segment")).json())[STOP_ACTION]["value"]
    await app.click(STOP_ACTION, request_id)
    await app.sandbox["clevertap"].wait_for_calls(1, "/1/targets/stop.json")
    await app.runtime.tasks.wait_idle()
    return request_id


async def test_an_outcome_survives_a_slack_outage_and_a_restart(start_app: StartApp) -> None:
    first = await start_app()
    first.slack.down = True
    request_id = await stop_one(first)
    stored = await first.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE and stored.outcome is not None
    assert await first.runtime.store.outbox_depth() == 2  # channel and incident posts owed
    assert first.server is not None
    await first.server.stop()  # the process goes away with the posts still owed

    first.slack.down = False
    posted_before = len(first.slack.outcomes())
    second = await start_app()  # a new process on the same database
    posts = (await second.slack.wait_for_outcomes(posted_before + 2, timeout=30))[posted_before:]
    assert [p.body["channel"] for p in posts] == [CHANNEL, INCIDENT]
    assert "stopped" in message_text(posts[0].body)
    assert f"/archives/{CHANNEL}/p" in message_text(posts[1].body)  # the link to the channel post
    await second.runtime.wait_for_delivery_pass()
    assert await second.runtime.store.outbox_depth() == 0
    events = [e.event for e in await second.runtime.store.audit(request_id)]
    assert events.count("announce_failed") == 2 and events.count("announced") == 2
    assert len(second.sandbox["clevertap"].calls_to("/1/targets/stop.json")) == 1  # never stopped again


async def test_a_short_outage_is_retried_by_the_same_process(app: AppUnderTest) -> None:
    app.slack.down = True
    request_id = await stop_one(app)
    failed = len(app.slack.outcomes())
    app.slack.down = False
    posts = (await app.slack.wait_for_outcomes(failed + 2, timeout=30))[failed:]
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    await app.runtime.wait_for_delivery_pass()
    assert await app.runtime.store.outbox_depth() == 0
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "stopped"


async def test_a_permanent_refusal_is_recorded_and_not_retried(app: AppUnderTest) -> None:
    app.slack.fail("chat.postMessage", Failure(kind="error", error="invalid_blocks"))  # the channel post
    request_id = await stop_one(app)
    assert await app.runtime.store.outbox_depth() == 0
    trail = await app.runtime.store.audit(request_id)
    failed = [e.detail for e in trail if e.event == "announce_failed"]
    assert failed == [{"target": "channel", "error": "invalid_blocks", "will_retry": False, "attempt": 1}]
    assert [e.detail["target"] for e in trail if e.event == "announced"] == ["incident"]
    card = app.slack.of("response_url")[-1].body  # the requester's card, replaced by the outcome
    assert card.get("replace_original") is True and "invalid_blocks" in message_text(card)  # told another way
