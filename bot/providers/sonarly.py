"""Sonarly: ``POST /v1/accounts/{accountGroupId}/campaigns/{campaignId}/stop`` (seed 002).

Every answer is the envelope ``{"success", "data", "error": {"code", "message", "details"},
"traceId"}``; the verdict is ``success`` *and* the HTTP status, and the trace id is kept for
support. Sonarly documents the stop as not idempotent, so a stop is re-sent only after a read
of the campaign (``GET /v1/accounts/{accountGroupId}/campaigns/{campaignId}``) proved it still
active, and never more than ``HttpOptions.max_attempts`` times or past the deadline.

Settling doubt. A timeout after sending, a reset, a 5xx, a 409/422, a 429, an unreadable 2xx
and a 2xx whose body says ``success: false`` are all settled by reading the campaign:

============================  =========================================================
the read says                 outcome
============================  =========================================================
stopped                       ``stopped`` when our stop may have landed (no answer, 5xx,
                              unreadable 2xx, or an earlier round was sent), otherwise
                              ``already_stopped`` (409, 429 and ``success: false`` say
                              nothing changed)
completed                     ``already_completed``
draft / archived / deleted    ``not_stoppable``
an active status              the stop is sent again (after Retry-After for a 429)
an unknown status, or the     never ``stopped``: ``unknown`` (no answer, unreadable 2xx),
read failed                   ``provider_error`` (5xx, ``success: false``),
                              ``not_stoppable`` (409/422), ``rate_limited`` (429)
============================  =========================================================

Status vocabulary. Sonarly's docs only show ``draft``; the values below are assumptions,
matched case-insensitively with ``-`` and spaces read as ``_``. Anything else is shown raw
and classified `CampaignPhase.UNKNOWN`, which never counts as stopped nor as active.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator

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
    text_field,
)

DEFAULT_BASE_URL = "https://api.sonarly.io"

STATUS_PHASES: dict[str, CampaignPhase] = {
    "draft": CampaignPhase.NOT_STOPPABLE,
    "archived": CampaignPhase.NOT_STOPPABLE,
    "deleted": CampaignPhase.NOT_STOPPABLE,
    "scheduled": CampaignPhase.ACTIVE,
    "running": CampaignPhase.ACTIVE,
    "active": CampaignPhase.ACTIVE,
    "sending": CampaignPhase.ACTIVE,
    "in_progress": CampaignPhase.ACTIVE,
    "paused": CampaignPhase.ACTIVE,
    "stopped": CampaignPhase.STOPPED,
    "cancelled": CampaignPhase.STOPPED,
    "canceled": CampaignPhase.STOPPED,
    "completed": CampaignPhase.COMPLETED,
    "finished": CampaignPhase.COMPLETED,
}
"""Assumed Sonarly campaign statuses and their meaning (the docs only show ``draft``)."""

# Path segments: letters, digits, '_' and '-' only, so no id can change the URL's path.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_TOKEN = 64
# A second stop is only worth sending with at least this many seconds left before the deadline.
_MIN_WINDOW = 0.25
# Wait before re-sending after a 429 that names no Retry-After.
_DEFAULT_RATE_WAIT = 1.0
_EXTRA_FIELDS = ("startedAt", "updatedAt", "rateLimitedUntil")
_READ_PERMISSION = "campaigns:read"
_STOP_PERMISSION = "campaigns:execute"


def campaign_phase(status: str | None) -> CampaignPhase:
    """The meaning of a raw Sonarly status; `CampaignPhase.UNKNOWN` for anything unrecognised."""
    if status is None:
        return CampaignPhase.UNKNOWN
    key = status.strip().lower().replace("-", "_").replace(" ", "_")
    return STATUS_PHASES.get(key, CampaignPhase.UNKNOWN)


def campaign_info(campaign_id: str, raw: Mapping[str, Any]) -> CampaignInfo:
    """A `CampaignInfo` from Sonarly's campaign object, tolerant of missing or mistyped fields."""
    status = text_field(raw, "status")
    extra = {key: text_field(raw, key) for key in _EXTRA_FIELDS if text_field(raw, key)}
    return CampaignInfo(
        id=text_field(raw, "id") or campaign_id,
        name=text_field(raw, "name"),
        state=status,
        phase=campaign_phase(status),
        size=int_field(raw, "selectedLeadCount"),
        extra=extra,
    )


def _is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


class SonarlyAccount(AccountSettings):
    """One Sonarly account group: a bearer API key and the account group id that scopes routes."""

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
        if not _is_token(value):
            raise ValueError(
                f"must be letters, digits, '_' or '-' (at most {_MAX_TOKEN}), as GET /v1/accounts lists"
            )
        return value


@dataclass(frozen=True)
class Envelope:
    """Sonarly's answer envelope, read tolerantly: wrong JSON types read as absent."""

    success: bool | None
    """``success`` when it is a JSON boolean, else None (missing, mistyped or no JSON object)."""
    data: Any
    code: str | None
    message: str | None
    trace_id: str | None

    @classmethod
    def of(cls, reply: Reply) -> Envelope:
        """Read the envelope of one answer; never raises."""
        body = reply.json_object()
        success = body.get("success")
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        message = text_field(error, "message")
        details = error.get("details")
        if isinstance(details, dict | list):
            details = json.dumps(details, ensure_ascii=False)[:200]
        if details is not None and str(details).strip():
            message = f"{message} ({details})" if message else str(details)
        trace = (
            text_field(body, "traceId")
            or reply.headers.get("x-trace-id")
            or reply.headers.get("x-request-id")
        )
        return cls(
            success=success if isinstance(success, bool) else None,
            data=body.get("data"),
            code=text_field(error, "code"),
            message=message,
            trace_id=trace,
        )

    def campaign(self) -> dict[str, Any] | None:
        """``data.campaign``, or ``data`` itself when it looks like a campaign (the read's shape)."""
        if not isinstance(self.data, dict):
            return None
        inner = self.data.get("campaign")
        if isinstance(inner, dict):
            return inner
        if "status" in self.data or "name" in self.data:
            return self.data
        return None

    def instances_stopped(self) -> int | None:
        """``data.instancesStopped`` when it is a number."""
        return int_field(self.data, "instancesStopped") if isinstance(self.data, dict) else None

    def words(self) -> str:
        """The provider's own words, compact: ``CONFLICT: Campaign is draft; trace 65ab…``."""
        text = ": ".join(part for part in (self.code, self.message) if part)
        if self.trace_id:
            text = f"{text}; trace {self.trace_id}" if text else f"trace {self.trace_id}"
        return text


@dataclass
class _Read:
    """One read of a campaign: its info, or why it could not be learned."""

    info: CampaignInfo | None
    reason: str = ""
    trace_id: str | None = None
    transient: bool = False


@dataclass
class _Verdict:
    """What one stop answer means. `status` None: doubtful, to be settled by reading the campaign."""

    status: OutcomeStatus | None
    headline: str
    reply: Reply | None = None
    envelope: Envelope | None = None
    may_have_applied: bool = False
    if_unsettled: OutcomeStatus = OutcomeStatus.UNKNOWN
    """The outcome when the read fails or shows a status of unknown meaning."""
    if_active: OutcomeStatus = OutcomeStatus.PROVIDER_ERROR
    """The outcome when the read shows the campaign active but no further stop may be sent."""
    retry_after: float | None = None


@dataclass
class _Run:
    """What one stop learned so far, for the outcome and its detail."""

    campaign_id: str
    steps: list[str] = field(default_factory=list)
    stops: int = 0
    state_before: str | None = None
    instances_stopped: int | None = None


class SonarlyAdapter(ProviderAdapter[SonarlyAccount]):
    """Stops Sonarly campaigns; every doubtful answer is settled by reading the campaign."""

    name = "sonarly"
    display_name = "Sonarly"
    aliases = ("sonar",)
    env_prefix = "SONARLY_"
    env_modifiers = frozenset({"base_url"})
    account_model = SonarlyAccount
    docs_url = "https://api.sonarly.io/docs"
    campaign_id_hint = (
        "the campaign's id from Sonarly, usually 24 hex characters such as 507f1f77bcf86cd799439011 "
        f"(letters, digits, '_' or '-', at most {_MAX_TOKEN})"
    )
    repeat_safe = False
    stop_meaning: ClassVar[str] = (
        "Stops the campaign and every running outreach instance (one per selected lead); "
        "messages already sent stay sent. Sonarly's API offers no resume: treat the stop as final."
    )
    has_preview = True
    # Sonarly publishes no numbers, only a 429. A stop costs at most a few calls (stop, read,
    # maybe a second stop, read-back), so 5 spaced calls per second and 2 in flight keep a stop
    # quick while staying far below any plausible per-key limit.
    rate_per_second = 5.0
    max_in_flight = 2

    @classmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """A URL-path-safe token (letters, digits, '_' and '-'), as typed: ids are case-sensitive."""
        if not isinstance(raw, str):
            raise CampaignIdError(f"Sonarly campaign ids are {cls.campaign_id_hint}.")
        text = raw.strip()
        if len(text) > _MAX_TOKEN:
            raise CampaignIdError(
                f"Sonarly campaign id is too long ({len(text)} characters, at most {_MAX_TOKEN})."
            )
        if not _is_token(text):
            raise CampaignIdError(f"Sonarly campaign ids are {cls.campaign_id_hint}; got {raw!r}.")
        return text

    @property
    def base_url(self) -> str:
        """The account's base URL, else Sonarly's public API host."""
        return self.account.base_url or DEFAULT_BASE_URL

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.api_key.get_secret_value()}"}

    def _campaign_path(self, campaign_id: str) -> str:
        group = quote(self.account.account_group_id, safe="")
        return f"/v1/accounts/{group}/campaigns/{quote(campaign_id, safe='')}"

    def _window(self, attempts: Attempts) -> float:
        """The timeout of the next call: the per-call timeout, cut to what the deadline leaves."""
        return max(0.05, min(self.options.timeout, attempts.remaining(self.options.deadline)))

    # ----- reading ------------------------------------------------------------------------

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """Read the campaign for the confirmation card; `PreviewUnavailable` says why it cannot."""
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            raise PreviewUnavailable(str(exc)) from None
        read = await self._read(cid, self.options.preview_timeout)
        if read.info is None:
            raise PreviewUnavailable(read.reason)
        return read.info

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign as Sonarly reports it now, or None when that cannot be learned."""
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError:
            return None
        return (await self._read(cid, self.options.timeout)).info

    async def _read(self, campaign_id: str, seconds: float) -> _Read:
        """One ``GET`` of the campaign, given `seconds` to answer. Never raises."""
        try:
            path = self._campaign_path(campaign_id)
            reply = await self.send("GET", path, headers=self._headers(), timeout=seconds)
        except SendError as exc:
            return _Read(None, f"Sonarly did not answer the read ({exc})", transient=True)
        env = Envelope.of(reply)
        words = env.words()
        said = f", {words}" if words else ""
        status = reply.status
        if 200 <= status < 300 and env.success is True:
            raw = env.campaign()
            if raw is not None:
                return _Read(campaign_info(campaign_id, raw), trace_id=env.trace_id)
            return _Read(None, f"Sonarly's answer to the read holds no campaign{said}", env.trace_id)
        if status == 401:
            reason = f"Sonarly rejected the API key (HTTP 401{said})"
        elif status == 403:
            reason = (
                f"Sonarly refused the read: the API key lacks the {_READ_PERMISSION} permission "
                f"(HTTP 403{said})"
            )
        elif status == 404:
            reason = (
                f"Sonarly does not know campaign {campaign_id} in account group "
                f"{self.account.account_group_id} (HTTP 404{said})"
            )
        elif 200 <= status < 300 and env.success is False:
            reason = f"Sonarly reported a failure reading the campaign (HTTP {status}{said})"
        elif not reply.is_json or (env.success is None and 200 <= status < 300):
            shown = reply.snippet() or "(empty body)"
            reason = f"Sonarly sent an unreadable answer to the read (HTTP {status}): {shown}"
        else:
            reason = f"Sonarly could not read the campaign (HTTP {status}{said})"
        transient = status == 429 or status >= 500
        return _Read(None, reason, env.trace_id, transient=transient)

    async def _settle_read(self, run: _Run, attempts: Attempts) -> _Read:
        """Read the campaign to settle doubt, trying twice when the first read failed transiently."""
        read = _Read(None, "the deadline left no time to read the campaign")
        for _ in range(2):
            if attempts.remaining(self.options.deadline) < 0.05:
                break
            read = await self._read(run.campaign_id, self._window(attempts))
            if read.info is not None or not read.transient:
                break
        run.steps.append(_read_step(read))
        return read

    # ----- stopping -----------------------------------------------------------------------

    async def stop(self, campaign_id: str) -> Outcome:
        """Send the stop; settle any doubtful answer by reading the campaign before anything else."""
        attempts = Attempts()
        try:
            cid = self.parse_campaign_id(campaign_id)
        except CampaignIdError as exc:
            return self.outcome(
                OutcomeStatus.INVALID_REQUEST, campaign_id, attempts, detail=f"{exc} Nothing was sent."
            )
        run = _Run(cid)
        previous: _Verdict | None = None
        while True:
            answer = await self._send_stop(cid, attempts)
            run.stops += 1
            run.steps.append(_stop_step(run.stops, answer))
            if isinstance(answer, SendError) and not answer.sent and previous is not None:
                # The earlier round's doubt stands: its read showed the campaign still active.
                return self._finish(
                    previous.if_active,
                    run,
                    attempts,
                    previous,
                    None,
                    # Numbered: this may be the third or fourth stop, not "the second".
                    f"{previous.headline} Sonarly still reported the campaign active, and stop #{run.stops} "
                    f"could not be sent ({answer}).",
                )
            verdict = self._judge(run, answer)
            if verdict.status is OutcomeStatus.STOPPED:
                return await self._stopped(run, attempts, verdict)
            if verdict.status is not None:
                return self._finish(verdict.status, run, attempts, verdict, None, verdict.headline)

            held_back = "" if attempts.count < self.options.max_attempts else "no attempts left"
            if verdict.retry_after is not None and not held_back:
                if attempts.remaining(self.options.deadline) - verdict.retry_after >= _MIN_WINDOW:
                    run.steps.append(f"waited {verdict.retry_after:g} s before reading (Retry-After)")
                    await asyncio.sleep(verdict.retry_after)
                else:
                    held_back = (
                        f"waiting {verdict.retry_after:g} s for the rate limit would pass the deadline"
                    )
            read = await self._settle_read(run, attempts)
            info = read.info
            if info is None:
                return self._finish(
                    verdict.if_unsettled,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Reading the campaign to settle this failed: {read.reason}.",
                )
            shown = _shown(info)
            phase = info.phase or CampaignPhase.UNKNOWN
            if phase is CampaignPhase.STOPPED:
                ours = verdict.may_have_applied or run.stops > 1
                status = OutcomeStatus.STOPPED if ours else OutcomeStatus.ALREADY_STOPPED
                why = "so the stop went through" if ours else "so it was already stopped"
                return self._finish(
                    status,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Sonarly now reports the campaign {shown}, {why}.",
                    verified=True,
                )
            if phase is CampaignPhase.COMPLETED:
                return self._finish(
                    OutcomeStatus.ALREADY_COMPLETED,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Sonarly reports the campaign {shown}: it had finished.",
                    verified=True,
                )
            if phase is CampaignPhase.NOT_STOPPABLE:
                return self._finish(
                    OutcomeStatus.NOT_STOPPABLE,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Sonarly reports the campaign {shown}, a state it cannot stop.",
                    verified=True,
                )
            if phase is not CampaignPhase.ACTIVE:
                return self._finish(
                    verdict.if_unsettled,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Sonarly reports the campaign {shown}, a status this bot does not "
                    "know, so it does not claim the campaign stopped: check Sonarly's dashboard.",
                )
            if not held_back and attempts.remaining(self.options.deadline) < _MIN_WINDOW:
                held_back = "the deadline is used up"
            if held_back:
                # After several rounds "no second stop was sent" would be false (the e2e fault suite
                # saw it after four stops): say how many went out.
                sent = "no second stop was sent" if run.stops == 1 else f"no stop after #{run.stops} was sent"
                return self._finish(
                    verdict.if_active,
                    run,
                    attempts,
                    verdict,
                    read,
                    f"{verdict.headline} Sonarly still reports the campaign {shown}; {sent} ({held_back}).",
                )
            run.state_before = info.state
            previous = verdict

    async def _send_stop(self, campaign_id: str, attempts: Attempts) -> Reply | SendError:
        """One stop, retried only when nothing can have reached Sonarly."""

        async def call() -> Reply:
            return await self.send(
                "POST",
                f"{self._campaign_path(campaign_id)}/stop",
                headers=self._headers(),
                timeout=self._window(attempts),
            )

        try:
            return await self.retrying(
                attempts,
                call,
                retry_result=lambda _: False,
                retry_error=lambda exc: isinstance(exc, SendError) and not exc.sent,
            )
        except SendError as exc:
            return exc

    def _judge(self, run: _Run, answer: Reply | SendError) -> _Verdict:
        """What one stop answer means, before any read."""
        if isinstance(answer, SendError):
            if not answer.sent:
                return _Verdict(
                    OutcomeStatus.UNREACHABLE, f"Sonarly could not be reached ({answer}); nothing was sent."
                )
            return _Verdict(
                None,
                f"Sonarly gave no answer to the stop ({answer}).",
                may_have_applied=True,
                if_unsettled=OutcomeStatus.UNKNOWN,
            )
        env = Envelope.of(answer)
        status = answer.status
        words = env.words()
        said = f", {words}" if words else ""
        body = "" if answer.is_json or not answer.text.strip() else f" Body: {answer.snippet()}"
        doubt = _Verdict(None, "", answer, env)

        if 200 <= status < 300:
            if env.success is True:
                return _Verdict(OutcomeStatus.STOPPED, "", answer, env)
            if env.success is False:
                doubt.headline = f"Sonarly answered HTTP {status} but reported a failure{said}."
                doubt.if_unsettled = doubt.if_active = OutcomeStatus.PROVIDER_ERROR
                return doubt
            shown = answer.snippet() or "(empty body)"
            doubt.headline = f"Sonarly sent an unreadable answer to the stop (HTTP {status}): {shown}."
            doubt.may_have_applied = True
            return doubt
        if env.success is True:
            doubt.headline = f"Sonarly answered HTTP {status} yet said success{said}."
            doubt.may_have_applied = True
            return doubt
        if status in (409, 422):
            doubt.headline = (
                f"Sonarly refused the stop: the campaign's state prevents it (HTTP {status}{said})."
            )
            doubt.if_unsettled = doubt.if_active = OutcomeStatus.NOT_STOPPABLE
            return doubt
        if status == 429:
            wait = answer.retry_after()
            doubt.headline = f"Sonarly's rate limit refused the stop (HTTP 429{said})."
            doubt.if_unsettled = doubt.if_active = OutcomeStatus.RATE_LIMITED
            doubt.retry_after = wait if wait is not None else _DEFAULT_RATE_WAIT
            return doubt
        if status >= 500:
            doubt.headline = f"Sonarly failed (HTTP {status}{said}).{body}"
            doubt.may_have_applied = True
            doubt.if_unsettled = doubt.if_active = OutcomeStatus.PROVIDER_ERROR
            return doubt

        final = {
            400: (
                OutcomeStatus.INVALID_REQUEST,
                f"Sonarly rejected the request as invalid (HTTP 400{said}).",
            ),
            401: (
                OutcomeStatus.UNAUTHORIZED,
                f"Sonarly rejected the API key (HTTP 401{said}): "
                "check the account's api_key (SONARLY_API_KEY).",
            ),
            403: (
                OutcomeStatus.FORBIDDEN,
                f"Sonarly refused the stop: the API key lacks the {_STOP_PERMISSION} permission "
                f"(HTTP 403{said}).",
            ),
            404: (
                OutcomeStatus.NOT_FOUND,
                f"Sonarly does not know campaign {run.campaign_id} in account group "
                f"{self.account.account_group_id} (HTTP 404{said}).",
            ),
        }
        if status in final:
            outcome_status, headline = final[status]
            return _Verdict(outcome_status, headline + body, answer, env)
        if 300 <= status < 400:
            return _Verdict(
                OutcomeStatus.PROVIDER_ERROR,
                f"Sonarly answered with a redirect (HTTP {status}), which is not followed: "
                "check the base URL.",
                answer,
                env,
            )
        if 400 <= status < 500:
            return _Verdict(
                OutcomeStatus.INVALID_REQUEST,
                f"Sonarly refused the stop (HTTP {status}{said}).{body}",
                answer,
                env,
            )
        return _Verdict(
            OutcomeStatus.PROVIDER_ERROR, f"Sonarly answered HTTP {status}{said}.{body}", answer, env
        )

    async def _stopped(self, run: _Run, attempts: Attempts, verdict: _Verdict) -> Outcome:
        """Sonarly said the stop succeeded: read the campaign back once to say what it reports now."""
        env = verdict.envelope
        assert env is not None
        run.instances_stopped = env.instances_stopped()
        count = run.instances_stopped
        counted = (
            f"{count} instance{'' if count == 1 else 's'} stopped"
            if count is not None
            else "Sonarly did not say how many instances it stopped"
        )
        trace = f" (trace {env.trace_id})" if env.trace_id else ""
        headline = f"Sonarly stopped the campaign: {counted}{trace}."
        answered = env.campaign()
        fallback = campaign_info(run.campaign_id, answered) if answered is not None else None

        if attempts.remaining(self.options.deadline) < 0.05:
            read = _Read(None, "the deadline left no time")
        else:
            read = await self._read(run.campaign_id, self._window(attempts))
        run.steps.append(_read_step(read, "read-back"))
        info = read.info
        if info is None:
            return self._finish(
                OutcomeStatus.STOPPED,
                run,
                attempts,
                verdict,
                None,
                f"{headline} Reading it back failed ({read.reason}), so the stop is not verified.",
                campaign=fallback,
            )
        shown = _shown(info)
        if info.phase in (CampaignPhase.STOPPED, CampaignPhase.COMPLETED):
            return self._finish(
                OutcomeStatus.STOPPED,
                run,
                attempts,
                verdict,
                read,
                f"{headline} Sonarly now reports the campaign {shown}.",
                verified=True,
            )
        return self._finish(
            OutcomeStatus.STOPPED,
            run,
            attempts,
            verdict,
            read,
            f"{headline} But Sonarly still reports the campaign {shown}: check Sonarly's dashboard.",
        )

    def _finish(
        self,
        status: OutcomeStatus,
        run: _Run,
        attempts: Attempts,
        verdict: _Verdict,
        read: _Read | None,
        detail: str,
        *,
        verified: bool = False,
        campaign: CampaignInfo | None = None,
    ) -> Outcome:
        """Build the outcome of a stop from the deciding answer, the last read and the steps taken."""
        env = verdict.envelope
        info = read.info if read is not None and read.info is not None else campaign
        if info is not None and run.instances_stopped is not None:
            info = info.model_copy(
                update={"extra": {**info.extra, "instancesStopped": run.instances_stopped}}
            )
        if run.stops > 1:
            detail = f"{detail} Steps: {'; '.join(run.steps)}."
        return self.outcome(
            status,
            run.campaign_id,
            attempts,
            reply=verdict.reply,
            detail=detail,
            campaign=info,
            state_before=run.state_before,
            state_after=info.state if info is not None else None,
            verified=verified,
            provider_status=info.state if info is not None else None,
            provider_code=env.code if env is not None else None,
            provider_message=env.message if env is not None else None,
            trace_id=(env.trace_id if env is not None else None)
            or (read.trace_id if read is not None else None),
        )


def _shown(info: CampaignInfo) -> str:
    return f"as {info.state!r}" if info.state is not None else "without a status"


def _stop_step(number: int, answer: Reply | SendError) -> str:
    if isinstance(answer, SendError):
        return f"stop #{number}: {'not sent' if not answer.sent else 'no answer'} ({answer})"
    env = Envelope.of(answer)
    parts = [f"stop #{number}: HTTP {answer.status}"]
    if env.success is None:
        parts.append(f"unreadable body {answer.snippet(80) or '(empty)'}")
    elif env.success and env.instances_stopped() is not None:
        parts.append(f"{env.instances_stopped()} instances stopped")
    if env.words():
        parts.append(env.words())
    return ", ".join(parts)


def _read_step(read: _Read, label: str = "read") -> str:
    if read.info is None:
        return f"{label} failed ({read.reason})"
    trace = f" (trace {read.trace_id})" if read.trace_id else ""
    return f"{label}: status {read.info.state!r}{trace}"
