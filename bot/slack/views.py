"""Block Kit views: the "Stop a campaign" form (a modal) and the Home tab.

Plain dicts, as Slack takes them; the builders' tests run each through `slack_sdk.models` so
that every Slack limit (text lengths, option counts, block counts) is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from bot.core.models import ProviderHealth, ProviderKind, StopRequest
from bot.core.render import request_status, timestamp
from bot.slack.blocks import CANCEL_ACTION, STOP_ACTION, clip, context, escape, header, section, user
from bot.slack.health import SlackProblem

FORM_CALLBACK = "stopcampaign_form"
FORM_SHORTCUT = "stopcampaign_open_form"
"""The global shortcut's callback id, also the action id of the Home tab's button."""
MESSAGE_SHORTCUT = "stopcampaign_from_message"
TARGET_BLOCK, TARGET_ACTION = "target", "target"
CAMPAIGN_BLOCK, CAMPAIGN_ACTION = "campaign", "campaign_id"
REASON_BLOCK, REASON_ACTION = "reason", "reason"
CHANNEL_BLOCK, CHANNEL_ACTION = "announce", "channel"
MAX_OPTIONS = 100
"""Slack's limit on options in a select, and on options in one option group."""

View = dict[str, Any]


def _text(value: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(value, limit), "emoji": True}


def _option(kind: ProviderKind, account: str) -> dict[str, Any]:
    return {"text": _text(f"{kind.display_name} · {account}"), "value": f"{kind.name}:{account}"}


def stop_form(
    targets: list[tuple[ProviderKind, list[str]]],
    *,
    channel_id: str | None = None,
    target: str | None = None,
    campaign_id: str | None = None,
    reason: str = "",
    incident_channel: str | None = None,
) -> View:
    """The modal of the "Stop a campaign" shortcut (and of ``/stopcampaign`` with no text)."""
    groups: list[dict[str, Any]] = [
        {"label": _text(kind.display_name), "options": [_option(kind, a) for a in accounts[:MAX_OPTIONS]]}
        for kind, accounts in targets[:MAX_OPTIONS]
        if accounts
    ]
    options = [o for g in groups for o in g["options"]]
    picker: dict[str, Any] = {
        "type": "static_select", "action_id": TARGET_ACTION, "placeholder": _text("Provider account")
    }
    if len(groups) > 1:
        picker["option_groups"] = groups
    else:
        picker["options"] = options
    initial = next((o for o in options if o["value"] == target), options[0] if len(options) == 1 else None)
    if initial is not None:
        picker["initial_option"] = initial
    hint = ", ".join(f"{kind.display_name}: {kind.campaign_id_hint}" for kind, _ in targets)
    campaign: dict[str, Any] = {"type": "plain_text_input", "action_id": CAMPAIGN_ACTION, "max_length": 100}
    if campaign_id:
        campaign["initial_value"] = campaign_id[:100]
    why: dict[str, Any] = {"type": "plain_text_input", "action_id": REASON_ACTION, "max_length": 500,
                           "placeholder": _text("wrong segment, wrong price…")}
    if reason:
        why["initial_value"] = reason[:500]
    announce: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": CHANNEL_ACTION,
        "default_to_current_conversation": True,
        "response_url_enabled": True,  # the card is posted (ephemeral) in the chosen channel
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id:
        announce["initial_conversation"] = channel_id
    incident = f" The incident channel <#{incident_channel}> always gets it." if incident_channel else ""
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _text("Stop a campaign", 24),
        "submit": _text("Review the stop", 24),
        "close": _text("Cancel", 24),
        "private_metadata": json.dumps({"channel": channel_id})[:3000],
        "blocks": [
            {"type": "input", "block_id": TARGET_BLOCK, "label": _text("Provider and account"), "element": picker},
            {"type": "input", "block_id": CAMPAIGN_BLOCK, "label": _text("Campaign id"), "element": campaign,
             "hint": _text(hint, 150)},
            {"type": "input", "block_id": REASON_BLOCK, "label": _text("Reason"), "element": why, "optional": True},
            {"type": "input", "block_id": CHANNEL_BLOCK, "label": _text("Announce in"), "element": announce,
             "hint": _text(f"You confirm on a card there before anything is sent.{incident}", 150)},
        ],
    }


def _request_line(request: StopRequest) -> str:
    reason = f" · {escape(clip(request.reason, 80))}" if request.reason else ""
    return (
        f"`{request.id}` {request.provider}:{request.account} campaign `{escape(request.campaign_id)}` · "
        f"{request_status(request)} · {user(request.requester.id)}{reason}"
    )


def _health_text(health: ProviderHealth | None) -> str:
    if health is None or (health.last_ok_at is None and health.last_error_at is None):
        return "no call from this process yet"
    parts = []
    if health.last_ok_at is not None:
        parts.append(f":large_green_circle: last answer {timestamp(health.last_ok_at)}")
    if health.last_error_at is not None and health.last_error:
        parts.append(f":warning: last error {timestamp(health.last_error_at)}: {escape(clip(health.last_error, 80))}")
    return " · ".join(parts)


def _waiting_blocks(request: StopRequest, viewer: str) -> list[dict[str, Any]]:
    approve = request.two_person and request.requester.id != viewer
    buttons = [{"type": "button", "style": "danger", "action_id": STOP_ACTION, "value": request.id,
                "text": _text("Approve and stop" if approve else "Stop")}]
    if request.requester.id == viewer:
        buttons.append({"type": "button", "action_id": CANCEL_ACTION, "value": request.id, "text": _text("Cancel")})
    return [section(_request_line(request)), {"type": "actions", "block_id": f"home-{request.id}", "elements": buttons}]


def home_view(
    viewer: str,
    waiting: list[StopRequest],
    mine: list[StopRequest],
    team: list[StopRequest],
    targets: list[tuple[ProviderKind, list[str]]],
    health: Callable[[str, str], ProviderHealth | None] | None = None,
    slack_problems: Sequence[SlackProblem] = (),
) -> View:
    """The Home tab: what is wrong with Slack (a refused token, an incident channel that does not
    take posts), what waits for `viewer` (with its buttons), their recent stops and the team's,
    the configured providers, and a button that opens the form."""
    blocks: list[dict[str, Any]] = [header("stopcampaign")]
    blocks += [section(f":warning: {problem.message}") for problem in slack_problems[:5]]
    blocks += [
        {
            "type": "actions",
            "elements": [{"type": "button", "style": "danger", "action_id": FORM_SHORTCUT,
                          "text": _text("Stop a campaign"), "value": "home"}],
        },
        header("Waiting for you"),
    ]
    blocks += [b for r in waiting[:10] for b in _waiting_blocks(r, viewer)] or [
        context("Nothing waits for your confirmation or approval.")
    ]
    blocks.append(header("Your recent stops"))
    blocks += [section(_request_line(r)) for r in mine[:10]] or [context("You have not asked for any stop yet.")]
    blocks.append(header("The team's recent stops"))
    blocks += [section(_request_line(r)) for r in team[:10]] or [context("No stop requests yet.")]
    blocks.append(header("Providers"))
    lines = [
        f"*{escape(kind.display_name)}* `{account}`: {_health_text(health(kind.name, account) if health else None)}"
        for kind, accounts in targets
        for account in accounts
    ][:30]
    blocks.append(section("\n".join(lines) if lines else "No provider is configured."))
    return {"type": "home", "blocks": blocks[:100]}
