"""Telco WWT (RCS): ``PUT /api/campaigns/{id}/stop`` behind a JWT login (seed 003).

Auth: ``POST /api/auth/login`` with ``{"api_key": …}`` answers ``{"bearer": <JWT>}``, sent as
``Authorization: Bearer <JWT>``; ``POST /api/auth/refresh`` renews a still valid JWT. The session
(`bot.providers.auth.BearerSession`) caches the JWT per account, renews it before it expires and,
on a 401, logs in again once and repeats the call once. A refused login sends no stop: 400/401/422
→ unauthorized, 403 → forbidden, 429 → rate limited, anything else → provider error (only 429 and
5xx are worth trying again). A login failure never quotes a 2xx body: it may hold a token.

Stop: ``PUT /api/campaigns/{id}/stop`` (an integer id). A 405 to PUT means the route refused the
method and nothing happened, so the stop falls back to PATCH (what BSG's SDK sends to the same
path) and keeps PATCH from then on; a 405 to PATCH too is a provider error. The answer is
``{"data": {campaign}}``: any 2xx that carries the campaign object (a ``data`` object with a text
``status``) means WWT took the stop, even when that object still shows the old status; the
read-back (``GET /api/campaigns/{id}``, the same ``{"data": {campaign}}``) verifies it, and a stale
2xx never leads to a second stop. Errors are Laravel's ``{"message", "errors"}``; a 422 (the
campaign's status forbids the stop; an undocumented 409 is read the same way) is settled by a
read: ``stopped`` → already stopped (or stopped, when an earlier stop of ours may have applied),
``done`` → already completed, ``creation``/``spam`` → not stoppable, a 404 → not found.

Stopping is final on WWT ("without the possibility of resuming it") and not repeat-safe by our
rules: a doubt (no answer, 408, 429, 5xx, a 2xx without a campaign) is settled by the read, and
the stop is sent again only when the read proves the campaign still stoppable (moderation,
scheduled, sending, paused). Status vocabulary: the seed's; ``planned`` (its prose's word for
scheduled) and ``completed`` are assumed synonyms. Any other status is shown raw and counts as
`CampaignPhase.UNKNOWN`.

WWT publishes no rate limit and no campaign page URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from bot.core.models import CampaignInfo, CampaignPhase, OutcomeStatus
from bot.providers.accounts import AccountSettings
from bot.providers.auth import Auth, BearerSession, bearer, usable_token
from bot.providers.base import ProviderAdapter, StopBody
from bot.providers.verdicts import Reads
from bot.providers.wire import AuthRefused, Call, Reply, clip, float_field, int_field, text_field

S = OutcomeStatus
P = CampaignPhase

_EXTRA_FIELDS = ("sender", "start_at", "real_start_at", "finished_at", "created_at")
_LOGIN_REFUSALS: dict[int, tuple[OutcomeStatus, str]] = {
    400: (S.UNAUTHORIZED, "Telco WWT rejected the API key"),
    401: (S.UNAUTHORIZED, "Telco WWT rejected the API key"),
    422: (S.UNAUTHORIZED, "Telco WWT rejected the API key"),
    403: (S.FORBIDDEN, "Telco WWT refused this API key"),
    429: (S.RATE_LIMITED, "the login was rate limited"),
}


class WwtAccount(AccountSettings):
    """One Telco WWT account: its live or test API key (and optionally another base URL)."""

    api_key: SecretStr

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if not key:
            raise ValueError("must not be empty")
        return SecretStr(key)


def _statistics(value: Any) -> tuple[int | None, int | None]:
    """(sent, delivered) from a statistics object, or summed over an array of them."""
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    sent: int | None = None
    delivered: int | None = None
    for item in items:
        s, d = int_field(item, "sent"), int_field(item, "delivered")
        if s is not None:
            sent = (sent or 0) + s
        if d is not None:
            delivered = (delivered or 0) + d
    return sent, delivered


def _campaign_object(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``data`` when it is a campaign: an object whose ``status`` is text."""
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("status"), str) and data["status"].strip():
        return data
    return None


def _message(body: Mapping[str, Any]) -> str | None:
    """WWT's error ``message``, with a compact ``errors`` when it says something."""
    message = text_field(body, "message")
    errors = body.get("errors")
    if not errors or not isinstance(errors, dict | list):
        return message
    try:
        flat = clip(json.dumps(errors, ensure_ascii=False, separators=(",", ":")), 200)
    except (ValueError, RecursionError):
        return message
    return f"{message} (errors: {flat})" if message else f"errors: {flat}"


def describe(info: CampaignInfo) -> str:
    """'campaign 123 “Spring promo” (sent 8,200, delivered 7,900, price 412.5)'."""
    text = f"campaign {info.id}" if info.id else "the campaign"
    if info.name:
        text += f" “{info.name}”"
    figures: list[str] = []
    if info.sent is not None:
        figures.append(f"sent {info.sent:,}")
    if info.delivered is not None:
        figures.append(f"delivered {info.delivered:,}")
    if info.price is not None:
        figures.append(f"price {info.price:g}")
    return text + (f" ({', '.join(figures)})" if figures else "")


def token_of(reply: Reply) -> str | None:
    """The JWT of a login/refresh answer (``bearer``, or ``data.bearer``), when it is sendable."""
    body = reply.json_object()
    value = body.get("bearer")
    inner = body.get("data")
    if value is None and isinstance(inner, dict):
        value = inner.get("bearer")
    return usable_token(value)


class WwtAdapter(ProviderAdapter[WwtAccount]):
    """Stops Telco WWT RCS campaigns through the One API (``/api/campaigns/{id}/stop``)."""

    name = "wwt"
    display_name = "Telco WWT (RCS)"
    aliases = ("telcowwt", "rcs")
    env_prefix = "WWT_"
    account_model = WwtAccount
    campaign_id_hint = "a positive whole number such as 53651994 (the id returned when the campaign was sent)"
    default_base_url = "https://one-api.wwt.world"
    repeat_safe = False  # stopping is final, and a stale answer must never lead to a second stop
    stop_meaning: ClassVar[str] = (
        "Works on campaigns in moderation, scheduled, sending or paused. Sending stops at once and the "
        "campaign becomes Stopped for good: it cannot be resumed; messages already sent are not recalled."
    )
    reads = Reads(settle=True, back=True)
    # WWT publishes no rate limit. A kill switch sends a handful of calls (login, stop, read), so a
    # low rate and two calls in flight stay clear of any plausible limit and cost under a second.
    rate_per_second = 5.0
    max_in_flight = 2
    http_outcomes: ClassVar[dict[int, OutcomeStatus]] = {
        400: S.INVALID_REQUEST,
        401: S.UNAUTHORIZED,  # still 401 after a fresh login
        403: S.FORBIDDEN,
        404: S.NOT_FOUND,
        405: S.PROVIDER_ERROR,  # PATCH refused too (PUT's 405 falls back to PATCH first)
    }
    refused_by_state_http = frozenset({409, 422})
    method_fallbacks: ClassVar[dict[str, str]] = {"PUT": "PATCH"}
    outcome_notes: ClassVar[dict[OutcomeStatus, str]] = {
        S.UNAUTHORIZED: "Telco WWT rejected our token even after a fresh login: check the api_key (WWT_API_KEY).",
        S.FORBIDDEN: "This API key may not stop campaigns: check its rights in Telco WWT.",
        S.NOT_FOUND: "Telco WWT does not know campaign {campaign_id} in account {account}.",
        S.INVALID_REQUEST: "Check the campaign id and the base_url ({base_url}).",
        S.PROVIDER_ERROR: "Telco WWT refuses both PUT and PATCH on the stop route: check the base_url ({base_url}).",
    }
    phases: ClassVar[dict[str, CampaignPhase]] = {
        "moderation": P.ACTIVE,
        "scheduled": P.ACTIVE,
        "planned": P.ACTIVE,  # the seed's prose calls "scheduled" "Planned"
        "sending": P.ACTIVE,
        "paused": P.ACTIVE,
        "stopped": P.STOPPED,
        "done": P.COMPLETED,
        "completed": P.COMPLETED,
        "creation": P.NOT_STOPPABLE,
        "spam": P.NOT_STOPPABLE,
    }

    def make_auth(self) -> Auth:
        """A JWT session: login with the API key, refresh while valid, one re-login after a 401."""
        return BearerSession(
            self.channel.send,
            login=lambda: Call("POST", "/api/auth/login", json={"api_key": self.account.api_key.get_secret_value()}),
            refresh=lambda token: Call("POST", "/api/auth/refresh", headers=bearer(token)),
            token_of=token_of,
            login_failure=self.login_failure,
            label=f"{self.display_name} account {self.account_name!r}",
        )

    def login_failure(self, reply: Reply) -> AuthRefused:
        """What a login answer without a usable token means (scrubbed: it reaches the logs)."""
        status = reply.status
        if reply.ok:
            body = reply.json_object()
            what = f"JSON keys {sorted(body)[:5]}" if body else "a body that is not a JSON object"
            reason = f"the login answered HTTP {status} without a usable 'bearer' token ({what})"
            return AuthRefused(S.PROVIDER_ERROR, self.scrub(clip(reason, 300)), http_status=status)
        outcome, why = _LOGIN_REFUSALS.get(status, (S.PROVIDER_ERROR, "the login failed"))
        said = _message(reply.json_object()) or reply.snippet(120) or "empty body"
        return AuthRefused(
            outcome,
            self.scrub(f"{why} (HTTP {status}: {said})"),
            http_status=status,
            retryable=status == 429 or status >= 500,
        )

    def stop_call(self, campaign_id: str) -> Call:
        """``PUT /api/campaigns/{id}/stop`` without a body (PATCH once PUT answered 405)."""
        return Call("PUT", f"/api/campaigns/{campaign_id}/stop")

    def read_call(self, campaign_id: str) -> Call:
        """``GET /api/campaigns/{id}``."""
        return Call("GET", f"/api/campaigns/{campaign_id}")

    def campaign_info(self, raw: Mapping[str, Any], campaign_id: str | None) -> CampaignInfo:
        """A WWT campaign object as a `CampaignInfo`, tolerant of missing or mistyped fields."""
        state = text_field(raw, "status")
        sent, delivered = _statistics(raw.get("statistics"))
        extra: dict[str, Any] = {key: value for key in _EXTRA_FIELDS if (value := text_field(raw, key))}
        channels = raw.get("alternative_channels")
        sms = channels.get("sms") if isinstance(channels, dict) else None
        if isinstance(sms, dict):
            # The seed's table says "statistics", its example says "statistic": read either.
            sms_sent, sms_delivered = _statistics(sms.get("statistics", sms.get("statistic")))
            if sms_sent is not None:
                extra["sms_fallback_sent"] = sms_sent
            if sms_delivered is not None:
                extra["sms_fallback_delivered"] = sms_delivered
        return CampaignInfo(
            id=text_field(raw, "id", 40) or campaign_id,
            name=text_field(raw, "name"),
            state=state,
            phase=self.phase_of(state),
            kind=text_field(raw, "message_type"),
            sent=sent,
            delivered=delivered,
            price=float_field(raw, "calculated_price"),
            extra=extra,
        )

    def stop_body(self, reply: Reply) -> StopBody:
        """``{"data": {campaign}}`` on success, ``{"message", "errors"}`` otherwise."""
        body = reply.json_object()
        raw = _campaign_object(body)
        campaign = self.campaign_info(raw, None) if raw is not None else None
        state = campaign.state if campaign is not None else None
        fields: dict[str, Any] = {"message": _message(body), "state": state, "campaign": campaign}
        if campaign is None or not reply.ok:
            return StopBody(**fields)
        note = describe(campaign)
        if campaign.phase is not P.STOPPED:
            note += f"; its answer still shows {state!r}, so the read-back tells whether it took effect"
        return StopBody(success=True, note=note, **fields)

    def campaign_of(self, reply: Reply, campaign_id: str) -> CampaignInfo | None:
        """The campaign of a 2xx read: ``data`` with a text ``status``."""
        raw = _campaign_object(reply.json_object())
        return self.campaign_info(raw, campaign_id) if raw is not None else None
