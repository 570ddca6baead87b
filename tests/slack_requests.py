"""Requests as Slack sends them, built from the payload corpus (`tests.slack_corpus`, each file
names its Slack source): signed slash commands, clicks, shortcuts, form submissions and events.
Shared by the e2e tests and the benchmarks; only the ids a test controls are filled in."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.slack.blocks import CANCEL_ACTION, CHECK_AGAIN_ACTION, DECLINE_ACTION, STOP_ACTION
from bot.slack.views import FORM_SHORTCUT
from tests import slack_corpus

STANDARD = "standard"

CLICK_SURFACES = {
    STOP_ACTION: "block_actions.stop.ephemeral",
    CANCEL_ACTION: "block_actions.cancel.ephemeral",
    CHECK_AGAIN_ACTION: "block_actions.check_again.message",
    DECLINE_ACTION: "block_actions.decline.message",
    FORM_SHORTCUT: "block_actions.open_form.home",
}
"""Where each button is clicked by default: the requester's ephemeral card, the message in the
channel (an outcome, an approval card), the Home tab."""

FORM_URLS = {"one": "view_submission.form", "empty": "view_submission.form_empty_urls",
             "none": "view_submission.form_no_urls"}
"""The stop form's submission as Slack sends it: with a response URL, ``response_urls: []``, or no key."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def command_body(text: str, response_url: str, *, user: str, channel: str, kind: str = STANDARD,
                 surface: str | None = None) -> bytes:
    """``/stopcampaign <text>``, form-encoded as Slack posts it."""
    fixture = slack_corpus.load(surface or ("command" if text else "command_no_text"), kind)
    body, _ = slack_corpus.body(fixture, text=text, user_id=user, channel_id=channel, response_url=response_url)
    return body


def block_actions_payload(
    value: str,
    response_url: str,
    *,
    user: str,
    channel: str,
    action_id: str = STOP_ACTION,
    kind: str = STANDARD,
    surface: str | None = None,
) -> dict[str, Any]:
    """A click on the button `action_id` carrying `value` (the request id), where `surface` says
    (by default where that button usually is: see `CLICK_SURFACES`)."""
    fixture = slack_corpus.load(surface or CLICK_SURFACES[action_id], kind)
    return slack_corpus.fill(fixture, request_id=value, response_url=response_url, user_id=user, channel_id=channel)


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactive payload, form-encoded as Slack posts it (``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def shortcut_payload(*, user: str, channel: str = "", kind: str = STANDARD) -> dict[str, Any]:
    """The global shortcut "Stop a campaign"."""
    return slack_corpus.fill(slack_corpus.load("shortcut.open_form", kind), user_id=user, channel_id=channel)


def message_shortcut_payload(
    text: str, response_url: str, *, user: str, channel: str, bot: bool = False, kind: str = STANDARD
) -> dict[str, Any]:
    """The message shortcut on a user's message with `text` (or, with `bot`, on a bot's alert
    whose attachment says `text`)."""
    fixture = slack_corpus.load("message_action.bot_message" if bot else "message_action.user_message", kind)
    return slack_corpus.fill(
        fixture, message_text=text, response_url=response_url, user_id=user, channel_id=channel
    )


def form_submission(
    *,
    user: str,
    channel: str,
    response_url: str,
    target: str | None,
    campaign_id: str | None,
    reason: str = "",
    urls: str = "one",
    kind: str = STANDARD,
) -> dict[str, Any]:
    """The stop form submitted; an input left empty arrives as Slack sends it (``null``)."""
    payload = slack_corpus.fill(
        slack_corpus.load(FORM_URLS[urls], kind),
        user_id=user, channel_id=channel, response_url=response_url, target=target or "",
        campaign_id=campaign_id or "", reason=reason, selected_conversation=channel,
        private_metadata=json.dumps({"channel": channel}),
    )
    values = payload["view"]["state"]["values"]
    if target is None:
        values["target"]["target"]["selected_option"] = None
    if not campaign_id:
        values["campaign"]["campaign_id"]["value"] = None
    if not reason:
        values["reason"]["reason"]["value"] = None
    return payload


def decline_submission(
    request_id: str, card_url: str, *, user: str, comment: str, kind: str = STANDARD
) -> dict[str, Any]:
    """The decline form submitted (the request and its card ride in private_metadata, as the app wrote them)."""
    payload = slack_corpus.fill(
        slack_corpus.load("view_submission.decline", kind),
        user_id=user, comment=comment, private_metadata=json.dumps({"request": request_id, "card": card_url}),
        channel_id="", response_url="",
    )
    if not comment:
        payload["view"]["state"]["values"]["comment"]["comment"]["value"] = None
    return payload


def home_opened_body(user: str, event_id: str, *, tab: str = "home", kind: str = STANDARD) -> bytes:
    """The ``app_home_opened`` event (JSON, as Slack posts events)."""
    surface = "event.app_home_opened.home" if tab == "home" else "event.app_home_opened.messages"
    fixture = slack_corpus.load(surface, kind)
    body, _ = slack_corpus.body(fixture, user_id=user, event_id=event_id, channel_id="D0APPHOME", request_id="")
    return body
