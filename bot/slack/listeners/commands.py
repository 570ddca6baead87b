"""``/stopcampaign``: parse, store a pending request, ack with the confirmation card.

The ack carries the card, so it must not wait on anything slow: the only work before it is
parsing and one insert. The preview (where the provider has one) is fetched after the ack
and fills the card through the command's response_url.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.core.models import Actor, StopRequest
from bot.core.parsing import HelpCommand, UsageError
from bot.core.render import help_text
from bot.core.service import Preview
from bot.slack import blocks
from bot.slack.deps import SlackDeps
from bot.slack.responder import post_response

log = logging.getLogger(__name__)

COMMAND = "/stopcampaign"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the slash command."""

    async def stopcampaign(ack: AsyncAck, body: dict[str, Any]) -> None:
        await handle_command(ack, body, deps)

    app.command(COMMAND)(stopcampaign)


async def handle_command(ack: AsyncAck, body: dict[str, Any], deps: SlackDeps) -> None:
    """Answer one slash command; never raises."""
    service = deps.service
    try:
        command = service.parse(_text(body.get("text")))
    except UsageError as exc:
        await ack(response_type="ephemeral", **blocks.usage_error(str(exc)))
        return
    if isinstance(command, HelpCommand):
        await ack(response_type="ephemeral", **blocks.help_message(help_text(service.registry)))
        return

    user_id = _text(body.get("user_id"))
    if not user_id:
        await ack(response_type="ephemeral", text="This command arrived without a user; nothing was done.")
        return
    requester = Actor(id=user_id, name=_text(body.get("user_name")) or None, source="slack")
    response_url = _text(body.get("response_url")) or None
    try:
        request = await service.create_request(
            command,
            requester,
            team_id=_text(body.get("team_id")) or None,
            channel_id=_text(body.get("channel_id")) or None,
            response_url=response_url,
        )
    except Exception:
        log.exception("could not store a stop request")
        await ack(
            response_type="ephemeral",
            text="stopcampaign could not save this request, so nothing was sent. Please try again.",
        )
        return

    adapter = service.adapter(request.provider, request.account)
    has_preview = adapter is not None and adapter.has_preview
    preview = None if has_preview else Preview(None, adapter.no_preview_reason if adapter else None)
    await ack(response_type="ephemeral", **blocks.confirmation_card(request, adapter, preview))
    if has_preview:
        deps.tasks.spawn(fill_preview(request, deps), name=f"preview-{request.id}")


async def fill_preview(request: StopRequest, deps: SlackDeps) -> None:
    """Fetch the preview and redraw the card with it, unless the request has moved on."""
    preview = await deps.service.load_preview(request)
    current = await deps.service.store.get(request.id)
    if current is None or current.state.is_final or current.state.value != "pending":
        return
    adapter = deps.service.adapter(request.provider, request.account)
    await post_response(request.response_url, blocks.confirmation_card(current, adapter, preview), replace=True)


def _text(value: Any) -> str:
    """A payload value as text; anything that is not a string counts as empty."""
    return value.strip() if isinstance(value, str) else ""
