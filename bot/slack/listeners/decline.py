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
from bot.slack.payloads import DeclineClick, ViewSubmission
from bot.slack.reading import reading
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

CALLBACK = "stopcampaign_decline_form"
COMMENT_BLOCK, COMMENT_ACTION = "comment", "comment"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the Decline button and its form."""

    @reading(DeclineClick, "Decline click")
    async def clicked(click: DeclineClick, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        view = decline_form(click.request_id, click.response_url)
        trigger = click.trigger_id

        async def send() -> None:
            try:
                await client.views_open(trigger_id=trigger, view=view)
            except Exception as exc:
                log.warning("could not open the decline form: %s", type(exc).__name__)

        deps.tasks.spawn(send(), name=f"decline-form-{click.request_id}")

    @reading(ViewSubmission, "decline form")
    async def submitted(submission: ViewSubmission, ack: AsyncAck, client: AsyncWebClient) -> None:
        await handle_decline(ack, submission, deps)

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


async def handle_decline(ack: AsyncAck, submission: ViewSubmission, deps: SlackDeps) -> None:
    """Decline the request named in the form; a refusal is shown on the form; never raises."""
    meta = submission.view.metadata()
    request_id, card = meta.get("request"), meta.get("card")
    if not isinstance(request_id, str) or not request_id:
        lost = "This form lost its request; decline from the card."
        await ack(response_action="errors", errors={COMMENT_BLOCK: lost})
        return
    comment = submission.view.value(COMMENT_BLOCK, COMMENT_ACTION) or ""
    result = await deps.service.decline(request_id, Actor(id=submission.user.id, source="slack"), comment)
    if result.refused or result.request is None:
        await ack(response_action="errors", errors={COMMENT_BLOCK: blocks.clip(result.refusal or "Not declined.", 150)})
        return
    await ack(response_action="clear")
    request = result.request
    ended = blocks.ended_card(request, deps.service.facts(request.provider, request.account))
    await post_response(card if isinstance(card, str) else None, ended, replace=True)
