"""Altcraft: ``POST /api/v1.1/campaigns/deactivate`` with the token in the JSON body (seed 004).

Every Altcraft answer carries its verdict in the body: ``{"data": …, "error": 0, "error_text":
"Successful operation"}``, and ``error`` ≠ 0 is a failure even on HTTP 200 (400 incorrect request,
401 token required or invalid, 402 tariff limit, 403 no access; other codes are kept raw).

The adapter reads ``campaigns/get_status`` three times at most around a stop: once before (best
effort, for ``state_before`` and to tell "stopped" from "already stopped"), after any error or
ambiguous answer (to settle it before retrying or reporting), and once after a success (to verify).
The deactivation is sent even when the campaign already reads inactive: with ``abort_if_running``
it may still drop messages left in the queue by an earlier deactivation without it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import SecretStr, field_validator

from bot.core.models import CampaignInfo, CampaignPhase, Outcome, OutcomeStatus
from bot.providers.base import (
    AccountSettings,
    Attempts,
    CampaignIdError,
    PreviewUnavailable,
    ProviderAdapter,
    Reply,
    SendError,
    int_field,
    positive_integer_id,
    text_field,
)

DEFAULT_BASE_URL = "https://ru.altkraft.com"
API_PREFIX = "/api/v1.1"
DEACTIVATE_PATH = f"{API_PREFIX}/campaigns/deactivate"
GET_STATUS_PATH = f"{API_PREFIX}/campaigns/get_status"
GET_PATH = f"{API_PREFIX}/campaigns/get"


# Altcraft's documented body codes (API interaction page) plus the HTTP meanings of 404 and 429,
# which an install or its proxy may put in the body. 402 "tariff limit reached" is a refusal for
# this account that no retry fixes and that an admin must lift, so it is `forbidden`, not a failure
# of the provider (`provider_error` says "the provider failed", which it did not).
_CODE_STATUS: dict[int, OutcomeStatus] = {
    400: OutcomeStatus.INVALID_REQUEST,
    401: OutcomeStatus.UNAUTHORIZED,
    402: OutcomeStatus.FORBIDDEN,
    403: OutcomeStatus.FORBIDDEN,
    404: OutcomeStatus.NOT_FOUND,
    429: OutcomeStatus.RATE_LIMITED,
}
_CODE_MEANING: dict[int, str] = {
    400: "incorrect request",
    401: "API token required or invalid",
    402: "the account's tariff limit is reached",
    403: "the token has no access to this campaign or action",
    404: "not found",
    429: "rate limited",
}
# error_text fragments that mean the campaign id is unknown, whatever the code (the docs name no
# not-found code; installs answer in English or Russian).
_NOT_FOUND_HINTS = ("not found", "not exist", "no such", "unknown campaign", "не найден", "не существует")

_ACTIVE_WORDS = frozenset({"active", "waiting", "running", "sending", "scheduled"})
_STOPPED_WORDS = frozenset({"inactive", "stopped", "deactivated", "paused"})
_COMPLETED_WORDS = frozenset({"completed", "finished", "done"})
_NOT_STOPPABLE_WORDS = frozenset({"deleted", "cloning", "archived"})


class AltcraftAccount(AccountSettings):
    """One Altcraft install: an API token, the install's base URL, and the abort flag."""

    token: SecretStr
    abort_if_running: bool = True
    """Send ``abort_if_running: true``: drop the messages already queued instead of sending them."""

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


@dataclass
class _StateRead:
    """What one ``campaigns/get_status`` call learned: the campaign, or why not."""

    info: CampaignInfo | None = None
    failure: OutcomeStatus | None = None
    """Set when Altcraft answered definitively (not found, token rejected): reading will not help."""
    problem: str = ""

    @property
    def phase(self) -> CampaignPhase | None:
        return self.info.phase if self.info else None


@dataclass
class _Verdict:
    """How one deactivate answer reads before any state read."""

    kind: Literal["success", "error", "ambiguous", "rate_limited"]
    status: OutcomeStatus | None = None
    code: int | None = None
    message: str | None = None
    what: str = ""


@dataclass
class _Try:
    """One deactivate attempt: the answer (or the lost one) and the state read that followed."""

    reply: Reply | None
    verdict: _Verdict
    lost: SendError | None = None
    settle: _StateRead | None = None

    def worth_retrying(self) -> bool:
        """Rate limits, and ambiguous answers that a read did not settle as halted or gone."""
        if self.verdict.kind == "rate_limited":
            return True
        if self.verdict.kind != "ambiguous":
            return False
        if self.settle is None:
            return True
        if self.settle.failure is not None:
            return False
        # Still active, or the read failed: deactivation is repeat-safe, so send it again.
        return self.settle.phase not in (CampaignPhase.STOPPED, CampaignPhase.COMPLETED)


class AltcraftAdapter(ProviderAdapter[AltcraftAccount]):
    """Deactivates Altcraft campaigns (broadcast, regular, trigger) through ``campaigns/deactivate``."""

    name = "altcraft"
    display_name = "Altcraft"
    aliases = ("ac", "altkraft")
    env_prefix = "ALTCRAFT_"
    # ALTCRAFT_ABORT_IF_RUNNING alone (without a token) does not make Altcraft configured.
    env_modifiers = frozenset({"abort_if_running", "base_url"})
    account_model = AltcraftAccount
    docs_url = "https://guides.altcraft.com/en/v72/developer-guide/campaigns/"
    campaign_id_hint = "a positive whole number such as 118 (the campaign's ID in Altcraft)"
    # Deactivating an inactive campaign changes nothing, and a second deactivation cannot send
    # anything (at worst it drops the queue again, which is the point of the kill switch). So a
    # repeat is harmless; still, every ambiguous answer is settled by a state read first
    # (providers.md rule 2), and a repeat happens only when that read shows the campaign active
    # or could not be made.
    repeat_safe = True
    stop_meaning: ClassVar[str] = (
        "Deactivates the campaign: it stops sending and triggering. With abort_if_running (this app's "
        "default) messages already queued are dropped; without it they are still sent. Messages "
        "already sent are not recalled. The campaign can be activated again in Altcraft."
    )
    has_preview = True
    # Altcraft publishes no API rate limit. A stop makes at most a few calls (read, deactivate,
    # read), so 5 per second and 3 in flight keep a burst of stops polite to a shared cloud
    # install or a small on-premises one, without slowing one stop noticeably.
    rate_per_second = 5.0
    max_in_flight = 3

    # ----- facts -------------------------------------------------------------------------------

    @classmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """A positive integer, as Altcraft's ``id`` requires."""
        return positive_integer_id(raw, "Altcraft", cls.campaign_id_hint)

    @property
    def base_url(self) -> str:
        """The install's URL (without ``/api/v1.1``, which people often paste), else the cloud host."""
        url = self.account.base_url or DEFAULT_BASE_URL
        if url.lower().endswith(API_PREFIX):
            url = url[: -len(API_PREFIX)].rstrip("/") or url
        return url

    @property
    def drops_queued_messages(self) -> bool:
        """True when this account's stop drops the messages already queued (abort_if_running)."""
        return self.account.abort_if_running

    def describe_stop(self) -> str:
        """What stopping does for THIS account: whether queued messages are dropped or still sent."""
        if self.account.abort_if_running:
            return (
                "Deactivates the campaign and aborts its sending queue (abort_if_running is on): "
                "messages already queued are dropped, not sent. Messages already sent are not "
                "recalled. The campaign can be activated again in Altcraft."
            )
        return (
            "Deactivates the campaign, but messages already queued are STILL SENT (abort_if_running "
            "is off for this account); only new sends stop. Messages already sent are not recalled. "
            "The campaign can be activated again in Altcraft."
        )

    # ----- the operations ------------------------------------------------------------------------

    async def stop(self, campaign_id: str) -> Outcome:
        """Deactivate the campaign, settle any doubt with a state read, and verify a success."""
        attempts = Attempts()
        try:
            campaign_id = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            return self.outcome(OutcomeStatus.INVALID_REQUEST, campaign_id, attempts, detail=str(exc))
        before = await self._read_status(campaign_id, self.options.preview_timeout, attempts)
        body = {
            "token": self.account.token.get_secret_value(),
            "id": int(campaign_id),
            "abort_if_running": self.account.abort_if_running,
        }
        sent_any = False

        async def attempt() -> _Try:
            nonlocal sent_any
            try:
                reply = await self.send("POST", DEACTIVATE_PATH, json_body=body, timeout=self._timeout(attempts))
            except SendError as exc:
                if not exc.sent:
                    raise
                sent_any = True
                lost = _Verdict("ambiguous", what=f"no answer ({exc})")
                read = await self._read_status(campaign_id, self.options.timeout, attempts)
                return _Try(None, lost, lost=exc, settle=read)
            sent_any = True
            verdict = self._judge(reply)
            if verdict.kind == "ambiguous" or (
                verdict.kind == "error" and verdict.status not in (OutcomeStatus.UNAUTHORIZED, OutcomeStatus.NOT_FOUND)
            ):
                # Reading first tells "already inactive/completed" apart from a real refusal.
                read = await self._read_status(campaign_id, self.options.timeout, attempts)
                return _Try(reply, verdict, settle=read)
            return _Try(reply, verdict)

        try:
            last = await self.retrying(
                attempts,
                attempt,
                retry_result=lambda t: t.worth_retrying(),
                retry_error=lambda exc: isinstance(exc, SendError) and not exc.sent,
                retry_after=lambda t: t.reply.retry_after() if t.reply is not None else None,
            )
        except SendError as exc:
            if not sent_any:
                return self.outcome(
                    OutcomeStatus.UNREACHABLE,
                    campaign_id,
                    attempts,
                    detail=f"Altcraft at {self.api_host}: {exc}; nothing was sent.",
                    **self._before_fields(before),
                )
            # An earlier attempt may have arrived: settle it with one last read.
            verdict = _Verdict("ambiguous", what=f"no answer ({exc})")
            settle = await self._read_status(campaign_id, self.options.timeout, attempts)
            last = _Try(None, verdict, lost=exc, settle=settle)
        except Exception as exc:  # a kill switch reports, it never raises
            return self.outcome(
                OutcomeStatus.UNKNOWN,
                campaign_id,
                attempts,
                detail=f"Altcraft: unexpected failure ({type(exc).__name__}); check the campaign in Altcraft.",
                **self._before_fields(before),
            )
        return await self._conclude(campaign_id, last, before, attempts)

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """Read ``campaigns/get`` for the confirmation card; raise `PreviewUnavailable` when it fails."""
        try:
            campaign_id = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            raise PreviewUnavailable(str(exc)) from None
        try:
            reply = await self.send(
                "POST",
                GET_PATH,
                json_body={"token": self.account.token.get_secret_value(), "id": int(campaign_id)},
                timeout=self.options.preview_timeout,
            )
        except SendError as exc:
            raise PreviewUnavailable(f"Altcraft did not answer ({exc}).") from None
        except Exception as exc:
            raise PreviewUnavailable(f"Altcraft could not be asked ({type(exc).__name__}).") from None
        data, _, problem = self._read_data(reply)
        if data is None:
            raise PreviewUnavailable(problem)
        return _campaign_info(campaign_id, data, full=True)

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign's current state from ``campaigns/get_status``, or None when unknown."""
        try:
            campaign_id = self.parse_campaign_id(campaign_id)
            read = await self._read_status(campaign_id, self.options.timeout, Attempts())
        except Exception:
            return None
        return read.info

    # ----- answers ---------------------------------------------------------------------------------

    def _judge(self, reply: Reply) -> _Verdict:
        """Read one deactivate answer: the HTTP status and the body's ``error`` both count."""
        data = reply.json_object()
        code = int_field(data, "error")
        message = self._scrub(text_field(data, "error_text"))
        if reply.status == 429 or code == 429:
            return _Verdict("rate_limited", OutcomeStatus.RATE_LIMITED, code, message, "a rate limit")
        if reply.status >= 500 or reply.status in (409, 422):
            return _Verdict("ambiguous", None, code, message, f"HTTP {reply.status}")
        if 300 <= reply.status < 400:
            return _Verdict(
                "error",
                OutcomeStatus.PROVIDER_ERROR,
                code,
                message,
                f"a redirect (HTTP {reply.status}): check the base URL, it should be the install's https URL",
            )
        if code is not None:
            if code == 0:
                if 200 <= reply.status < 300:
                    return _Verdict("success", OutcomeStatus.STOPPED, code, message)
                # "Success" inside an HTTP error: trust neither, read the state.
                return _Verdict("ambiguous", None, code, message, f"error 0 with HTTP {reply.status}")
            return _Verdict("error", _status_for_code(code, message), code, message, f"error {code}")
        # No readable verdict in the body.
        if 200 <= reply.status < 300:
            what = "an empty answer" if not reply.text.strip() else "an answer without a verdict"
            if reply.text.strip() and not reply.is_json:
                what = "an unreadable answer"
            return _Verdict("ambiguous", None, None, None, what)
        if reply.status == 401:
            return _Verdict("error", OutcomeStatus.UNAUTHORIZED, None, None, "HTTP 401")
        if reply.status == 403:
            return _Verdict("error", OutcomeStatus.FORBIDDEN, None, None, "HTTP 403")
        if reply.status == 404:
            # A bare 404 (no Altcraft body) is the web server's: the API path is not there.
            return _Verdict(
                "error",
                OutcomeStatus.PROVIDER_ERROR,
                None,
                None,
                f"HTTP 404 for the API path: check the base URL ({self.api_host})",
            )
        return _Verdict("error", OutcomeStatus.INVALID_REQUEST, None, None, f"HTTP {reply.status}")

    async def _conclude(self, campaign_id: str, last: _Try, before: _StateRead, attempts: Attempts) -> Outcome:
        verdict, reply, settle = last.verdict, last.reply, last.settle
        fields: dict[str, Any] = {
            "reply": reply,
            "provider_code": str(verdict.code) if verdict.code is not None else None,
            "provider_message": verdict.message,
            **self._before_fields(before),
        }
        before_phase = before.phase
        abort = "queued messages dropped" if self.account.abort_if_running else "queued messages still sent"

        if verdict.kind == "success":
            if before_phase is CampaignPhase.COMPLETED:
                status = OutcomeStatus.ALREADY_COMPLETED
                detail = "Altcraft: the campaign had already completed; the deactivation changed nothing."
            elif before_phase is CampaignPhase.STOPPED:
                status = OutcomeStatus.ALREADY_STOPPED
                detail = (
                    "Altcraft: the campaign was already inactive; it was deactivated again "
                    f"(abort_if_running={_flag_text(self.account.abort_if_running)})."
                )
            else:
                status = OutcomeStatus.STOPPED
                detail = f"Altcraft deactivated the campaign ({abort})."
            after = await self._read_status(campaign_id, self.options.timeout, attempts)
            if after.info is None:
                detail += f" Reading it back failed ({after.problem}), so the stop is not verified."
                return self.outcome(status, campaign_id, attempts, detail=detail, **fields)
            fields.update(campaign=after.info, state_after=after.info.state)
            if after.phase in (CampaignPhase.STOPPED, CampaignPhase.COMPLETED):
                return self.outcome(status, campaign_id, attempts, detail=detail, verified=True, **fields)
            detail += (
                f" But a read right after still shows it as {after.info.state or after.phase}: "
                "check it again in Altcraft."
            )
            return self.outcome(status, campaign_id, attempts, detail=detail, **fields)

        said = self._said(last)
        if settle is not None and settle.info is not None:
            fields.update(campaign=settle.info, state_after=settle.info.state)
            phase = settle.phase
            if phase is CampaignPhase.COMPLETED:
                return self.outcome(
                    OutcomeStatus.ALREADY_COMPLETED,
                    campaign_id,
                    attempts,
                    detail=f"Altcraft {said}; the campaign reads as completed, so nothing is sending.",
                    verified=True,
                    **fields,
                )
            if phase is CampaignPhase.STOPPED:
                ours = before_phase is CampaignPhase.ACTIVE or (before_phase is None and verdict.kind == "ambiguous")
                if ours:
                    return self.outcome(
                        OutcomeStatus.STOPPED,
                        campaign_id,
                        attempts,
                        detail=f"Altcraft {said}, but a state read shows the campaign now inactive ({abort}).",
                        verified=True,
                        **fields,
                    )
                return self.outcome(
                    OutcomeStatus.ALREADY_STOPPED,
                    campaign_id,
                    attempts,
                    detail=f"Altcraft {said}; the campaign reads as inactive, so it was already stopped.",
                    verified=True,
                    **fields,
                )

        if verdict.kind == "error" and verdict.status is not None:
            detail = f"Altcraft {said}."
            if verdict.status is OutcomeStatus.FORBIDDEN and verdict.code == 402:
                detail += " The account's tariff limit must be raised before it can deactivate campaigns."
            if settle is not None and settle.info is not None:
                detail += f" The campaign still reads as {settle.info.state or settle.phase}."
            return self.outcome(verdict.status, campaign_id, attempts, detail=detail, **fields)

        if verdict.kind == "rate_limited":
            return self.outcome(
                OutcomeStatus.RATE_LIMITED,
                campaign_id,
                attempts,
                detail=f"Altcraft {said}; still limited after {attempts.count} attempt(s). The campaign may "
                "still be sending.",
                **fields,
            )

        # Ambiguous to the end.
        if settle is not None and settle.failure is not None:
            return self.outcome(
                settle.failure,
                campaign_id,
                attempts,
                detail=f"Altcraft {said}; reading the campaign then failed: {settle.problem}",
                **fields,
            )
        if settle is not None and settle.info is not None:
            return self.outcome(
                OutcomeStatus.PROVIDER_ERROR,
                campaign_id,
                attempts,
                detail=(
                    f"Altcraft {said} after {attempts.count} attempt(s); the campaign still reads as "
                    f"{settle.info.state or settle.phase}, so it is still running."
                ),
                **fields,
            )
        problem = settle.problem if settle is not None else "no read was possible"
        return self.outcome(
            OutcomeStatus.UNKNOWN,
            campaign_id,
            attempts,
            detail=(
                f"Altcraft {said}, and reading the campaign failed too ({problem}). The deactivation may "
                "have happened: check the campaign in Altcraft."
            ),
            **fields,
        )

    def _said(self, last: _Try) -> str:
        """What Altcraft answered, as a clause: 'answered error 400 (Incorrect request)'."""
        verdict, reply = last.verdict, last.reply
        if last.lost is not None:
            return f"gave {verdict.what}"
        if verdict.code is not None and verdict.code != 0:
            meaning = verdict.message or _CODE_MEANING.get(verdict.code, "unknown error code")
            clause = f"answered error {verdict.code} ({meaning})"
            if reply is not None and reply.status != 200:
                clause += f" with HTTP {reply.status}"
            return clause
        clause = f"sent {verdict.what}" if verdict.what else "answered"
        if reply is not None and not reply.is_json:
            clause += f": {self._scrub(reply.snippet()) or '(empty body)'}"
        elif reply is not None and verdict.kind == "ambiguous":
            clause += f": {self._scrub(reply.snippet(120))}"
        return clause

    # ----- reading -------------------------------------------------------------------------------

    async def _read_status(self, campaign_id: str, limit: float, attempts: Attempts) -> _StateRead:
        """One ``campaigns/get_status`` call; never raises."""
        try:
            reply = await self.send(
                "POST",
                GET_STATUS_PATH,
                json_body={"token": self.account.token.get_secret_value(), "id": int(campaign_id)},
                timeout=min(limit, self._timeout(attempts)),
            )
        except SendError as exc:
            return _StateRead(problem=f"no answer ({exc})")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _StateRead(problem=f"unexpected failure ({type(exc).__name__})")
        data, failure, problem = self._read_data(reply)
        if data is None:
            return _StateRead(failure=failure, problem=problem)
        return _StateRead(info=_campaign_info(campaign_id, data, full=False))

    def _read_data(self, reply: Reply) -> tuple[dict[str, Any] | None, OutcomeStatus | None, str]:
        """The ``data`` object of a read answer, or (None, definitive failure or None, why)."""
        body = reply.json_object()
        code = int_field(body, "error")
        message = self._scrub(text_field(body, "error_text"))
        if code is not None and code != 0 and reply.status < 500:
            status = _status_for_code(code, message)
            definitive = status in (OutcomeStatus.NOT_FOUND, OutcomeStatus.UNAUTHORIZED)
            meaning = message or _CODE_MEANING.get(code, "unknown error code")
            if status is OutcomeStatus.NOT_FOUND:
                why = f"Altcraft does not know this campaign (error {code}: {meaning})."
            elif status is OutcomeStatus.UNAUTHORIZED:
                why = f"Altcraft rejected the token (error {code}: {meaning})."
            else:
                why = f"Altcraft answered error {code} ({meaning})."
            return None, status if definitive else None, why
        if not (200 <= reply.status < 300):
            return None, None, f"Altcraft answered HTTP {reply.status}."
        if not reply.is_json:
            snippet = self._scrub(reply.snippet(80))
            return None, None, f"Altcraft sent an unreadable answer ({snippet or 'empty body'})."
        data = body.get("data")
        if code != 0 or not isinstance(data, dict):
            return None, None, f"Altcraft sent an unexpected answer ({self._scrub(reply.snippet(80))})."
        return data, None, ""

    # ----- helpers -----------------------------------------------------------------------------------

    def _timeout(self, attempts: Attempts) -> float:
        """The per-call timeout, shortened so no call runs past the stop's deadline."""
        return max(0.05, min(self.options.timeout, attempts.remaining(self.options.deadline)))

    def _scrub(self, text: str | None) -> str | None:
        """Provider text with our token cut out, in case an error page echoes the request."""
        return self.scrub(text) if text else text

    @staticmethod
    def _before_fields(before: _StateRead) -> dict[str, Any]:
        if before.info is None:
            return {}
        return {"state_before": before.info.state, "campaign": before.info}


def _status_for_code(code: int, message: str | None) -> OutcomeStatus:
    """A body error code (with its text) as an outcome status; unknown codes are provider errors."""
    if message and any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
        return OutcomeStatus.NOT_FOUND
    return _CODE_STATUS.get(code, OutcomeStatus.PROVIDER_ERROR)


def _flag(data: dict[str, Any], key: str) -> bool | None:
    """A JSON boolean, tolerating "true"/"false" strings and 0/1; None when absent or anything else."""
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _flag_text(value: bool) -> str:
    return "true" if value else "false"


def _phase(is_active: bool | None, is_completed: bool | None, status: str | None) -> CampaignPhase:
    """The flags decide; the raw status string only when the flags are missing."""
    if is_completed is True:
        return CampaignPhase.COMPLETED
    if is_active is True:
        return CampaignPhase.ACTIVE
    if is_active is False:
        return CampaignPhase.STOPPED
    word = (status or "").strip().lower()
    if word in _COMPLETED_WORDS:
        return CampaignPhase.COMPLETED
    if word in _STOPPED_WORDS:
        return CampaignPhase.STOPPED
    if word in _ACTIVE_WORDS:
        return CampaignPhase.ACTIVE
    if word in _NOT_STOPPABLE_WORDS:
        return CampaignPhase.NOT_STOPPABLE
    return CampaignPhase.UNKNOWN


_EXTRA_FIELDS = (
    "channel",
    "description",
    "update_time",
    "updated_user",
    "resource_id",
    "data_type",
    "data_id",
    "subid",
    "push_sending_mode",
)


def _campaign_info(campaign_id: str, data: dict[str, Any], *, full: bool) -> CampaignInfo:
    """A ``get_status`` or ``get`` answer's ``data`` as a `CampaignInfo`."""
    is_active = _flag(data, "is_active")
    is_completed = _flag(data, "is_completed")
    status = text_field(data, "status")
    extra: dict[str, Any] = {}
    if is_active is not None:
        extra["is_active"] = is_active
    if is_completed is not None:
        extra["is_completed"] = is_completed
    if full:
        for key in _EXTRA_FIELDS:
            value = text_field(data, key)
            if value:
                extra[key] = value
        content = data.get("content")
        if isinstance(content, list):
            extra["messages"] = len(content)
    if status is None and is_active is not None:
        # Some answers carry only the flags; show a readable state anyway.
        status = "Completed" if is_completed else ("Active" if is_active else "Inactive")
    return CampaignInfo(
        id=text_field(data, "id") or campaign_id,
        name=text_field(data, "name") if full else None,
        state=status,
        phase=_phase(is_active, is_completed, status),
        kind=text_field(data, "type") if full else None,
        extra=extra,
    )
