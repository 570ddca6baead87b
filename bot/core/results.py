"""What the core hands back to front ends: the result of a click, and a campaign preview."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.models import CampaignInfo, Outcome, StopRequest


@dataclass(frozen=True)
class ClickResult:
    """What a Stop, Approve or Cancel click led to: an outcome, an ended request, or a refusal."""

    request: StopRequest | None
    """The request as it now stands (None: no such request)."""
    outcome: Outcome | None = None
    refusal: str = ""
    """Why nothing happened, for the person who clicked ("" when the click did something)."""

    @property
    def refused(self) -> bool:
        """True when nothing happened because of this click."""
        return bool(self.refusal)


@dataclass(frozen=True)
class Preview:
    """The campaign as the provider describes it, or why there is no description."""

    info: CampaignInfo | None
    unavailable: str | None = None


@dataclass(frozen=True)
class ReplyLink:
    """Where a click came from: the reply link Slack gave with it, and its conversation."""

    url: str | None
    channel_id: str | None

    def fits(self, request: StopRequest) -> bool:
        """True when the link posts into the request's own conversation."""
        return bool(self.url) and bool(self.channel_id) and self.channel_id == request.channel_id
