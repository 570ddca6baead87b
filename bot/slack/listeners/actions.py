"""The Stop, Cancel and Check again buttons. A button carries only the request id; the rest
comes from the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor, StopRequest
from bot.core.results import ClickResult, ReplyLink
from bot.slack import blocks
from bot.slack.deps import SlackDeps
from bot.slack.listeners import home
from bot.slack.payloads import ButtonClick
from bot.slack.reading import reading
from bot.slack.responder import post_response

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the three buttons."""

    @reading(ButtonClick, "Stop click")
    async def stop_clicked(click: ButtonClick, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        deps.tasks.spawn(_then_refresh_home(run_stop(click, deps), click, client, deps), name="stop")

    @reading(ButtonClick, "Cancel click")
    async def cancel_clicked(click: ButtonClick, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        deps.tasks.spawn(_then_refresh_home(run_cancel(click, deps), click, client, deps), name="cancel")

    @reading(ButtonClick, "Check again click")
    async def check_again_clicked(click: ButtonClick, ack: AsyncAck, client: AsyncWebClient) -> None:
        await ack()
        deps.tasks.spawn(run_check_again(click, deps), name="check-again")

    app.action(blocks.CHECK_AGAIN_ACTION)(check_again_clicked)
    app.action(blocks.STOP_ACTION)(stop_clicked)
    app.action(blocks.CANCEL_ACTION)(cancel_clicked)


def actor_of(click: ButtonClick) -> Actor:
    """Who clicked, as the core knows people."""
    return Actor(id=click.user.id, name=click.user.display_name, source="slack")


def reply_link(click: ButtonClick) -> ReplyLink:
    """The click's reply link and the conversation it posts into."""
    return ReplyLink(click.response_url, click.channel_id)


async def _then_refresh_home(
    work: Coroutine[Any, Any, None], click: ButtonClick, client: AsyncWebClient, deps: SlackDeps
) -> None:
    """Run a click, then refresh the Home tab of whoever it concerns (no button of an ended request stays)."""
    await work
    try:
        request = await deps.service.request(click.request_id)
    except Exception:  # the store is down (the click was told): the tab is refreshed on the next open
        return
    users = {click.user.id}
    if request is not None and request.requester.source == "slack":
        users.add(request.requester.id)
    for user_id in sorted(users):
        await home.publish_home(user_id, client, deps)


async def run_stop(click: ButtonClick, deps: SlackDeps) -> None:
    """Confirm: card → "stopping…", one provider call, outcome stored and posted, card → final."""
    stopping: list[asyncio.Task[bool]] = []
    response_url = click.response_url

    async def show_stopping(request: StopRequest) -> None:
        preview = deps.previews.pop(request.id, None)
        if preview is not None:
            preview.cancel()  # it must not redraw the buttons after this
        # Not awaited: Slack being slow must never delay the provider call.
        card = blocks.stopping_card(request, deps.service.facts(request.provider, request.account))
        stopping.append(asyncio.create_task(post_response(response_url, card, replace=True)))

    result = await deps.service.confirm(
        click.request_id, actor_of(click), on_executing=show_stopping, reply=reply_link(click)
    )
    if stopping:
        await asyncio.wait(stopping, timeout=15)  # the final card must land after "stopping…"
    await _reply(result, click, deps)


async def run_check_again(click: ButtonClick, deps: SlackDeps) -> None:
    """Check an open outcome again; the live records are updated in place by the outbox."""
    result = await deps.service.check_again(click.request_id, actor_of(click), reply_link(click))
    if result.refused:
        await post_response(click.response_url, blocks.notice(result.refusal), replace=False)


async def run_cancel(click: ButtonClick, deps: SlackDeps) -> None:
    """Cancel: end the request without a provider call and say so on the card."""
    result = await deps.service.cancel(click.request_id, actor_of(click))
    await _reply(result, click, deps)


async def _reply(result: ClickResult, click: ButtonClick, deps: SlackDeps) -> None:
    request = result.request
    if request is not None:
        stale = result.refused and click.user.id == request.requester.id and request.state.is_final
        if not result.refused or stale:
            # The card shows the request as it ended (for a refused requester: their card was stale),
            # with what the announcements could not do (a channel that refused the app…).
            await post_response(click.response_url, await ended_card(request, deps), replace=True)
    if result.refused:
        await post_response(click.response_url, blocks.notice(result.refusal), replace=False)


async def ended_card(request: StopRequest, deps: SlackDeps) -> blocks.Message:
    """The card of an ended request, with the announcement problems known so far."""
    facts = deps.service.facts(request.provider, request.account)
    try:
        problems = await deps.service.announce_problems(request.id)
    except Exception as exc:  # the card matters more than its footnote
        log.warning("could not read the announcement problems: %s", type(exc).__name__)
        problems = []
    return blocks.ended_card(request, facts, problems)
