"""The form (global shortcut, `/stopcampaign` with no text, message shortcut) and the Home tab,
driven over real HTTP as Slack would: signed payloads in, the fake Slack Web API out."""

from __future__ import annotations

import json
from typing import Any

from bot.slack import views
from bot.slack.blocks import STOP_ACTION
from tests import slack_requests
from tests.e2e.conftest import CHANNEL, INCIDENT, REQUESTER, AppUnderTest, buttons, message_text

CLEVERTAP = "1457432766"


async def post_payload(app: AppUnderTest, payload: dict[str, Any]) -> Any:
    return await app.post_signed(slack_requests.interactive_body(payload), "application/x-www-form-urlencoded")


def shortcut(callback_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "shortcut", "callback_id": callback_id, "trigger_id": "trigger-123",
        "user": {"id": REQUESTER, "username": "alice", "team_id": "T0FAKE"}, "team": {"id": "T0FAKE"},
        "token": "legacy", "action_ts": "1700000000.1", **extra,
    }


def submission(app: AppUnderTest, target: str | None, campaign: str | None, reason: str = "") -> dict[str, Any]:
    values: dict[str, Any] = {
        views.TARGET_BLOCK: {views.TARGET_ACTION: {"type": "static_select",
                                                   "selected_option": {"value": target} if target else None}},
        views.CAMPAIGN_BLOCK: {views.CAMPAIGN_ACTION: {"type": "plain_text_input", "value": campaign}},
        views.REASON_BLOCK: {views.REASON_ACTION: {"type": "plain_text_input", "value": reason or None}},
        views.CHANNEL_BLOCK: {views.CHANNEL_ACTION: {"type": "conversations_select", "selected_conversation": CHANNEL}},
    }
    return {
        "type": "view_submission", "team": {"id": "T0FAKE"}, "token": "legacy", "trigger_id": "trigger-456",
        "user": {"id": REQUESTER, "username": "alice", "team_id": "T0FAKE"},
        "view": {"id": "V1", "type": "modal", "callback_id": views.FORM_CALLBACK,
                 "private_metadata": json.dumps({"channel": CHANNEL}), "state": {"values": values}},
        "response_urls": [{"block_id": views.CHANNEL_BLOCK, "action_id": views.CHANNEL_ACTION, "channel_id": CHANNEL,
                           "response_url": app.slack.response_url()}],
    }


async def opened_view(app: AppUnderTest, count: int = 1) -> dict[str, Any]:
    calls = await app.slack.wait_for("views.open", count)
    assert calls[-1].body["trigger_id"] == "trigger-123"
    view = calls[-1].body["view"]
    decoded: dict[str, Any] = json.loads(view) if isinstance(view, str) else view
    return decoded


async def test_the_global_shortcut_opens_the_form_with_the_configured_accounts(app: AppUnderTest) -> None:
    answer = await post_payload(app, shortcut(views.FORM_SHORTCUT))
    assert answer.status_code == 200
    view = await opened_view(app)
    assert view["callback_id"] == views.FORM_CALLBACK
    picker = view["blocks"][0]["element"]
    groups = {g["label"]["text"]: [o["value"] for o in g["options"]] for g in picker["option_groups"]}
    assert groups["CleverTap"] == ["clevertap:default"] and "sonarly:default" in groups["Sonarly"]


async def test_a_command_with_no_text_opens_the_form_and_help_stays_text(app: AppUnderTest) -> None:
    body = slack_requests.command_body("", app.slack.response_url(), user=REQUESTER, channel=CHANNEL)
    body = body.replace(b"trigger_id=123.456.abc", b"trigger_id=trigger-123")
    answer = await app.post_signed(body, "application/x-www-form-urlencoded")
    assert answer.status_code == 200 and answer.text == ""
    view = await opened_view(app)
    assert view["blocks"][3]["element"]["initial_conversation"] == CHANNEL  # announced where it was asked
    help_answer = await app.command("help")
    assert "Usage" in message_text(help_answer.json())


async def test_invalid_form_values_are_shown_inline_and_nothing_is_stored(app: AppUnderTest) -> None:
    for target, campaign, field in (
        ("clevertap:default", "not-an-id", views.CAMPAIGN_BLOCK),
        ("clevertap:default", "", views.CAMPAIGN_BLOCK),
        ("nosuch:default", CLEVERTAP, views.TARGET_BLOCK),
        (None, CLEVERTAP, views.TARGET_BLOCK),
    ):
        answer = await post_payload(app, submission(app, target, campaign))
        assert answer.status_code == 200
        assert answer.json()["response_action"] == "errors" and field in answer.json()["errors"], answer.json()
    assert await app.runtime.store.history(limit=5) == []


async def test_a_valid_form_leads_to_the_same_card_and_stop(app: AppUnderTest) -> None:
    answer = await post_payload(app, submission(app, "clevertap:default", CLEVERTAP, "wrong segment"))
    assert answer.json() == {"response_action": "clear"}
    cards = await app.slack.wait_for("response_url", 1)
    card = cards[-1].body
    assert card["response_type"] == "ephemeral" and "wrong segment" in message_text(card)
    request_id = buttons(card)[STOP_ACTION]["value"]
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.channel_id == CHANNEL and stored.reason == "wrong segment"
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    assert len(app.sandbox["clevertap"].calls_to("/1/targets/stop.json", "POST")) == 1


async def test_the_message_shortcut_prefills_the_form_from_an_alert(app: AppUnderTest) -> None:
    message = {
        "type": "message", "ts": "1700000000.000200", "user": "U0ALERTS",
        "text": "Spike in unsubscribes: <https://eu1.dashboard.clevertap.com/W9R-A/campaigns/campaign/"
                f"{CLEVERTAP}/report|campaign report>",
    }
    payload = shortcut(views.MESSAGE_SHORTCUT, type="message_action", message=message,
                       channel={"id": CHANNEL, "name": "alerts"}, response_url=app.slack.response_url())
    assert (await post_payload(app, payload)).status_code == 200
    view = await opened_view(app)
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "clevertap:default"
    assert view["blocks"][1]["element"]["initial_value"] == CLEVERTAP


async def test_the_home_tab_shows_what_waits_and_is_refreshed_after_a_click(app: AppUnderTest) -> None:
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment")
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    event = {
        "type": "event_callback", "team_id": "T0FAKE", "api_app_id": "A0APP", "event_id": "Ev1", "event_time": 1,
        "event": {"type": "app_home_opened", "user": REQUESTER, "channel": "D0ALICE", "tab": "home"},
    }
    answer = await app.post_signed(json.dumps(event).encode(), "application/json")
    assert answer.status_code == 200
    published = await app.slack.wait_for("views.publish", 1)
    assert published[-1].body["user_id"] == REQUESTER
    home = published[-1].body["view"]
    home = json.loads(home) if isinstance(home, str) else home
    assert home["type"] == "home" and buttons(home)[STOP_ACTION]["value"] == request_id
    assert views.FORM_SHORTCUT in buttons(home)

    await app.click(STOP_ACTION, request_id, payload_extra={"container": {"type": "view", "view_id": "V1"}})
    await app.slack.wait_for_outcomes(2)
    refreshed = await app.slack.wait_for("views.publish", 2)
    await app.runtime.tasks.wait_idle()
    home = refreshed[-1].body["view"]
    home = json.loads(home) if isinstance(home, str) else home
    assert STOP_ACTION not in buttons(home) and "stopped" in message_text(home)
    assert "*CleverTap* `default`: :large_green_circle: last answer" in message_text(home)  # the stop's answer
