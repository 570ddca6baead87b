"""Check again: a read where the provider has one, a repeat-safe stop where it has none, and
nothing sent anywhere else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.models import Attempt, CampaignInfo, CampaignPhase, Outcome, OutcomeStatus
from bot.core.recheck import check_again
from tests.unit.test_blocks import FACTS, outcome, request


@dataclass
class Stub:
    info: CampaignInfo | None
    repeat_safe: bool = False
    stops: list[str] = field(default_factory=list)

    @property
    def facts(self) -> Any:
        return replace(FACTS, repeat_safe=self.repeat_safe)

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        return self.info

    async def stop(self, campaign_id: str, *, earlier: Sequence[Attempt] = (), log: Any = None) -> Outcome:
        self.stops.append(campaign_id)
        return outcome(status=OutcomeStatus.STOPPED, detail="CleverTap answered 'stopped'.")


class NoAttempts:
    async def attempts(self, request_id: str) -> list[Attempt]:
        return []


OPEN = request(outcome=outcome(status=OutcomeStatus.PROVIDER_ERROR, detail="HTTP 503"))


async def test_a_read_that_shows_the_campaign_stopped_settles_it() -> None:
    stub = Stub(CampaignInfo(state="stopped", phase=CampaignPhase.STOPPED), repeat_safe=True)
    revised = await check_again(OPEN, stub, NoAttempts())  # type: ignore[arg-type]
    assert revised.status is OutcomeStatus.STOPPED and revised.verified and "Checked again" in revised.detail
    assert stub.stops == []  # a read was enough: nothing sent


async def test_a_read_that_shows_it_still_active_keeps_the_status_and_says_so() -> None:
    stub = Stub(CampaignInfo(state="running", phase=CampaignPhase.ACTIVE))
    revised = await check_again(OPEN, stub, NoAttempts())  # type: ignore[arg-type]
    assert revised.status is OutcomeStatus.PROVIDER_ERROR and "still running" in revised.detail
    assert stub.stops == []


async def test_without_a_read_only_a_repeat_safe_stop_is_sent_again() -> None:
    safe = Stub(None, repeat_safe=True)
    assert (await check_again(OPEN, safe, NoAttempts())).status is OutcomeStatus.STOPPED  # type: ignore[arg-type]
    assert safe.stops == ["1457432766"]
    unsafe = Stub(None, repeat_safe=False)
    revised = await check_again(OPEN, unsafe, NoAttempts())  # type: ignore[arg-type]
    assert revised.status is OutcomeStatus.PROVIDER_ERROR and unsafe.stops == []
    assert "not safe to repeat" in revised.detail
