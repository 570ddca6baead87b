"""Requests as Slack sends them: signed slash commands and block actions (shared by e2e tests and benchmarks)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.slack.blocks import STOP_ACTION


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def command_body(
    text: str, response_url: str, *, user: str, channel: str, team: str = "T0FAKE", command: str = "/stopcampaign"
) -> bytes:
    """A slash command, form-encoded as Slack posts it."""
    form = {
        "token": "legacy-unused",
        "team_id": team,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "marketing-oncall",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0APP",
        "response_url": response_url,
        "trigger_id": "123.456.abc",
    }
    return urlencode(form).encode()


def block_actions_payload(
    value: str, response_url: str, *, user: str, channel: str, action_id: str = STOP_ACTION, team: str = "T0FAKE"
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on a card button carrying `value` (the request id)."""
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A0APP",
        "token": "legacy-unused",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000001",
            "channel_id": channel,
            "is_ephemeral": True,
        },
        "trigger_id": "123.456.def",
        "channel": {"id": channel, "name": "marketing-oncall"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "stopcampaign_buttons",
                "type": "button",
                "value": value,
                "action_ts": "1700000000.1",
            }
        ],
    }


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactive payload, form-encoded as Slack posts it (``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)}).encode()
