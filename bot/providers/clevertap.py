"""CleverTap: ``POST /1/targets/stop.json`` with ``{"id": <int>}`` (seeds 000 and 001).

Stopping is repeat-safe (an already stopped campaign answers success), so the adapter retries
timeouts, 429 and 5xx within the deadline. CleverTap has no call that reads one campaign, so
there is no preview and no state read: an answer that cannot be read stays `unknown`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from bot.core.models import Outcome, OutcomeStatus
from bot.providers.base import (
    AccountSettings,
    Attempts,
    ProviderAdapter,
    Reply,
    SendError,
    int_field,
    positive_integer_id,
    text_field,
)

REGION_HOSTS: dict[str, str] = {
    "in1": "https://in1.api.clevertap.com",
    "sg1": "https://sg1.api.clevertap.com",
    "us1": "https://us1.api.clevertap.com",
    "aps3": "https://aps3.api.clevertap.com",
    "mec1": "https://mec1.api.clevertap.com",
    "sk1": "https://sk1.api.clevertap.com",
    "eu1": "https://api.clevertap.com",
}
DEFAULT_REGION = "eu1"

# CleverTap error codes (the "code" of a fail body), and the codes seed 000's examples use.
_CODE_STATUS: dict[int, OutcomeStatus] = {
    21: OutcomeStatus.INVALID_REQUEST,
    101: OutcomeStatus.UNAUTHORIZED,
    73: OutcomeStatus.NOT_FOUND,
    74: OutcomeStatus.ALREADY_STOPPED,
    88: OutcomeStatus.RATE_LIMITED,
    400: OutcomeStatus.INVALID_REQUEST,
    401: OutcomeStatus.UNAUTHORIZED,
    403: OutcomeStatus.FORBIDDEN,
    404: OutcomeStatus.NOT_FOUND,
    409: OutcomeStatus.ALREADY_STOPPED,
    429: OutcomeStatus.RATE_LIMITED,
}
_HTTP_STATUS: dict[int, OutcomeStatus] = {
    400: OutcomeStatus.INVALID_REQUEST,
    401: OutcomeStatus.UNAUTHORIZED,
    403: OutcomeStatus.FORBIDDEN,
    404: OutcomeStatus.NOT_FOUND,
    409: OutcomeStatus.ALREADY_STOPPED,
    429: OutcomeStatus.RATE_LIMITED,
}
_STATE_STATUS: dict[str, OutcomeStatus] = {
    "stopped": OutcomeStatus.STOPPED,
    "already_stopped": OutcomeStatus.ALREADY_STOPPED,
    "already_completed": OutcomeStatus.ALREADY_COMPLETED,
}


class CleverTapAccount(AccountSettings):
    """One CleverTap project: account id, passcode, and a region or a full base URL."""

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
    def _passcode_not_blank(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("must not be empty")
        if not text.isascii() or not text.isprintable():
            raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
        return value

    @field_validator("account_id")
    @classmethod
    def _account_id_ascii(cls, value: str) -> str:
        if not value.isascii() or not value.isprintable():
            raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
        return value


class CleverTapAdapter(ProviderAdapter[CleverTapAccount]):
    """Stops CleverTap campaigns through the Stop Scheduled Campaign API."""

    name = "clevertap"
    display_name = "CleverTap"
    aliases = ("ct",)
    env_prefix = "CLEVERTAP_"
    env_modifiers = frozenset({"base_url", "region"})
    account_model = CleverTapAccount
    docs_url = "https://developer.clevertap.com/docs/stop-scheduled-campaign-api"
    campaign_id_hint = "a positive whole number such as 1457432766 (the id in the campaign's dashboard URL)"
    repeat_safe = True
    stop_meaning: ClassVar[str] = (
        "Scheduled: cancelled before it starts. Running: remaining deliveries are cancelled; "
        "messages already sent are not recalled. A stopped campaign cannot be resumed."
    )
    has_preview = False
    no_preview_reason = (
        "CleverTap has no API to read one campaign, so there is no preview: "
        "check the id against the dashboard before you stop."
    )
    rate_per_second = 3.0
    max_in_flight = 3

    @classmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """A positive integer, as CleverTap's ``id`` requires."""
        return positive_integer_id(raw, "CleverTap", cls.campaign_id_hint)

    @property
    def base_url(self) -> str:
        """The account's base URL, else its region's host, else CleverTap's EU host."""
        if self.account.base_url:
            return self.account.base_url
        return REGION_HOSTS[self.account.region or DEFAULT_REGION]

    def _auth_headers(self) -> dict[str, str]:
        return {
            "X-CleverTap-Account-Id": self.account.account_id,
            "X-CleverTap-Passcode": self.account.passcode.get_secret_value(),
            "Content-Type": "application/json",
        }

    async def stop(self, campaign_id: str) -> Outcome:
        """Send the stop, retrying what is safe to retry, and map CleverTap's answer."""
        attempts = Attempts()
        body = {"id": int(campaign_id)}
        lost: list[str] = []  # attempts that may have stopped the campaign without us hearing so

        async def call() -> Reply:
            try:
                reply = await self.send("POST", "/1/targets/stop.json", json_body=body, headers=self._auth_headers())
            except SendError as exc:
                if exc.sent:
                    lost.append(str(exc))
                raise
            if reply.status >= 500 or (200 <= reply.status < 300 and not reply.json_object()):
                lost.append(f"HTTP {reply.status}")
            return reply

        try:
            reply = await self.retrying(
                attempts,
                call,
                retry_result=_worth_retrying,
                retry_error=lambda exc: isinstance(exc, SendError),
            )
        except SendError as exc:
            if not exc.sent:
                return self.outcome(
                    OutcomeStatus.UNREACHABLE, campaign_id, attempts, detail=f"CleverTap: {exc}; nothing was sent."
                )
            return self.outcome(
                OutcomeStatus.UNKNOWN,
                campaign_id,
                attempts,
                detail=(
                    f"CleverTap gave no answer ({exc}). CleverTap cannot report one campaign's state: "
                    "check the campaign in the dashboard."
                ),
            )
        outcome = self.map_reply(campaign_id, reply, attempts)
        if outcome.status is OutcomeStatus.ALREADY_STOPPED and lost:
            # An earlier attempt whose answer was lost most likely did the stopping.
            return outcome.model_copy(
                update={
                    "status": OutcomeStatus.STOPPED,
                    "detail": f"{outcome.detail} An earlier attempt got no clear answer ({lost[0]}), so that "
                    "attempt most likely stopped it.",
                }
            )
        return outcome

    def map_reply(self, campaign_id: str, reply: Reply, attempts: Attempts) -> Outcome:
        """Turn one CleverTap answer into an outcome. The body's verdict counts as much as HTTP's."""
        data = reply.json_object()
        verdict = (text_field(data, "status") or "").lower()
        state = text_field(data, "state")
        message = text_field(data, "error") or text_field(data, "message")
        code = int_field(data, "code")
        common: dict[str, Any] = {
            "reply": reply,
            "provider_status": text_field(data, "status"),
            "provider_code": str(code) if code is not None else None,
            "provider_message": message,
        }
        if state:
            common["state_after"] = state

        if verdict == "success" and (200 <= reply.status < 300 or reply.status == 409):
            if state is None:
                if reply.status == 409:
                    return self.outcome(
                        OutcomeStatus.ALREADY_STOPPED,
                        campaign_id,
                        attempts,
                        detail="CleverTap: the campaign was already stopped or completed (409).",
                        **common,
                    )
                return self.outcome(
                    OutcomeStatus.STOPPED,
                    campaign_id,
                    attempts,
                    detail="CleverTap accepted the stop (its answer names no state).",
                    **common,
                )
            status = _STATE_STATUS.get(state.lower())
            if status is None:
                return self.outcome(
                    OutcomeStatus.UNKNOWN,
                    campaign_id,
                    attempts,
                    detail=f"CleverTap answered success with an unexpected state {state!r}.",
                    **common,
                )
            stopped_at = text_field(data, "stopped_at")
            detail = f"CleverTap answered state {state!r}"
            detail += f", stopped at {stopped_at}." if stopped_at else "."
            return self.outcome(status, campaign_id, attempts, detail=detail, **common)

        status = _CODE_STATUS.get(code) if code is not None else None
        if status is None and verdict == "fail":
            status = _status_from_message(message) or _status_from_http(reply.status) or OutcomeStatus.PROVIDER_ERROR
        if status is None:
            status = _status_from_http(reply.status)
        if status is None:
            # 2xx without a readable verdict: the stop may or may not have happened.
            what = "an unreadable answer" if not reply.is_json else "an answer without a verdict"
            return self.outcome(
                OutcomeStatus.UNKNOWN,
                campaign_id,
                attempts,
                detail=f"CleverTap sent {what}: {reply.snippet() or '(empty body)'}. Check the dashboard.",
                **common,
            )
        detail = f"CleverTap: {message}" if message else f"CleverTap answered HTTP {reply.status}."
        if not reply.is_json and reply.text.strip():
            detail += f" Body: {reply.snippet()}"
        if status is OutcomeStatus.RATE_LIMITED and attempts.count > 1:
            detail += f" Still limited after {attempts.count} attempts."
        return self.outcome(status, campaign_id, attempts, detail=detail, **common)


def _status_from_message(message: str | None) -> OutcomeStatus | None:
    """A fail verdict without a known code, judged by CleverTap's own words."""
    text = (message or "").lower()
    if "credential" in text or "passcode" in text or "unauthori" in text:
        return OutcomeStatus.UNAUTHORIZED
    if "not found" in text:
        return OutcomeStatus.NOT_FOUND
    if "rate limit" in text or "too many" in text:
        return OutcomeStatus.RATE_LIMITED
    if "invalid" in text:
        return OutcomeStatus.INVALID_REQUEST
    return None


def _status_from_http(http_status: int) -> OutcomeStatus | None:
    if http_status in _HTTP_STATUS:
        return _HTTP_STATUS[http_status]
    if http_status >= 500 or 300 <= http_status < 400:
        return OutcomeStatus.PROVIDER_ERROR
    if 400 <= http_status < 500:
        return OutcomeStatus.INVALID_REQUEST
    return None


def _worth_retrying(reply: Reply) -> bool:
    """Retry rate limits (by HTTP status or by code 88), server errors, and unreadable successes."""
    if reply.status == 429 or reply.status >= 500:
        return True
    data = reply.json_object()
    if int_field(data, "code") == 88:
        return True
    return 200 <= reply.status < 300 and not data
