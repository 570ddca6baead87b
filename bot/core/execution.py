"""Running one confirmed stop: the provider call with a heartbeat, the outcome stored, then announced.

The request is already `executing` and this process owns it (it won the claim, or took it over
from a dead process). The outcome is written to the store together with the posts it owes
before anything is posted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bot.core.metrics import STOPS
from bot.core.models import Attempt, Outcome, OutcomeStatus, StopRequest
from bot.core.outbox import Outbox
from bot.core.ports import Notifier, ProviderCatalog, Store

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""A running stop refreshes its request this often, so recovery never takes a live one for dead."""
STORE_TRIES = 3


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

    async def run(self, request: StopRequest, *, earlier: Sequence[Attempt] = ()) -> tuple[Outcome, bool]:
        """Stop the campaign of an executing request, store the outcome, announce it.

        Returns the outcome and whether this call stored it (False: another process had
        already settled the request, so it is not announced twice).
        """
        heartbeat = asyncio.create_task(self._heartbeat(request.id))
        try:
            outcome = await self._stop(request, earlier)
        finally:
            heartbeat.cancel()
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
        if stored is None:
            await self._post_unstored(request, outcome)
        elif stored:
            await self.outbox.deliver(request.id)
        else:
            log.warning("the request was settled by another process meanwhile; not announced twice",
                        extra={"request_id": request.id})
        return outcome, bool(stored)

    async def _stop(self, request: StopRequest, earlier: Sequence[Attempt]) -> Outcome:
        provider = self.catalog.get(request.provider, request.account)
        if provider is None:
            return self._own_outcome(request, OutcomeStatus.INVALID_REQUEST,
                                     "This account is no longer configured; nothing was sent.")
        try:
            async with asyncio.timeout(self.cap_seconds):
                return await provider.stop(request.campaign_id, earlier=earlier)
        except TimeoutError:
            return self._own_outcome(
                request, OutcomeStatus.UNKNOWN,
                f"The stop did not finish within {self.cap_seconds:g} s; check the provider's dashboard.",
            )
        except asyncio.CancelledError:
            # Shutting down mid-stop: keep an honest outcome instead of a request stuck in executing.
            interrupted = self._own_outcome(
                request, OutcomeStatus.UNKNOWN,
                "stopcampaign was shut down while this stop was running; check the provider's dashboard.",
            )
            await self.store_outcome(request.id, interrupted)
            raise
        except Exception as exc:
            # The engine maps every provider answer; this is a bug, and the request must still end.
            log.exception("adapter failed", extra={"request_id": request.id})
            return self._own_outcome(
                request, OutcomeStatus.UNKNOWN,
                f"stopcampaign failed while stopping ({type(exc).__name__}); check the provider's dashboard.",
            )

    @staticmethod
    def _own_outcome(request: StopRequest, status: OutcomeStatus, detail: str) -> Outcome:
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
    ) -> bool | None:
        """Store the outcome and the posts it owes: True when stored, False when another process
        had already settled the request, None when the store could not be written at all."""
        for attempt in range(STORE_TRIES):
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

    async def _heartbeat(self, request_id: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.store.touch(request_id)
            except Exception:
                log.warning("heartbeat failed", extra={"request_id": request_id})
