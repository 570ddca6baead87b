"""Sonarly: ``POST /v1/accounts/{accountGroupId}/campaigns/{campaignId}/stop`` (seed 002).

Every answer is the envelope ``{"success", "data", "error": {"code", "message", "details"},
"traceId"}``: the verdict is ``success`` *and* the HTTP status, and the trace id (else the
``x-trace-id`` / ``x-request-id`` header) is kept for support. Sonarly documents the stop as not
idempotent ("check the current resource state before retrying"), so doubt is settled by reading
the campaign (``GET /v1/accounts/{accountGroupId}/campaigns/{campaignId}``, whose answer is
``data.campaign`` or ``data`` itself), a stop is sent again only after such a read showed the
campaign still active, and a successful stop is read back.

Status vocabulary: Sonarly's docs only show ``draft``; the rest of `SonarlyAdapter.phases` is
assumed. Any other status is shown raw and counts as `CampaignPhase.UNKNOWN`: never stopped, never
active.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator

from bot.core.models import CampaignInfo, CampaignPhase, OutcomeStatus
from bot.providers.accounts import MAX_TOKEN, AccountSettings, is_token
from bot.providers.auth import Auth, StaticHeaders, bearer
from bot.providers.base import ProviderAdapter, StopBody
from bot.providers.verdicts import Read, Reads
from bot.providers.wire import Call, Reply, clip, int_field, text_field

S = OutcomeStatus
P = CampaignPhase

_EXTRA_FIELDS = ("startedAt", "updatedAt", "rateLimitedUntil")
_READ_PERMISSION = "campaigns:read"
_STOP_PERMISSION = "campaigns:execute"


class SonarlyAccount(AccountSettings):
    """One Sonarly account group: a bearer API key and the account group id that scopes every route."""

    api_key: SecretStr
    account_group_id: str = Field(min_length=1)

    @field_validator("api_key")
    @classmethod
    def _key_is_header_safe(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if not key:
            raise ValueError("must not be empty")
        if not key.isascii() or not key.isprintable() or " " in key:
            raise ValueError("must be one word of printable ASCII, such as sk_live_…")
        return SecretStr(key)

    @field_validator("account_group_id")
    @classmethod
    def _group_is_path_safe(cls, value: str) -> str:
        if not is_token(value):
            raise ValueError(f"must be letters, digits, '_' or '-' (at most {MAX_TOKEN}), as GET /v1/accounts lists")
        return value


def _campaign_object(data: Any) -> Mapping[str, Any] | None:
    """``data.campaign`` (the stop's shape), or ``data`` itself when it looks like a campaign."""
    if not isinstance(data, dict):
        return None
    inner = data.get("campaign")
    if isinstance(inner, dict):
        return inner
    return data if "status" in data or "name" in data else None


def _details(error: Any) -> str | None:
    """``error.details`` as text: a string as is, an object or a list as compact JSON."""
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, dict | list):
        if not details:
            return None
        try:
            return clip(json.dumps(details, ensure_ascii=False), 200)
        except (ValueError, RecursionError):
            return None
    return text_field(error, "details", 200)


class SonarlyAdapter(ProviderAdapter[SonarlyAccount]):
    """Stops Sonarly campaigns; every doubtful answer is settled by reading the campaign."""

    name = "sonarly"
    display_name = "Sonarly"
    aliases = ("sonar",)
    env_prefix = "SONARLY_"
    account_model = SonarlyAccount
    id_format = "token"
    campaign_id_hint = (
        "the campaign's id from Sonarly, usually 24 hex characters such as 507f1f77bcf86cd799439011 "
        f"(letters, digits, '_' or '-', at most {MAX_TOKEN})"
    )
    default_base_url = "https://api.sonarly.io"
    repeat_safe = False  # seed 002: "Idempotency: not supported"
    stop_meaning: ClassVar[str] = (
        "Stops the campaign and every running outreach instance (one per selected lead); "
        "messages already sent stay sent. Sonarly's API offers no resume: treat the stop as final."
    )
    reads = Reads(settle=True, back=True)
    # Sonarly publishes no numbers, only a 429. A stop costs at most a few calls (stop, read,
    # maybe a second stop, read-back), so 5 spaced calls per second and 2 in flight keep a stop
    # quick while staying far below any plausible per-key limit.
    rate_per_second = 5.0
    max_in_flight = 2
    http_outcomes: ClassVar[dict[int, OutcomeStatus]] = {
        400: S.INVALID_REQUEST,
        401: S.UNAUTHORIZED,
        403: S.FORBIDDEN,  # "Missing required permission"
        404: S.NOT_FOUND,
    }
    # Seed 002 names no error codes but VALIDATION_ERROR (on a 400): the HTTP status decides, and a
    # 2xx saying ``success: false`` stays a doubt that a read settles.
    code_outcomes: ClassVar[dict[str, OutcomeStatus]] = {}
    refused_by_state_http = frozenset({409, 422})  # 409: "resource is in a state that prevents this operation"
    outcome_notes: ClassVar[dict[OutcomeStatus, str]] = {
        S.UNAUTHORIZED: "Sonarly rejected the API key: check the account's api_key (SONARLY_API_KEY).",
        S.FORBIDDEN: f"The API key lacks the {_STOP_PERMISSION} permission, which the stop needs: grant it in Sonarly.",
        S.NOT_FOUND: "Sonarly does not know campaign {campaign_id} in account group {account_group_id}.",
        S.INVALID_REQUEST: "Check the campaign id (Sonarly's are usually 24 hex characters) and the base_url.",
    }
    phases: ClassVar[dict[str, CampaignPhase]] = {
        "draft": P.NOT_STOPPABLE,  # the only status the docs show
        "archived": P.NOT_STOPPABLE,
        "deleted": P.NOT_STOPPABLE,
        "scheduled": P.ACTIVE,
        "running": P.ACTIVE,
        "active": P.ACTIVE,
        "sending": P.ACTIVE,
        "in_progress": P.ACTIVE,
        "paused": P.ACTIVE,
        "stopped": P.STOPPED,
        "cancelled": P.STOPPED,
        "canceled": P.STOPPED,
        "completed": P.COMPLETED,
        "finished": P.COMPLETED,
    }
    default_retry_after = 1.0  # a 429 without Retry-After: wait a second before reading again

    def make_auth(self) -> Auth:
        """``Authorization: Bearer <api_key>`` on every call."""
        return StaticHeaders(lambda: bearer(self.account.api_key.get_secret_value()))

    def _path(self, campaign_id: str) -> str:
        group = quote(self.account.account_group_id, safe="")
        return f"/v1/accounts/{group}/campaigns/{quote(campaign_id, safe='')}"

    def stop_call(self, campaign_id: str) -> Call:
        """``POST …/campaigns/{campaignId}/stop`` without a body."""
        return Call("POST", f"{self._path(campaign_id)}/stop")

    def read_call(self, campaign_id: str) -> Call:
        """``GET …/campaigns/{campaignId}``."""
        return Call("GET", self._path(campaign_id))

    def _info(self, raw: Mapping[str, Any], campaign_id: str | None) -> CampaignInfo:
        """A `CampaignInfo` from Sonarly's campaign object, tolerant of missing or mistyped fields."""
        status = text_field(raw, "status")
        return CampaignInfo(
            id=text_field(raw, "id") or campaign_id,
            name=text_field(raw, "name"),
            state=status,
            phase=self.phase_of(status),
            size=int_field(raw, "selectedLeadCount"),
            extra={key: value for key in _EXTRA_FIELDS if (value := text_field(raw, key))},
        )

    def stop_body(self, reply: Reply) -> StopBody:
        """The envelope: ``success``, ``error.code``/``message``/``details``, ``traceId``, ``data``."""
        body = reply.json_object()
        # Only a JSON boolean is a verdict: "true" as a string is as unreadable as no verdict at all.
        flag = body.get("success")
        error, data = body.get("error"), body.get("data")
        message, details = text_field(error, "message"), _details(error)
        if details:
            message = f"{message} ({details})" if message else details
        trace = (
            text_field(body, "traceId", 200)
            or text_field(reply.headers, "x-trace-id", 200)
            or text_field(reply.headers, "x-request-id", 200)
        )
        raw = _campaign_object(data)
        campaign = self._info(raw, None) if raw is not None else None
        fields: dict[str, Any] = {
            "success": flag if isinstance(flag, bool) else None,
            "code": text_field(error, "code"),
            "message": message,
            "trace_id": trace,
            "state": campaign.state if campaign is not None else None,
            "campaign": campaign,
        }
        if flag is not True or not reply.ok:
            return StopBody(**fields)
        count = int_field(data, "instancesStopped")
        if count is None:
            note = "Sonarly did not say how many instances it stopped"
        else:
            note = f"{count} instance{'' if count == 1 else 's'} stopped"
        if trace:
            note += f" (trace {trace})"
        extra = {"instancesStopped": count} if count is not None else {}
        return StopBody(note=note, extra=extra, **fields)

    def campaign_of(self, reply: Reply, campaign_id: str) -> CampaignInfo | None:
        """The campaign of a read whose envelope says ``success: true``."""
        body = reply.json_object()
        raw = _campaign_object(body.get("data")) if body.get("success") is True else None
        return self._info(raw, campaign_id) if raw is not None else None

    def read_problem(self, reply: Reply, campaign_id: str) -> Read:
        """Why a read carries no campaign, naming the permission a 403 lacks."""
        body = self.stop_body(reply)
        said, status, trace = self.said(reply, body), reply.status, body.trace_id
        if status == 404:
            group = self.account.account_group_id
            problem = f"Sonarly does not know campaign {campaign_id} in account group {group} ({said})."
            return Read(None, problem, S.NOT_FOUND, trace_id=trace)
        if status == 401:
            problem = f"Sonarly rejected the API key ({said})"
        elif status == 403:
            problem = f"Sonarly refused the read: the API key lacks the {_READ_PERMISSION} permission ({said})"
        elif reply.ok and body.success is True:
            problem = f"Sonarly's answer to the read holds no campaign ({said})"
        elif reply.ok and body.success is False:
            problem = f"Sonarly reported a failure reading the campaign ({said})"
        elif reply.ok or not reply.is_json:
            shown = reply.snippet() or "(empty body)"
            problem = f"Sonarly sent an unreadable answer to the read (HTTP {status}): {shown}"
        else:
            problem = f"Sonarly could not read the campaign ({said})"
        return Read(None, problem, transient=status == 429 or status >= 500, trace_id=trace)
