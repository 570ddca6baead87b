"""The Stop and Cancel buttons. A button carries only the request id; the rest comes from the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor, StopRequest
from bot.core.results import ClickResult
from bot.slack import blocks
from bot.slack.deps import SlackDeps
from bot.slack.listeners import home
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

MAX_REQUEST_ID = 64


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the two buttons."""

    async def stop_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = _click(body)
        if click is not None:
            deps.tasks.spawn(_then_refresh_home(run_stop(*click, deps), click[0], click[1], client, deps), name="stop")

    async def cancel_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = _click(body)
        if click is not None:
            deps.tasks.spawn(
                _then_refresh_home(run_cancel(*click, deps), click[0], click[1], client, deps), name="cancel"
            )

    async def check_again_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = _click(body)
        if click is not None:
            deps.tasks.spawn(run_check_again(*click, deps), name="check-again")

    app.action(blocks.CHECK_AGAIN_ACTION)(check_again_clicked)
    app.action(blocks.STOP_ACTION)(stop_clicked)
    app.action(blocks.CANCEL_ACTION)(cancel_clicked)


async def _then_refresh_home(
    work: Coroutine[Any, Any, None], request_id: str, actor: Actor, client: AsyncWebClient, deps: SlackDeps
) -> None:
    """Run a click, then refresh the Home tab of whoever it concerns (no button of an ended request stays)."""
    await work
    request = await deps.service.request(request_id)
    users = {actor.id}
    if request is not None and request.requester.source == "slack":
        users.add(request.requester.id)
    for user_id in sorted(users):
        await home.publish_home(user_id, client, deps)


def _click(body: dict[str, Any]) -> tuple[str, Actor, str | None] | None:
    """(request id, who clicked, response_url) from a block_actions payload, or None if malformed."""
    actions = body.get("actions")
    user = body.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict) or not isinstance(user, dict):
        log.warning("malformed button payload ignored")
        return None
    request_id = actions[0].get("value")
    user_id = user.get("id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_REQUEST_ID:
        log.warning("button payload without a usable request id")
        return None
    if not isinstance(user_id, str) or not user_id:
        log.warning("button payload without a user")
        return None
    name = user.get("username") or user.get("name")
    actor = Actor(id=user_id, name=name if isinstance(name, str) else None, source="slack")
    response_url = body.get("response_url")
    return request_id, actor, response_url if isinstance(response_url, str) else None


async def run_stop(request_id: str, actor: Actor, response_url: str | None, deps: SlackDeps) -> None:
    """Confirm: card → "stopping…", one provider call, outcome stored and posted, card → final."""
    stopping: list[asyncio.Task[bool]] = []

    async def show_stopping(request: StopRequest) -> None:
        preview = deps.previews.pop(request.id, None)
        if preview is not None:
            preview.cancel()  # it must not redraw the buttons after this
        # Not awaited: Slack being slow must never delay the provider call.
        card = blocks.stopping_card(request, deps.service.facts(request.provider, request.account))
        stopping.append(asyncio.create_task(post_response(response_url, card, replace=True)))

    result = await deps.service.confirm(request_id, actor, on_executing=show_stopping)
    if stopping:
        await asyncio.wait(stopping, timeout=15)  # the final card must land after "stopping…"
    await _reply(result, actor, response_url, deps)


async def run_check_again(request_id: str, actor: Actor, response_url: str | None, deps: SlackDeps) -> None:
    """Check an open outcome again; the live records are updated in place by the outbox."""
    result = await deps.service.check_again(request_id, actor)
    if result.refused:
        await post_response(response_url, blocks.notice(result.refusal), replace=False)


async def run_cancel(request_id: str, actor: Actor, response_url: str | None, deps: SlackDeps) -> None:
    """Cancel: end the request without a provider call and say so on the card."""
    result = await deps.service.cancel(request_id, actor)
    await _reply(result, actor, response_url, deps)


async def _reply(result: ClickResult, actor: Actor, response_url: str | None, deps: SlackDeps) -> None:
    request = result.request
    if request is not None:
        facts = deps.service.facts(request.provider, request.account)
        stale = result.refused and actor.id == request.requester.id and request.state.is_final
        if not result.refused or stale:
            # The card shows the request as it ended (for a refused requester: their card was stale).
            await post_response(response_url, blocks.ended_card(request, facts), replace=True)
    elif result.refused:
        log.info("click on an unknown request")
    if result.refused:
        await post_response(response_url, blocks.notice(result.refusal), replace=False)
