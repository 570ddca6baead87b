"""The one stop engine, table-driven: every verdict, by what a read says, by each provider's declared rules.

A fake wire answers every stop with one verdict and every read with one state; an oracle written
from the decision table in DESIGN.md (not from the engine's code) says what must come out: the
outcome and the number of stops sent. The suite runs with the rules every real adapter declares.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pytest

from bot.core.models import Attempt, AttemptState, CampaignInfo, CampaignPhase, Outcome, OutcomeStatus
from bot.providers.budget import Budget
from bot.providers.engine import Rules, run_stop
from bot.providers.registry import ADAPTER_CLASSES
from bot.providers.verdicts import Kind, Read, Verdict
from bot.providers.wire import Sending

S = OutcomeStatus
P = CampaignPhase
MAX = 4


class Answer(StrEnum):
    """The stop answers, one per row of the decision table (and its variants)."""

    DONE = "done"
    DONE_ALREADY = "done_already"
    REFUSED = "refused"
    BY_STATE = "by_state"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    HTTP_5XX = "http_5xx"
    HTTP_429 = "http_429"
    NOT_SENT = "not_sent"


class Said(StrEnum):
    """What every read says."""

    STOPPED = "stopped"
    COMPLETED = "completed"
    NOT_STOPPABLE = "not_stoppable"
    ACTIVE = "active"
    STRANGE = "strange"
    FAILED = "failed"
    GONE = "gone"


VERDICTS: dict[Answer, Verdict] = {
    Answer.DONE: Verdict(Kind.DONE, S.STOPPED, "accepted", http_status=200),
    Answer.DONE_ALREADY: Verdict(Kind.DONE, S.ALREADY_STOPPED, "already", http_status=200),
    Answer.REFUSED: Verdict(Kind.REFUSED, S.NOT_FOUND, "unknown id", http_status=404),
    Answer.BY_STATE: Verdict(Kind.REFUSED_BY_STATE, S.NOT_STOPPABLE, "state forbids", http_status=422),
    Answer.FAILED: Verdict(Kind.FAILED, S.PROVIDER_ERROR, "said it failed", http_status=200),
    Answer.NO_ANSWER: Verdict(Kind.DOUBT, S.PROVIDER_ERROR, "no answer", may_have_applied=True, unclear=True),
    Answer.HTTP_5XX: Verdict(Kind.DOUBT, S.PROVIDER_ERROR, "failed", may_have_applied=True, http_status=503),
    Answer.HTTP_429: Verdict(Kind.DOUBT, S.RATE_LIMITED, "limited", retry_after=0.0, http_status=429),
    Answer.NOT_SENT: Verdict(Kind.NOT_SENT, S.UNREACHABLE, "refused connection"),
}

PHASES = {Said.STOPPED: P.STOPPED, Said.COMPLETED: P.COMPLETED, Said.NOT_STOPPABLE: P.NOT_STOPPABLE,
          Said.ACTIVE: P.ACTIVE, Said.STRANGE: P.UNKNOWN}


def read_of(said: Said) -> Read:
    if said is Said.FAILED:
        return Read(None, "the read failed")
    if said is Said.GONE:
        return Read(None, "no such campaign", status=S.NOT_FOUND)
    return Read(CampaignInfo(id="1", state=said.value, phase=PHASES[said]))


@dataclass
class FakeWire:
    """Answers stop #n with `answers[n]` (the last one repeats) and every read with `reads[n]`."""

    answers: list[Verdict]
    reads: list[Read]
    stops: int = 0
    read_count: int = 0
    events: list[str] = field(default_factory=list)

    async def send_stop(
        self, campaign_id: str, budget: Budget, reserve: float, sending: Sending | None = None
    ) -> Verdict:
        self.stops += 1
        self.events.append("stop")
        answer = self.answers[min(self.stops, len(self.answers)) - 1]
        if sending is not None and answer.kind is not Kind.NOT_SENT:
            await sending()
        return answer

    async def read(self, campaign_id: str, budget: Budget, timeout: float | None = None) -> Read:
        self.read_count += 1
        self.events.append("read")
        return self.reads[min(self.read_count, len(self.reads)) - 1]

    def outcome(self, status: OutcomeStatus, campaign_id: str, budget: Budget, **fields: Any) -> Outcome:
        return Outcome(status=status, provider="fake", account="a", campaign_id=campaign_id, **fields)

    def scrub(self, text: str) -> str:
        return text


def rules_of(cls: Any) -> Rules:
    return Rules(
        display_name=cls.display_name,
        repeat_safe=cls.repeat_safe,
        reads=cls.reads,
        resend_when_refused_but_active=cls.resend_when_refused_but_active,
        max_attempts=MAX,
        backoff=0.0,
    )


def oracle(rules: Rules, answer: Answer, said: Said) -> tuple[OutcomeStatus, int]:
    """The decision table, written out: the outcome and how many stops go out."""
    reads = rules.reads.settle
    if answer is Answer.DONE:
        if rules.reads.before and said is Said.STOPPED:
            return S.ALREADY_STOPPED, 1
        if rules.reads.before and said is Said.COMPLETED:
            return S.ALREADY_COMPLETED, 1
        return S.STOPPED, 1
    if answer is Answer.DONE_ALREADY:
        return S.ALREADY_STOPPED, 1
    if answer is Answer.REFUSED:
        return S.NOT_FOUND, 1
    if answer is Answer.NOT_SENT:
        return S.UNREACHABLE, MAX
    settled = {Said.COMPLETED: S.ALREADY_COMPLETED, Said.NOT_STOPPABLE: S.NOT_STOPPABLE, Said.GONE: S.NOT_FOUND}
    applied = answer in (Answer.NO_ANSWER, Answer.HTTP_5XX)
    if answer is Answer.BY_STATE:
        if reads and said is Said.STOPPED:
            return S.ALREADY_STOPPED, 1
        if reads and said in settled:
            return settled[said], 1
        if reads and said is Said.ACTIVE and rules.resend_when_refused_but_active:
            return S.NOT_STOPPABLE, MAX
        return S.NOT_STOPPABLE, 1
    if answer is Answer.FAILED:  # settled by a read where there is one, never sent again
        if reads and said is Said.STOPPED:
            return S.ALREADY_STOPPED, 1
        if reads and said in settled:
            return settled[said], 1
        return S.PROVIDER_ERROR, 1
    # In doubt.
    if reads and said is Said.STOPPED:
        # Read as stopped before the stop too (where a read comes first): it was not ours.
        return (S.STOPPED if applied and not rules.reads.before else S.ALREADY_STOPPED), 1
    if reads and said in settled:
        return settled[said], 1
    if reads and said is Said.ACTIVE:
        return VERDICTS[answer].status, MAX  # the read proves it stoppable: send again, to the limit
    unsettled = S.UNKNOWN if answer is Answer.NO_ANSWER else VERDICTS[answer].status
    return unsettled, MAX if rules.repeat_safe else 1


PROVIDERS = {cls.name: rules_of(cls) for cls in ADAPTER_CLASSES}
CASES = [(name, answer, said) for name in PROVIDERS for answer in Answer for said in Said]


def budget() -> Budget:
    return Budget(deadline=60.0, timeout=1.0)


@pytest.mark.parametrize(("provider", "answer", "said"), CASES, ids=["-".join(map(str, c)) for c in CASES])
async def test_every_verdict_and_read_for_every_provider(provider: str, answer: Answer, said: Said) -> None:
    rules = PROVIDERS[provider]
    wire = FakeWire([VERDICTS[answer]], [read_of(said)])
    outcome = await run_stop(wire, rules, "1", budget())
    expected, stops = oracle(rules, answer, said)
    assert (outcome.status, wire.stops) == (expected, stops), outcome.detail
    assert outcome.attempts == wire.stops
    sent = 0 if answer is Answer.NOT_SENT else wire.stops
    ending = "No stop was sent." if sent == 0 else f"{sent} stop{' was' if sent == 1 else 's were'} sent."
    assert outcome.detail.endswith(ending)
    if not rules.repeat_safe and answer is not Answer.NOT_SENT:
        # Never a second stop without a read since the previous one (a stop never sent is no stop).
        trail = "".join("s" if e == "stop" else "r" for e in wire.events)
        assert "ss" not in trail, trail
    if not rules.reads.settle:
        assert wire.read_count == 0


READING = [name for name, rules in PROVIDERS.items() if rules.reads.settle]


@pytest.mark.parametrize("provider", READING)
async def test_a_late_applied_own_stop_is_stopped(provider: str) -> None:
    """Stop #1 gets no answer, the read still shows it active, stop #2 is refused by state, the read
    shows it stopped: stop #1 took effect late, so it is our stop, not "already stopped"."""
    wire = FakeWire(
        [VERDICTS[Answer.NO_ANSWER], VERDICTS[Answer.BY_STATE]],
        [read_of(Said.ACTIVE)] * (1 + PROVIDERS[provider].reads.before) + [read_of(Said.STOPPED)],
    )
    outcome = await run_stop(wire, PROVIDERS[provider], "1", budget())
    assert outcome.status is S.STOPPED and outcome.verified and wire.stops == 2


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_an_earlier_attempt_is_settled_before_anything_is_sent(provider: str) -> None:
    rules = PROVIDERS[provider]
    earlier = [Attempt(number=1, state=AttemptState.SENDING)]
    wire = FakeWire([VERDICTS[Answer.DONE_ALREADY]], [read_of(Said.STOPPED)])
    outcome = await run_stop(wire, rules, "1", budget(), earlier=earlier)
    assert outcome.status is S.STOPPED
    # With a read, the read settles it and nothing is sent; without one, a repeat-safe stop is sent again.
    assert wire.stops == (0 if rules.reads.settle else 1)
    assert "restarted" in outcome.detail or "earlier stop" in outcome.detail


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_stop_that_cannot_be_sent_after_one_that_was_keeps_the_first_ones_doubt(provider: str) -> None:
    wire = FakeWire([VERDICTS[Answer.HTTP_5XX], VERDICTS[Answer.NOT_SENT]], [read_of(Said.ACTIVE)])
    rules = PROVIDERS[provider]
    outcome = await run_stop(wire, rules, "1", budget())
    if rules.reads.settle or rules.repeat_safe:
        assert outcome.status is S.PROVIDER_ERROR  # never "unreachable": a stop did go out
        assert "1 stop was sent." in outcome.detail
    else:
        assert wire.stops == 1


@dataclass
class RecordingLog:
    entries: list[tuple[str, int, AttemptState | None]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    async def sending(self, number: int) -> None:
        self.entries.append(("sending", number, None))

    async def finished(self, attempt: Attempt) -> None:
        self.entries.append(("finished", attempt.number, attempt.state))
        self.attempts.append(attempt)


async def test_every_attempt_is_logged_before_and_after_the_call() -> None:
    log = RecordingLog()
    wire = FakeWire([VERDICTS[Answer.NOT_SENT], VERDICTS[Answer.NO_ANSWER], VERDICTS[Answer.DONE]],
                    [read_of(Said.ACTIVE)])
    rules = PROVIDERS["sonarly"]
    outcome = await run_stop(wire, rules, "1", budget(), log_to=log)
    assert outcome.status is S.STOPPED
    assert log.entries == [
        ("finished", 1, AttemptState.NOT_SENT),  # never left: nothing may have reached the provider
        ("sending", 2, None), ("finished", 2, AttemptState.NO_ANSWER),
        ("sending", 3, None), ("finished", 3, AttemptState.ANSWERED),
    ]
    assert log.attempts[-1].maybe_applied  # an accepted stop did apply: a resume must not send it as new


async def test_the_budget_bounds_resends_and_keeps_room_for_a_read() -> None:
    rules = PROVIDERS["sonarly"]

    class SlowWire(FakeWire):
        async def send_stop(
            self, campaign_id: str, budget: Budget, reserve: float, sending: Sending | None = None
        ) -> Verdict:
            assert budget.call_timeout(reserve) <= budget.left() - reserve + 0.06
            await asyncio.sleep(0.15)
            return await super().send_stop(campaign_id, budget, reserve, sending)

    wire = SlowWire([VERDICTS[Answer.NO_ANSWER]], [read_of(Said.ACTIVE)])
    outcome = await run_stop(wire, rules, "1", Budget(deadline=0.7, timeout=0.1))
    assert outcome.status is S.PROVIDER_ERROR and wire.stops < MAX
    assert "time allowed for the stop is used up" in outcome.detail


def test_the_oracle_covers_every_row_of_the_table() -> None:
    seen: set[tuple[bool, bool]] = {(r.repeat_safe, r.reads.settle) for r in PROVIDERS.values()}
    # Today's providers: repeat-safe without reads (CleverTap), repeat-safe with reads (Altcraft),
    # not repeat-safe with reads (Sonarly, Telco WWT).
    assert seen == {(True, False), (True, True), (False, True)}


BEFORE = [name for name, rules in PROVIDERS.items() if rules.reads.before]


@pytest.mark.parametrize("answer", [Answer.HTTP_429, Answer.FAILED, Answer.BY_STATE])
@pytest.mark.parametrize("provider", BEFORE)
async def test_active_right_before_the_stop_and_stopped_after_it_is_stopped(provider: str, answer: Answer) -> None:
    """A read before the stop said active; whatever the stop's answer, a read now says stopped."""
    wire = FakeWire([VERDICTS[answer]], [read_of(Said.ACTIVE), read_of(Said.STOPPED)])
    outcome = await run_stop(wire, PROVIDERS[provider], "1", budget())
    assert outcome.status is S.STOPPED, outcome.detail
    assert "right before the stop" in outcome.detail and wire.stops == 1


@pytest.mark.parametrize("provider", READING)
async def test_the_provider_status_kept_is_the_newest_read_not_the_stop_bodys(provider: str) -> None:
    stale = Verdict(Kind.DONE, S.STOPPED, "accepted", http_status=200, provider_status="sending")
    before = [read_of(Said.ACTIVE)] if PROVIDERS[provider].reads.before else []
    wire = FakeWire([stale], [*before, read_of(Said.STOPPED)])
    outcome = await run_stop(wire, PROVIDERS[provider], "1", budget())
    assert (outcome.status, outcome.verified) == (S.STOPPED, True)
    assert outcome.provider_status == outcome.state_after == "stopped"
