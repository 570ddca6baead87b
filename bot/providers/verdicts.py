"""What one stop answer means (a `Verdict`) and what one state read learned (a `Read`).

Adapters turn their provider's wire format into these; the engine decides from them alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.core.models import CampaignInfo, OutcomeStatus


class Kind(StrEnum):
    """The six things a stop answer can be (see the table in ``bot.providers.engine``)."""

    DONE = "done"
    """The provider took the stop (2xx and the body agrees); `status` says stopped or already-*."""
    REFUSED = "refused"
    """A definite no that leaves the campaign as it was (bad key, unknown id…); `status` says which."""
    REFUSED_BY_STATE = "refused_by_state"
    """The campaign's state forbids the stop (409, 422…): a read tells which state."""
    FAILED = "failed"
    """The provider says the stop failed without saying why (a failure in a 2xx, an unknown code):
    a read tells what became of the campaign; never sent again, which could mask the failure."""
    DOUBT = "doubt"
    """In doubt (no answer, 5xx, 429, garbage): `status` is what it means if the campaign runs on."""
    NOT_SENT = "not_sent"
    """The stop never left (no connection, no login): nothing can have reached the provider."""


@dataclass(frozen=True)
class Verdict:
    """One stop attempt, judged."""

    kind: Kind
    status: OutcomeStatus
    headline: str
    """One sentence in the provider's terms: what it answered, for the outcome's detail."""
    may_have_applied: bool = False
    """The stop may have taken effect (no answer, 5xx, unreadable 2xx)."""
    unclear: bool = False
    """No usable answer at all: if nothing settles it, the result is `unknown`."""
    retry_after: float | None = None
    retryable: bool = True
    """NOT_SENT only: worth sending again (a connection problem) or not (a refused login)."""
    campaign: CampaignInfo | None = None
    http_status: int | None = None
    provider_status: str | None = None
    provider_code: str | None = None
    provider_message: str | None = None
    trace_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Provider figures worth keeping with the campaign (``instancesStopped``…)."""

    @property
    def summary(self) -> str:
        """A few words for the attempt log and the outcome's steps."""
        if self.kind is Kind.NOT_SENT:
            return f"not sent ({self.headline})"
        if self.http_status is None:
            return "no answer"
        words = [f"HTTP {self.http_status}"]
        for part in (self.provider_status, self.provider_code, self.provider_message):
            if part:
                words.append(part)
        return " · ".join(words)


@dataclass(frozen=True)
class Read:
    """One read of a campaign's state: what the provider reports, or why it could not be learned."""

    info: CampaignInfo | None
    problem: str = ""
    status: OutcomeStatus | None = None
    """A definite answer no further read will change (the campaign does not exist, the key is refused)."""
    transient: bool = False
    """Worth reading once more (no answer, 429, 5xx)."""
    trace_id: str | None = None

    @property
    def summary(self) -> str:
        """A few words for the outcome's steps."""
        if self.info is None:
            return f"read failed ({self.problem})"
        return f"read: {self.info.state!r}" if self.info.state is not None else "read: no status"


@dataclass(frozen=True)
class Reads:
    """Which state reads a provider offers, and when the engine makes them."""

    settle: bool = False
    """A read call exists: doubt and refusals by state are settled by reading."""
    before: bool = False
    """Read before the stop (to tell "stopped" from "already stopped" when the answer cannot)."""
    back: bool = False
    """Read after a successful stop, to verify it."""
