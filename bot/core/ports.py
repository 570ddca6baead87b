"""The protocols the core needs from the world: providers, the store, notifiers.

The core depends on these and nothing else outside ``bot.core``; ``bot.runtime`` plugs the
concrete classes in (``bot.providers``, ``bot.store``, ``bot.slack``) through constructors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core.models import (
    Actor,
    Attempt,
    AuditEntry,
    CampaignInfo,
    Outcome,
    ProviderFacts,
    ProviderHealth,
    ProviderKind,
    StopRequest,
)


class CampaignIdError(ValueError):
    """The campaign id is not one the provider accepts; the message says what it must look like."""


class PreviewUnavailable(Exception):
    """The provider cannot describe the campaign right now; the message says why, for the card."""


class DeliveryError(Exception):
    """A post was not accepted; `permanent` when trying again cannot help (unknown channel…)."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        conversation_refused: bool = False,
        hold: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        """Seconds Slack asked us to wait before trying again (a rate limit), when it said."""
        self.conversation_refused = conversation_refused
        """The conversation does not take the app's posts (the app is not in it, it is archived…)."""
        self.hold = hold
        """Nothing can be posted until people fix something (a refused token): kept owed, never given up."""


@dataclass(frozen=True)
class AnnounceProblem:
    """What an owed post of a request could not do: `state` is ``rerouted`` (it went another way),
    ``failed`` (given up) or ``waiting`` (kept owed, tried again)."""

    target: str
    channel: str
    error: str
    state: str


# ----- providers ---------------------------------------------------------------------------------


class AttemptLog(Protocol):
    """Where a stop records its attempts as they happen (the store, so that a crash loses nothing)."""

    async def sending(self, number: int) -> None:
        """Attempt `number` is about to be sent: from now on it may reach the provider."""

    async def finished(self, attempt: Attempt) -> None:
        """What became of an attempt (answered, no answer, not sent)."""


class Provider(Protocol):
    """One configured account of one provider, as the core uses it."""

    @property
    def facts(self) -> ProviderFacts:
        """What a card or an outcome may show about this account."""

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """Describe the campaign before the stop; raise `PreviewUnavailable` when it cannot."""

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign as the provider reports it now, or None when that cannot be learned."""

    async def stop(
        self, campaign_id: str, *, earlier: Sequence[Attempt] = (), log: AttemptLog | None = None
    ) -> Outcome:
        """Stop the campaign and say what happened; never raises for provider or network trouble.

        `earlier` are attempts an earlier process made for the same request (a restart resumes
        them: a stop that may have applied is settled before anything is sent again).
        """

    def scrub(self, text: str) -> str:
        """`text` with every secret of this account replaced."""


class ProviderCatalog(Protocol):
    """Every provider the app knows, and the configured accounts of each."""

    def kinds(self) -> Sequence[ProviderKind]:
        """Every known provider, configured or not, in a stable order."""

    def kind(self, name: str) -> ProviderKind | None:
        """The provider called `name` (or one of its aliases, any case), or None."""

    def configured(self) -> Sequence[ProviderKind]:
        """The providers with at least one configured account."""

    def accounts(self, provider: str) -> list[str]:
        """Configured account names of a provider, default first."""

    def default_account(self, provider: str) -> str | None:
        """The account used when a command names none, or None when there is no obvious one."""

    def parse_campaign_id(self, provider: str, raw: str) -> str:
        """A campaign id checked by the provider's own rules; raises `CampaignIdError`."""

    def get(self, provider: str, account: str) -> Provider | None:
        """The adapter of one configured account, or None."""

    def health(self, provider: str, account: str) -> ProviderHealth | None:
        """What this process saw of one account's API lately, or None when it is not configured."""


def facts_for(catalog: ProviderCatalog, provider: str, account: str) -> ProviderFacts:
    """What may be shown about one account, also once it is no longer configured (old requests)."""
    adapter = catalog.get(provider, account)
    if adapter is not None:
        return adapter.facts
    unknown = ProviderFacts.unknown(provider, account)
    kind = catalog.kind(provider)
    if kind is None:
        return unknown
    return ProviderFacts(
        provider, kind.display_name, account, "?", "", False, unknown.no_preview_reason, kind.campaign_id_hint
    )


# ----- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxPost:
    """One post an outcome owes (its channel, or the incident channel), as the outbox holds it."""

    id: int
    request_id: str
    target: str
    channel: str
    attempts: int
    message_ts: str | None = None
    """The live record's message, once posted (the outcome then updates it in place)."""


class Store(Protocol):
    """Stop requests, their one-winner transitions, the audit log and the outbox."""

    async def create(
        self, request: StopRequest, *, defer: bool = False, deliveries: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Store a new pending request. With `defer` the write happens in the background
        (`saved` tells whether it succeeded); reads of that request wait for it."""

    async def saved(self, request_id: str) -> bool:
        """Wait for a deferred write of this process; True when the request is (now) stored."""

    async def get(self, request_id: str) -> StopRequest | None:
        """One request by id, or None."""

    async def claim_for_execution(
        self,
        request_id: str,
        actor: Actor,
        now: datetime | None = None,
        deliveries: Sequence[tuple[str, str]] = (),
        response_url: str | None = None,
    ) -> bool:
        """pending → executing for the one caller whose click wins, before the request expires
        (`response_url`: a newer reply link for the request's conversation, kept with the claim)."""

    async def cancel(self, request_id: str, actor: Actor, reason: str = "cancelled by the requester") -> bool:
        """pending → cancelled (`reason` is kept as the request's end reason)."""

    async def expire(
        self, request_id: str, now: datetime | None = None, deliveries: Sequence[tuple[str, str]] = ()
    ) -> bool:
        """pending → expired, only once the expiry has passed (`deliveries`: posts it owes from now on)."""

    async def due_for_expiry(self) -> list[StopRequest]:
        """Pending requests whose expiry has passed."""

    async def finish(self, request_id: str, outcome: Outcome, deliveries: Sequence[tuple[str, str]] = ()) -> bool:
        """executing → done with the outcome and the posts it owes, in one transaction."""

    async def touch(self, request_id: str) -> None:
        """Heartbeat of a request being executed."""

    async def stuck_executing(self, silent_for: timedelta) -> list[StopRequest]:
        """Requests executing with no sign of life for `silent_for`, on the database's clock."""

    async def take_for_recovery(self, request_id: str, silent_for: timedelta) -> bool:
        """Claim a stuck request for recovery (one process wins)."""

    async def release(self, request_id: str) -> None:
        """Give an executing request up (shutting down): any process may resume it at once."""

    async def db_now(self) -> datetime:
        """The database's current time (UTC): the one clock every process judges ages by."""

    async def attempt_sending(self, request_id: str, number: int) -> None:
        """Attempt `number` may leave now (recorded before the provider call)."""

    async def attempt_finished(self, request_id: str, attempt: Attempt) -> None:
        """What became of an attempt."""

    async def attempts(self, request_id: str) -> list[Attempt]:
        """Every recorded attempt of a request, in order."""

    async def save_group_members(self, group_id: str, members: Sequence[str]) -> None:
        """Keep the members of a user group as just read."""

    async def group_members(self, group_id: str) -> tuple[list[str], datetime] | None:
        """The last known members of a user group and when they were read, or None."""

    async def history(
        self,
        provider: str | None = None,
        account: str | None = None,
        limit: int = 10,
        only: Sequence[tuple[str, str]] | None = None,
    ) -> list[StopRequest]:
        """The latest requests, newest first; with `only`, of those (provider, account) pairs alone."""

    async def audit(self, request_id: str) -> list[AuditEntry]:
        """One request's audit trail, oldest first."""

    async def claim_check(self, request_id: str, actor: Actor, *, outcome: Outcome, lease_seconds: float) -> bool:
        """Take a done request's "Check again" for `lease_seconds` if its outcome is still `outcome`
        and nobody holds a check of it (one winner)."""

    async def revise_outcome(
        self, request_id: str, outcome: Outcome, actor: Actor, *, previous: Outcome, quiet_seconds: float = 0
    ) -> bool:
        """Replace a done request's outcome ("Check again") if it is still `previous`, make its posts
        due again, and hold further checks `quiet_seconds` more."""

    async def end_check(self, request_id: str) -> None:
        """Give a Check again up without a revision."""

    async def pending_requests(self, limit: int = 50) -> list[StopRequest]:
        """Requests waiting for a confirmation (not yet expired), newest first."""

    async def pending_for_campaign(self, provider: str, account: str, campaign_id: str) -> list[StopRequest]:
        """Requests still waiting for a confirmation on one campaign, oldest first."""

    async def record(
        self, request_id: str | None, event_name: str, actor: Actor | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit line that changes no state."""

    async def set_preview(self, request_id: str, preview: CampaignInfo | None, note: str | None = None) -> None:
        """Keep what the provider said about the campaign before the stop."""

    async def due_deliveries(self, request_id: str | None = None) -> list[OutboxPost]:
        """Posts whose time has come, oldest first (a request's channel post before its incident post)."""

    async def claim_delivery(self, delivery_id: int, lease_seconds: float) -> str | None:
        """Lease a due post (one process posts it); counts the attempt. Returns the lease token,
        or None when the post is not due or another process holds it."""

    async def delivered(
        self,
        delivery: OutboxPost,
        message_ts: str | None,
        lease: str | None = None,
        *,
        started: bool = False,
        note: str | None = None,
        posted_outcome: str | None = None,
    ) -> bool:
        """The post was accepted (`note`: how it had to go, e.g. through the reply link): recorded
        only for the holder of `lease` (False when it lost it); a post of an outcome (`posted_outcome`,
        JSON) that was revised meanwhile is due again instead of done;
        with `started`, it was the live record's first message and stays owed its update."""

    async def delivery_failed(
        self, delivery: OutboxPost, error: str, retry_at: datetime | None, lease: str | None = None
    ) -> None:
        """The post failed: retry at `retry_at`, or never (None)."""

    async def sent_message_ts(self, request_id: str, target: str) -> str | None:
        """The ts of a post already accepted (for links to it)."""

    async def add_deliveries(self, request_id: str, deliveries: Sequence[tuple[str, str]]) -> None:
        """Owe these posts from now on (those already owed are kept as they are)."""

    async def announce_problems(self, request_id: str) -> list[AnnounceProblem]:
        """The request's posts that met trouble (a refusal, a reroute, a wait), in target order."""

    async def refresh_response_url(self, request_id: str, response_url: str) -> None:
        """Keep a newer reply link for the request's conversation (a click's, issued now)."""

    async def outbox_depth(self) -> int:
        """Posts still owed."""

    async def ping(self) -> bool:
        """True when the database answers."""


# ----- announcing --------------------------------------------------------------------------------


class Notifier(Protocol):
    """Where outcomes are announced (the channel, the incident channel…).

    The core stores the posts an outcome owes (`targets`) together with the outcome, in one
    transaction, then has them `post`ed one by one, retrying from the outbox until accepted.
    """

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        """The posts an outcome of `request` owes, as (target name, channel) pairs, in order."""

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        """Post the outcome to one target; returns the message ts, raises `DeliveryError`."""

    async def card_ended(self, request: StopRequest) -> bool:
        """Show the request's card as ended (expired, or stopped from another front end), buttons gone;
        False when the card could not be updated (its reply link expired or used up)."""

    async def direct_posts(self, user_ids: Sequence[str]) -> list[tuple[str, str]]:
        """The posts owed to people by direct message (approvers), as (target, conversation) pairs:
        each one's card is posted there and kept up to date like a live record."""

    async def find_post(self, request: StopRequest, target: str, channel: str) -> str | None:
        """The ts of an earlier post of this request and target that went out although its answer
        was lost (a process died while the chat service answered), or None."""

    async def reply(self, request: StopRequest, outcome: Outcome, refusal: str) -> bool:
        """Post the outcome in the request's own conversation through the reply link Slack gave with
        the command or a click there, because the conversation refused the app's own post
        (`refusal`); False when no usable link is left."""

    async def post_record(
        self, request: StopRequest, target: str, channel: str, link_ts: str | None, ts: str | None = None
    ) -> str | None:
        """The live record as the request stands (waiting for approval, "… is stopping …", or ended
        without a stop): posted, or with `ts` updated in place; returns its ts, raises `DeliveryError`."""

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
        """Turn the live record `ts` into the outcome, in place (its `trail` in the thread); raises
        `DeliveryError`."""


class NullNotifier:
    """A notifier that announces nothing (no Slack configured: the console prints the outcome)."""

    def targets(self, request: StopRequest) -> list[tuple[str, str]]:
        """No posts."""
        return []

    async def post(
        self, request: StopRequest, outcome: Outcome, target: str, channel: str, link_ts: str | None
    ) -> str | None:
        """Never called (no targets)."""
        return None

    async def card_ended(self, request: StopRequest) -> bool:
        """Nothing to update."""
        return True

    async def reply(self, request: StopRequest, outcome: Outcome, refusal: str) -> bool:
        """Never called (no targets)."""
        return False

    async def direct_posts(self, user_ids: Sequence[str]) -> list[tuple[str, str]]:
        """No direct messages."""
        return []

    async def find_post(self, request: StopRequest, target: str, channel: str) -> str | None:
        """Nothing was posted."""
        return None

    async def post_record(
        self, request: StopRequest, target: str, channel: str, link_ts: str | None, ts: str | None = None
    ) -> str | None:
        """Never called (no targets)."""
        return None

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
        """Never called (no targets)."""
        return None
