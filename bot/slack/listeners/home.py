"""The Home tab: published on ``app_home_opened`` and again whenever a request of the user
changes (created, confirmed, cancelled), so it never shows a button for a request that ended."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Actor
from bot.slack import views
from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

RECENT = 50
"""How many recent requests the tab reads (it shows ten of each kind)."""


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire ``app_home_opened``."""

    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = event.get("user")
        if event.get("tab", "home") == "home" and isinstance(user, str) and user:
            await publish_home(user, client, deps)

    app.event("app_home_opened")(home_opened)


async def publish_home(user_id: str, client: AsyncWebClient, deps: SlackDeps) -> None:
    """Build and publish one user's Home tab; never raises."""
    service = deps.service
    viewer = Actor(id=user_id, source="slack")
    try:
        waiting = await service.waiting_for(viewer)
        team = await service.history(viewer, limit=RECENT)
        mine = [r for r in team if r.requester.id == user_id]
        view = views.home_view(user_id, waiting, mine, team, service.targets(), service.health)
        await client.views_publish(user_id=user_id, view=view)
    except Exception as exc:  # Slack down, a store hiccup: the tab is refreshed on the next open
        log.warning("could not publish the Home tab: %s", type(exc).__name__)
