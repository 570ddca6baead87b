"""**Decline** on approval cards: an approver turns a two-person request down, with an optional
comment asked in a small form; the card then says who declined and why, and nothing is sent."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor
from bot.slack import blocks
from bot.slack.deps import SlackDeps
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

CALLBACK = "stopcampaign_decline_form"
COMMENT_BLOCK, COMMENT_ACTION = "comment", "comment"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the Decline button and its form."""

    async def clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        actions = body.get("actions") or [{}]
        request_id, trigger = actions[0].get("value"), body.get("trigger_id")
        if not isinstance(request_id, str) or not isinstance(trigger, str):
            return
        response_url = body.get("response_url") if isinstance(body.get("response_url"), str) else None
        view = decline_form(request_id, response_url)

        async def send() -> None:
            try:
                await client.views_open(trigger_id=trigger, view=view)
            except Exception as exc:
                log.warning("could not open the decline form: %s", type(exc).__name__)

        deps.tasks.spawn(send(), name=f"decline-form-{request_id}")

    async def submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        await handle_decline(ack, body, deps)

    app.action(blocks.DECLINE_ACTION)(clicked)
    app.view(CALLBACK)(submitted)


def decline_form(request_id: str, response_url: str | None) -> dict[str, Any]:
    """The modal asking for an optional comment (the request and its card ride in private_metadata)."""
    return {
        "type": "modal",
        "callback_id": CALLBACK,
        "title": {"type": "plain_text", "text": "Decline this stop"},
        "submit": {"type": "plain_text", "text": "Decline"},
        "close": {"type": "plain_text", "text": "Back"},
        "private_metadata": json.dumps({"request": request_id, "card": response_url})[:3000],
        "blocks": [
            blocks.section(f"Nothing is sent to the provider. The card will say who declined request `{request_id}`."),
            {
                "type": "input", "block_id": COMMENT_BLOCK, "optional": True,
                "label": {"type": "plain_text", "text": "Comment for the requester"},
                "element": {"type": "plain_text_input", "action_id": COMMENT_ACTION, "max_length": 300},
            },
        ],
    }


async def handle_decline(ack: AsyncAck, body: dict[str, Any], deps: SlackDeps) -> None:
    """Decline the request named in the form; a refusal is shown on the form; never raises."""
    view: dict[str, Any] = body["view"] if isinstance(body.get("view"), dict) else {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    request_id = meta.get("request") if isinstance(meta, dict) else None
    card = meta.get("card") if isinstance(meta, dict) else None
    user: dict[str, Any] = body["user"] if isinstance(body.get("user"), dict) else {}
    if not isinstance(request_id, str) or not isinstance(user.get("id"), str):
        lost = "This form lost its request; decline from the card."
        await ack(response_action="errors", errors={COMMENT_BLOCK: lost})
        return
    state: dict[str, Any] = view["state"] if isinstance(view.get("state"), dict) else {}
    element = ((state.get("values") or {}).get(COMMENT_BLOCK) or {}).get(COMMENT_ACTION) or {}
    value = element.get("value") if isinstance(element, dict) else None
    comment = value if isinstance(value, str) else ""
    result = await deps.service.decline(request_id, Actor(id=user["id"], source="slack"), comment)
    if result.refused or result.request is None:
        await ack(response_action="errors", errors={COMMENT_BLOCK: blocks.clip(result.refusal or "Not declined.", 150)})
        return
    await ack(response_action="clear")
    request = result.request
    ended = blocks.ended_card(request, deps.service.facts(request.provider, request.account))
    await post_response(card if isinstance(card, str) else None, ended, replace=True)
