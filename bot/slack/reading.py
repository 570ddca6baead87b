"""Listeners read their payloads through `bot.slack.payloads`: one decorator does the reading
and the refusal, so every listener answers a payload it cannot use the same way."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.payloads import Lenient, PayloadRefused, read

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Lenient)
Handler = Callable[[M, AsyncAck, AsyncWebClient], Awaitable[None]]
Listener = Callable[[AsyncAck, dict[str, Any], AsyncWebClient], Awaitable[BoltResponse | None]]


def refusal(surface: str, problem: str) -> BoltResponse:
    """The answer to a payload that lacks what its listener needs: one log line and a 400 (in
    Socket Mode the envelope is acked all the same, so Slack does not deliver it again)."""
    log.warning("refused a Slack %s payload: %s", surface, problem)
    return BoltResponse(status=400, body=f"malformed payload: {problem}")


def reading(model: type[M], surface: str) -> Callable[[Handler[M]], Listener]:
    """Wrap a handler of `model` into a Bolt listener (Bolt passes ``ack``, ``body``, ``client``
    by name); a payload `model` cannot read is refused before the handler runs."""

    def wrap(handler: Handler[M]) -> Listener:
        async def listener(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> BoltResponse | None:
            try:
                payload = read(model, body)
            except PayloadRefused as refused:
                return refusal(surface, str(refused))
            await handler(payload, ack, client)
            return None

        listener.__name__ = handler.__name__
        return listener

    return wrap
