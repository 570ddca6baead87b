"""Announces outcomes in Slack: the channel where the stop was asked, and the incident channel.

Posts go through the service's outbox: `targets` says which posts an outcome owes, `post` makes
one and says whether a failure is worth retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.models import AuditEntry, Outcome, ProviderFacts, RequestState, StopRequest
from bot.core.ports import DeliveryError, ProviderCatalog, facts_for
from bot.core.render import trail_lines
from bot.core.results import Preview
from bot.metrics import SLACK_ERRORS
from bot.slack.blocks import (
    MAX_BLOCKS,
    Message,
    clip,
    confirmation_card,
    context,
    ended_card,
    escape,
    outcome_message,
    record_started,
    record_waiting,
    stopping_card,
    user,
)
from bot.slack.health import CONVERSATION_ERRORS, TOKEN_ERRORS, SlackHealth
from bot.slack.responder import post_response, retry_after

log = logging.getLogger(__name__)

# Slack errors that no retry can fix (the rest, such as ratelimited or fatal_error, are retried;
# a refused token is held: retried until Slack accepts it again, never given up).
PERMANENT_ERRORS = CONVERSATION_ERRORS | frozenset(
    {
        "missing_scope",
        "no_permission",
        "restricted_action",
        "team_access_not_granted",
        "ekm_access_denied",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
    }
)


APPROVER = "approver"
"""The outbox target of an approver's card, sent by DM and kept up to date like a live record."""


def approver_card(request: StopRequest, facts: ProviderFacts) -> Message:
    """An approver's DM card as the request stands: to approve (with its buttons), being stopped,
    or ended (no button left)."""
    if request.state is RequestState.PENDING:
        if request.preview is not None:
            preview: Preview | None = Preview(request.preview)
        else:
            preview = None if facts.has_preview else Preview(None, facts.no_preview_reason)
        return confirmation_card(request, facts, preview)
    if request.state is RequestState.EXECUTING:
        return stopping_card(request, facts)
    return ended_card(request, facts)


RECORD_EVENT = "stopcampaign_record"
"""The metadata event type of the app's records and outcome posts (to find one whose answer was lost)."""


def record_metadata(request: StopRequest, target: str) -> dict[str, Any]:
    """Message metadata naming the request and target a post belongs to (not shown to people)."""
    return {"event_type": RECORD_EVENT, "event_payload": {"request_id": request.id, "target": target}}


def _slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError) and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error") or type(exc).__name__)
    return type(exc).__name__


class SlackNotifier:
    """Posts outcome messages with chat.postMessage and updates cards of expired requests."""

    def __init__(
        self,
        client: AsyncWebClient,
        incident_channel: str | None,
        catalog: ProviderCatalog,
        health: SlackHealth | None = None,
    ) -> None:
        self.client = client
        self.incident_channel = incident_channel
        self.catalog = catalog
        self.health = health or SlackHealth(incident_channel)
        self._workspace_url: str | None = None

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        """The request's channel, then the incident channel (when set and different)."""
        owed = []
        if request.channel_id:
            owed.append(("channel", request.channel_id))
        if self.incident_channel and self.incident_channel != request.channel_id:
            owed.append(("incident", self.incident_channel))
        return owed

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        """One outcome post; the incident post links to the channel post once that exists."""
        permalink, facts = await self._context(request, target, link_ts)
        return await self._call(
            "chat.postMessage",
            request,
            target,
            lambda: self.client.chat_postMessage(
                channel=channel, unfurl_links=False, metadata=record_metadata(request, target),
                **outcome_message(request, outcome, facts, permalink=permalink),
            ),
        )

    async def find_post(self, request: StopRequest, target: str, channel: str) -> str | None:
        """The ts of a post of this request and target that Slack accepted although its answer was
        lost (the process died while Slack answered): found by the metadata every post carries, in
        the conversation's messages since the request was made. None when there is none, or when the
        app may not read the conversation's history (no ``channels:history``/``groups:history``)."""
        since = (request.confirmed_at or request.created_at) - timedelta(minutes=1)
        try:
            answer = await self.client.conversations_history(
                channel=channel, oldest=f"{since.timestamp():.6f}", limit=200, include_all_metadata=True
            )
        except Exception as exc:
            log.info("could not look for an earlier post in %s (%s)", target, _slack_error(exc),
                     extra={"request_id": request.id})
            return None
        messages = answer.get("messages")
        for message in messages if isinstance(messages, list) else []:
            metadata = message.get("metadata") if isinstance(message, dict) else None
            if not isinstance(metadata, dict):
                continue
            payload = metadata.get("event_payload")
            if (
                isinstance(payload, dict)
                and metadata.get("event_type") == RECORD_EVENT
                and payload.get("request_id") == request.id
                and payload.get("target") == target
                and isinstance(message.get("ts"), str)
            ):
                return str(message["ts"])
        return None

    async def _call(
        self, method: str, request: StopRequest, target: str, send: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> str | None:
        """One Web API call of the outbox: its ts, or `DeliveryError` saying whether to retry."""
        try:
            response = await send()
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = str(data.get("error") or f"HTTP {exc.response.status_code}")
            SLACK_ERRORS.labels(method, error).inc()
            if error in TOKEN_ERRORS:
                self.health.token_refused(error)
                raise DeliveryError(error, permanent=False, hold=True) from None
            refused = error in CONVERSATION_ERRORS
            if refused and target == "incident":
                self.health.incident_refused(error)
            wait = retry_after(exc.response.headers) if exc.response.status_code == 429 else None
            raise DeliveryError(
                error, permanent=error in PERMANENT_ERRORS, retry_after=wait, conversation_refused=refused
            ) from None
        except Exception as exc:  # connection refused, timeouts: Slack unreachable, try again later
            SLACK_ERRORS.labels(method, type(exc).__name__).inc()
            raise DeliveryError(type(exc).__name__, permanent=False) from None
        self.health.slack_accepted(incident=target == "incident")
        ts = response.get("ts")
        return ts if isinstance(ts, str) else None

    async def direct_posts(self, user_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Each approver's DM with the app (``conversations.open``), where their card is posted and
        then kept up to date; an approver Slack will not open a DM with is left out (logged)."""
        posts = []
        for user_id in user_ids:
            try:
                answer = await self.client.conversations_open(users=user_id)
            except Exception as exc:
                log.warning("could not open a DM with an approver: %s", _slack_error(exc))
                continue
            channel = answer.get("channel")
            channel_id = channel.get("id") if isinstance(channel, dict) else None
            if isinstance(channel_id, str) and channel_id:
                posts.append((APPROVER, channel_id))
        return posts

    async def reply(self, request: StopRequest, outcome: Outcome, refusal: str) -> bool:
        """The outcome, posted for everyone in the request's conversation through its reply link
        (the app is not in that conversation), saying how to let the app post there itself."""
        facts = facts_for(self.catalog, request.provider, request.account)
        message = outcome_message(request, outcome, facts)
        note = context(f":information_source: stopcampaign cannot post in this conversation itself ({refusal}), so "
                       "it answered through the command's reply link. Invite it (`/invite @stopcampaign`) so it can "
                       "post outcomes here and keep them up to date.")
        message["blocks"] = [*message["blocks"], note][:MAX_BLOCKS]
        return await post_response(
            request.response_url, message, replace=False, ephemeral=False,
            issued_at=request.response_url_at or request.created_at,
        )

    async def post_record(
        self, request: StopRequest, target: str, channel: str, link_ts: str | None, ts: str | None = None
    ) -> str | None:
        """The live record as the request stands: waiting for approval, being stopped, or ended
        without a stop; a new message, or with `ts` the same one updated in place."""
        permalink, facts = await self._context(request, target, link_ts)
        if target == APPROVER:
            message = approver_card(request, facts)
        elif request.state is RequestState.PENDING:
            message = record_waiting(request, facts, permalink=permalink)
        elif request.state is RequestState.EXECUTING:
            message = record_started(request, facts, permalink=permalink)
        else:
            message = ended_card(request, facts)
        if ts is None:
            return await self._call(
                "chat.postMessage", request, target,
                lambda: self.client.chat_postMessage(
                    channel=channel, unfurl_links=False, metadata=record_metadata(request, target), **message
                ),
            )
        try:
            return await self._call(
                "chat.update", request, target, lambda: self.client.chat_update(channel=channel, ts=ts, **message)
            )
        except DeliveryError as exc:
            if exc.reason not in ("message_not_found", "cant_update_message", "edit_window_closed"):
                raise
        return await self.post_record(request, target, channel, link_ts)

    async def update(
        self,
        request: StopRequest,
        outcome: Outcome,
        target: str,
        channel: str,
        ts: str,
        link_ts: str | None,
        trail: list[AuditEntry] | None = None,
    ) -> str | None:
        """The live record becomes the outcome, in place (chat.update); a record that is gone
        (deleted, or the channel unreachable for updates) gets a new message instead."""
        permalink, facts = await self._context(request, target, link_ts)
        message = outcome_message(request, outcome, facts, permalink=None if target == APPROVER else permalink)
        try:
            updated = await self._call(
                "chat.update", request, target, lambda: self.client.chat_update(channel=channel, ts=ts, **message)
            )
        except DeliveryError as exc:
            if exc.reason not in ("message_not_found", "cant_update_message", "edit_window_closed"):
                raise
            return await self.post(request, outcome, target, channel, link_ts)
        if target != APPROVER:  # an approver's DM card needs no audit trail
            await self._thread_details(request, facts, channel, ts, trail or [])
        return updated

    async def _thread_details(
        self, request: StopRequest, facts: ProviderFacts, channel: str, ts: str, trail: list[AuditEntry]
    ) -> None:
        """The audit trail in the record's thread (best effort: the record itself says what matters)."""
        lines = trail_lines(request, trail, facts, lambda actor: user(actor.id) if actor else "someone")
        text = "\n".join(escape(line) if i else line for i, line in enumerate(lines))
        try:
            await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=clip(text, 3000), unfurl_links=False)
        except Exception as exc:
            log.info("the audit trail could not be put in the record's thread (%s)", type(exc).__name__)

    async def card_ended(self, request: StopRequest) -> bool:
        """Replace the request's card by its ended state, without buttons (its response_url is valid
        for 30 minutes; past that the card keeps its buttons, and a click is told the request ended)."""
        facts = facts_for(self.catalog, request.provider, request.account)
        return await post_response(request.response_url, ended_card(request, facts), replace=True,
                                   issued_at=request.response_url_at or request.created_at)

    async def _context(
        self, request: StopRequest, target: str, link_ts: str | None
    ) -> tuple[str | None, ProviderFacts]:
        """The link an incident post carries to the channel's message (once that exists), and the facts."""
        permalink = None
        if target == "incident" and link_ts and request.channel_id:
            permalink = await self._permalink(request.channel_id, link_ts)
        return permalink, facts_for(self.catalog, request.provider, request.account)

    async def _permalink(self, channel: str, ts: str) -> str:
        """The channel message's permalink from chat.getPermalink (built from auth.test's workspace
        URL when that cannot be had)."""
        try:
            answer = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
            link = answer.get("permalink")
            if isinstance(link, str) and link.startswith("https://"):
                return link
        except Exception as exc:
            log.info("chat.getPermalink failed (%s); building the link", type(exc).__name__)
        if self._workspace_url is None:
            try:
                auth = await self.client.auth_test()
                url = auth.get("url")
                self._workspace_url = url if isinstance(url, str) and url.startswith("https://") else ""
            except Exception:
                self._workspace_url = ""
        base = (self._workspace_url or "https://slack.com/").rstrip("/")
        return f"{base}/archives/{channel}/p{ts.replace('.', '')}"
