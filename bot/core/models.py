"""The core's data: stop requests, their states, and the normalized outcome of a stop.

Every front end (Slack, console, CLI) renders these models; no Slack or web types here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of time the app stores)."""
    return datetime.now(UTC)


class OutcomeStatus(StrEnum):
    """The normalized result of a stop, the same for every provider."""

    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"
    ALREADY_COMPLETED = "already_completed"
    NOT_STOPPABLE = "not_stoppable"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"
    UNREACHABLE = "unreachable"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        """A short human label ("already stopped")."""
        return self.value.replace("_", " ")

    @property
    def campaign_is_halted(self) -> bool:
        """True when the campaign is known not to be sending any more."""
        return self in _HALTED

    @property
    def description(self) -> str:
        """One sentence saying what this status means for the person who asked."""
        return _DESCRIPTIONS[self]


_HALTED = frozenset({OutcomeStatus.STOPPED, OutcomeStatus.ALREADY_STOPPED, OutcomeStatus.ALREADY_COMPLETED})

_DESCRIPTIONS: dict[OutcomeStatus, str] = {
    OutcomeStatus.STOPPED: "The provider stopped the campaign.",
    OutcomeStatus.ALREADY_STOPPED: "The campaign was already stopped; nothing changed.",
    OutcomeStatus.ALREADY_COMPLETED: "The campaign had already finished sending; nothing changed.",
    OutcomeStatus.NOT_STOPPABLE: "The campaign is in a state the provider cannot stop.",
    OutcomeStatus.NOT_FOUND: "The provider does not know this campaign in this account.",
    OutcomeStatus.INVALID_REQUEST: "The provider rejected the request as invalid.",
    OutcomeStatus.UNAUTHORIZED: "The provider rejected our credentials: check the configured key.",
    OutcomeStatus.FORBIDDEN: "The credentials lack the permission to stop campaigns.",
    OutcomeStatus.RATE_LIMITED: "The provider's rate limit refused the stop: the campaign may still be sending.",
    OutcomeStatus.PROVIDER_ERROR: "The provider failed: the campaign may still be sending.",
    OutcomeStatus.UNREACHABLE: "The provider could not be reached; nothing was sent.",
    OutcomeStatus.NOT_SENT: (
        "The stop was not sent; nothing reached the provider. Confirm again if it still needs stopping."
    ),
    OutcomeStatus.UNKNOWN: "The stop was sent but its result could not be learned: check the provider's dashboard.",
}


class RequestState(StrEnum):
    """Where a stop request is in its life: pending → (cancelled | expired | executing) → done."""

    PENDING = "pending"
    EXECUTING = "executing"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DONE = "done"

    @property
    def is_final(self) -> bool:
        """True once the request can never change again."""
        return self in (RequestState.CANCELLED, RequestState.EXPIRED, RequestState.DONE)


class Actor(BaseModel):
    """Somebody who did something: a Slack user, a console user, a runbook."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    source: str = "slack"

    @property
    def display(self) -> str:
        """A readable name for console output."""
        return self.name or self.id


class CampaignPhase(StrEnum):
    """A provider's raw campaign state, normalized for the card and for settling doubt."""

    ACTIVE = "active"
    """Scheduled, in moderation, sending or paused: a stop would take effect."""
    STOPPED = "stopped"
    COMPLETED = "completed"
    NOT_STOPPABLE = "not_stoppable"
    """A state the provider refuses to stop (draft, creation, spam, deleted…)."""
    UNKNOWN = "unknown"
    """A raw state the adapter does not know: shown raw, treated conservatively."""


class CampaignInfo(BaseModel):
    """What a provider said about a campaign. Every field is optional: providers differ.

    `state` is the provider's raw state string, always shown as is; `phase` is its meaning.
    """

    id: str | None = None
    name: str | None = None
    state: str | None = None
    phase: CampaignPhase | None = None
    kind: str | None = None
    size: int | None = None
    sent: int | None = None
    delivered: int | None = None
    price: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def is_empty(self) -> bool:
        """True when the provider told us nothing beyond the id."""
        return not any((self.name, self.state, self.kind, self.size, self.sent, self.delivered, self.price))


class Outcome(BaseModel):
    """The normalized result of one stop: what every front end renders and the store keeps."""

    status: OutcomeStatus
    provider: str
    account: str
    campaign_id: str
    detail: str = ""
    campaign: CampaignInfo | None = None
    state_before: str | None = None
    state_after: str | None = None
    verified: bool = False
    provider_status: str | None = None
    provider_code: str | None = None
    provider_message: str | None = None
    trace_id: str | None = None
    http_status: int | None = None
    attempts: int = 0
    elapsed_ms: int = 0
    requested_by: Actor | None = None
    confirmed_by: Actor | None = None
    finished_at: datetime = Field(default_factory=utcnow)

    def provider_detail(self) -> str:
        """The provider's own words, compact: 'HTTP 404 · code 73 · Campaign not found · trace abc'."""
        parts: list[str] = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.provider_status:
            parts.append(f"status {self.provider_status}")
        if self.provider_code:
            parts.append(f"code {self.provider_code}")
        if self.provider_message:
            parts.append(self.provider_message)
        if self.trace_id:
            parts.append(f"trace {self.trace_id}")
        return " · ".join(parts)


class StopRequest(BaseModel):
    """A stop somebody asked for, as the store holds it."""

    id: str
    provider: str
    account: str
    campaign_id: str
    reason: str = ""
    requester: Actor
    team_id: str | None = None
    channel_id: str | None = None
    response_url: str | None = None
    """Slack's reply link for the request's conversation (the command's, or a later click's there)."""
    response_url_at: datetime | None = None
    """When Slack issued `response_url` (None: with the command, at `created_at`); it lasts 30 minutes."""
    state: RequestState = RequestState.PENDING
    two_person: bool = False
    created_at: datetime
    expires_at: datetime
    confirmed_by: Actor | None = None
    confirmed_at: datetime | None = None
    """When the Stop click (or the approval) that made it `executing` was taken."""
    ended_by: Actor | None = None
    end_reason: str | None = None
    preview: CampaignInfo | None = None
    outcome: Outcome | None = None

    def is_expired(self, now: datetime | None = None) -> bool:
        """True when a pending request has passed its expiry."""
        return (now or utcnow()) >= self.expires_at


class AttemptState(StrEnum):
    """What one stop attempt is known to have done, at every moment of its life."""

    SENDING = "sending"
    """Recorded before the call: from here on the stop may reach the provider."""
    NOT_SENT = "not_sent"
    """The call never left (no connection, no login): nothing can have reached the provider."""
    ANSWERED = "answered"
    """The provider answered, whatever it said."""
    NO_ANSWER = "no_answer"
    """Sent, but no usable answer came back: the stop may have applied."""


class Attempt(BaseModel):
    """One stop call of a request: its number, what became of it, and a one-line summary."""

    model_config = ConfigDict(frozen=True)

    number: int
    state: AttemptState
    may_have_applied: bool = False
    summary: str = ""

    @property
    def maybe_applied(self) -> bool:
        """True when this attempt may have stopped the campaign (a crash mid-call counts)."""
        return self.may_have_applied or self.state in (AttemptState.SENDING, AttemptState.NO_ANSWER)


@dataclass(frozen=True)
class ProviderKind:
    """A provider the app knows, configured or not: what the parser and the help say about it."""

    name: str
    display_name: str
    aliases: tuple[str, ...]
    campaign_id_hint: str

    def named(self, word: str) -> bool:
        """True when `word` (any case) is this provider's name or one of its aliases."""
        wanted = word.strip().lower()
        return wanted == self.name or wanted in self.aliases


@dataclass
class ProviderHealth:
    """What this process saw of one account's API lately (for the Home tab)."""

    last_ok_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def answered(self, status: int) -> None:
        """Record an HTTP answer: a 5xx or a 429 counts as an error."""
        if status >= 500 or status == 429:
            self.failed(f"HTTP {status}")
        else:
            self.last_ok_at = utcnow()

    def failed(self, why: str) -> None:
        """Record a call that got no usable answer."""
        self.last_error, self.last_error_at = why, utcnow()


@dataclass(frozen=True)
class ProviderFacts:
    """What a front end may show about one configured account (never the adapter itself)."""

    provider: str
    display_name: str
    account: str
    api_host: str
    stop_meaning: str
    has_preview: bool
    no_preview_reason: str
    campaign_id_hint: str
    undoable: bool = False
    """True when a stop can be undone in the provider (Altcraft can activate a campaign again)."""
    dashboard_url_template: str | None = None
    """The campaign's page in the provider's dashboard, with ``{campaign_id}`` still to fill in."""
    repeat_safe: bool = False
    """True when sending the same stop twice is harmless (a second stop of a stopped campaign)."""

    def dashboard_url(self, campaign_id: str) -> str | None:
        """The dashboard URL of one campaign, or None when the provider has none."""
        if not self.dashboard_url_template:
            return None
        return self.dashboard_url_template.replace("{campaign_id}", campaign_id)

    @classmethod
    def unknown(cls, provider: str, account: str) -> ProviderFacts:
        """Facts for an account that is no longer configured (old requests still render)."""
        return cls(provider, provider, account, "?", "", False, "this account is no longer configured", "")


class AuditEntry(BaseModel):
    """One line of the append-only audit trail (refusals before any request have no request id)."""

    request_id: str | None
    at: datetime
    event: str
    from_state: str | None = None
    to_state: str | None = None
    actor: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
