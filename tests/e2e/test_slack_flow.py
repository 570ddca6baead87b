"""The Slack flow over real HTTP: signed commands and clicks, fake Slack API, CleverTap sandbox."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.core.models import RequestState, utcnow
from bot.sandbox.base import Fault, FaultKind
from bot.sandbox.clevertap import ACCOUNT_ID, PASSCODE
from bot.slack.blocks import CANCEL_ACTION, CHECK_AGAIN_ACTION, STOP_ACTION
from bot.store.schema import stop_requests
from tests.e2e.conftest import (
    CHANNEL,
    INCIDENT,
    OTHER,
    REQUESTER,
    STARTUP_CHECK,
    AppUnderTest,
    StartApp,
    buttons,
    message_text,
)
from tests.fakes.slack import Failure

RUNNING = "1457432766"
SCHEDULED = "1457432767"
COMPLETED = "1457432768"
STOPPED = "1457432769"


async def open_card(app: AppUnderTest, text: str = f"clevertap {RUNNING} wrong segment") -> tuple[dict[str, Any], str]:
    """Send a command; return the card from the ack and the request id its Stop button carries."""
    response = await app.command(text)
    assert response.status_code == 200
    card = response.json()
    assert card["response_type"] == "ephemeral"
    request_id = buttons(card)[STOP_ACTION]["value"]
    assert await app.runtime.service.saved(request_id)  # written right after the ack
    return card, request_id


async def stop_calls(app: AppUnderTest) -> int:
    return len(app.sandbox["clevertap"].calls_to("/1/targets/stop.json"))


async def request_count(app: AppUnderTest) -> int:
    async with app.runtime.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(stop_requests))).scalar_one())


# ----- the command and its card ------------------------------------------------------------------


async def test_command_acks_with_a_confirmation_card_and_calls_nobody(app: AppUnderTest) -> None:
    card, request_id = await open_card(app)
    text = message_text(card)
    for expected in (
        "CleverTap",
        "default",
        "127.0.0.1",
        RUNNING,
        "wrong segment",
        "no preview",
        "cannot be resumed",
        "Expires",
    ):
        assert expected in text, expected
    stop_button = buttons(card)[STOP_ACTION]
    assert stop_button["style"] == "danger"
    assert "confirm" in stop_button
    assert buttons(card)[CANCEL_ACTION]["value"] == request_id
    assert len(request_id) == 12 and request_id.isalnum() and request_id.islower()  # 60 random bits
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.PENDING
    assert stored.requester.id == REQUESTER and stored.channel_id == CHANNEL
    assert await stop_calls(app) == 0
    # Nothing sent to Slack before or with the ack (but the start-up check).
    assert [c.method for c in app.slack.calls if c.method not in STARTUP_CHECK] == []


async def test_help_shows_usage_and_providers(start_app: StartApp) -> None:
    app = await start_app(providers=("clevertap",))
    for text in ("help", "HELP"):  # no text at all opens the form (tests/e2e/test_slack_forms.py)
        response = await app.command(text)
        assert response.status_code == 200
        body = message_text(response.json())
        assert "Usage: /stopcampaign" in body
        assert "clevertap" in body and "ct" in body
        assert "Not configured: Sonarly" in body  # the providers without credentials are named
    assert await request_count(app) == 0


async def test_invalid_commands_explain_the_problem_and_store_nothing(start_app: StartApp) -> None:
    app = await start_app(providers=("clevertap",))
    cases = {
        "mailchimp 123": "Unknown provider",
        "clevertap": "Missing the campaign id",
        "clevertap abc": "positive whole number",
        "clevertap -5": "positive whole number",
        "clevertap 0": "positive",
        "clevertap:nope 123": "no account 'nope'",
        "clevertap 1457432766 1457432767": "One campaign per command",
        "sonarly 507f1f77bcf86cd799439011": "not configured",
    }
    for text, expected in cases.items():
        response = await app.command(text)
        assert response.status_code == 200, text
        body = response.json()
        assert body["response_type"] == "ephemeral"
        assert expected in message_text(body), (text, body)
        assert "Usage: /stopcampaign" in message_text(body)
        assert STOP_ACTION not in buttons(body)
    assert await request_count(app) == 0
    assert await stop_calls(app) == 0


# ----- Stop ------------------------------------------------------------------------------------


async def test_stop_calls_the_provider_once_and_posts_the_outcome_everywhere(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    click = await app.click(STOP_ACTION, request_id)
    assert click.status_code == 200

    posts = await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()

    calls = app.sandbox["clevertap"].calls_to("/1/targets/stop.json")
    assert len(calls) == 1
    call = calls[0]
    assert call.method == "POST"
    assert call.json() == {"id": int(RUNNING)}
    assert call.headers["x-clevertap-account-id"] == ACCOUNT_ID
    assert call.headers["x-clevertap-passcode"] == PASSCODE
    assert call.headers["content-type"] == "application/json"
    assert app.sandbox["clevertap"].campaigns[RUNNING].state == "stopped"

    channel_post, incident_post = posts
    assert channel_post.body["channel"] == CHANNEL
    assert incident_post.body["channel"] == INCIDENT
    for post in posts:
        text = message_text(post.body)
        for expected in ("stopped", f"<@{REQUESTER}>", "CleverTap", RUNNING, "wrong segment"):
            assert expected in text, expected
    assert f"/archives/{CHANNEL}/p" in message_text(incident_post.body)

    card_updates = app.slack.of("response_url")
    assert len(card_updates) == 2
    assert card_updates[0].body["replace_original"] is True
    assert "Stopping" in message_text(card_updates[0].body)
    assert buttons(card_updates[0].body) == {}
    assert "stopped" in message_text(card_updates[1].body) and buttons(card_updates[1].body) == {}

    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert stored.outcome is not None and stored.outcome.status.value == "stopped"
    assert stored.outcome.confirmed_by is not None and stored.outcome.confirmed_by.id == REQUESTER
    events = [entry.event for entry in await app.runtime.store.audit(request_id)]
    assert events[:2] == ["created", "confirmed"] and events.count("outcome") == 1
    assert events.count("announced") == 2 and events.count("record_started") <= 2
    # One live record per channel: "… is stopping …", then the outcome in place of it.
    assert len(app.slack.messages()) == 2
    assert len(app.slack.of("chat.update")) == events.count("record_started")
    for update_call in app.slack.of("chat.update"):  # each record's thread holds the audit trail
        replies = app.slack.thread_replies(update_call.body["channel"], update_call.body["ts"])
        assert len(replies) == 1 and request_id in replies[0].body["text"] and "confirmed" in replies[0].body["text"]


async def test_already_stopped_and_completed_campaigns_are_reported_as_such(app: AppUnderTest) -> None:
    for campaign, status in ((STOPPED, "already stopped"), (COMPLETED, "already completed")):
        _, request_id = await open_card(app, f"ct {campaign}")
        await app.click(STOP_ACTION, request_id)
        await app.runtime.tasks.wait_idle()
        stored = await app.runtime.store.get(request_id)
        assert stored is not None and stored.outcome is not None
        assert stored.outcome.status.label == status
    assert len(app.slack.outcomes()) == 4


async def test_not_found_campaign_is_reported(app: AppUnderTest) -> None:
    _, request_id = await open_card(app, "clevertap 1999999999")
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert "not found" in message_text(posts[0].body)
    assert "73" in message_text(posts[0].body)


async def test_concurrent_stop_clicks_reach_the_provider_once(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    clicks = await asyncio.gather(*(app.click(STOP_ACTION, request_id) for _ in range(12)))
    assert all(c.status_code == 200 for c in clicks)
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 1
    assert len(app.slack.outcomes()) == 2
    # every losing click was answered (ephemeral) instead of being dropped
    refusals = [c for c in app.slack.of("response_url") if c.body.get("replace_original") is False]
    assert len(refusals) == 11


async def test_a_retried_click_after_the_outcome_says_it_has_ended(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    await app.click(STOP_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 1
    notices = [c for c in app.slack.of("response_url") if c.body.get("replace_original") is False]
    assert "already ended" in message_text(notices[-1].body)


async def test_another_user_cannot_stop_or_cancel(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    for action in (STOP_ACTION, CANCEL_ACTION):
        response = await app.click(action, request_id, user=OTHER)
        assert response.status_code == 200
        await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 0
    refusals = app.slack.of("response_url")
    assert len(refusals) == 2
    for refusal in refusals:
        assert refusal.body["replace_original"] is False
        assert refusal.body["response_type"] == "ephemeral"
        assert "Only" in message_text(refusal.body)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.PENDING
    assert [e.event for e in await app.runtime.store.audit(request_id)] == ["created", "refused", "refused"]
    # the requester still can
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)
    assert await stop_calls(app) == 1


# ----- Cancel and expiry -----------------------------------------------------------------------


async def test_cancel_ends_the_request_without_a_provider_call(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    await app.click(CANCEL_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 0
    card = app.slack.of("response_url")[-1].body
    assert card["replace_original"] is True and "cancelled" in message_text(card).lower()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.CANCELLED

    await app.click(STOP_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 0
    assert "cancelled by" in message_text(app.slack.of("response_url")[-1].body)
    assert app.slack.of("chat.postMessage") == []


async def test_an_expired_request_cannot_be_stopped(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    async with app.runtime.store.engine.begin() as conn:
        await conn.execute(
            update(stop_requests)
            .where(stop_requests.c.id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    await app.click(STOP_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 0
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.EXPIRED
    assert "expired" in message_text(app.slack.of("response_url")[-1].body)


async def test_the_expiry_sweep_updates_the_card(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    async with app.runtime.store.engine.begin() as conn:
        await conn.execute(
            update(stop_requests)
            .where(stop_requests.c.id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await app.runtime.service.expire_due()
    assert [r.id for r in expired] == [request_id]
    update_call = await app.slack.wait_for("response_url", 1)
    assert update_call[0].body["replace_original"] is True
    assert "expired" in message_text(update_call[0].body)


# ----- request verification ----------------------------------------------------------------------


async def test_bad_signature_and_stale_timestamp_are_rejected(app: AppUnderTest) -> None:
    bad = await app.command(f"clevertap {RUNNING}", secret="not-the-secret")
    stale = await app.command(f"clevertap {RUNNING}", timestamp=int(time.time()) - 60 * 10)
    assert bad.status_code == 401
    assert stale.status_code == 401
    unsigned = await app.http.post(
        f"{app.url}/slack/events",
        content=b"command=%2Fstopcampaign",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 401
    assert await request_count(app) == 0


async def test_signed_but_malformed_payloads_never_crash(app: AppUnderTest) -> None:
    bodies = [
        b"payload=not-json",
        b"payload=%7B%7D",
        b"payload=" + json.dumps({"type": "block_actions", "actions": "nope"}).encode(),
        b"payload=" + json.dumps({"type": "block_actions", "actions": [{"action_id": 5}], "user": {}}).encode(),
        b"command=%2Fstopcampaign&text=x",  # no user, no response_url
        b"garbage",
        b"",
    ]
    for body in bodies:
        response = await app.post_signed(body, "application/x-www-form-urlencoded")
        assert response.status_code < 500, (body, response.status_code)
    unknown = await app.click(STOP_ACTION, "unknown-request-id")
    assert unknown.status_code == 200  # a request id, but of no request: the clicker is told so
    for value in ("", "x" * 500):  # a button that carries no request id lacks what Stop needs
        response = await app.click(STOP_ACTION, value)
        assert response.status_code == 400 and "no usable request id" in response.text
    weird = await app.click(STOP_ACTION, "abc", payload_extra={"user": "not-a-dict"})
    assert weird.status_code == 400
    assert "user is not what Slack sends" in weird.text
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 0
    health = await app.http.get(f"{app.url}/healthz")
    assert health.json()["status"] == "ok"


# ----- slow and failing providers ------------------------------------------------------------------


async def test_a_slow_provider_does_not_delay_the_ack(start_app: StartApp) -> None:
    app = await start_app(PROVIDER_TIMEOUT_SECONDS="30", PROVIDER_DEADLINE_SECONDS="60")
    simulator = app.sandbox["clevertap"]
    simulator.add_fault(Fault(kind=FaultKind.LATENCY, delay=30))
    _, request_id = await open_card(app)
    click = await app.click(STOP_ACTION, request_id)
    assert click.status_code == 200
    # The ack came back while the provider is still holding the stop call.
    await simulator.wait_for_calls(1, "/1/targets/stop.json")
    assert app.slack.of("chat.postMessage") == []
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.EXECUTING
    # A second command is also answered at once while the stop is in flight.
    second = await app.command(f"clevertap {SCHEDULED}")
    assert STOP_ACTION in buttons(second.json())
    simulator.release_held()
    posts = await app.slack.wait_for_outcomes(2)
    assert "stopped" in message_text(posts[0].body)


async def test_persistent_rate_limit_is_reported_as_rate_limited(app: AppUnderTest) -> None:
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.STATUS, status=429, times=None))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.status.value == "rate_limited"
    assert stored.outcome.provider_code == "88"
    assert stored.outcome.attempts > 1  # CleverTap's stop is repeat-safe, so it was retried


async def test_a_transient_rate_limit_is_retried_to_success(app: AppUnderTest) -> None:
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.STATUS, status=429, times=2))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert "stopped" in message_text(posts[0].body)
    assert await stop_calls(app) == 3


async def test_server_errors_become_provider_error(app: AppUnderTest) -> None:
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.STATUS, status=503, times=None))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(2)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.status.value == "provider_error"
    assert stored.outcome.http_status == 503


async def test_a_provider_timeout_is_reported_honestly_and_the_request_ends(app: AppUnderTest) -> None:
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.TIMEOUT, times=None))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert "unknown" in message_text(posts[0].body)
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert stored.outcome is not None and stored.outcome.status.value == "unknown"


async def test_an_unreachable_provider_is_reported_as_unreachable(start_app: StartApp) -> None:
    app = await start_app(CLEVERTAP_BASE_URL="http://127.0.0.1:9")  # discard port: connection refused
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert "unreachable" in message_text(posts[0].body)


# ----- Slack failures ------------------------------------------------------------------------------


async def test_the_outcome_is_stored_when_slack_refuses_the_post(app: AppUnderTest) -> None:
    app.slack.fail("chat.postMessage", Failure(kind="error", error="invalid_blocks"), times=2)
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for("chat.postMessage", 2)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert stored.outcome is not None and stored.outcome.status.value == "stopped"
    events = [e.event for e in await app.runtime.store.audit(request_id)]
    assert events.count("announce_failed") == 2  # a permanent refusal is not retried
    assert await app.runtime.store.outbox_depth() == 0
    # the requester's card shows the outcome, and why the channels did not get it
    card = app.slack.of("response_url")[-1].body
    assert "stopped" in message_text(card) and "invalid_blocks" in message_text(card)


async def test_the_outcome_is_stored_when_slack_is_down(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    app.slack.down = True
    await app.click(STOP_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert await stop_calls(app) == 1
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "stopped"


async def test_a_slack_rate_limit_is_retried(app: AppUnderTest) -> None:
    app.slack.fail("chat.postMessage", Failure(kind="ratelimit", retry_after=0))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    top_level = [c for c in app.slack.of("chat.postMessage") if not c.body.get("thread_ts")]
    assert len(top_level) == 3  # the 429, then one message per channel (the audit trail goes in its thread)
    events = [e.event for e in await app.runtime.store.audit(request_id)]
    assert "announce_failed" not in events


async def test_commands_are_answered_while_slack_web_api_is_down(app: AppUnderTest) -> None:
    app.slack.down = True
    response = await app.command(f"clevertap {RUNNING}")
    assert STOP_ACTION in buttons(response.json())


async def test_without_incident_channel_only_the_channel_gets_the_outcome(start_app: StartApp) -> None:
    app = await start_app(INCIDENT_CHANNEL="")
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    await app.slack.wait_for_outcomes(1)
    await app.runtime.tasks.wait_idle()
    assert [p.body["channel"] for p in app.slack.outcomes()] == [CHANNEL]


async def test_healthz_says_ok_without_internals(app: AppUnderTest) -> None:
    response = await app.http.get(f"{app.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_hanging_card_update_does_not_delay_the_stop(app: AppUnderTest) -> None:
    _, request_id = await open_card(app)
    app.slack.fail("response_url", Failure(kind="hang"))
    await app.click(STOP_ACTION, request_id)
    # The stop reaches the provider while Slack still holds the "Stopping…" update.
    await app.sandbox["clevertap"].wait_for_calls(1, "/1/targets/stop.json", timeout=3)
    posts = await app.slack.wait_for_outcomes(2)
    assert "stopped" in message_text(posts[0].body)
    app.slack.release()


async def test_a_reason_cannot_mention_the_channel(app: AppUnderTest) -> None:
    _, request_id = await open_card(app, f"clevertap {RUNNING} &lt;!channel&gt; look &lt;@U0BOSS&gt;")
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    for post in posts:
        assert "<!channel>" not in post.body["text"] and "<@U0BOSS>" not in post.body["text"]
        assert "<!channel>" not in message_text(post.body)
        assert "&lt;!channel&gt;" in post.body["text"]


async def test_a_second_pending_request_tells_who_already_has_one(app: AppUnderTest) -> None:
    first = await app.command("clevertap 1457432766 wrong segment", user=OTHER)
    first_id = buttons(first.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    assert not [c for c in app.slack.of("response_url") if "already has a stop request" in message_text(c.body)]

    second = await app.command("clevertap 1457432766 wrong segment too")
    second_id = buttons(second.json())[STOP_ACTION]["value"]  # they may still go on
    await app.runtime.tasks.wait_idle()
    notes = [c.body for c in app.slack.of("response_url") if "already has a stop request" in message_text(c.body)]
    assert len(notes) == 1 and notes[0]["replace_original"] is False
    assert f"<@{OTHER}>" in message_text(notes[0]) and first_id in message_text(notes[0])
    await app.click(STOP_ACTION, second_id)
    await app.slack.wait_for_outcomes(2)
    assert len(app.sandbox["clevertap"].calls_to("/1/targets/stop.json", "POST")) == 1


async def test_check_again_settles_an_open_outcome_and_updates_the_records_in_place(app: AppUnderTest) -> None:
    simulator = app.sandbox["clevertap"]
    simulator.add_fault(Fault(kind=FaultKind.STATUS, status=503, times=None))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    first = await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    assert all("provider error" in message_text(m.body) for m in first)
    assert all(blocks_ids(m.body) >= {"recheck"} for m in first)
    updates = len(app.slack.of("chat.update"))

    simulator.faults.clear()  # the provider is back; CleverTap has no state read, its stop is repeat-safe
    stops_before = len(simulator.calls_to("/1/targets/stop.json", "POST"))
    await asyncio.gather(  # a double click: one check, one stop sent again, never two
        app.click(CHECK_AGAIN_ACTION, request_id, user=OTHER), app.click(CHECK_AGAIN_ACTION, request_id)
    )
    await app.slack.wait_for("chat.update", updates + 2)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None and stored.outcome.status.value == "stopped"
    assert "Checked again" in stored.outcome.detail
    messages = app.slack.messages()
    assert len(messages) == 2  # updated in place, no new top-level message
    for message in messages:
        assert "stopped" in message_text(message.body) and "recheck" not in blocks_ids(message.body)
    assert simulator.campaigns[RUNNING].state == "stopped"
    assert len(simulator.calls_to("/1/targets/stop.json", "POST")) == stops_before + 1
    events = [e.event for e in await app.runtime.store.audit(request_id)]
    assert events.count("checked_again") == 1 and events.count("checking_again") == 1

    # A final outcome offers nothing to check again.
    await app.click(CHECK_AGAIN_ACTION, request_id)
    await app.runtime.tasks.wait_idle()
    assert "nothing to check again" in message_text(app.slack.of("response_url")[-1].body)


def blocks_ids(message: dict[str, Any]) -> set[str]:
    return {str(b.get("block_id")) for b in message.get("blocks", []) if b.get("block_id")}


async def test_the_live_record_says_who_is_stopping_then_becomes_the_outcome(app: AppUnderTest) -> None:
    """While the provider takes its time, each channel already reads "… is stopping …"; then
    that same message becomes the outcome, and its thread holds the audit trail."""
    app.sandbox["clevertap"].add_fault(Fault(kind=FaultKind.LATENCY, delay=1.0, match="/targets/stop"))
    _, request_id = await open_card(app)
    await app.click(STOP_ACTION, request_id)
    records = await app.slack.wait_for("chat.postMessage", 2)
    assert {r.body["channel"] for r in records} == {CHANNEL, INCIDENT}
    for record in records:
        text = message_text(record.body)
        assert f"<@{REQUESTER}> is stopping CleverTap campaign `{RUNNING}`" in text and "wrong segment" in text
    assert "/archives/" in message_text(next(r for r in records if r.body["channel"] == INCIDENT).body)
    assert await stop_calls(app) <= 1  # the record went out beside the stop, not after it
    await app.slack.wait_for("chat.update", 2)
    await app.runtime.tasks.wait_idle()
    messages = app.slack.messages()
    assert [(m.body["channel"], m.ts) for m in messages] == [(r.body["channel"], r.ts) for r in records]
    for message in messages:
        assert message.method == "chat.update" and "stopped" in message_text(message.body)
        replies = app.slack.thread_replies(message.body["channel"], str(message.ts))
        assert len(replies) == 1 and "outcome" in replies[0].body["text"]
