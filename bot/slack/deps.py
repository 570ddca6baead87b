"""What the Slack listeners need, gathered in one object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bot.core.service import StopService
from bot.tasks import BackgroundTasks


@dataclass
class SlackDeps:
    """The core service and the background task supervisor."""

    service: StopService
    tasks: BackgroundTasks
    incident_channel: str | None = None
    """Where every outcome also goes (the form says so)."""
    previews: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    """Preview tasks still running, by request id (cancelled once the request is confirmed)."""
