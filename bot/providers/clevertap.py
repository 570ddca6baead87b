"""CleverTap: ``POST /1/targets/stop.json`` with ``{"id": <int>}`` (seeds 000 and 001).

Stopping is repeat-safe (an already stopped campaign answers success), and CleverTap has no call
that reads one campaign: there is no preview, and doubt is settled by sending the stop again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.core.models import OutcomeStatus
from bot.providers.accounts import AccountSettings
from bot.providers.auth import Auth, StaticHeaders
from bot.providers.base import ProviderAdapter, StopBody
from bot.providers.wire import Call, Reply, int_field, status_key, text_field

S = OutcomeStatus

REGION_HOSTS: dict[str, str] = {
    "in1": "https://in1.api.clevertap.com",
    "sg1": "https://sg1.api.clevertap.com",
    "us1": "https://us1.api.clevertap.com",
    "aps3": "https://aps3.api.clevertap.com",
    "mec1": "https://mec1.api.clevertap.com",
    "sk1": "https://sk1.api.clevertap.com",
    "eu1": "https://api.clevertap.com",
}
_RESULTS = {"stopped": S.STOPPED, "already_stopped": S.ALREADY_STOPPED, "already_completed": S.ALREADY_COMPLETED}


def _header_safe(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
    return value


class CleverTapAccount(AccountSettings):
    """One CleverTap project: account id, passcode, and a region or a full base URL (one is required)."""

    account_id: str = Field(min_length=1)
    passcode: SecretStr
    region: str | None = None

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = value.lower()
        if region not in REGION_HOSTS:
            raise ValueError(f"unknown region {value!r}; use one of {', '.join(REGION_HOSTS)} or a base URL")
        return region

    @field_validator("passcode")
    @classmethod
    def _passcode_header_safe(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        _header_safe(value.get_secret_value())
        return value

    @field_validator("account_id")
    @classmethod
    def _account_id_header_safe(cls, value: str) -> str:
        return _header_safe(value)

    @model_validator(mode="after")
    def _region_or_base_url(self) -> CleverTapAccount:
        # No silent default host: an India account sent to the EU host only ever hears "401".
        if self.region is None and self.base_url is None:
            problem = PydanticCustomError(
                "missing_region",
                "required (the project's region: {regions}; eu1 is Europe), unless base_url is set",
                {"regions": ", ".join(REGION_HOSTS)},
            )
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=problem, loc=("region",), input=None)]
            )
        return self


class CleverTapAdapter(ProviderAdapter[CleverTapAccount]):
    """Stops CleverTap campaigns through the Stop Scheduled Campaign API."""

    name = "clevertap"
    display_name = "CleverTap"
    aliases = ("ct",)
    env_prefix = "CLEVERTAP_"
    env_modifiers = frozenset({"base_url", "region", "dashboard_url"})
    account_model = CleverTapAccount
    campaign_id_hint = "a positive whole number such as 1457432766 (the id in the campaign's dashboard URL)"
    default_base_url = REGION_HOSTS["eu1"]
    repeat_safe = True
    stop_meaning: ClassVar[str] = (
        "Scheduled: cancelled before it starts. Running: remaining deliveries are cancelled; "
        "messages already sent are not recalled. A stopped campaign cannot be resumed."
    )
    no_preview_reason = (
        "CleverTap has no API to read one campaign, so there is no preview: "
        "check the id against the dashboard before you stop."
    )
    rate_per_second = 3.0  # seed 000: 3 requests per second per account
    max_in_flight = 3  # CleverTap's limits page: 3 concurrent requests per account per API
    # Seed 000 documents both its own codes (21, 101, 73, 74, 88) and HTTP-like ones (400, 401).
    code_outcomes: ClassVar[dict[str, OutcomeStatus]] = {
        "21": S.INVALID_REQUEST,
        "101": S.UNAUTHORIZED,
        "73": S.NOT_FOUND,
        "74": S.ALREADY_STOPPED,
        "88": S.RATE_LIMITED,
        "400": S.INVALID_REQUEST,
        "401": S.UNAUTHORIZED,
        "403": S.FORBIDDEN,
        "404": S.NOT_FOUND,
        "409": S.ALREADY_STOPPED,
        "429": S.RATE_LIMITED,
    }
    http_outcomes: ClassVar[dict[int, OutcomeStatus]] = {
        400: S.INVALID_REQUEST,
        401: S.UNAUTHORIZED,
        403: S.FORBIDDEN,
        404: S.NOT_FOUND,
        409: S.ALREADY_STOPPED,  # 409/74: "Campaign already stopped or completed"
    }
    refused_by_state_http = frozenset()  # CleverTap's 409 names the state itself
    outcome_notes: ClassVar[dict[OutcomeStatus, str]] = {
        S.UNAUTHORIZED: "Check the account's account_id and passcode (CLEVERTAP_ACCOUNT_ID, CLEVERTAP_PASSCODE).",
        S.NOT_FOUND: "CleverTap does not know campaign {campaign_id} in account {account}.",
    }
    dashboard_url_template = "https://dashboard.clevertap.com/{account_id}/campaigns/campaign/{campaign_id}/report/stats"

    @property
    def base_url(self) -> str:
        """The account's base URL, else its region's host."""
        if self.account.base_url:
            return self.account.base_url
        return REGION_HOSTS[self.account.region or "eu1"]

    def make_auth(self) -> Auth:
        """The account id and passcode headers on every call."""
        return StaticHeaders(
            lambda: {
                "X-CleverTap-Account-Id": self.account.account_id,
                "X-CleverTap-Passcode": self.account.passcode.get_secret_value(),
            }
        )

    def stop_call(self, campaign_id: str) -> Call:
        """``POST /1/targets/stop.json`` with the id as a JSON integer."""
        return Call("POST", "/1/targets/stop.json", json={"id": int(campaign_id)},
                    headers={"Content-Type": "application/json"})

    def stop_body(self, reply: Reply) -> StopBody:
        """``{"status": "success"|"fail", "state", "error", "code", "stopped_at"}``."""
        data = reply.json_object()
        verdict = (text_field(data, "status") or "").lower()
        state = text_field(data, "state")
        code = int_field(data, "code")
        fields: dict[str, Any] = {
            "code": str(code) if code is not None else None,
            "message": text_field(data, "error") or text_field(data, "message"),
            "state": state,
        }
        if verdict == "success":
            if state is None:
                # Seed 001's older answer is a bare success, for a stop and for an already stopped one alike.
                return StopBody(success=True, note="CleverTap answered a bare success; its older API does not "
                                "tell a campaign it stopped from one that was already stopped", **fields)
            result = _RESULTS.get(status_key(state))
            stopped_at = text_field(data, "stopped_at")
            if result is None:
                # Success with a state nobody documents: say so rather than guess what it did.
                note = f"it answered success with a state this app does not know ({state!r}); check the dashboard"
                return StopBody(success=True, result=S.UNKNOWN, note=note, **fields)
            note = f"state {state!r}" + (f", stopped at {stopped_at}" if stopped_at else "")
            return StopBody(success=True, result=result, note=note, **fields)
        if verdict == "fail":
            return StopBody(success=False, **fields)
        return StopBody(**fields)

    def code_status(self, code: str | None, message: str | None) -> OutcomeStatus | None:
        """The code table, else CleverTap's own words for a failure without a known code."""
        coded = super().code_status(code, message)
        if coded is not None or not message:
            return coded
        text = message.lower()
        if "credential" in text or "passcode" in text or "unauthori" in text:
            return S.UNAUTHORIZED
        if "not found" in text:
            return S.NOT_FOUND
        if "rate limit" in text or "too many" in text:
            return S.RATE_LIMITED
        if "invalid" in text:
            return S.INVALID_REQUEST
        return None
