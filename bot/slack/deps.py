"""What the Slack listeners need, gathered in one object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from bot.core.service import StopService
from bot.slack.health import SlackHealth
from bot.tasks import BackgroundTasks

EVENT_MEMORY_SECONDS = 3600
"""Slack redelivers an unacknowledged event up to three times within about an hour."""


@dataclass
class SlackDeps:
    """The core service, the background task supervisor, and what this process knows of Slack."""

    service: StopService
    tasks: BackgroundTasks
    incident_channel: str | None = None
    """Where every outcome also goes (the form says so)."""
    slack_health: SlackHealth = field(default_factory=SlackHealth)
    previews: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    """Preview tasks still running, by request id (cancelled once the request is confirmed)."""
    seen_events: TTLCache[str, bool] = field(
        default_factory=lambda: TTLCache(maxsize=10_000, ttl=EVENT_MEMORY_SECONDS)
    )

    def first_delivery(self, event_id: str | None) -> bool:
        """True the first time this process sees `event_id` (an event without an id counts as new)."""
        if not event_id:
            return True
        if event_id in self.seen_events:
            return False
        self.seen_events[event_id] = True
        return True
