"""What Slack may send that no other listener takes: acknowledged, never a 404.

Slack sends ``view_closed`` when a modal is closed (where asked to), ``block_actions`` for inputs
in modals and for elements of messages the app no longer handles, and events the app may be
subscribed to later. Bolt answers an unmatched request with a 404, which Slack shows the user as
an error (and redelivers, for events); these listeners, registered last, acknowledge them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

log = logging.getLogger(__name__)

ANYTHING = re.compile(".*")


def register(app: AsyncApp) -> None:
    """Acknowledge any action, shortcut, closed or submitted view, or event that reaches no other listener."""

    async def acknowledge(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        log.debug("acknowledged a %s payload no listener takes", body.get("type"))

    async def ignore_event(body: dict[str, Any]) -> None:
        log.debug("acknowledged an event no listener takes")

    app.action(ANYTHING)(acknowledge)
    app.shortcut(ANYTHING)(acknowledge)
    app.view_closed(ANYTHING)(acknowledge)
    app.view_submission(ANYTHING)(acknowledge)
    app.event(ANYTHING)(ignore_event)
