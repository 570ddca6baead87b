"""Running one confirmed stop: the provider call with a heartbeat and an attempt log, the outcome
stored, then announced.

The request is already `executing` and this process owns it (it won the claim, or took it over
from a dead process). Every stop call is recorded in the store's attempt log right before it
leaves and again with what became of it, so that at every moment the request says whether
nothing was sent, a stop may have reached the provider, or it was answered.

Posting follows storing: the outcome is written together with the posts it owes before anything
is posted, and when the store is down the outcome is kept here and written again until it is
stored (one true message, late, beats two contradicting ones).

A shutdown (`Execution.shutdown`) cancels the stops that have not sent anything yet (they wait
in the limiter) and gives their requests up for another process to resume; stops with a call in
flight get the grace period to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.metrics import STOPS
from bot.core.models import Attempt, Outcome, OutcomeStatus, StopRequest
from bot.core.outbox import Outbox
from bot.core.ports import Notifier, ProviderCatalog, Store

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""A running stop refreshes its request this often, so recovery never takes a live one for dead."""
HEARTBEAT_RETRY_SECONDS = 1.0
"""After a failed heartbeat (the store down), it is tried again this often until it goes through."""
STORE_RETRY_MAX = 5.0
"""Longest pause between two tries to store an outcome while the database is down: an answer in
hand is written soon after the store is back, before anyone could take the stop for dead."""


@dataclass
class StoredAttempts:
    """The store-backed attempt log of one request (never raises: a stop is never held by it)."""

    store: Store
    request_id: str
    sent: bool = False
    """True once a stop call of this process may have left."""

    async def sending(self, number: int) -> None:
        """Record attempt `number` as possibly reaching the provider from now on."""
        self.sent = True
        try:
            await self.store.attempt_sending(self.request_id, number)
        except Exception:
            log.warning("could not record attempt %d; sending it anyway", number, extra={"request_id": self.request_id})

    async def finished(self, attempt: Attempt) -> None:
        """Record what became of an attempt."""
        try:
            await self.store.attempt_finished(self.request_id, attempt)
        except Exception:
            log.warning("could not record attempt %d's result", attempt.number, extra={"request_id": self.request_id})


class Interrupted(Exception):
    """A stop was given up because the process is shutting down (another process resumes it)."""


class Execution:
    """Runs confirmed stops."""

    def __init__(
        self,
        store: Store,
        catalog: ProviderCatalog,
        notifier: Notifier,
        outbox: Outbox,
        *,
        cap_seconds: float = 600.0,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.notifier = notifier
        self.outbox = outbox
        self.cap_seconds = cap_seconds
        """Safety net for an adapter bug: no stop runs longer (the engine bounds its own work)."""
        self.heartbeat_seconds = heartbeat_seconds
        self.store_pause = 0.5
        """First pause before writing an outcome again while the store is down (it doubles)."""
        self._running: dict[str, tuple[asyncio.Task[object], StoredAttempts]] = {}
        self._closing = False

    async def run(
        self, request: StopRequest, *, earlier: Sequence[Attempt] = (), note: str = ""
    ) -> tuple[Outcome, bool]:
        """Stop the campaign of an executing request, store the outcome, announce it.

        Returns the outcome and whether this call stored it (False: another process had
        already settled the request, so it is not announced twice). Raises `Interrupted` when
        the process shut down first (the request is then left for another process to resume).
        """
        attempts = StoredAttempts(self.store, request.id)
        task = asyncio.current_task()
        if self._closing or task is None:
            await self._release(request.id)
            raise Interrupted(request.id)
        self._running[request.id] = (task, attempts)
        heartbeat = asyncio.create_task(self._heartbeat(request.id))
        try:
            try:
                outcome = await self._stop(request, earlier, attempts)
            except asyncio.CancelledError:
                if not self._closing:
                    raise
                # Shutting down: write no "unknown"; the attempt log tells the next process
                # whether anything may have been sent.
                await self._release(request.id)
                raise Interrupted(request.id) from None
            if note:
                outcome = outcome.model_copy(update={"detail": f"{note} {outcome.detail}"})
            outcome = outcome.model_copy(
                update={
                    "requested_by": request.requester,
                    "confirmed_by": request.confirmed_by,
                    "state_before": outcome.state_before or (request.preview.state if request.preview else None),
                }
            )
            STOPS.labels(request.provider, request.account, outcome.status.value).inc()
            log.info(
                "stop finished: %s (%d attempt(s), %d ms)", outcome.status.value, outcome.attempts, outcome.elapsed_ms
            )
            stored = await self.store_outcome(request.id, outcome, self.notifier.targets(request))
        finally:
            heartbeat.cancel()
            self._running.pop(request.id, None)
        if stored:
            await self.outbox.deliver(request.id)
        else:
            log.warning(
                "the request was settled by another process meanwhile; not announced twice",
                extra={"request_id": request.id},
            )
        return outcome, stored

    async def settle_unsent(self, request: StopRequest, status: OutcomeStatus, detail: str) -> Outcome | None:
        """End an executing request without a provider call (nothing was sent); announce it.

        Returns the outcome when stored here (None: another process had settled the request)."""
        outcome = self.own_outcome(request, status, detail)
        stored = await self.store_outcome(request.id, outcome, self.notifier.targets(request))
        if not stored:
            return None
        await self.outbox.deliver(request.id)
        return outcome

    async def shutdown(self, grace: float) -> None:
        """Take no new stop; cancel those that sent nothing yet; give the rest `grace` seconds."""
        self._closing = True
        for task, attempts in list(self._running.values()):
            if not attempts.sent:
                task.cancel()
        waiting = [task for task, _ in self._running.values()]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=grace)
            for task in late:
                task.cancel()

    async def _stop(self, request: StopRequest, earlier: Sequence[Attempt], attempts: StoredAttempts) -> Outcome:
        provider = self.catalog.get(request.provider, request.account)
        if provider is None:
            return self.own_outcome(
                request, OutcomeStatus.INVALID_REQUEST, "This account is no longer configured; nothing was sent."
            )
        try:
            async with asyncio.timeout(self.cap_seconds):
                return await provider.stop(request.campaign_id, earlier=earlier, log=attempts)
        except TimeoutError:
            return self.own_outcome(
                request,
                OutcomeStatus.UNKNOWN,
                f"The stop did not finish within {self.cap_seconds:g} s; check the provider's dashboard.",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The engine maps every provider answer; this is a bug, and the request must still end.
            log.exception("adapter failed", extra={"request_id": request.id})
            status = OutcomeStatus.UNKNOWN if attempts.sent else OutcomeStatus.NOT_SENT
            detail = f"stopcampaign failed while stopping ({type(exc).__name__}); check the provider's dashboard."
            return self.own_outcome(request, status, detail)

    @staticmethod
    def own_outcome(request: StopRequest, status: OutcomeStatus, detail: str) -> Outcome:
        """An outcome this app decides itself (no provider answer to report)."""
        return Outcome(
            status=status,
            provider=request.provider,
            account=request.account,
            campaign_id=request.campaign_id,
            detail=detail,
            requested_by=request.requester,
            confirmed_by=request.confirmed_by,
        )

    async def store_outcome(
        self, request_id: str, outcome: Outcome, deliveries: list[tuple[str, str]] | None = None
    ) -> bool:
        """Store the outcome and the posts it owes, trying again until the store takes it.

        True when stored here, False when another process had already settled the request.
        """
        pause, tries = self.store_pause, 0
        while True:
            tries += 1
            try:
                return await self.store.finish(request_id, outcome, deliveries or [])
            except Exception as exc:
                if tries == 1:
                    log.error(
                        "could not store the outcome (%s); keeping it and trying again: %s",
                        type(exc).__name__,
                        outcome.model_dump_json(),
                        extra={"request_id": request_id},
                    )
            await asyncio.sleep(pause)
            pause = min(STORE_RETRY_MAX, pause * 2)

    async def _release(self, request_id: str) -> None:
        with contextlib.suppress(Exception):  # the heartbeat's age lets recovery take it over anyway
            await self.store.release(request_id)

    def owns(self, request_id: str) -> bool:
        """True while this process runs the stop of `request_id` (it is alive, whatever the store says)."""
        return request_id in self._running

    async def _heartbeat(self, request_id: str) -> None:
        # After a failure the lease is renewed as soon as the store answers again, so that no
        # other process takes a live stop for a dead one once the store is back.
        failing = False
        while True:
            await asyncio.sleep(HEARTBEAT_RETRY_SECONDS if failing else self.heartbeat_seconds)
            try:
                await self.store.touch(request_id)
            except Exception:
                if not failing:
                    log.warning("heartbeat failed; trying again every %g s", HEARTBEAT_RETRY_SECONDS,
                                extra={"request_id": request_id})
                failing = True
            else:
                failing = False
