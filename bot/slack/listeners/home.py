"""The Home tab: published on ``app_home_opened`` and again whenever a request of the user
changes (created, confirmed, cancelled), so it never shows a button for a request that ended.

The event is acked before anything is published (Slack gives events 3 s, and a rate-limited
``views.publish`` can wait longer than that); a redelivered event (same ``event_id``) is not
acted on twice.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor
from bot.slack import views
from bot.slack.deps import SlackDeps
from bot.slack.payloads import EventEnvelope, HomeOpened, PayloadRefused, read
from bot.slack.reading import refusal

log = logging.getLogger(__name__)

RECENT = 50
"""How many recent requests the tab reads (it shows ten of each kind)."""


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire ``app_home_opened``."""

    async def home_opened(
        ack: AsyncAck, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> BoltResponse | None:
        try:
            opened = read(HomeOpened, event)
            envelope = read(EventEnvelope, body)
        except PayloadRefused as refused:
            return refusal("app_home_opened event", str(refused))
        await ack()
        if not deps.first_delivery(envelope.event_id):
            log.info("app_home_opened delivered again (event %s): already handled", envelope.event_id)
            return None
        if opened.tab == "home":
            deps.tasks.spawn(publish_home(opened.user, client, deps), name="home-tab")
        return None

    app.event("app_home_opened")(home_opened)


async def publish_home(user_id: str, client: AsyncWebClient, deps: SlackDeps) -> None:
    """Build and publish one user's Home tab; never raises."""
    service = deps.service
    viewer = Actor(id=user_id, source="slack")
    try:
        waiting = await service.waiting_for(viewer)
        team = await service.history(viewer, limit=RECENT)
        mine = [r for r in team if r.requester.id == user_id]
        view = views.home_view(
            user_id, waiting, mine, team, service.targets(), service.health, deps.slack_health.problems()
        )
        await client.views_publish(user_id=user_id, view=view)
    except Exception as exc:  # Slack down, a store hiccup: the tab is refreshed on the next open
        log.warning("could not publish the Home tab: %s", type(exc).__name__)
