"""A global Bolt middleware that answers malformed (but signed) payloads with 400 instead of a crash."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)


def payload_problem(body: dict[str, Any]) -> str | None:
    """Why a parsed request body cannot be handled, or None when its shape is usable."""
    if body.get("type") == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
                return "an action without an action_id"
            if not isinstance(action.get("block_id", ""), str):
                return "an action with a non-string block_id"
        if not isinstance(body.get("user"), dict):
            return "block_actions without a user"
    if "command" in body and not isinstance(body.get("command"), str):
        return "a command that is not text"
    return None


async def reject_malformed(
    req: AsyncBoltRequest,
    resp: BoltResponse,
    next: Callable[[], Awaitable[BoltResponse]],
) -> BoltResponse:
    """Bolt middleware: stop malformed payloads before listener matching can trip on them."""
    problem = payload_problem(req.body if isinstance(req.body, dict) else {})
    if problem is not None:
        log.warning("malformed Slack payload: %s", problem)
        return BoltResponse(status=400, body=f"malformed payload: {problem}")
    return await next()
