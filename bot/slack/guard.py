"""Signed payloads of any shape get an answer, never a crash or a 5xx.

Each listener reads only the fields it needs (`bot.slack.payloads`), so nothing is checked here
beyond what Bolt itself must read to route a payload; Bolt's error handler turns anything that
still trips (Bolt's own routing on a payload of a shape Slack never sends, a listener bug) into
a 400 with one log line (a traceback only at DEBUG).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)


def is_ssl_check(fields: dict[str, list[str]]) -> bool:
    """Slack's unsigned probe of the request URL (``ssl_check=1``), which is answered 200 and never acted on."""
    return fields.get("ssl_check") == ["1"] and not ({"payload", "command"} & fields.keys())


async def answer_listener_failure(error: Exception, body: dict[str, Any] | None = None) -> BoltResponse:
    """Bolt error handler: one log line naming the payload type and the error, and a 400."""
    kind = body.get("type") if isinstance(body, dict) else None
    log.error("could not handle a signed Slack payload (%s): %s", kind or "command", type(error).__name__)
    log.debug("listener failure", exc_info=error)
    return BoltResponse(status=400, body="malformed payload")
