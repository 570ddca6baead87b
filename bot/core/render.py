"""Plain-text renderings of requests, previews and outcomes (console, CLI, Slack `text` fallback)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.core.models import (
    Actor,
    AuditEntry,
    CampaignInfo,
    CampaignPhase,
    Outcome,
    OutcomeStatus,
    ProviderFacts,
    StopRequest,
)
from bot.core.parsing import EXAMPLE, USAGE
from bot.core.ports import ProviderCatalog

STATUS_ICONS: dict[OutcomeStatus, str] = {
    OutcomeStatus.STOPPED: "✅",
    OutcomeStatus.ALREADY_STOPPED: "☑️",
    OutcomeStatus.ALREADY_COMPLETED: "☑️",
    OutcomeStatus.NOT_STOPPABLE: "⛔",
    OutcomeStatus.NOT_FOUND: "❓",
    OutcomeStatus.INVALID_REQUEST: "⚠️",
    OutcomeStatus.UNAUTHORIZED: "🔑",
    OutcomeStatus.FORBIDDEN: "🔒",
    OutcomeStatus.RATE_LIMITED: "⏳",
    OutcomeStatus.PROVIDER_ERROR: "🔥",
    OutcomeStatus.UNREACHABLE: "📡",
    OutcomeStatus.UNKNOWN: "❔",
}

PHASE_WARNINGS: dict[CampaignPhase, str] = {
    CampaignPhase.STOPPED: "The provider says this campaign is already stopped.",
    CampaignPhase.COMPLETED: "The provider says this campaign has already finished.",
    CampaignPhase.NOT_STOPPABLE: "The provider says this campaign is in a state it cannot stop.",
    CampaignPhase.UNKNOWN: "The provider reports a state stopcampaign does not know: check before stopping.",
}


def timestamp(moment: datetime) -> str:
    """``2026-11-23 08:10:00 UTC``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def campaign_summary(info: CampaignInfo) -> str:
    """One line: name · state · counts · price."""
    parts: list[str] = []
    if info.name:
        parts.append(f"“{info.name}”")
    if info.state:
        parts.append(f"state {info.state}")
    if info.kind:
        parts.append(info.kind)
    if info.size is not None:
        parts.append(f"{info.size:,} recipients")
    if info.sent is not None:
        parts.append(f"{info.sent:,} sent")
    if info.delivered is not None:
        parts.append(f"{info.delivered:,} delivered")
    if info.price is not None:
        parts.append(f"price {info.price:g}")
    return " · ".join(parts) or "no details"


def outcome_headline(outcome: Outcome, facts: ProviderFacts) -> str:
    """``✅ CleverTap campaign 1457432766: stopped``."""
    icon = STATUS_ICONS.get(outcome.status, "")
    return f"{icon} {facts.display_name} campaign {outcome.campaign_id}: {outcome.status.label}".strip()


def outcome_text(request: StopRequest, outcome: Outcome, facts: ProviderFacts) -> str:
    """The outcome as several plain lines (console, CLI, Slack notification fallback)."""
    lines = [outcome_headline(outcome, facts), outcome.status.description]
    if outcome.detail:
        lines.append(outcome.detail)
    provider_detail = outcome.provider_detail()
    if provider_detail:
        lines.append(f"Provider said: {provider_detail}")
    if outcome.campaign and not outcome.campaign.is_empty():
        lines.append(f"Campaign: {campaign_summary(outcome.campaign)}")
    lines.append(f"Provider/account: {facts.display_name} / {outcome.account}")
    who = request.requester.display
    confirmed = outcome.confirmed_by.display if outcome.confirmed_by else "?"
    lines.append(f"Requested by {who}, confirmed by {confirmed}")
    if request.reason:
        lines.append(f"Reason: {request.reason}")
    lines.append(f"Attempts: {outcome.attempts} · {outcome.elapsed_ms} ms · request {request.id}")
    return "\n".join(lines)


def help_text(catalog: ProviderCatalog) -> str:
    """Usage, examples, configured providers and accounts, and what is not configured."""
    lines = [USAGE, EXAMPLE, "", "Configured providers:"]
    configured = catalog.configured()
    if not configured:
        lines.append("  (none: set the provider credentials, see the README)")
    for kind in configured:
        aliases = f" (aliases: {', '.join(kind.aliases)})" if kind.aliases else ""
        accounts = catalog.accounts(kind.name)
        default = catalog.default_account(kind.name)
        listed = ", ".join(f"{a} (default)" if a == default and len(accounts) > 1 else a for a in accounts)
        lines.append(f"  • {kind.name}{aliases}: accounts {listed}; ids are {kind.campaign_id_hint}")
    missing = [kind.display_name for kind in catalog.kinds() if kind not in configured]
    if missing:
        lines.append(f"Not configured: {', '.join(missing)}.")
    lines += [
        "",
        "You get a confirmation with Stop / Cancel buttons; only Stop calls the provider.",
        "Accounts under the two-person rule post an approval card in the channel instead.",
        "Name an account with provider:account, e.g. /stopcampaign clevertap:prod 1457432766.",
    ]
    return "\n".join(lines)


Who = Callable[[Actor | None], str]


def plain_who(actor: Actor | None) -> str:
    """An actor for plain text: their name, or their id."""
    return actor.display if actor else "-"


def request_status(request: StopRequest) -> str:
    """The outcome's status once done, else the request's state (``pending``, ``cancelled``…)."""
    if request.outcome is not None:
        return request.outcome.status.label
    return request.state.value


def history_lines(requests: list[StopRequest], who: Who = plain_who) -> list[str]:
    """One line a request: when, who asked, who confirmed, campaign, outcome, request id."""
    lines = []
    for request in requests:
        confirmer = request.confirmed_by or request.ended_by
        mode = " (2-person)" if request.two_person else ""
        lines.append(
            f"{timestamp(request.created_at)} · {who(request.requester)} → {who(confirmer)}{mode} · "
            f"{request.provider}:{request.account} {request.campaign_id} · {request_status(request)} · {request.id}"
        )
    return lines


def trail_lines(
    request: StopRequest, trail: list[AuditEntry], facts: ProviderFacts, who: Who = plain_who
) -> list[str]:
    """A request's header line and its audit trail, oldest first."""
    lines = [
        f"Request {request.id}: {facts.display_name} ({request.account}) campaign {request.campaign_id}, "
        f"asked by {who(request.requester)}, {request_status(request)}",
    ]
    if request.reason:
        lines.append(f"Reason: {request.reason}")
    if request.outcome is not None:
        lines.append(f"Outcome: {request.outcome.status.label}. {request.outcome.detail}")
    for entry in trail:
        move = f" {entry.from_state or ''}→{entry.to_state}" if entry.to_state else ""
        actor = f" by {who(Actor(id=entry.actor))}" if entry.actor else ""
        extra = _audit_detail(entry)
        lines.append(f"{timestamp(entry.at)} {entry.event}{move}{actor}{extra}")
    return lines


def _audit_detail(entry: AuditEntry) -> str:
    detail = entry.detail
    if entry.event == "refused":
        return f" (rule {detail.get('rule')}, {detail.get('action')})"
    if entry.event == "outcome":
        return f": {detail.get('status')}"
    if entry.event == "announce_failed":
        return f": {detail.get('error')}"
    return ""


def others_pending_text(others: list[StopRequest], who: Who = plain_who) -> str:
    """The note for a requester whose campaign already has pending requests."""
    first = others[0]
    more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
    return (
        f"{who(first.requester)} already has a stop request pending for this campaign{more}: {first.id}, "
        f"opened {timestamp(first.created_at)}. You may still go on; each confirmation sends one stop."
    )


def card_text(request: StopRequest, facts: ProviderFacts, preview: CampaignInfo | None, unavailable: str) -> str:
    """The confirmation card as plain text (the console's card)."""
    lines = [
        "",
        f"About to stop a {facts.display_name} campaign. Nothing has been sent yet.",
        f"  Provider   {facts.display_name}",
        f"  Account    {request.account}",
        f"  API host   {facts.api_host}",
        f"  Campaign   {request.campaign_id}",
    ]
    if preview is not None:
        lines.append(f"  Preview    {campaign_summary(preview)}")
        warning = PHASE_WARNINGS.get(preview.phase) if preview.phase else None
        if warning:
            lines.append(f"  WARNING    {warning}")
    else:
        lines.append(f"  Preview    none: {unavailable}")
    lines += [
        f"  Reason     {request.reason or '(none given)'}",
        f"  Stopping   {facts.stop_meaning}",
        f"  Expires    {timestamp(request.expires_at)}",
        f"  Request    {request.id}",
    ]
    return "\n".join(lines)
