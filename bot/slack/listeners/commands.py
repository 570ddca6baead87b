"""``/stopcampaign``: parse, store a pending request, ack with the confirmation card.

The ack carries the card, so it must not wait on anything slow: the only work before it is
parsing and one insert. The preview (where the provider has one) is fetched after the ack
and fills the card through the command's response_url.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor, RequestState, StopRequest
from bot.core.parsing import HelpCommand, HistoryCommand, StatusCommand, UsageError
from bot.core.policy import PolicyRefusal
from bot.core.render import history_lines, others_pending_text, trail_lines
from bot.core.results import Preview
from bot.core.timebox import within
from bot.metrics import COMMANDS
from bot.slack import blocks
from bot.slack.deps import SlackDeps
from bot.slack.listeners import forms
from bot.slack.payloads import SlashCommand
from bot.slack.reading import reading
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

COMMAND = "/stopcampaign"
PRE_ACK_BUDGET = 2.0
"""Seconds the policy check and the insert may take before the ack gives up (Slack allows 3)."""


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the slash command."""

    @reading(SlashCommand, "slash command")
    async def stopcampaign(command: SlashCommand, ack: AsyncAck, client: AsyncWebClient) -> None:
        if not command.text.strip() and deps.service.targets() and command.trigger_id:
            COMMANDS.labels("form").inc()
            await ack()  # no text: the form opens instead (`/stopcampaign help` is the text help)
            forms.open_form(command.trigger_id, command.channel_id, client, deps)
            return
        await handle_command(ack, command, deps)

    app.command(COMMAND)(stopcampaign)


async def handle_command(ack: AsyncAck, slash: SlashCommand, deps: SlackDeps) -> None:
    """Answer one slash command; never raises."""
    service = deps.service
    try:
        command = service.parse(slash.text.strip())
    except UsageError as exc:
        COMMANDS.labels("invalid").inc()
        await ack(response_type="ephemeral", **blocks.usage_error(str(exc)))
        return
    COMMANDS.labels(type(command).__name__.removesuffix("Command").lower()).inc()
    if isinstance(command, HelpCommand):
        await ack(response_type="ephemeral", **blocks.help_message(service.help()))
        return
    if isinstance(command, HistoryCommand | StatusCommand):
        viewer = Actor(id=slash.user_id, source="slack")
        await ack(response_type="ephemeral", **await _lookup(command, viewer, deps))
        return

    requester = Actor(id=slash.user_id, name=slash.user_name or None, source="slack")
    try:
        async with asyncio.timeout(PRE_ACK_BUDGET):
            request = await service.create_request(
                command,
                requester,
                team_id=slash.team_id or None,
                channel_id=slash.channel_id or None,
                response_url=slash.response_url or None,
                defer_insert=True,  # written right after the ack: the ack never waits on the database
            )
    except TimeoutError:
        log.warning("checking or saving a request took longer than %s s", PRE_ACK_BUDGET)
        await ack(
            response_type="ephemeral",
            text="stopcampaign could not check and save this request in time, so nothing was sent. Please try again.",
        )
        return
    except PolicyRefusal as refusal:
        await ack(response_type="ephemeral", **blocks.notice(f"Not allowed: {refusal.message}"))
        return
    except Exception:
        log.exception("could not store a stop request")
        await ack(
            response_type="ephemeral",
            text="stopcampaign could not save this request, so nothing was sent. Please try again.",
        )
        return

    facts = service.facts(request.provider, request.account)
    preview = None if facts.has_preview else Preview(None, facts.no_preview_reason)
    # A two-person request is answered in the channel, so the approvers see the approval card.
    visibility = "in_channel" if request.two_person else "ephemeral"
    card = blocks.confirmation_card(request, facts, preview, service.approvers(request))
    await ack(response_type=visibility, **card)
    deps.tasks.spawn(_check_saved(request, deps), name=f"saved-{request.id}")
    deps.tasks.spawn(_note_others_pending(request, deps), name=f"others-{request.id}")
    if request.two_person:  # the live record, and each approver's card by DM
        deps.tasks.spawn(service.announce_request(request), name=f"record-{request.id}")
    if facts.has_preview:
        task = deps.tasks.spawn(fill_preview(request, deps), name=f"preview-{request.id}")
        deps.previews[request.id] = task
        task.add_done_callback(lambda _: deps.previews.pop(request.id, None))


async def _check_saved(request: StopRequest, deps: SlackDeps) -> None:
    """If the request could not be written after all, say so on its card: nothing can be stopped."""
    if await deps.service.saved(request.id):
        return
    await post_response(
        request.response_url,
        blocks.notice(":x: stopcampaign could not save this request, so it cannot be confirmed and nothing was sent. "
                      "Please run /stopcampaign again."),
        replace=True,
    )


async def _note_others_pending(request: StopRequest, deps: SlackDeps) -> None:
    """Tell the requester (ephemeral) who else already has a request pending on this campaign."""
    try:
        others = await deps.service.others_pending(request)
    except Exception:
        log.warning("could not look for other pending requests", extra={"request_id": request.id})
        return
    if others:
        text = others_pending_text(others, lambda actor: blocks.user(actor.id) if actor else "someone")
        await post_response(request.response_url, blocks.notice(f":warning: {text}"), replace=False)


async def fill_preview(request: StopRequest, deps: SlackDeps) -> None:
    """Fetch the preview and redraw the card with it, unless the request has moved on."""
    service = deps.service
    preview = await service.load_preview(request)
    current = await service.request(request.id)
    if current is None or current.state is not RequestState.PENDING:
        return
    facts = service.facts(request.provider, request.account)
    card = blocks.confirmation_card(current, facts, preview, service.approvers(current))
    await post_response(request.response_url, card, replace=True)


async def _lookup(command: HistoryCommand | StatusCommand, viewer: Actor, deps: SlackDeps) -> blocks.Message:
    """History or one request's audit trail as far as the policy lets `viewer` see (fast: no
    provider; bounded: a frozen database gets a clear answer within Slack's 3 seconds)."""
    try:  # a frozen database must not hold the answer
        return await within(PRE_ACK_BUDGET, _read_lookup(command, viewer, deps))
    except TimeoutError:
        log.warning("the history could not be read within %s s", PRE_ACK_BUDGET)
    except PolicyRefusal as refusal:
        return blocks.notice(f"Not allowed: {refusal.message}")
    except Exception as exc:
        log.warning("the history could not be read: %s", type(exc).__name__)
    return blocks.notice("The history could not be read right now (the store did not answer); try again.")


async def _read_lookup(command: HistoryCommand | StatusCommand, viewer: Actor, deps: SlackDeps) -> blocks.Message:
    service = deps.service
    if isinstance(command, HistoryCommand):
        requests = await service.history(viewer, command.provider, command.account, command.limit)
        scope = f"{command.provider}:{command.account}" if command.account else (command.provider or "all")
        return blocks.lines_message(
            f"Last {len(requests)} stop requests ({scope})", history_lines(requests), "No stop requests yet."
        )
    request, trail = await service.trail(viewer, command.request_id)
    if request is None:
        return blocks.notice(f"No request {command.request_id}.")
    facts = service.facts(request.provider, request.account)
    return blocks.lines_message(f"Request {request.id}", trail_lines(request, trail, facts), "")
