"""The "Stop a campaign" form: opened by the global shortcut, by ``/stopcampaign`` with no text,
by the Home tab's button, or by the message shortcut (pre-filled from the message); submitted
into the same pending request and confirmation card as the slash command.

The modal is opened in a background task right after the ack (Slack's trigger lives 3 s), and
the submission is checked field by field (inline errors, nothing stored) before the request is
created. The card goes to the channel chosen in the form, once the preview is in (so the card is
posted once, complete): through the response_url Slack gives for it, or, when Slack gives none
(an empty ``response_urls``, a Slack Connect channel), as an ephemeral message in that channel,
or by DM when the channel refuses the app. Never nowhere.
"""

from __future__ import annotations

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
from bot.slack.payloads import MessageShortcut, Shortcut, ViewSubmission
from bot.slack.reading import reading
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

FIELD_BLOCKS = {"target": views.TARGET_BLOCK, "campaign": views.CAMPAIGN_BLOCK, "reason": views.REASON_BLOCK}
MESSAGE_TEXT_KEYS = frozenset({"text", "fallback", "pretext", "title", "title_link", "url", "value"})


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the shortcuts, the Home tab's button and the form's submission."""

    @reading(Shortcut, "shortcut")
    async def shortcut(payload: Shortcut, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        open_form(payload.trigger_id, payload.conversation, client, deps)

    @reading(MessageShortcut, "message shortcut")
    async def from_message(payload: MessageShortcut, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        text = message_text(payload.message)
        target, campaign = deps.service.find_target(text) if text else (None, None)
        open_form(payload.trigger_id, payload.conversation, client, deps, target=target, campaign_id=campaign)

    @reading(ViewSubmission, "form submission")
    async def submitted(submission: ViewSubmission, ack: AsyncAck, client: AsyncWebClient) -> None:
        await handle_submission(ack, submission, client, deps)

    app.shortcut(views.FORM_SHORTCUT)(shortcut)
    app.action(views.FORM_SHORTCUT)(shortcut)
    app.shortcut(views.MESSAGE_SHORTCUT)(from_message)
    app.view(views.FORM_CALLBACK)(submitted)


def open_form(
    trigger_id: str,
    channel_id: str | None,
    client: AsyncWebClient,
    deps: SlackDeps,
    *,
    target: str | None = None,
    campaign_id: str | None = None,
) -> None:
    """Open the form in the background for `trigger_id` (Slack's trigger lives 3 s)."""
    view = views.stop_form(
        deps.service.targets(),
        channel_id=channel_id or None,
        target=target,
        campaign_id=campaign_id,
        incident_channel=deps.incident_channel,
    )

    async def send() -> None:
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except Exception as exc:  # Slack down or the trigger expired: nothing to undo
            log.warning("could not open the stop form: %s", type(exc).__name__)

    deps.tasks.spawn(send(), name="open-form")


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


async def handle_submission(
    ack: AsyncAck, submission: ViewSubmission, client: AsyncWebClient, deps: SlackDeps
) -> None:
    """Check the form, create the pending request, post its card; never raises."""
    service = deps.service
    view = submission.view
    try:
        command = service.form(
            view.value(views.TARGET_BLOCK, views.TARGET_ACTION, "selected_option"),
            view.value(views.CAMPAIGN_BLOCK, views.CAMPAIGN_ACTION),
            view.value(views.REASON_BLOCK, views.REASON_ACTION),
        )
    except FormError as error:
        await ack(response_action="errors", errors={FIELD_BLOCKS[error.field]: blocks.clip(error.problem, 150)})
        return
    user = submission.user
    requester = Actor(id=user.id, name=user.username, source="slack")
    chosen = view.value(views.CHANNEL_BLOCK, views.CHANNEL_ACTION, "selected_conversation")
    metadata_channel = view.metadata().get("channel")
    channel = chosen or (metadata_channel if isinstance(metadata_channel, str) and metadata_channel else None)
    try:
        request = await service.create_request(
            command,
            requester,
            team_id=submission.team.id if submission.team else user.team_id,
            channel_id=channel,
            response_url=submission.response_url_for(channel),
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
    deps.tasks.spawn(post_card(request, client, deps), name=f"form-card-{request.id}")


async def post_card(request: StopRequest, client: AsyncWebClient, deps: SlackDeps) -> None:
    """The confirmation card of a form's request, with its preview, posted once where the requester sees it."""
    service = deps.service
    facts = service.facts(request.provider, request.account)
    preview = await service.load_preview(request) if facts.has_preview else Preview(None, facts.no_preview_reason)
    card = blocks.confirmation_card(request, facts, preview, service.approvers(request))
    posted = await post_response(request.response_url, card, replace=False, ephemeral=not request.two_person)
    if not posted:
        posted = await _post_card_directly(request, card, client)
    if not posted:
        log.error("the card of a form's request could not be shown anywhere", extra={"request_id": request.id})
    await service.announce_request(request)


async def _post_card_directly(request: StopRequest, card: blocks.Message, client: AsyncWebClient) -> bool:
    """Without a usable response_url: in the chosen channel (an approval card for everyone, else
    only for the requester), then by DM when the channel refuses the app."""
    requester = request.requester.id
    if request.channel_id:
        try:
            if request.two_person:
                await client.chat_postMessage(channel=request.channel_id, unfurl_links=False, **card)
            else:
                await client.chat_postEphemeral(channel=request.channel_id, user=requester, **card)
            return True
        except Exception as exc:
            log.info("the form's card could not be posted in its channel (%s); sending it by DM", _error(exc),
                     extra={"request_id": request.id})
    dm = card
    if request.channel_id:
        note = blocks.notice(f":information_source: <#{request.channel_id}> did not accept the app's messages, so "
                             "here is your card. Invite @stopcampaign there to get cards and outcomes in it.")
        dm = {**card, "blocks": [*note["blocks"], *card["blocks"]][: blocks.MAX_BLOCKS]}
    try:
        await client.chat_postMessage(channel=requester, unfurl_links=False, **dm)
        return True
    except Exception as exc:
        log.warning("the form's card could not be sent by DM either (%s)", _error(exc),
                    extra={"request_id": request.id})
        return False


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return type(exc).__name__
