"""**Check again** on an outcome that could not say for sure (unknown, provider error, rate
limited): read the campaign's state where the provider has a read, else send the stop again
where the provider's stop is repeat-safe; never a second stop anywhere else. The revised outcome
replaces the old one, and the live records are updated in place with it.
"""

from __future__ import annotations

import asyncio
import logging

from bot.core.models import CampaignPhase, Outcome, OutcomeStatus, StopRequest, utcnow
from bot.core.ports import Provider, Store
from bot.core.render import timestamp

log = logging.getLogger(__name__)

RECHECKABLE = frozenset({OutcomeStatus.UNKNOWN, OutcomeStatus.PROVIDER_ERROR, OutcomeStatus.RATE_LIMITED})
"""Outcomes that leave the campaign's state open: the ones offered "Check again"."""
READ_SECONDS = 10.0


async def check_again(request: StopRequest, adapter: Provider, store: Store) -> Outcome:
    """The revised outcome of a done request (unchanged in status when nothing more can be learned)."""
    previous = request.outcome
    assert previous is not None
    facts = adapter.facts
    when = timestamp(utcnow())
    try:
        async with asyncio.timeout(READ_SECONDS):
            info = await adapter.read_state(request.campaign_id)
    except Exception as exc:  # a read that fails says nothing new
        log.warning("check again: the read failed (%s)", type(exc).__name__, extra={"request_id": request.id})
        info = None
    if info is not None:
        phase = info.phase
        state = info.state or (phase.value if phase else "unknown")
        if phase is CampaignPhase.STOPPED:
            return previous.model_copy(update={
                "status": OutcomeStatus.STOPPED, "state_after": state, "verified": True, "finished_at": utcnow(),
                "detail": f"Checked again at {when}: {facts.display_name} reports the campaign {state}.",
            })
        if phase is CampaignPhase.COMPLETED:
            return previous.model_copy(update={
                "status": OutcomeStatus.ALREADY_COMPLETED, "state_after": state, "verified": True,
                "finished_at": utcnow(),
                "detail": f"Checked again at {when}: the campaign has completed ({state}); it is not sending.",
            })
        return previous.model_copy(update={
            "state_after": state, "finished_at": utcnow(),
            "detail": f"Checked again at {when}: the campaign is still {state}: the stop has not taken effect. "
                      "Stop it again with /stopcampaign, or in the provider's dashboard.",
        })
    if facts.repeat_safe:
        earlier = await store.attempts(request.id)
        outcome = await adapter.stop(request.campaign_id, earlier=earlier)
        return outcome.model_copy(update={
            "requested_by": previous.requested_by, "confirmed_by": previous.confirmed_by,
            "detail": f"Checked again at {when} by sending the stop once more ({facts.display_name}'s stop is "
                      f"safe to repeat). {outcome.detail}".strip(),
        })
    return previous.model_copy(update={
        "detail": f"Checked again at {when}: {facts.display_name} has no state read and its stop is not safe to "
                  f"repeat, so nothing more can be learned here. {previous.detail}".strip(),
    })
