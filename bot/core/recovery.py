"""Resuming stops that no live process owns any more (their process died or shut down mid-stop).

Every process, at start and on every sweep, looks for requests `executing` with no sign of life
for longer than the stuck threshold (on the database's clock, so host clock skew cannot matter),
takes each with a conditional update (one process wins), and resumes it from its attempt log:

- nothing was sent → the click was the order: the stop is sent now, unless the click is older
  than the resume limit (default one hour), past which it is reported `not_sent` and the
  requester is asked to confirm again;
- a stop may have reached the provider → the engine settles it with those attempts (a read, or
  for a repeat-safe provider such as CleverTap simply the same stop again).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.core.context import request_id_var
from bot.core.execution import Execution, Interrupted
from bot.core.models import AttemptState, Outcome, OutcomeStatus, RequestState, StopRequest
from bot.core.ports import Store

log = logging.getLogger(__name__)

RESUME_MAX_AGE = timedelta(hours=1)


class Recovery:
    """Finds and resumes stuck stops."""

    def __init__(self, store: Store, execution: Execution, *, resume_max_age: timedelta = RESUME_MAX_AGE) -> None:
        self.store = store
        self.execution = execution
        self.resume_max_age = resume_max_age

    async def recover_stuck(self, silent_for: timedelta) -> list[StopRequest]:
        """Resume every request silent in `executing` for `silent_for`; returns those settled here."""
        settled: list[StopRequest] = []
        for request in await self.store.stuck_executing(silent_for):
            if self.execution.owns(request.id):
                # Silent only because the store was: this process is running it (and keeps its answer).
                continue
            if not await self.store.take_for_recovery(request.id, silent_for):
                continue  # another process is resuming it
            token = request_id_var.set(request.id)  # every line of the resumed stop carries its id
            try:
                outcome = await self._resume(request)
            except Interrupted:
                return settled
            finally:
                request_id_var.reset(token)
            if outcome is not None:
                settled.append(request.model_copy(update={"state": RequestState.DONE, "outcome": outcome}))
        return settled

    async def _resume(self, request: StopRequest) -> Outcome | None:
        earlier = await self.store.attempts(request.id)
        if any(attempt.state is not AttemptState.NOT_SENT for attempt in earlier):
            # Something left (answered or not): the engine settles it with those attempts.
            log.info("resuming a stop that reached or may have reached the provider", extra={"request_id": request.id})
            outcome, stored = await self.execution.run(request, earlier=earlier)
            return outcome if stored else None
        clicked = request.confirmed_at or request.created_at
        age = await self.store.db_now() - clicked
        if age > self.resume_max_age:
            minutes = int(age.total_seconds() // 60)
            detail = (
                f"Not sent: stopcampaign restarted before this stop went out, and the click is {minutes} minutes "
                f"old (more than the {int(self.resume_max_age.total_seconds() // 60)} minutes a click stays an "
                "order). Check the campaign and confirm again with a new /stopcampaign if it still needs stopping."
            )
            log.warning("a stop never sent is too old to send now", extra={"request_id": request.id})
            return await self.execution.settle_unsent(request, OutcomeStatus.NOT_SENT, detail)
        log.info("sending a stop a stopped process never sent", extra={"request_id": request.id})
        note = "Sent after a restart: the process that took the click stopped before the stop went out."
        outcome, stored = await self.execution.run(request, earlier=earlier, note=note)
        return outcome if stored else None
