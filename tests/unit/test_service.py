"""The core's jobs against a real store (SQLite) and fake ports: lifecycle, execution, outbox, recovery.

The provider, catalog and notifier here are small fakes of the core's ports (`bot.core.ports`):
the core must work with anything that keeps those promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.core.models import (
    Actor,
    Attempt,
    AttemptState,
    AuditEntry,
    CampaignInfo,
    Outcome,
    OutcomeStatus,
    ProviderFacts,
    ProviderHealth,
    ProviderKind,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.outbox import MAX_ATTEMPTS
from bot.core.parsing import StopCommand
from bot.core.policy import Policy, PolicyConfig
from bot.core.ports import AttemptLog, DeliveryError, PreviewUnavailable
from bot.core.service import StopService
from bot.store.repository import Store
from bot.store.schema import outbox, stop_requests

ALICE = Actor(id="U0ALICE")
BOB = Actor(id="U0BOB")
KIND = ProviderKind("fake", "Fake", ("fk",), "digits")


@dataclass
class FakeProvider:
    """A provider that answers `stopped`, or hangs until released when `hang` is set."""

    hang: bool = False
    sends_before_hanging: bool = False
    """With `hang`: record attempt 1 as sending first (a call in flight), else hang "in the limiter"."""
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    stops: list[tuple[str, tuple[Attempt, ...]]] = field(default_factory=list)

    @property
    def facts(self) -> ProviderFacts:
        return ProviderFacts("fake", "Fake", "default", "fake.example", "It stops.", True, "", "digits")

    async def preview(self, campaign_id: str) -> CampaignInfo:
        raise PreviewUnavailable("fake previews are unavailable")

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        return None

    async def stop(
        self, campaign_id: str, *, earlier: Sequence[Attempt] = (), log: AttemptLog | None = None
    ) -> Outcome:
        self.stops.append((campaign_id, tuple(earlier)))
        if self.hang and self.sends_before_hanging and log is not None:
            await log.sending(1)
        self.entered.set()
        if self.hang:
            await asyncio.Event().wait()
        return Outcome(status=OutcomeStatus.STOPPED, provider="fake", account="default", campaign_id=campaign_id,
                       attempts=1, detail="stopped by the fake")

    def scrub(self, text: str) -> str:
        return text


@dataclass
class FakeCatalog:
    provider: FakeProvider

    def kinds(self) -> Sequence[ProviderKind]:
        return [KIND]

    def kind(self, name: str) -> ProviderKind | None:
        return KIND if KIND.named(name) else None

    def configured(self) -> Sequence[ProviderKind]:
        return [KIND]

    def accounts(self, provider: str) -> list[str]:
        return ["default"] if provider == "fake" else []

    def default_account(self, provider: str) -> str | None:
        return "default" if provider == "fake" else None

    def parse_campaign_id(self, provider: str, raw: str) -> str:
        return raw

    def get(self, provider: str, account: str) -> FakeProvider | None:
        return self.provider if (provider, account) == ("fake", "default") else None

    def health(self, provider: str, account: str) -> ProviderHealth | None:
        return ProviderHealth() if (provider, account) == ("fake", "default") else None


@dataclass
class FakeNotifier:
    """Posts into a list; fails the next `failures` posts with `error`."""

    posts: list[tuple[str, str, str]] = field(default_factory=list)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    """The live records' first messages ("… is stopping …"); `posts` holds the outcomes."""
    failures: list[DeliveryError] = field(default_factory=list)
    replies: list[tuple[str, str]] = field(default_factory=list)
    """Outcomes posted through the request's reply link (the conversation refused the app)."""
    reply_ok: bool = True
    refusing: dict[str, str] = field(default_factory=dict)
    """Channels that refuse the app's posts, with Slack's error (as a private channel it is not in)."""

    def _refuse(self, channel: str) -> None:
        if channel in self.refusing:
            raise DeliveryError(self.refusing[channel], permanent=True, conversation_refused=True)

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        return [("channel", request.channel_id or "C0"), ("incident", "C0INC")]

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        self._refuse(channel)
        if self.failures:
            raise self.failures.pop(0)
        self.posts.append((request.id, target, channel))
        return f"17000.{len(self.posts)}"

    async def card_ended(self, request: StopRequest) -> bool:
        self.posts.append((request.id, "expired", request.channel_id or ""))
        return True

    async def reply(self, request: StopRequest, outcome: Outcome, refusal: str) -> bool:
        self.replies.append((request.id, refusal))
        return self.reply_ok

    async def direct_posts(self, user_ids: Sequence[str]) -> list[tuple[str, str]]:
        return [("approver", f"D{user[1:]}") for user in user_ids]

    async def find_post(self, request: StopRequest, target: str, channel: str) -> str | None:
        return None

    async def post_record(
        self, request: StopRequest, target: str, channel: str, link_ts: str | None, ts: str | None = None
    ) -> str | None:
        self._refuse(channel)
        if self.failures:
            raise self.failures.pop(0)
        self.records.append((request.id, target, channel))
        return f"16000.{len(self.records)}"

    async def update(
        self,
        request: StopRequest,
        outcome: Outcome,
        target: str,
        channel: str,
        ts: str,
        link_ts: str | None,
        trail: list[AuditEntry] | None = None,
    ) -> str | None:
        return await self.post(request, outcome, target, channel, link_ts)


@dataclass
class Core:
    service: StopService
    store: Store
    provider: FakeProvider
    notifier: FakeNotifier


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    store = Store.from_url(f"sqlite:///{tmp_path / 's.db'}")
    await store.initialize()
    provider = FakeProvider()
    notifier = FakeNotifier()
    service = StopService(store, FakeCatalog(provider), notifier, policy=Policy(PolicyConfig()))
    yield Core(service, store, provider, notifier)
    await store.close()


async def new_request(core: Core) -> str:
    command = StopCommand("fake", "default", "42", "test")
    return (await core.service.create_request(command, ALICE, channel_id="C0CHAN")).id


# ----- lifecycle ---------------------------------------------------------------------------------


async def test_a_confirm_stops_once_stores_then_announces(core: Core) -> None:
    request_id = await new_request(core)
    clicks = (core.service.confirm(request_id, ALICE), core.service.confirm(request_id, ALICE))
    first, second = await asyncio.gather(*clicks)
    assert sorted([first.refused, second.refused]) == [False, True]
    assert len(core.provider.stops) == 1
    stored = await core.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE and stored.outcome is not None
    assert stored.outcome.requested_by == ALICE and stored.outcome.confirmed_by == ALICE
    assert core.notifier.posts == [(request_id, "channel", "C0CHAN"), (request_id, "incident", "C0INC")]
    refused = first if first.refused else second
    assert "already" in refused.refusal


async def test_only_the_requester_confirms_and_cancels(core: Core) -> None:
    request_id = await new_request(core)
    assert "Only" in (await core.service.confirm(request_id, BOB)).refusal
    assert "Only" in (await core.service.cancel(request_id, BOB)).refusal
    cancelled = await core.service.cancel(request_id, ALICE)
    assert not cancelled.refused and cancelled.request is not None
    assert cancelled.request.state is RequestState.CANCELLED
    again = await core.service.confirm(request_id, ALICE)
    assert again.refusal == "This request was cancelled by U0ALICE."
    assert core.provider.stops == []
    trail = [entry.event for entry in (await core.service.trail(ALICE, request_id))[1]]
    assert trail == ["created", "refused", "refused", "cancelled"]


async def test_an_unknown_request_is_refused_after_one_reread(core: Core) -> None:
    result = await core.service.confirm("nope", ALICE)
    assert result.request is None and result.refusal == "This stop request does not exist."


async def test_expiry_ends_pending_requests_and_tells_the_requester(core: Core) -> None:
    command = StopCommand("fake", "default", "42", "test")
    request_id = (await core.service.create_request(command, ALICE, channel_id="C0CHAN",
                                                    response_url="https://hooks.slack.com/x")).id
    async with core.store.engine.begin() as conn:
        await conn.execute(update(stop_requests).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = await core.service.expire_due()
    assert [r.id for r in expired] == [request_id] and expired[0].state is RequestState.EXPIRED
    assert core.notifier.posts == []  # the sweep only expires: the card's update is owed to the outbox
    await core.service.deliver()
    assert (request_id, "expired", "C0CHAN") in core.notifier.posts
    late = await core.service.confirm(request_id, ALICE)
    assert "expired before it was confirmed; nothing was sent to Fake" in late.refusal


async def test_a_deferred_insert_is_waited_for_by_reads_of_this_process(core: Core) -> None:
    command = StopCommand("fake", "default", "42", "")
    request = await core.service.create_request(command, ALICE, defer_insert=True)
    assert await core.service.request(request.id) is not None  # waits for the write, never misses it
    assert await core.service.saved(request.id)
    assert [r.id for r in await core.service.history(ALICE)] == [request.id]


# ----- execution ---------------------------------------------------------------------------------


async def test_a_stop_past_its_cap_ends_as_unknown(core: Core) -> None:
    core.provider.hang = True
    core.service.execution.cap_seconds = 0.3
    request_id = await new_request(core)
    result = await core.service.confirm(request_id, ALICE)
    assert result.outcome is not None and result.outcome.status is OutcomeStatus.UNKNOWN
    assert "did not finish within 0.3 s" in result.outcome.detail
    stored = await core.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE


@pytest.mark.parametrize("in_flight", [False, True], ids=["queued", "in_flight"])
async def test_a_shutdown_mid_stop_writes_no_outcome_and_leaves_it_to_be_resumed(core: Core, in_flight: bool) -> None:
    core.provider.hang = True
    core.provider.sends_before_hanging = in_flight
    request_id = await new_request(core)
    task: asyncio.Task[Any] = asyncio.create_task(core.service.confirm(request_id, ALICE))
    await core.provider.entered.wait()
    await core.service.shutdown(grace=0.05)
    result = await task
    assert result.outcome is None and "restarting" in result.refusal
    stored = await core.store.get(request_id)
    assert stored is not None and stored.state is RequestState.EXECUTING and stored.outcome is None
    assert core.notifier.posts == []
    attempts = await core.store.attempts(request_id)
    assert [a.state for a in attempts] == ([AttemptState.SENDING] if in_flight else [])
    # Released: the next process takes it over at once, whatever the stuck threshold.
    assert [r.id for r in await core.store.stuck_executing(timedelta(minutes=5))] == [request_id]


async def test_a_long_stop_keeps_its_request_alive_for_recovery(core: Core) -> None:
    core.provider.hang = True
    core.service.execution.heartbeat_seconds = 0.01
    beats = asyncio.Event()
    real_touch = core.store.touch

    async def touch(request_id: str) -> None:
        await real_touch(request_id)
        beats.set()

    core.store.touch = touch  # type: ignore[method-assign]
    request_id = await new_request(core)
    task: asyncio.Task[Any] = asyncio.create_task(core.service.confirm(request_id, ALICE))
    await core.provider.entered.wait()
    await beats.wait()
    # A request refreshed this instant is not stuck, however old its stop is.
    assert await core.service.recover_stuck(timedelta(seconds=5)) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ----- recovery ----------------------------------------------------------------------------------


async def test_recovery_hands_a_stop_that_may_have_been_sent_to_the_engine_with_its_attempts(core: Core) -> None:
    request_id = await new_request(core)
    assert await core.store.claim_for_execution(request_id, ALICE)
    await core.store.attempt_sending(request_id, 1)
    assert await core.service.recover_stuck(timedelta(seconds=-1)) != []  # every executing request is stuck
    [(campaign, earlier)] = core.provider.stops
    assert campaign == "42" and [(a.number, a.state) for a in earlier] == [(1, AttemptState.SENDING)]
    stored = await core.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert len(core.notifier.posts) == 2
    assert await core.service.recover_stuck(timedelta(seconds=-1)) == []  # settled once


async def test_recovery_never_treats_an_answered_stop_as_never_sent(core: Core) -> None:
    """The dead process had its stop answered but died before storing the outcome: it was sent."""
    request_id = await new_request(core)
    assert await core.store.claim_for_execution(request_id, ALICE)
    accepted = Attempt(number=1, state=AttemptState.ANSWERED, summary="HTTP 200")
    await core.store.attempt_finished(request_id, accepted)
    [settled] = await core.service.recover_stuck(timedelta(seconds=-1))
    [(_, earlier)] = core.provider.stops
    assert earlier == (accepted,)  # handed to the engine with it, which settles it by reading
    assert settled.outcome is not None and not settled.outcome.detail.startswith("Sent after a restart")


async def test_recovery_sends_a_stop_that_was_never_sent(core: Core) -> None:
    request_id = await new_request(core)
    assert await core.store.claim_for_execution(request_id, ALICE)
    [settled] = await core.service.recover_stuck(timedelta(seconds=-1))
    assert core.provider.stops == [("42", ())]
    assert settled.outcome is not None and settled.outcome.status is OutcomeStatus.STOPPED
    assert settled.outcome.detail.startswith("Sent after a restart")


async def test_recovery_does_not_send_a_click_older_than_the_resume_limit(core: Core) -> None:
    request_id = await new_request(core)
    assert await core.store.claim_for_execution(request_id, ALICE)
    async with core.store.engine.begin() as conn:
        clicked = utcnow() - timedelta(hours=2)
        await conn.execute(update(stop_requests).where(stop_requests.c.id == request_id).values(confirmed_at=clicked))
    [settled] = await core.service.recover_stuck(timedelta(seconds=-1))
    assert core.provider.stops == []
    assert settled.outcome is not None and settled.outcome.status is OutcomeStatus.NOT_SENT
    assert "confirm again" in settled.outcome.detail
    assert len(core.notifier.posts) == 2


async def test_an_outcome_is_stored_before_it_is_posted_even_when_the_store_is_down_for_a_while(core: Core) -> None:
    request_id = await new_request(core)
    real_finish = core.store.finish
    failures = [RuntimeError("database is down")] * 4
    core.service.execution.store_pause = 0.01

    async def finish(*args: Any, **kwargs: Any) -> bool:
        if failures:
            raise failures.pop(0)
        return await real_finish(*args, **kwargs)

    core.store.finish = finish  # type: ignore[method-assign]
    result = await core.service.confirm(request_id, ALICE)
    assert result.outcome is not None and failures == []
    stored = await core.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE  # never left executing
    assert len(core.notifier.posts) == 2  # one post per target: no direct, unstored post


# ----- outbox ------------------------------------------------------------------------------------


async def test_a_post_slack_cannot_take_now_is_retried_and_a_permanent_refusal_is_not(core: Core) -> None:
    core.notifier.failures = [DeliveryError("ratelimited", permanent=False), DeliveryError("channel_not_found",
                                                                                       permanent=True)]
    request_id = await new_request(core)
    await core.service.confirm(request_id, ALICE)
    assert core.notifier.posts == []  # both posts failed
    due = await core.store.due_deliveries()
    assert due == []  # the retry waits for its backoff; the permanent failure never comes back
    events = [(e.event, e.detail.get("will_retry")) for e in await core.store.audit(request_id)]
    assert ("announce_failed", True) in events and ("announce_failed", False) in events


async def test_a_conversation_that_refuses_the_app_gets_the_outcome_through_its_reply_link(core: Core) -> None:
    core.notifier.refusing["C0CHAN"] = "not_in_channel"
    request_id = await new_request(core)
    await core.service.confirm(request_id, ALICE)
    assert core.notifier.replies == [(request_id, "not_in_channel")]  # once: the record was not worth a use
    assert core.notifier.posts == [(request_id, "incident", "C0INC")]
    problems = await core.service.announce_problems(request_id)
    assert [(p.target, p.channel, p.error, p.state) for p in problems] == [
        ("channel", "C0CHAN", "not_in_channel", "rerouted")
    ]
    assert await core.store.outbox_depth() == 0


async def test_without_a_reply_link_a_refused_conversation_is_a_recorded_failure(core: Core) -> None:
    core.notifier.refusing["C0CHAN"] = "channel_not_found"
    core.notifier.reply_ok = False
    request_id = await new_request(core)
    await core.service.confirm(request_id, ALICE)
    problems = await core.service.announce_problems(request_id)
    assert [(p.target, p.error, p.state) for p in problems] == [
        ("channel", "channel_not_found, and no reply link is left", "failed")
    ]
    assert await core.store.outbox_depth() == 0  # not retried: nothing can change that


async def test_a_post_held_by_a_refused_token_is_never_given_up(core: Core) -> None:
    held = DeliveryError("invalid_auth", permanent=False, hold=True)
    core.notifier.failures = [held, held, held, held]  # both records, then both outcome posts
    request_id = await new_request(core)
    await core.service.confirm(request_id, ALICE)
    async with core.store.engine.begin() as conn:  # as if it had failed every time for hours
        await conn.execute(update(outbox).values(attempts=MAX_ATTEMPTS + 5, next_attempt_at=utcnow()))
    core.notifier.failures = [held, held]
    await core.service.deliver()
    assert await core.store.outbox_depth() == 2  # still owed
    problems = await core.service.announce_problems(request_id)
    assert {(p.target, p.error, p.state) for p in problems} == {
        ("channel", "invalid_auth", "waiting"), ("incident", "invalid_auth", "waiting")
    }
