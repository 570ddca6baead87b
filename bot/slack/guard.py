"""Signed payloads of any shape get an answer, never a crash: a global Bolt middleware refuses
shapes the listeners cannot use (400), and Bolt's error handler turns anything a listener still
trips on into a 400 with one log line (a traceback only at DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)


_OBJECTS = (
    "event", "view", "team", "channel", "container", "message", "previous_message", "enterprise", "item",
    "assistant_thread", "workflow_step", "state",
)
_TEXTS = (
    "type", "callback_id", "command", "text", "team_id", "user_id", "user_name", "channel_id", "enterprise_id",
    "api_app_id", "trigger_id", "response_url", "challenge", "token", "action_ts", "message_ts",
)
_LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")


_TYPE_NAMES: dict[Any, str] = {str: "text", dict: "an object", (str, dict): "an id or an object", list: "a list"}
_NESTED: dict[str, dict[str, Any]] = {
    # Events carry ids as text where interactive payloads carry objects ("channel": "C…").
    "event": {"type": str, "user": (str, dict), "channel": (str, dict), "message": dict, "previous_message": dict,
              "item": dict, "tab": str},
    "view": {"type": str, "callback_id": str, "private_metadata": str, "state": dict, "id": str},
    "message": {"text": str, "ts": str, "blocks": list, "attachments": list},
    "container": {"type": str},
}


def _object_problem(where: str, value: dict[str, Any]) -> str | None:
    for key in _OBJECTS:
        if key in value and not isinstance(value[key], dict):
            return f"{where}{key} is not an object"
    for key in _TEXTS:
        if key in value and not isinstance(value[key], str):
            return f"{where}{key} is not text"
    for key in _LISTS_OF_OBJECTS:
        if key in value and not (isinstance(value[key], list) and all(isinstance(v, dict) for v in value[key])):
            return f"{where}{key} is not a list of objects"
    if "user" in value and not isinstance(value["user"], dict | str):
        return f"{where}user is neither an object nor an id"
    return None


def payload_problem(body: Any) -> str | None:
    """Why a parsed request body cannot be handled, or None when its shape is usable.

    Bolt (and the listeners) read these fields without checking their types: a payload where
    one is null or of another type is refused here, before anything reads it.
    """
    if not isinstance(body, dict):
        return "the payload is not an object"
    problem = _object_problem("", body)
    if problem is not None:
        return problem
    for key, shape in _NESTED.items():
        inner = body.get(key)
        if not isinstance(inner, dict):
            continue
        for field, types in shape.items():
            if field in inner and not isinstance(inner[field], types):
                return f"{key}.{field} is not {_TYPE_NAMES[types]}"
    if body.get("type") == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        for action in actions:
            if not isinstance(action.get("action_id"), str):
                return "an action without an action_id"
            if not isinstance(action.get("block_id", ""), str):
                return "an action with a non-string block_id"
        if not isinstance(body.get("user"), dict):
            return "block_actions without a user"
    if body.get("type") in ("view_submission", "view_closed") and not isinstance(body.get("view"), dict):
        return f"{body['type']} without a view"
    if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
        return "event_callback without an event"
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


async def answer_listener_failure(error: Exception, body: dict[str, Any] | None = None) -> BoltResponse:
    """Bolt error handler: one log line naming the payload type and the error, and a 400."""
    kind = body.get("type") if isinstance(body, dict) else None
    log.error("could not handle a signed Slack payload (%s): %s", kind or "command", type(error).__name__)
    log.debug("listener failure", exc_info=error)
    return BoltResponse(status=400, body="malformed payload")
