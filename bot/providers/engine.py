"""The one stop algorithm, for every provider.

budget → read before (where declared) → send → verdict → settle doubt by a read → send again
(where allowed) → read back (where declared) → one `Outcome`.

======================  =============================  ===========================================
the answer              repeat-safe provider           not repeat-safe provider
======================  =============================  ===========================================
done (2xx, body agrees) the outcome; read back if declared
refused (400/401/404…)  the outcome; nothing changed
refused by state        read → the phase table decides; active: no second stop unless declared
(409/422/body code)
failed (a failure the   read → the phase table decides; active: no second stop (it could mask the failure)
body states, no cause)
in doubt (no answer,    read where there is a read;    read → the phase table decides; send again
5xx, 429, garbage)      else (or when the read fails)  only when the read proves it still active
                        send again within the budget
never left (no          send again within the budget   send again within the budget
connection, no login)
======================  =============================  ===========================================

What the read says (the provider's status mapped through its phase table): stopped → `stopped`
when any attempt may have applied (ours, possibly late), else `already_stopped`; completed →
`already_completed`; not stoppable → `not_stoppable`; active → see the table; a definite read
failure (the campaign does not exist) → that outcome. When nothing settles a doubt, the attempt
history decides: `unknown` when a stop went out and no usable answer ever came back,
otherwise what the provider answered (`provider_error` for 5xx, `rate_limited` for 429).

Attempts are bounded by `Rules.max_attempts` and the budget (limiter queueing excluded); each
stop call keeps back the time of one settling read. Every detail ends by saying how many stops
were sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.models import Attempt, AttemptState, CampaignInfo, CampaignPhase, Outcome, OutcomeStatus
from bot.core.ports import AttemptLog
from bot.providers.budget import Budget
from bot.providers.verdicts import Kind, Read, Reads, Verdict
from bot.providers.wire import Sending

log = logging.getLogger(__name__)

S = OutcomeStatus
MIN_WINDOW = 0.25
"""Another stop is only worth sending with at least this many seconds left (plus a read's reserve)."""
DEFAULT_RATE_WAIT = 1.0
"""Seconds waited after a 429 that names no Retry-After, before reading or sending again."""
HALTED = (CampaignPhase.STOPPED, CampaignPhase.COMPLETED)


@dataclass(frozen=True)
class Rules:
    """What the engine needs to know about one provider (all of it declared by its adapter)."""

    display_name: str
    repeat_safe: bool
    reads: Reads
    resend_when_refused_but_active: bool = False
    max_attempts: int = 4
    backoff: float = 0.2
    before_timeout: float = 2.0


class Wire(Protocol):
    """The provider-specific half of a stop: one judged stop call, one state read, the outcome."""

    async def send_stop(
        self, campaign_id: str, budget: Budget, reserve: float, sending: Sending | None = None
    ) -> Verdict:
        """Send the stop once (auth included) and judge the answer; never raises.

        `sending` is awaited right before the stop call leaves (after the limiter let it through),
        so the attempt log says "may have reached the provider" only from then on."""

    async def read(self, campaign_id: str, budget: Budget, timeout: float | None = None) -> Read:
        """Read the campaign's state once; never raises."""

    def outcome(self, status: OutcomeStatus, campaign_id: str, budget: Budget, **fields: Any) -> Outcome:
        """Build the outcome (provider, account, timing filled in; texts scrubbed and bounded)."""

    def scrub(self, text: str) -> str:
        """`text` without the account's secrets."""


async def run_stop(
    wire: Wire,
    rules: Rules,
    campaign_id: str,
    budget: Budget,
    *,
    earlier: Sequence[Attempt] = (),
    log_to: AttemptLog | None = None,
) -> Outcome:
    """Stop one campaign by the rules above; `earlier` are attempts a previous process made."""
    return await _Run(wire, rules, campaign_id, budget, list(earlier), log_to).run()


@dataclass
class _Step:
    """What a judged attempt leads to: a final outcome, or another stop (and what to say if none may go)."""

    outcome: Outcome | None = None
    pause: float = 0.0
    fallback_status: OutcomeStatus | None = None
    fallback_text: str = ""
    fallback_read: Read | None = None
    verdict: Verdict | None = None


@dataclass
class _Run:
    wire: Wire
    rules: Rules
    campaign_id: str
    budget: Budget
    earlier: list[Attempt]
    attempt_log: AttemptLog | None
    verdicts: list[Verdict] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    before: Read | None = None
    number: int = 0

    def __post_init__(self) -> None:
        self.number = max((a.number for a in self.earlier), default=0)
        self.steps = [f"stop #{a.number} (before a restart): {a.summary or a.state.value}" for a in self.earlier]

    @property
    def name(self) -> str:
        return self.rules.display_name

    @property
    def reserve(self) -> float:
        """Seconds every stop call keeps back for one settling read."""
        if not self.rules.reads.settle:
            return 0.0
        return min(self.budget.timeout, self.budget.deadline / 4)

    # ----- history -----------------------------------------------------------------------------

    def may_have_applied(self, *, before_last: bool = False) -> bool:
        """True when some attempt (this run's, or an earlier process's) may have stopped the campaign."""
        verdicts = self.verdicts[:-1] if before_last else self.verdicts
        return any(a.maybe_applied for a in self.earlier) or any(v.may_have_applied for v in verdicts)

    def unclear(self) -> bool:
        """True when a stop went out and no usable answer ever came back for it."""
        return any(a.maybe_applied for a in self.earlier) or any(v.unclear for v in self.verdicts)

    def stops_sent(self) -> int:
        """Stops that may have reached the provider, this run and earlier ones."""
        earlier = sum(1 for a in self.earlier if a.state is not AttemptState.NOT_SENT)
        return earlier + sum(1 for v in self.verdicts if v.kind is not Kind.NOT_SENT)

    # ----- the loop ----------------------------------------------------------------------------

    async def run(self) -> Outcome:
        if self.rules.reads.before:
            self.before = await self._read("read before", timeout=self.rules.before_timeout)
        if any(a.maybe_applied for a in self.earlier):
            step = await self._settle(self._resumed())
        else:
            step = _Step()
        first = step.outcome is None and step.verdict is None
        while step.outcome is None:
            if not first:
                held_back = self._held_back(step.pause)
                if held_back:
                    return self._fallback(step, held_back)
                if step.pause > 0:
                    self.steps.append(f"waited {step.pause:.2g} s")
                    await asyncio.sleep(step.pause)
            first = False
            step = await self._decide(await self._attempt())
        return step.outcome

    def _held_back(self, pause: float) -> str:
        """Why no further stop may be sent now, or "" when one may."""
        if len(self.verdicts) >= self.rules.max_attempts:
            return f"{len(self.verdicts)} attempts is the most this app makes"
        if not self.budget.allows(pause + MIN_WINDOW + self.reserve):
            return "the time allowed for the stop is used up"
        return ""

    async def _attempt(self) -> Verdict:
        self.number += 1
        number, attempt_log = self.number, self.attempt_log

        async def sending() -> None:
            if attempt_log is not None:
                await attempt_log.sending(number)

        verdict = await self.wire.send_stop(self.campaign_id, self.budget, self.reserve, sending)
        self.verdicts.append(verdict)
        self.steps.append(f"stop #{self.number}: {verdict.summary}")
        log.info("stop attempt %d: %s", self.number, self.wire.scrub(verdict.summary))
        if self.attempt_log is not None:
            if verdict.kind is Kind.NOT_SENT:
                state = AttemptState.NOT_SENT
            elif verdict.unclear:
                state = AttemptState.NO_ANSWER
            else:
                state = AttemptState.ANSWERED
            await self.attempt_log.finished(
                # An accepted stop did apply: a process resuming after a crash must not send it again
                # as if nothing had happened.
                Attempt(number=self.number, state=state,
                        may_have_applied=verdict.may_have_applied or verdict.kind is Kind.DONE,
                        summary=self.wire.scrub(verdict.summary))
            )
        return verdict

    async def _decide(self, verdict: Verdict) -> _Step:
        if verdict.kind is Kind.DONE:
            return _Step(await self._done(verdict))
        if verdict.kind is Kind.REFUSED:
            return _Step(self._finish(verdict.status, verdict, verdict.headline))
        if verdict.kind is Kind.NOT_SENT:
            return self._not_sent(verdict)
        return await self._settle(verdict)

    # ----- each kind of answer -----------------------------------------------------------------

    def _resumed(self) -> Verdict:
        """The doubt an earlier process left behind: it sent a stop and never learned what became of it."""
        return Verdict(
            Kind.DOUBT,
            S.PROVIDER_ERROR,
            "stopcampaign restarted while this stop was running, so its answer was lost.",
            may_have_applied=True,
            unclear=True,
        )

    async def _done(self, verdict: Verdict) -> Outcome:
        status, text = verdict.status, verdict.headline
        ours_before = self.may_have_applied(before_last=True)
        if status is S.ALREADY_STOPPED and ours_before:
            status = S.STOPPED
            text += " An earlier stop got no clear answer, so that one most likely stopped it."
        elif status is S.STOPPED and not ours_before and self.before is not None and self.before.info is not None:
            phase, state = self.before.info.phase, self.before.info.state
            if phase is CampaignPhase.STOPPED:
                status = S.ALREADY_STOPPED
                text += f" It already read as {state!r} before the stop, so nothing changed."
            elif phase is CampaignPhase.COMPLETED:
                status = S.ALREADY_COMPLETED
                text += f" It already read as {state!r} (finished) before the stop, so nothing changed."
        if not self.rules.reads.back:
            return self._finish(status, verdict, text)
        back = await self._read("read-back")
        if back.info is None:
            text += f" Reading it back failed ({back.problem}), so the stop is not verified."
            return self._finish(status, verdict, text)
        if back.info.phase in HALTED:
            text += f" {self.name} now reports the campaign as {back.info.state!r}."
            return self._finish(status, verdict, text, read=back, verified=True)
        text += (
            f" But a read right after still shows it as {back.info.state!r}: check it in {self.name}'s dashboard."
        )
        return self._finish(status, verdict, text, read=back)

    def _not_sent(self, verdict: Verdict) -> _Step:
        if self.stops_sent() > 0:
            # An earlier stop went out: "unreachable" would hide it; its doubt stands.
            sent = [v for v in self.verdicts if v.kind is not Kind.NOT_SENT]
            doubt = sent[-1] if sent else self._resumed()
            status = S.UNKNOWN if self.unclear() else doubt.status
            text = f"{doubt.headline} Then stop #{self.number} could not be sent: {verdict.headline}"
            step = _Step(fallback_status=status, fallback_text=text, verdict=doubt)
        else:
            step = _Step(fallback_status=verdict.status, fallback_text=verdict.headline, verdict=verdict)
        if not verdict.retryable:
            return _Step(self._fallback(step, ""))
        step.pause = self._backoff()
        return step

    async def _settle(self, verdict: Verdict) -> _Step:
        read: Read | None = None
        waited = False
        if self.rules.reads.settle:
            wait = verdict.retry_after
            # A rate limit refuses reads too: wait it out first, when the budget allows.
            if wait is not None and self.budget.allows(wait + MIN_WINDOW + self.reserve):
                self.steps.append(f"waited {wait:.2g} s (rate limit)")
                await asyncio.sleep(wait)
                waited = True
            read = await self._settle_read()
        info = read.info if read is not None else None
        if read is not None and info is not None and info.phase not in (None, CampaignPhase.UNKNOWN):
            step = self._by_phase(verdict, read, info)
            if step.outcome is None and not waited and verdict.retry_after is not None:
                step.pause = verdict.retry_after  # a rate limit not waited out before the read: wait now
            return step
        if read is not None and read.status is not None:
            return _Step(self._finish(read.status, verdict, f"{verdict.headline} {read.problem}", read=read))

        if verdict.kind in (Kind.REFUSED_BY_STATE, Kind.FAILED):
            status = S.UNKNOWN if self.may_have_applied() else verdict.status
        else:
            status = S.UNKNOWN if self.unclear() else verdict.status
        if read is None:
            why = f"{self.name} has no call that reads one campaign, so this cannot be settled by reading."
        elif info is None:
            why = f"Reading the campaign to settle it failed ({read.problem})."
        else:
            why = f"{self.name} reports the campaign as {info.state!r}, a status this app does not know."
        if verdict.kind is Kind.DOUBT and self.rules.repeat_safe:
            pause = 0.0 if waited else (verdict.retry_after if verdict.retry_after is not None else self._backoff())
            return _Step(pause=pause, fallback_status=status, fallback_text=f"{verdict.headline} {why}",
                         fallback_read=read, verdict=verdict)
        text = f"{verdict.headline} {why} No second stop was sent: check the campaign in {self.name}'s dashboard."
        return _Step(self._finish(status, verdict, text, read=read))

    def _by_phase(self, verdict: Verdict, read: Read, info: CampaignInfo) -> _Step:
        shown = f"as {info.state!r}" if info.state is not None else "without a status"
        phase = info.phase
        if phase is CampaignPhase.STOPPED:
            before = self.before.info if self.before is not None else None
            halted_before = not self.earlier and before is not None and before.phase is CampaignPhase.STOPPED
            # Read as active right before this stop and stopped now: it stopped while we stopped it.
            active_before = before is not None and before.phase is CampaignPhase.ACTIVE
            ours = (self.may_have_applied() and not halted_before) or active_before
            status = S.STOPPED if ours else S.ALREADY_STOPPED
            if before is not None and active_before and not self.may_have_applied():
                why = f"and it read as {before.state!r} right before the stop, so it stopped now"
            else:
                why = "so the stop went through" if ours else "so it was already stopped; nothing changed"
            text = f"{verdict.headline} {self.name} now reports the campaign {shown}, {why}."
            return _Step(self._finish(status, verdict, text, read=read, verified=True))
        if phase is CampaignPhase.COMPLETED:
            text = f"{verdict.headline} {self.name} reports the campaign {shown}: it had finished sending."
            return _Step(self._finish(S.ALREADY_COMPLETED, verdict, text, read=read, verified=True))
        if phase is CampaignPhase.NOT_STOPPABLE:
            text = f"{verdict.headline} {self.name} reports the campaign {shown}, a state it cannot stop."
            return _Step(self._finish(S.NOT_STOPPABLE, verdict, text, read=read, verified=True))
        # Still active.
        if verdict.kind is Kind.FAILED:
            text = (
                f"{verdict.headline} {self.name} still reports the campaign {shown}; sending again could hide "
                f"the failure, so no second stop was sent. Check it in {self.name}'s dashboard."
            )
            return _Step(self._finish(verdict.status, verdict, text, read=read))
        if verdict.kind is Kind.REFUSED_BY_STATE and not self.rules.resend_when_refused_but_active:
            text = (
                f"{verdict.headline} Yet {self.name} reports the campaign {shown}, which should be stoppable; "
                f"a refusal is not a doubt, so no second stop was sent. Check it in {self.name}'s dashboard."
            )
            return _Step(self._finish(verdict.status, verdict, text, read=read))
        text = f"{verdict.headline} {self.name} still reports the campaign {shown}."
        return _Step(fallback_status=verdict.status, fallback_text=text, fallback_read=read, verdict=verdict)

    def _fallback(self, step: _Step, held_back: str) -> Outcome:
        """The outcome when no further stop is sent after `step`."""
        assert step.fallback_status is not None and step.verdict is not None
        text = step.fallback_text
        if held_back:
            text += f" No further stop was sent ({held_back})."
        if step.fallback_status is S.UNKNOWN:
            text += f" Check the campaign in {self.name}'s dashboard."
        return self._finish(step.fallback_status, step.verdict, text, read=step.fallback_read)

    # ----- reads -------------------------------------------------------------------------------

    async def _settle_read(self) -> Read:
        """Read to settle doubt, once more when the first read failed for a passing reason."""
        read = Read(None, "the time allowed left no room to read the campaign")
        for _ in range(2):
            if not self.budget.allows(0.05):
                break
            read = await self.wire.read(self.campaign_id, self.budget)
            if read.info is not None or not read.transient:
                break
        self.steps.append(read.summary)
        return read

    async def _read(self, label: str, timeout: float | None = None) -> Read:
        if not self.budget.allows(0.05):
            read = Read(None, "the time allowed left no room to read the campaign")
        else:
            read = await self.wire.read(self.campaign_id, self.budget, timeout)
        self.steps.append(f"{label}: {read.summary.removeprefix('read: ')}")
        return read

    def _backoff(self) -> float:
        tries = max(1, len(self.verdicts))
        grown: float = self.rules.backoff * 2.0 ** (tries - 1)
        return min(2.0, grown) + random.uniform(0, self.rules.backoff)

    # ----- the outcome -------------------------------------------------------------------------

    def _finish(
        self, status: OutcomeStatus, verdict: Verdict, text: str, *, read: Read | None = None, verified: bool = False
    ) -> Outcome:
        read_info = read.info if read is not None else None
        info = read_info or verdict.campaign or (self.before.info if self.before is not None else None)
        if info is not None and verdict.extra:
            info = info.model_copy(update={"extra": {**info.extra, **verdict.extra}})
        sent = self.stops_sent()
        if len(self.steps) > 1:
            text += f" Steps: {'; '.join(self.steps)}."
        text += " No stop was sent." if sent == 0 else f" {sent} stop{' was' if sent == 1 else 's were'} sent."
        before = self.before.info.state if self.before is not None and self.before.info is not None else None
        return self.wire.outcome(
            status,
            self.campaign_id,
            self.budget,
            attempts=len(self.verdicts),
            detail=text,
            campaign=info,
            state_before=before,
            state_after=info.state if info is not None else None,
            verified=verified,
            http_status=verdict.http_status,
            # The newest word on the campaign: a read after the stop over the stop answer's body.
            provider_status=(read_info.state if read_info is not None else None) or verdict.provider_status,
            provider_code=verdict.provider_code,
            provider_message=verdict.provider_message,
            trace_id=verdict.trace_id or (read.trace_id if read is not None else None),
        )
