"""What this process knows is wrong between it and Slack: a token Slack refuses, an incident
channel that does not take the app's posts. `/healthz` reports it as degraded, the Home tab
shows it, and each problem is logged once when it starts and once when it ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.models import utcnow

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
"""Slack refuses the bot token itself: nothing can be posted until it is fixed (posts stay owed)."""
CONVERSATION_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "channel_is_archived"})
"""The conversation does not take the app's posts: invite the app (or pick another channel)."""

TOKEN, INCIDENT_CHANNEL = "slack_token", "incident_channel"


@dataclass(frozen=True)
class SlackProblem:
    """One thing wrong with Slack, in words for people, and since when."""

    name: str
    message: str
    """For Slack (mrkdwn: the channel as a link)."""
    plain: str
    """For the log and ``/healthz``."""
    since: datetime


class SlackHealth:
    """The problems this process saw with Slack, cleared when Slack accepts the same thing again."""

    def __init__(self, incident_channel: str | None = None) -> None:
        self.incident_channel = incident_channel
        self._problems: dict[str, SlackProblem] = {}

    def problems(self) -> list[SlackProblem]:
        """The current problems, oldest first."""
        return sorted(self._problems.values(), key=lambda p: p.since)

    def token_refused(self, error: str) -> None:
        """The Web API refused the bot token (`error` is Slack's code)."""
        message = (f"Slack refuses the bot token ({error}): check SLACK_BOT_TOKEN and reinstall the app. "
                   "Stops still reach the providers; their outcome posts are kept and go out once Slack "
                   "accepts the token again.")
        self._set(TOKEN, message, message)

    def incident_refused(self, error: str) -> None:
        """The incident channel refused a post or the start-up check (`error` is Slack's code)."""
        advice = (f" did not accept the app's posts ({error}): invite @stopcampaign there (/invite @stopcampaign) "
                  "or set INCIDENT_CHANNEL to a channel it is in.")
        channel = self.incident_channel or "?"
        self._set(INCIDENT_CHANNEL, f"<#{channel}>{advice}", f"The incident channel {channel}{advice}")

    def slack_accepted(self, *, incident: bool = False) -> None:
        """A Web API call went through (for `incident`: a post in the incident channel)."""
        self._clear(TOKEN)
        if incident:
            self._clear(INCIDENT_CHANNEL)

    def _set(self, name: str, message: str, plain: str) -> None:
        if name in self._problems:
            return
        self._problems[name] = SlackProblem(name, message, plain, utcnow())
        log.warning("%s", plain)

    def _clear(self, name: str) -> None:
        if self._problems.pop(name, None) is not None:
            log.warning("Slack problem resolved: %s", name.replace("_", " "))


async def check_at_start(client: AsyncWebClient, health: SlackHealth) -> None:
    """Ask Slack once at start whether the token works and the incident channel takes the app's
    posts (``conversations.info``: found, not archived, the app a member where it must be); a
    problem is logged once and reported by ``/healthz``. Never raises."""
    try:
        await client.auth_test()
    except SlackApiError as exc:
        error = _error_code(exc)
        if error in TOKEN_ERRORS:
            health.token_refused(error)
            return
        log.warning("could not check the Slack token at start (%s)", error)
    except Exception as exc:
        log.warning("could not reach Slack at start (%s); posts are retried until it answers", type(exc).__name__)
        return
    channel = health.incident_channel
    if not channel:
        return
    try:
        answer = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = _error_code(exc)
        if error in CONVERSATION_ERRORS:
            health.incident_refused(error)
        elif error in TOKEN_ERRORS:
            health.token_refused(error)
        else:  # missing_scope (channels:read, groups:read) and the like: the posts will tell
            log.warning("could not check INCIDENT_CHANNEL %s at start (%s)", channel, error)
        return
    except Exception as exc:
        log.warning("could not check INCIDENT_CHANNEL %s at start (%s)", channel, type(exc).__name__)
        return
    info = answer.get("channel")
    info = info if isinstance(info, dict) else {}
    if info.get("is_archived"):
        health.incident_refused("is_archived")
    elif info.get("is_private") and info.get("is_member") is False:
        health.incident_refused("not_in_channel")


def _error_code(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return str(data.get("error") or f"HTTP {exc.response.status_code}")
