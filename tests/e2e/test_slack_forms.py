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


def submission(app: AppUnderTest, target: str | None, campaign: str | None, reason: str = "") -> dict[str, Any]:
    return slack_requests.form_submission(
        user=REQUESTER, channel=CHANNEL, response_url=app.slack.response_url(), target=target, campaign_id=campaign,
        reason=reason,
    )


async def opened_view(app: AppUnderTest, count: int = 1) -> dict[str, Any]:
    calls = await app.slack.wait_for("views.open", count)
    view = calls[-1].body["view"]
    decoded: dict[str, Any] = json.loads(view) if isinstance(view, str) else view
    return decoded


async def test_the_global_shortcut_opens_the_form_with_the_configured_accounts(app: AppUnderTest) -> None:
    answer = await app.interactive(slack_requests.shortcut_payload(user=REQUESTER))
    assert answer.status_code == 200
    view = await opened_view(app)
    assert view["callback_id"] == views.FORM_CALLBACK
    picker = view["blocks"][0]["element"]
    groups = {g["label"]["text"]: [o["value"] for o in g["options"]] for g in picker["option_groups"]}
    assert groups["CleverTap"] == ["clevertap:default"] and "sonarly:default" in groups["Sonarly"]


async def test_a_command_with_no_text_opens_the_form_and_help_stays_text(app: AppUnderTest) -> None:
    body = slack_requests.command_body("", app.slack.response_url(), user=REQUESTER, channel=CHANNEL)
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
        answer = await app.interactive(submission(app, target, campaign))
        assert answer.status_code == 200
        assert answer.json()["response_action"] == "errors" and field in answer.json()["errors"], answer.json()
    assert await app.runtime.store.history(limit=5) == []


async def test_a_valid_form_leads_to_the_same_card_and_stop(app: AppUnderTest) -> None:
    answer = await app.interactive(submission(app, "clevertap:default", CLEVERTAP, "wrong segment"))
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
    text = ("Spike in unsubscribes: <https://eu1.dashboard.clevertap.com/W9R-A/campaigns/campaign/"
            f"{CLEVERTAP}/report|campaign report>")
    payload = slack_requests.message_shortcut_payload(text, app.slack.response_url(), user=REQUESTER, channel=CHANNEL)
    assert (await app.interactive(payload)).status_code == 200
    view = await opened_view(app)
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "clevertap:default"
    assert view["blocks"][1]["element"]["initial_value"] == CLEVERTAP


async def test_the_home_tab_shows_what_waits_and_is_refreshed_after_a_click(app: AppUnderTest) -> None:
    ack = await app.command(f"clevertap {CLEVERTAP} wrong segment")
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()
    answer = await app.post_signed(slack_requests.home_opened_body(REQUESTER, "Ev0HOME1"), "application/json")
    assert answer.status_code == 200
    published = await app.slack.wait_for("views.publish", 1)
    assert published[-1].body["user_id"] == REQUESTER
    home = published[-1].body["view"]
    home = json.loads(home) if isinstance(home, str) else home
    assert home["type"] == "home" and buttons(home)[STOP_ACTION]["value"] == request_id
    assert views.FORM_SHORTCUT in buttons(home)

    await app.click(STOP_ACTION, request_id, surface="block_actions.stop.home")
    await app.slack.wait_for_outcomes(2)
    refreshed = await app.slack.wait_for("views.publish", 2)
    await app.runtime.tasks.wait_idle()
    home = refreshed[-1].body["view"]
    home = json.loads(home) if isinstance(home, str) else home
    assert STOP_ACTION not in buttons(home) and "stopped" in message_text(home)
    assert "*CleverTap* `default`: :large_green_circle: last answer" in message_text(home)  # the stop's answer
