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

from cachetools import TTLCache

from bot.core.models import (
    Actor,
    AuditEntry,
    CampaignInfo,
    CampaignPhase,
    Outcome,
    OutcomeStatus,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.parsing import Command, StopCommand, parse_command
from bot.core.policy import Policy, PolicyRefusal
from bot.logs import request_id_var
from bot.metrics import OUTBOX_DEPTH, REFUSALS, STOPS
from bot.providers.base import PreviewUnavailable, ProviderAdapter
from bot.providers.registry import ProviderRegistry
from bot.store.repository import Store

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A post was not accepted; `permanent` when trying again cannot help (unknown channel…)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Notifier(Protocol):
    """Where outcomes are announced (the channel, the incident channel…).

    The service stores the posts an outcome owes (`targets`) together with the outcome, in one
    transaction, then has them `post`ed one by one, retrying from the outbox until accepted.
    """

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        """The posts an outcome of `request` owes, as (target name, channel) pairs, in order."""

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        """Post the outcome to one target; returns the message ts, raises `DeliveryError`.

        `link_ts` is the ts of the outcome's channel post (for a link to it), once posted.
        """

    async def expired(self, request: StopRequest) -> None:
        """Tell the requester their confirmation expired (e.g. update the card)."""


class NullNotifier:
    """A notifier that announces nothing (the console and the CLI print the outcome themselves)."""

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        """No posts."""
        return []

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        """Never called (no targets)."""
        return None

    async def expired(self, request: StopRequest) -> None:
        """Do nothing."""


DELIVERY_LEASE_SECONDS = 60.0
MAX_DELIVERY_ATTEMPTS = 30
"""Retries back off 2, 4, 8… up to 300 s: 30 attempts cover about two hours of Slack outage."""


class Refusal(StrEnum):
    """Why a click did not lead to a stop."""

    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
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
        policy: Policy | None = None,
        execute_timeout: float = 600.0,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.ttl = ttl
        self.preview_timeout = preview_timeout
        self.policy = policy or Policy()
        self.execute_timeout = execute_timeout
        """Safety net for an adapter bug: no stop runs longer (adapters bound their own work)."""
        self.heartbeat_seconds = heartbeat_seconds
        """A running stop refreshes its request this often, so recovery never takes a live one."""
        # Requests this process created, so a click usually needs no read before the claim. Only
        # immutable facts are trusted from here; the claim itself is always the store's.
        self._created: TTLCache[str, StopRequest] = TTLCache(maxsize=10_000, ttl=ttl.total_seconds())
        self._inserting: dict[str, asyncio.Task[None]] = {}

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
        defer_insert: bool = False,
    ) -> StopRequest:
        """Create a pending request with an unguessable id. No provider call happens here.

        With `defer_insert` the request is written in the background, so that a Slack ack need not
        wait for the database (`saved` tells whether the write succeeded; a click on this process
        waits for it). Raises `PolicyRefusal` (after auditing it) when the policy refuses.
        """
        try:
            rule = await self.policy.check_request(requester, command.provider, command.account, channel_id)
        except PolicyRefusal as refusal:
            REFUSALS.labels(refusal.rule).inc()
            await self.store.record(
                None,
                "refused",
                requester,
                {
                    "action": "request",
                    "rule": refusal.rule,
                    "provider": command.provider,
                    "account": command.account,
                    "campaign_id": command.campaign_id,
                    "channel_id": channel_id,
                },
            )
            raise
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
            two_person=rule.two_person,
            created_at=now,
            expires_at=now + self.ttl,
        )
        request_id_var.set(request.id)
        self._created[request.id] = request
        if defer_insert:
            task = asyncio.create_task(self._insert(request))
            self._inserting[request.id] = task
            task.add_done_callback(lambda _: self._inserting.pop(request.id, None))
        else:
            await self._insert(request)
        return request

    async def _insert(self, request: StopRequest) -> None:
        try:
            await self.store.create(request)
        except BaseException:
            self._created.pop(request.id, None)
            raise
        log.info("request created: %s:%s %s", request.provider, request.account, request.campaign_id)

    async def saved(self, request_id: str) -> bool:
        """Wait for a deferred insert; True when the request is (now) in the store."""
        task = self._inserting.get(request_id)
        if task is None:
            return True
        try:
            await asyncio.shield(task)
        except Exception:
            log.exception("could not save a stop request")
            return False
        return True

    async def _load(self, request_id: str) -> StopRequest | None:
        """A request for a click: waits for this process's own insert; another process's insert
        may land a moment after its card was shown, so a miss is read again once, shortly after."""
        if not await self.saved(request_id):
            return None
        request = self._created.get(request_id) or await self.store.get(request_id)
        if request is None:
            await asyncio.sleep(0.25)
            request = await self.store.get(request_id)
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
            preview = Preview(None, adapter.scrub(str(exc)) or "the provider could not describe the campaign")
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
        if request.id in self._created:
            self._created[request.id] = request.model_copy(update={"preview": preview.info})
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
        request_id_var.set(request_id)
        request = await self._load(request_id)
        if request is None:
            return ClickResult(None, refusal=Refusal.NOT_FOUND, message="This stop request does not exist.")
        if request.state is RequestState.PENDING and not request.is_expired():
            try:
                await self.policy.check_confirm(actor, request)
            except PolicyRefusal as refusal:
                return await self._refuse(request, actor, "confirm", refusal)
        if not await self.store.claim_for_execution(request_id, actor):
            self._created.pop(request_id, None)
            return await self._why_not(request_id)
        self._created.pop(request_id, None)

        request = request.model_copy(update={"state": RequestState.EXECUTING, "confirmed_by": actor})
        if on_executing is not None:
            try:
                await on_executing(request)
            except Exception:
                log.exception("on_executing hook failed", extra={"request_id": request_id})
        heartbeat = asyncio.create_task(self._heartbeat(request_id))
        try:
            outcome = await self._execute(request)
        finally:
            heartbeat.cancel()
        outcome = outcome.model_copy(
            update={
                "requested_by": request.requester,
                "confirmed_by": actor,
                "state_before": outcome.state_before or (request.preview.state if request.preview else None),
            }
        )
        STOPS.labels(request.provider, request.account, outcome.status.value).inc()
        log.info(
            "stop finished: %s (%d attempt(s), %d ms)", outcome.status.value, outcome.attempts, outcome.elapsed_ms
        )
        stored = await self._store_outcome(request_id, outcome, self.notifier.targets(request))
        request = request.model_copy(update={"state": RequestState.DONE, "outcome": outcome})
        if stored is None:
            await self._post_unstored(request, outcome)
        elif stored:
            await self.deliver(request_id)
        else:
            log.warning(
                "request was settled by a recovery meanwhile; not announced twice", extra={"request_id": request_id}
            )
        return ClickResult(request, outcome=outcome)

    async def cancel(self, request_id: str, actor: Actor) -> ClickResult:
        """End a pending request without any provider call."""
        request_id_var.set(request_id)
        request = await self._load(request_id)
        if request is None:
            return ClickResult(None, refusal=Refusal.NOT_FOUND, message="This stop request does not exist.")
        if request.state is RequestState.PENDING:
            try:
                self.policy.check_cancel(actor, request)
            except PolicyRefusal as refusal:
                return await self._refuse(request, actor, "cancel", refusal)
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

    # ----- history and recovery -----------------------------------------------------------------

    async def history(
        self, provider: str | None = None, account: str | None = None, limit: int = 10
    ) -> list[StopRequest]:
        """The latest requests, newest first (requests still being written by this process included)."""
        if self._inserting:
            await asyncio.wait([asyncio.shield(t) for t in list(self._inserting.values())], timeout=5)
        return await self.store.history(provider, account, limit)

    async def trail(self, request_id: str) -> tuple[StopRequest | None, list[AuditEntry]]:
        """One request and its whole audit trail."""
        request = await self.store.get(request_id)
        if request is None:
            return None, []
        return request, await self.store.audit(request_id)

    async def recover_stuck(self, older_than: timedelta) -> list[StopRequest]:
        """Settle requests left in `executing` by a process that died, from the provider's state.

        Nothing is sent again: the campaign's state is read where the provider can tell, and the
        outcome says honestly what is known (`unknown` when nothing is).
        """
        cutoff = utcnow() - older_than
        settled: list[StopRequest] = []
        for request in await self.store.stuck_executing(cutoff):
            if not await self.store.take_for_recovery(request.id, cutoff):
                continue  # another process is recovering it
            outcome = await self._recovered_outcome(request)
            outcome = outcome.model_copy(
                update={"requested_by": request.requester, "confirmed_by": request.confirmed_by}
            )
            if not await self._store_outcome(request.id, outcome, self.notifier.targets(request)):
                continue  # its own process finished it meanwhile (or the store is down)
            await self.deliver(request.id)
            settled.append(request.model_copy(update={"state": RequestState.DONE, "outcome": outcome}))
        return settled

    async def _recovered_outcome(self, request: StopRequest) -> Outcome:
        adapter = self.adapter(request.provider, request.account)
        base = {"provider": request.provider, "account": request.account, "campaign_id": request.campaign_id}
        prefix = "stopcampaign restarted while this stop was running, so its answer was lost."
        info = None
        if adapter is not None:
            try:
                async with asyncio.timeout(self.preview_timeout * 5):
                    info = await adapter.read_state(request.campaign_id)
            except Exception:
                log.warning("state read for recovery failed", extra={"request_id": request.id})
        if info is None or info.phase is None:
            return Outcome(
                status=OutcomeStatus.UNKNOWN,
                detail=f"{prefix} The provider cannot report the campaign's state: check its dashboard.",
                **base,
            )
        status, meaning = {
            CampaignPhase.STOPPED: (OutcomeStatus.STOPPED, "the provider now reports it stopped"),
            CampaignPhase.COMPLETED: (OutcomeStatus.ALREADY_COMPLETED, "the provider reports it finished"),
            CampaignPhase.NOT_STOPPABLE: (OutcomeStatus.NOT_STOPPABLE, "the provider reports a state it cannot stop"),
            CampaignPhase.ACTIVE: (
                OutcomeStatus.UNKNOWN,
                "the provider still reports it active: the stop may never have arrived, run /stopcampaign again",
            ),
            CampaignPhase.UNKNOWN: (OutcomeStatus.UNKNOWN, "the provider reports a state stopcampaign does not know"),
        }[info.phase]
        return Outcome(
            status=status,
            detail=f"{prefix} Read back: {meaning} (state {info.state!r}).",
            campaign=info,
            state_after=info.state,
            verified=info.phase in (CampaignPhase.STOPPED, CampaignPhase.COMPLETED),
            **base,
        )

    # ----- internals --------------------------------------------------------------------------

    async def _heartbeat(self, request_id: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.store.touch(request_id)
            except Exception:
                log.warning("heartbeat failed", extra={"request_id": request_id})

    async def _refuse(self, request: StopRequest, actor: Actor, action: str, refusal: PolicyRefusal) -> ClickResult:
        REFUSALS.labels(refusal.rule).inc()
        await self.store.record(request.id, "refused", actor, {"action": action, "rule": refusal.rule})
        return ClickResult(request, refusal=Refusal.NOT_ALLOWED, message=refusal.message)

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
            async with asyncio.timeout(self.execute_timeout):
                return await adapter.stop(request.campaign_id)
        except TimeoutError:
            return Outcome(
                status=OutcomeStatus.UNKNOWN,
                provider=request.provider,
                account=request.account,
                campaign_id=request.campaign_id,
                detail=f"The stop did not finish within {self.execute_timeout:g} s; check the provider's dashboard.",
            )
        except asyncio.CancelledError:
            # Shutting down mid-stop: keep an honest outcome instead of a request stuck in executing.
            interrupted = Outcome(
                status=OutcomeStatus.UNKNOWN,
                provider=request.provider,
                account=request.account,
                campaign_id=request.campaign_id,
                detail="stopcampaign was shut down while this stop was running; check the provider's dashboard.",
                requested_by=request.requester,
                confirmed_by=request.confirmed_by,
            )
            await self._store_outcome(request.id, interrupted)
            raise
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

    async def _store_outcome(
        self, request_id: str, outcome: Outcome, deliveries: list[tuple[str, str]] | None = None
    ) -> bool | None:
        """Store the outcome and the posts it owes.

        True when stored, False when another process had already settled the request, None
        when the store could not be written at all.
        """
        for attempt in range(3):
            try:
                return await self.store.finish(request_id, outcome, deliveries or [])
            except Exception:
                log.exception("could not store the outcome (attempt %d)", attempt + 1, extra={"request_id": request_id})
        log.error("outcome not stored: %s", outcome.model_dump_json(), extra={"request_id": request_id})
        return None

    async def _post_unstored(self, request: StopRequest, outcome: Outcome) -> None:
        """The store is down: post the outcome directly, once, so that at least it is not lost."""
        for target, channel in self.notifier.targets(request):
            try:
                await self.notifier.post(request, outcome, target, channel, None)
            except Exception:
                log.exception("could not post an unstored outcome", extra={"request_id": request.id})

    async def deliver(self, request_id: str | None = None) -> int:
        """Post what the outbox owes (one request's, or every due one); returns how many got through.

        Each post is claimed first (a lease), so several processes never post the same one twice.
        A post Slack cannot take now is retried with backoff; a permanent refusal is recorded.
        """
        sent = 0
        for delivery in await self.store.due_deliveries(request_id):
            if not await self.store.claim_delivery(delivery.id, DELIVERY_LEASE_SECONDS):
                continue
            request = await self.store.get(delivery.request_id)
            if request is None or request.outcome is None:
                await self.store.delivery_failed(delivery, "the request or its outcome is gone", None)
                continue
            link_ts = None
            if delivery.target != "channel":
                link_ts = await self.store.sent_message_ts(delivery.request_id, "channel")
            try:
                ts = await self.notifier.post(request, request.outcome, delivery.target, delivery.channel, link_ts)
            except Exception as exc:
                reason = exc.reason if isinstance(exc, DeliveryError) else type(exc).__name__
                attempt = delivery.attempts + 1
                final = (isinstance(exc, DeliveryError) and exc.permanent) or attempt >= MAX_DELIVERY_ATTEMPTS
                retry_at = None if final else utcnow() + timedelta(seconds=min(300, 2**attempt))
                log.warning(
                    "outcome post to %s failed: %s", delivery.target, reason, extra={"request_id": delivery.request_id}
                )
                await self.store.delivery_failed(delivery, reason, retry_at)
                continue
            await self.store.delivered(delivery, ts)
            sent += 1
        if request_id is None:
            OUTBOX_DEPTH.set(await self.store.outbox_depth())
        return sent
