"""Announces outcomes in Slack: the channel where the stop was asked, and the incident channel."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import Outcome, StopRequest
from bot.slack.blocks import ended_card, outcome_message
from bot.slack.responder import post_response

log = logging.getLogger(__name__)


class SlackNotifier:
    """Posts outcome messages with chat.postMessage and updates cards of expired requests."""

    def __init__(self, client: AsyncWebClient, incident_channel: str | None) -> None:
        self.client = client
        self.incident_channel = incident_channel
        self._workspace_url: str | None = None

    async def outcome(self, request: StopRequest, outcome: Outcome) -> None:
        """Post the outcome in the request's channel, then in the incident channel with a link."""
        permalink = None
        errors: list[str] = []
        if request.channel_id:
            try:
                response = await self.client.chat_postMessage(
                    channel=request.channel_id, unfurl_links=False, **outcome_message(request, outcome)
                )
                ts = response.get("ts")
                if isinstance(ts, str):
                    permalink = await self._permalink(request.channel_id, ts)
            except Exception as exc:
                error = _slack_error(exc)
                errors.append(f"channel: {error}")
                # The requester still sees the outcome on their card; say why the channel did not.
                await post_response(
                    request.response_url,
                    {
                        "text": f"The outcome could not be posted in this channel ({error}): "
                        "invite the app to the channel or check its scopes."
                    },
                    replace=False,
                )
        if self.incident_channel and self.incident_channel != request.channel_id:
            try:
                await self.client.chat_postMessage(
                    channel=self.incident_channel,
                    unfurl_links=False,
                    **outcome_message(request, outcome, permalink=permalink),
                )
            except Exception as exc:
                errors.append(f"incident channel: {_slack_error(exc)}")
        if errors:
            raise RuntimeError("; ".join(errors))

    async def expired(self, request: StopRequest) -> None:
        """Replace the card of an expired request (its response_url is valid for 30 minutes)."""
        await post_response(request.response_url, ended_card(request), replace=True)

    async def _permalink(self, channel: str, ts: str) -> str:
        if self._workspace_url is None:
            try:
                auth = await self.client.auth_test()
                url = auth.get("url")
                self._workspace_url = url if isinstance(url, str) and url.startswith("https://") else ""
            except Exception:
                self._workspace_url = ""
        base = (self._workspace_url or "https://slack.com/").rstrip("/")
        return f"{base}/archives/{channel}/p{ts.replace('.', '')}"


def _slack_error(exc: Exception) -> str:
    """Slack's error code (``channel_not_found``) or the exception type, never a token."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "error"))
    return type(exc).__name__
