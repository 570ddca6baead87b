"""Resuming stops that no live process owns any more (their process died mid-stop).

Every process, at start and on every sweep, looks for requests `executing` and silent for
longer than the stuck threshold, takes each with a conditional update (one process wins), and
hands it to the engine with what is known of its attempts: a stop that may have reached the
provider is settled by reading the campaign (or, where the provider is repeat-safe, by sending
it again) before anything else is sent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.core.execution import Execution
from bot.core.models import Attempt, AttemptState, RequestState, StopRequest, utcnow
from bot.core.ports import Store

log = logging.getLogger(__name__)


class Recovery:
    """Finds and resumes stuck stops."""

    def __init__(self, store: Store, execution: Execution) -> None:
        self.store = store
        self.execution = execution

    async def recover_stuck(self, older_than: timedelta) -> list[StopRequest]:
        """Resume every request stuck in `executing` longer than `older_than`; returns those settled here."""
        cutoff = utcnow() - older_than
        settled: list[StopRequest] = []
        for request in await self.store.stuck_executing(cutoff):
            if not await self.store.take_for_recovery(request.id, cutoff):
                continue  # another process is resuming it
            log.info("resuming a stop left by a process that died", extra={"request_id": request.id})
            # Nothing tells whether the dead process got its stop out: assume it may have.
            earlier = [Attempt(number=1, state=AttemptState.SENDING, summary="sent before a restart, answer lost")]
            outcome, stored = await self.execution.run(request, earlier=earlier)
            if stored:
                settled.append(request.model_copy(update={"state": RequestState.DONE, "outcome": outcome}))
        return settled
