"""The "Stop a campaign" form: opened by the global shortcut, by ``/stopcampaign`` with no text,
by the Home tab's button, or by the message shortcut (pre-filled from the message); submitted
into the same pending request and confirmation card as the slash command.

The modal is opened in a background task right after the ack (Slack's trigger lives 3 s), and
the submission is checked field by field (inline errors, nothing stored) before the request is
created. The card goes to the channel chosen in the form, through the response_url Slack gives
for it, once the preview is in (so the card is posted once, complete).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor, StopRequest
from bot.core.parsing import FormError
from bot.core.policy import PolicyRefusal
from bot.core.results import Preview
from bot.slack import blocks, views
from bot.slack.deps import SlackDeps
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

FIELD_BLOCKS = {"target": views.TARGET_BLOCK, "campaign": views.CAMPAIGN_BLOCK, "reason": views.REASON_BLOCK}
MESSAGE_TEXT_KEYS = frozenset({"text", "fallback", "pretext", "title", "title_link", "url", "value"})


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the shortcuts, the Home tab's button and the form's submission."""

    async def shortcut(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        open_form(body, client, deps)

    async def from_message(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        message = body.get("message")
        text = message_text(message) if isinstance(message, dict) else ""
        target, campaign = deps.service.find_target(text) if text else (None, None)
        open_form(body, client, deps, target=target, campaign_id=campaign)

    async def submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        await handle_submission(ack, body, deps)

    app.shortcut(views.FORM_SHORTCUT)(shortcut)
    app.action(views.FORM_SHORTCUT)(shortcut)
    app.shortcut(views.MESSAGE_SHORTCUT)(from_message)
    app.view(views.FORM_CALLBACK)(submitted)


def open_form(
    body: dict[str, Any],
    client: AsyncWebClient,
    deps: SlackDeps,
    *,
    target: str | None = None,
    campaign_id: str | None = None,
) -> bool:
    """Open the form in the background for the payload's trigger; False when it has no trigger."""
    trigger = body.get("trigger_id")
    if not isinstance(trigger, str) or not trigger:
        log.warning("a form was asked for without a trigger_id")
        return False
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    view = views.stop_form(
        deps.service.targets(),
        channel_id=channel if isinstance(channel, str) and channel else None,
        target=target,
        campaign_id=campaign_id,
        incident_channel=deps.incident_channel,
    )

    async def send() -> None:
        try:
            await client.views_open(trigger_id=trigger, view=view)
        except Exception as exc:  # Slack down or the trigger expired: nothing to undo
            log.warning("could not open the stop form: %s", type(exc).__name__)

    deps.tasks.spawn(send(), name="open-form")
    return True


def message_text(message: dict[str, Any]) -> str:
    """Every readable string of a message (text, blocks, attachments, links), not its ids or ts."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value[:200]:
                walk(v, key)
        elif isinstance(value, str) and key in MESSAGE_TEXT_KEYS:
            found.append(value)

    walk(message)
    return "\n".join(found)[:5000]


async def handle_submission(ack: AsyncAck, body: dict[str, Any], deps: SlackDeps) -> None:
    """Check the form, create the pending request, post its card; never raises."""
    service = deps.service
    view: dict[str, Any] = body["view"] if isinstance(body.get("view"), dict) else {}
    target, raw_id, reason, channel = views.form_values(view)
    try:
        command = service.form(target, raw_id, reason)
    except FormError as error:
        await ack(response_action="errors", errors={FIELD_BLOCKS[error.field]: blocks.clip(error.problem, 150)})
        return
    user: dict[str, Any] = body["user"] if isinstance(body.get("user"), dict) else {}
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        await ack(response_action="errors", errors={views.TARGET_BLOCK: "This form arrived without a user."})
        return
    requester = Actor(id=user_id, name=user.get("username") if isinstance(user.get("username"), str) else None,
                      source="slack")
    channel = channel or _metadata_channel(view)
    team: dict[str, Any] = body["team"] if isinstance(body.get("team"), dict) else {}
    try:
        request = await service.create_request(
            command,
            requester,
            team_id=team.get("id") if isinstance(team.get("id"), str) else None,
            channel_id=channel,
            response_url=_response_url(body, channel),
        )
    except PolicyRefusal as refusal:
        problem = blocks.clip(f"Not allowed: {refusal.message}", 150)
        await ack(response_action="errors", errors={views.TARGET_BLOCK: problem})
        return
    except Exception:
        log.exception("could not store a stop request from the form")
        await ack(response_action="errors", errors={views.CAMPAIGN_BLOCK: "The request could not be saved; try again."})
        return
    await ack(response_action="clear")
    deps.tasks.spawn(post_card(request, deps), name=f"form-card-{request.id}")


async def post_card(request: StopRequest, deps: SlackDeps) -> None:
    """The confirmation card of a form's request, with its preview, posted once in its channel."""
    service = deps.service
    facts = service.facts(request.provider, request.account)
    preview = await service.load_preview(request) if facts.has_preview else Preview(None, facts.no_preview_reason)
    card = blocks.confirmation_card(request, facts, preview, service.approvers(request))
    if not await post_response(request.response_url, card, replace=False, ephemeral=not request.two_person):
        log.warning("the card of a form's request could not be posted", extra={"request_id": request.id})
    await service.announce_request(request)


def _metadata_channel(view: dict[str, Any]) -> str | None:
    try:
        channel = json.loads(view.get("private_metadata") or "{}").get("channel")
    except (ValueError, AttributeError):
        return None
    return channel if isinstance(channel, str) and channel else None


def _response_url(body: dict[str, Any], channel: str | None) -> str | None:
    given = body.get("response_urls")
    urls = [u for u in given or [] if isinstance(u, dict) and isinstance(u.get("response_url"), str)]
    chosen = next((u for u in urls if u.get("channel_id") == channel), urls[0] if urls else None)
    return str(chosen["response_url"]) if chosen else None
