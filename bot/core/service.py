"""StopService: the one place where stop requests are created, confirmed, cancelled and expired.

Front ends (Slack, console, CLI) turn their input into these calls and render the results.
The rule that makes the app safe lives here and in the store: a request moves
``pending → executing`` with one conditional update, and only the caller that won it calls the
provider. The outcome is stored before anything is posted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from bot.core.models import (
    Actor,
    CampaignInfo,
    Outcome,
    OutcomeStatus,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.parsing import Command, StopCommand, parse_command
from bot.providers.base import PreviewUnavailable, ProviderAdapter
from bot.providers.registry import ProviderRegistry
from bot.store.repository import Store

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Where outcomes are announced (the channel, the incident channel, the console)."""

    async def outcome(self, request: StopRequest, outcome: Outcome) -> None:
        """Announce a stored outcome. May raise; the service logs and audits the failure."""

    async def expired(self, request: StopRequest) -> None:
        """Tell the requester their confirmation expired (e.g. update the card)."""


class NullNotifier:
    """A notifier that announces nothing (the CLI prints the returned outcome itself)."""

    async def outcome(self, request: StopRequest, outcome: Outcome) -> None:
        """Do nothing."""

    async def expired(self, request: StopRequest) -> None:
        """Do nothing."""


class Refusal(StrEnum):
    """Why a click did not lead to a stop."""

    NOT_FOUND = "not_found"
    NOT_REQUESTER = "not_requester"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass
class ClickResult:
    """What a Stop or Cancel click led to: an outcome, a cancellation, or a refusal with its reason."""

    request: StopRequest | None
    outcome: Outcome | None = None
    refusal: Refusal | None = None
    message: str = ""

    @property
    def refused(self) -> bool:
        """True when nothing happened because of this click."""
        return self.refusal is not None


@dataclass
class Preview:
    """The campaign as the provider describes it, or why there is no description."""

    info: CampaignInfo | None
    unavailable: str | None = None


class StopService:
    """Creates, confirms, cancels and expires stop requests."""

    def __init__(
        self,
        store: Store,
        registry: ProviderRegistry,
        notifier: Notifier,
        *,
        ttl: timedelta = timedelta(minutes=10),
        preview_timeout: float = 2.0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.ttl = ttl
        self.preview_timeout = preview_timeout

    # ----- commands ---------------------------------------------------------------------------

    def parse(self, text: str | None) -> Command:
        """Parse command text; raises `UsageError` with a clear message."""
        return parse_command(text, self.registry)

    def adapter(self, provider: str, account: str) -> ProviderAdapter[Any] | None:
        """The adapter of a configured account, or None."""
        return self.registry.get(provider, account)

    async def create_request(
        self,
        command: StopCommand,
        requester: Actor,
        *,
        team_id: str | None = None,
        channel_id: str | None = None,
        response_url: str | None = None,
    ) -> StopRequest:
        """Store a pending request with an unguessable id. No provider call happens here."""
        now = utcnow()
        request = StopRequest(
            id=secrets.token_urlsafe(18),
            provider=command.provider,
            account=command.account,
            campaign_id=command.campaign_id,
            reason=command.reason,
            requester=requester,
            team_id=team_id,
            channel_id=channel_id,
            response_url=response_url,
            state=RequestState.PENDING,
            created_at=now,
            expires_at=now + self.ttl,
        )
        await self.store.create(request)
        log.info(
            "request created",
            extra={"request_id": request.id, "provider": request.provider, "account": request.account},
        )
        return request

    async def load_preview(self, request: StopRequest) -> Preview:
        """Ask the provider about the campaign (bounded by the preview timeout) and keep the answer."""
        adapter = self.adapter(request.provider, request.account)
        if adapter is None:
            return Preview(None, "this account is no longer configured")
        if not adapter.has_preview:
            return Preview(None, adapter.no_preview_reason)
        try:
            async with asyncio.timeout(self.preview_timeout):
                info = await adapter.preview(request.campaign_id)
        except PreviewUnavailable as exc:
            preview = Preview(None, str(exc) or "the provider could not describe the campaign")
        except TimeoutError:
            preview = Preview(None, f"{adapter.display_name} did not answer within {self.preview_timeout:g} s")
        except Exception:
            log.exception("preview failed", extra={"request_id": request.id})
            preview = Preview(None, "the preview failed unexpectedly")
        else:
            preview = Preview(info)
        try:
            await self.store.set_preview(request.id, preview.info, preview.unavailable)
        except Exception:
            log.exception("could not store the preview", extra={"request_id": request.id})
        return preview

    # ----- clicks -----------------------------------------------------------------------------

    async def confirm(
        self,
        request_id: str,
        actor: Actor,
        *,
        on_executing: Callable[[StopRequest], Awaitable[None]] | None = None,
    ) -> ClickResult:
        """Stop the campaign of a pending request, exactly once, and announce the outcome."""
        request = await self.store.get(request_id)
        if request is None:
            return ClickResult(None, refusal=Refusal.NOT_FOUND, message="This stop request does not exist.")
        if actor.id != request.requester.id:
            await self.store.record(request_id, "refused", actor, {"action": "confirm", "rule": "requester_only"})
            return ClickResult(
                request,
                refusal=Refusal.NOT_REQUESTER,
                message=f"Only {request.requester.display} who asked for this stop can confirm it.",
            )
        if not await self.store.claim_for_execution(request_id, actor):
            return await self._why_not(request_id)

        request = request.model_copy(update={"state": RequestState.EXECUTING, "confirmed_by": actor})
        if on_executing is not None:
            try:
                await on_executing(request)
            except Exception:
                log.exception("on_executing hook failed", extra={"request_id": request_id})
        outcome = await self._execute(request)
        outcome = outcome.model_copy(
            update={
                "requested_by": request.requester,
                "confirmed_by": actor,
                "state_before": outcome.state_before or (request.preview.state if request.preview else None),
            }
        )
        await self._store_outcome(request_id, outcome)
        request = request.model_copy(update={"state": RequestState.DONE, "outcome": outcome})
        await self._announce(request, outcome)
        return ClickResult(request, outcome=outcome)

    async def cancel(self, request_id: str, actor: Actor) -> ClickResult:
        """End a pending request without any provider call."""
        request = await self.store.get(request_id)
        if request is None:
            return ClickResult(None, refusal=Refusal.NOT_FOUND, message="This stop request does not exist.")
        if actor.id != request.requester.id:
            await self.store.record(request_id, "refused", actor, {"action": "cancel", "rule": "requester_only"})
            return ClickResult(
                request,
                refusal=Refusal.NOT_REQUESTER,
                message=f"Only {request.requester.display} who asked for this stop can cancel it.",
            )
        if not await self.store.cancel(request_id, actor):
            return await self._why_not(request_id)
        ended = await self.store.get(request_id)
        return ClickResult(ended)

    async def expire_due(self) -> list[StopRequest]:
        """Expire every pending request past its expiry; returns those this call expired."""
        expired: list[StopRequest] = []
        for request in await self.store.due_for_expiry():
            if await self.store.expire(request.id):
                ended = await self.store.get(request.id)
                if ended is not None:
                    expired.append(ended)
                    try:
                        await self.notifier.expired(ended)
                    except Exception:
                        log.warning("could not announce an expiry", extra={"request_id": request.id})
        return expired

    # ----- internals --------------------------------------------------------------------------

    async def _why_not(self, request_id: str) -> ClickResult:
        """Explain why a transition was lost (and expire a request found past its expiry)."""
        request = await self.store.get(request_id)
        if request is None:
            return ClickResult(None, refusal=Refusal.NOT_FOUND, message="This stop request does not exist.")
        if request.state is RequestState.PENDING and request.is_expired():
            await self.store.expire(request_id)
            request = await self.store.get(request_id) or request
        state = request.state
        if state is RequestState.EXPIRED:
            return ClickResult(
                request,
                refusal=Refusal.EXPIRED,
                message=(
                    "This request expired before it was confirmed; nothing was sent to "
                    f"{self._display(request)}. Run /stopcampaign again."
                ),
            )
        if state is RequestState.CANCELLED:
            who = request.ended_by.display if request.ended_by else "someone"
            return ClickResult(request, refusal=Refusal.CANCELLED, message=f"This request was cancelled by {who}.")
        if state is RequestState.EXECUTING:
            who = request.confirmed_by.display if request.confirmed_by else "someone"
            return ClickResult(
                request, refusal=Refusal.IN_PROGRESS, message=f"This stop is already running (confirmed by {who})."
            )
        status = request.outcome.status.label if request.outcome else "done"
        return ClickResult(request, refusal=Refusal.DONE, message=f"This request has already ended: {status}.")

    def _display(self, request: StopRequest) -> str:
        adapter = self.adapter(request.provider, request.account)
        return adapter.display_name if adapter else request.provider

    async def _execute(self, request: StopRequest) -> Outcome:
        adapter = self.adapter(request.provider, request.account)
        if adapter is None:
            return Outcome(
                status=OutcomeStatus.INVALID_REQUEST,
                provider=request.provider,
                account=request.account,
                campaign_id=request.campaign_id,
                detail="This account is no longer configured; nothing was sent.",
            )
        try:
            return await adapter.stop(request.campaign_id)
        except Exception as exc:
            # Adapters map every provider answer; this is a bug, and the request must still end.
            log.exception("adapter failed", extra={"request_id": request.id})
            return Outcome(
                status=OutcomeStatus.UNKNOWN,
                provider=request.provider,
                account=request.account,
                campaign_id=request.campaign_id,
                detail=f"stopcampaign failed while stopping ({type(exc).__name__}); check the provider's dashboard.",
            )

    async def _store_outcome(self, request_id: str, outcome: Outcome) -> None:
        for attempt in range(3):
            try:
                await self.store.finish(request_id, outcome)
                return
            except Exception:
                log.exception("could not store the outcome (attempt %d)", attempt + 1, extra={"request_id": request_id})
        log.error("outcome not stored: %s", outcome.model_dump_json(), extra={"request_id": request_id})

    async def _announce(self, request: StopRequest, outcome: Outcome) -> None:
        try:
            await self.notifier.outcome(request, outcome)
        except Exception as exc:
            log.warning("could not announce the outcome: %s", type(exc).__name__, extra={"request_id": request.id})
            try:
                await self.store.record(request.id, "announce_failed", None, {"error": type(exc).__name__})
            except Exception:
                log.exception("could not audit the announce failure", extra={"request_id": request.id})
