"""Telco WWT (RCS): ``PUT /api/campaigns/{id}/stop`` behind a JWT login (seed 003).

Auth: ``POST /api/auth/login`` with ``{"api_key": …}`` answers ``{"bearer": <JWT>}``, sent as
``Authorization: Bearer <JWT>``. The adapter caches the JWT per account, renews it before it
expires (``POST /api/auth/refresh`` while it is still valid, a fresh login once it is not), and
on a 401 from an API call logs in again once and repeats that call once. One login at a time:
concurrent stops share the lock and the token, so they never stampede the login route.

Token lifetime: read from the JWT payload without verifying it. With ``iat`` and ``exp`` the
lifetime is ``exp - iat`` counted on our own monotonic clock from the moment the token arrived
(immune to clock skew between us and the provider); with ``exp`` alone it is ``exp`` minus our
wall clock; with neither (or a token that is not a JWT) it is assumed to be
`ASSUMED_TOKEN_LIFETIME` (5 minutes, short on purpose: a wrong guess costs one extra login,
and a 401 is caught anyway). Renewal starts `renew margin` before expiry: a fifth of the
lifetime, at most 60 seconds.

Stopping is final on WWT and not repeat-safe by our rules. A 405 to PUT means nothing happened
(the route refused the method), so the adapter falls back to PATCH (what BSG's SDK sends to the
same path) and remembers it. Every ambiguous answer (no answer after sending, 408, 429, 5xx, a
2xx that does not say ``stopped``, an unreadable body) is settled by ``GET /api/campaigns/{id}``;
the stop is re-sent only when that read proves the campaign is still stoppable (moderation,
scheduled, sending, paused), within `HttpOptions.max_attempts` and the deadline.

A 422 (the campaign's status forbids stopping; an undocumented 409 is read the same way) is
settled by the same read: ``stopped`` →
already stopped, ``done`` → already completed, ``creation``/``spam`` → not stoppable. A 422 for
a campaign that the read shows as stoppable is reported as a provider error (the campaign is
still sending, a person must look), and never re-sent: a 422 is a refusal, not a doubt. When
the read fails or shows a status we do not know, the 422 stays ``not_stoppable`` with the
provider's message.

Secrets: the key and the JWT are `SecretStr`, the adapter's repr names only account and host,
and every outcome text (and every provider message that reaches a log) is scrubbed of both, in
case a provider error echoes them back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from bot.core.models import CampaignInfo, CampaignPhase, Outcome, OutcomeStatus
from bot.providers.base import (
    AccountSettings,
    Attempts,
    CampaignIdError,
    HttpOptions,
    PreviewUnavailable,
    ProviderAdapter,
    Reply,
    SendError,
    int_field,
    positive_integer_id,
    text_field,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://one-api.wwt.world"
ASSUMED_TOKEN_LIFETIME = 300.0
"""Seconds a JWT is trusted when its payload names no expiry."""

_MAX_RENEW_MARGIN = 60.0
_LOGIN_TRIES = 3

_PHASES: dict[str, CampaignPhase] = {
    "moderation": CampaignPhase.ACTIVE,
    "scheduled": CampaignPhase.ACTIVE,
    # The seed's prose calls "scheduled" "Planned"; accept the word if the API ever sends it.
    "planned": CampaignPhase.ACTIVE,
    "sending": CampaignPhase.ACTIVE,
    "paused": CampaignPhase.ACTIVE,
    "stopped": CampaignPhase.STOPPED,
    "done": CampaignPhase.COMPLETED,
    "creation": CampaignPhase.NOT_STOPPABLE,
    "spam": CampaignPhase.NOT_STOPPABLE,
}

# Answers to the stop that settle nothing by themselves: read the campaign before any resend.
_DOUBTFUL_HTTP = frozenset({408, 429})
# Answers that are a definite "no" and leave the campaign as it was.
_REFUSALS: dict[int, OutcomeStatus] = {
    400: OutcomeStatus.INVALID_REQUEST,
    401: OutcomeStatus.UNAUTHORIZED,
    403: OutcomeStatus.FORBIDDEN,
    404: OutcomeStatus.NOT_FOUND,
    405: OutcomeStatus.PROVIDER_ERROR,
}
_REFUSAL_LEADS: dict[int, str] = {
    400: "Telco WWT rejected the stop as invalid",
    401: "Telco WWT rejected our token even after a fresh login",
    403: "Telco WWT refused: this API key may not stop campaigns",
    404: "Telco WWT does not know campaign {cid} in this account",
    405: "Telco WWT refuses both PUT and PATCH on the stop route",
}


class WwtAccount(AccountSettings):
    """One Telco WWT account: its live or test API key (and optionally another base URL)."""

    api_key: SecretStr

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return SecretStr(value.get_secret_value().strip())


class _AuthFailed(Exception):
    """No usable JWT: the login (or re-login) failed. Carries no secret."""

    def __init__(
        self,
        status: OutcomeStatus,
        reason: str,
        *,
        http_status: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__()
        self.status = status
        self.reason = reason
        self.http_status = http_status
        self.message = message
        self.after_401 = False
        """True when the stop itself was refused with a 401 and the login that followed failed."""

    def __str__(self) -> str:
        return self.reason


class _ReadFailed(Exception):
    """Reading the campaign did not give its state; the message says why."""

    def __init__(self, reason: str, *, not_found: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_found = not_found


@dataclass
class _Token:
    value: SecretStr
    renew_at: float
    expires_at: float


@dataclass
class _Budget:
    """Time left for one operation: a per-call timeout and an end on the monotonic clock."""

    timeout: float
    until: float

    @classmethod
    def starting(cls, timeout: float, total: float, started: float | None = None) -> _Budget:
        return cls(timeout=timeout, until=(started if started is not None else time.monotonic()) + total)

    def left(self) -> float:
        return self.until - time.monotonic()

    def call_timeout(self, reserve: float = 0.0) -> float:
        """The timeout for the next call, keeping `reserve` seconds back (never below 50 ms)."""
        return max(0.05, min(self.timeout, self.left() - reserve))


@dataclass
class _Doubt:
    """An answer to the stop that settles nothing; `status` is what it means if the campaign runs on."""

    reason: str
    status: OutcomeStatus
    reply: Reply | None = None
    retry_after: float | None = None


class WwtAdapter(ProviderAdapter[WwtAccount]):
    """Stops Telco WWT RCS campaigns through the One API (``/api/campaigns/{id}/stop``)."""

    name = "wwt"
    display_name = "Telco WWT (RCS)"
    aliases = ("telcowwt", "rcs")
    env_prefix = "WWT_"
    env_modifiers = frozenset({"base_url"})
    account_model = WwtAccount
    docs_url = "https://one-api.wwt.world"
    campaign_id_hint = "a positive whole number such as 53651994 (the id returned when the campaign was sent)"
    repeat_safe = False
    stop_meaning: ClassVar[str] = (
        "Works on campaigns in moderation, scheduled, sending or paused. Sending stops at once and the "
        "campaign becomes Stopped for good: it cannot be resumed; messages already sent are not recalled."
    )
    has_preview = True
    # WWT publishes no rate limit. A kill switch sends a handful of calls (login, stop, read), so a
    # low rate and two calls in flight stay clear of any plausible limit and cost under a second.
    rate_per_second = 5.0
    max_in_flight = 2

    def __init__(self, account_name: str, account: WwtAccount, options: HttpOptions | None = None) -> None:
        super().__init__(account_name, account, options)
        self.clock: Callable[[], float] = time.monotonic
        """The clock token expiry is judged on (monotonic seconds); tests may replace it."""
        self._token: _Token | None = None
        self._auth_lock = asyncio.Lock()
        self._stop_method = "PUT"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} account={self.account_name!r} host={self.api_host!r}>"

    # ----- facts --------------------------------------------------------------------------

    @classmethod
    def parse_campaign_id(cls, raw: str) -> str:
        """A positive integer, as WWT's campaign ids are."""
        return positive_integer_id(raw, "Telco WWT", cls.campaign_id_hint)

    @property
    def base_url(self) -> str:
        """The account's base URL, else WWT's public One API host."""
        return self.account.base_url or DEFAULT_BASE_URL

    # ----- the JWT ------------------------------------------------------------------------

    async def _bearer(self, budget: _Budget, *, rejected: str | None = None) -> str:
        """A JWT to send now. With `rejected` (a token that just got a 401), a new one from a login."""
        async with self._auth_lock:
            current = self._token
            if rejected is not None:
                if current is not None and current.value.get_secret_value() != rejected:
                    return current.value.get_secret_value()  # another call already logged in again
                current = self._token = None
            now = self.clock()
            if current is not None and now < current.renew_at:
                return current.value.get_secret_value()
            if current is not None and now < current.expires_at:
                renewed = await self._refresh(current, budget)
                if renewed is not None:
                    self._token = renewed
                    return renewed.value.get_secret_value()
            self._token = None
            self._token = await self._login(budget)
            return self._token.value.get_secret_value()

    def _new_token(self, value: str) -> _Token:
        lifetime = _token_lifetime(value, time.time())
        assumed = lifetime is None
        if lifetime is None:
            lifetime = ASSUMED_TOKEN_LIFETIME
        margin = min(_MAX_RENEW_MARGIN, max(lifetime, 0.0) / 5)
        now = self.clock()
        logger.info(
            "%s account %r: got a JWT valid for %s%ds",
            self.display_name,
            self.account_name,
            "an assumed " if assumed else "",
            int(lifetime),
        )
        return _Token(SecretStr(value), renew_at=now + lifetime - margin, expires_at=now + lifetime)

    async def _login(self, budget: _Budget) -> _Token:
        """Log in with the API key; retries what a login may safely retry (it changes nothing)."""
        body = {"api_key": self.account.api_key.get_secret_value()}
        tries = 0
        while True:
            tries += 1
            pause: float | None = None
            try:
                reply = await self.send("POST", "/api/auth/login", json_body=body, timeout=budget.call_timeout())
            except SendError as exc:
                failure = _AuthFailed(OutcomeStatus.UNREACHABLE, f"the login got no answer ({exc})")
                pause = 0.2 * tries
            else:
                token = _bearer_of(reply) if 200 <= reply.status < 300 else None
                if token is not None:
                    return self._new_token(token)
                failure = _login_failure(reply)
                failure.reason = self.scrub(failure.reason)
                failure.message = self.scrub(failure.message) if failure.message else None
                if reply.status == 429 or reply.status >= 500:
                    hinted = reply.retry_after()
                    pause = hinted if hinted is not None else 0.2 * tries
            if pause is None or tries >= _LOGIN_TRIES or pause > budget.left() - 0.1:
                logger.warning("%s account %r: login failed: %s", self.display_name, self.account_name, failure)
                raise failure
            await asyncio.sleep(pause)

    async def _refresh(self, current: _Token, budget: _Budget) -> _Token | None:
        """Renew a still valid JWT; None when that fails (the caller then logs in)."""
        try:
            reply = await self.send(
                "POST",
                "/api/auth/refresh",
                headers=_auth(current.value.get_secret_value()),
                timeout=budget.call_timeout(),
            )
        except SendError as exc:
            logger.info("%s: token refresh got no answer (%s); logging in again", self.display_name, exc)
            return None
        token = _bearer_of(reply) if 200 <= reply.status < 300 else None
        if token is None:
            logger.info("%s: token refresh failed (HTTP %s); logging in again", self.display_name, reply.status)
            return None
        return self._new_token(token)

    async def _call(
        self,
        method: str,
        path: str,
        budget: _Budget,
        *,
        reserve: float = 0.0,
        attempts: Attempts | None = None,
    ) -> Reply:
        """One authorized exchange; on a 401, one re-login and one repeat. Each send counts in `attempts`."""
        token = await self._bearer(budget)
        if attempts is not None:
            attempts.count += 1
        reply = await self.send(method, path, headers=_auth(token), timeout=budget.call_timeout(reserve))
        if reply.status != 401:
            return reply
        logger.info("%s account %r: HTTP 401 on %s; logging in again", self.display_name, self.account_name, method)
        try:
            token = await self._bearer(budget, rejected=token)
        except _AuthFailed as exc:
            exc.after_401 = True
            raise
        if attempts is not None:
            attempts.count += 1
        return await self.send(method, path, headers=_auth(token), timeout=budget.call_timeout(reserve))

    # ----- reading a campaign ------------------------------------------------------------

    async def _read(self, campaign_id: str, budget: _Budget) -> CampaignInfo:
        """``GET /api/campaigns/{id}`` as a `CampaignInfo` with a status; raises `_ReadFailed`."""
        try:
            reply = await self._call("GET", f"/api/campaigns/{campaign_id}", budget)
        except SendError as exc:
            raise _ReadFailed(f"the read got no answer ({exc})") from None
        except _AuthFailed as exc:
            raise _ReadFailed(f"could not log in: {exc.reason}") from None
        data = reply.json_object()
        if reply.status == 404:
            raise _ReadFailed(f"Telco WWT does not know campaign {campaign_id} in this account", not_found=True)
        if not 200 <= reply.status < 300:
            said = self.scrub(_message(data) or reply.snippet() or "empty body")
            raise _ReadFailed(f"the read answered HTTP {reply.status} ({said})")
        campaign = data.get("data")
        if not isinstance(campaign, dict) or text_field(campaign, "status") is None:
            said = self.scrub(reply.snippet() or "(empty body)")
            raise _ReadFailed(f"the read answered without a campaign status: {said}")
        return campaign_info(campaign, campaign_id)

    async def preview(self, campaign_id: str) -> CampaignInfo:
        """The campaign for the confirmation card; raises `PreviewUnavailable` with a plain reason."""
        cid = self._checked_id(campaign_id)
        if cid is None:
            raise PreviewUnavailable(f"{campaign_id!r} is not a Telco WWT campaign id ({self.campaign_id_hint}).")
        wait = self.options.preview_timeout
        budget = _Budget.starting(wait, 2 * wait)
        try:
            async with asyncio.timeout(2 * wait + 0.5):
                return await self._read(cid, budget)
        except _ReadFailed as exc:
            raise PreviewUnavailable(f"{exc.reason}.") from None
        except TimeoutError:
            raise PreviewUnavailable(f"Telco WWT did not answer within {2 * wait:g}s.") from None

    async def read_state(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign's current state, or None when it cannot be learned. Never raises."""
        cid = self._checked_id(campaign_id)
        if cid is None:
            return None
        try:
            return await self._read(cid, _Budget.starting(self.options.timeout, self.options.deadline))
        except _ReadFailed as exc:
            logger.info("%s: reading campaign %s failed: %s", self.display_name, cid, exc.reason)
            return None

    def _checked_id(self, campaign_id: str) -> str | None:
        try:
            return self.parse_campaign_id(campaign_id)
        except CampaignIdError:
            return None

    # ----- the stop -----------------------------------------------------------------------

    async def stop(self, campaign_id: str) -> Outcome:
        """Stop once; settle every doubt by reading the campaign; re-send only to a campaign still running."""
        attempts = Attempts()
        cid = self._checked_id(campaign_id)
        if cid is None:
            return self.outcome(
                OutcomeStatus.INVALID_REQUEST,
                campaign_id,
                attempts,
                detail=f"Telco WWT campaign ids are {self.campaign_id_hint}; nothing was sent.",
            )
        budget = _Budget.starting(self.options.timeout, self.options.deadline, attempts.started)
        # Time kept back so that a doubtful stop can always be settled by one read within the deadline.
        reserve = min(self.options.timeout, self.options.deadline / 4)
        earlier: list[str] = []
        last_doubt: _Doubt | None = None
        while True:
            try:
                reply = await self._send_stop(cid, attempts, budget, reserve)
            except _AuthFailed as exc:
                return self._auth_outcome(cid, attempts, exc, earlier)
            except SendError as exc:
                if not exc.sent:
                    # After an earlier doubt, "unreachable" would hide that a stop went out before.
                    status = last_doubt.status if last_doubt else OutcomeStatus.UNREACHABLE
                    detail = f"Telco WWT: {exc}; this stop was not sent."
                    return self.outcome(status, cid, attempts, detail=_join(earlier, detail))
                verdict: Outcome | _Doubt | _Stopped | _Refused = _Doubt(
                    f"the stop got no answer ({exc})", OutcomeStatus.PROVIDER_ERROR
                )
            else:
                verdict = self._judge(cid, reply, attempts, earlier)
            if isinstance(verdict, Outcome):
                return verdict
            if isinstance(verdict, _Stopped):
                return await self._verified_stop(cid, verdict, attempts, budget, earlier)
            if isinstance(verdict, _Refused):
                return await self._settle_refusal(cid, verdict.reply, attempts, budget, earlier)
            settled = await self._settle_doubt(cid, verdict, attempts, budget, reserve, earlier)
            if settled is not None:
                return settled
            earlier.append(f"attempt {attempts.count}: {verdict.reason}")
            last_doubt = verdict

    async def _send_stop(self, cid: str, attempts: Attempts, budget: _Budget, reserve: float) -> Reply:
        """The stop exchange: PUT (PATCH after a 405), retried only while nothing can have been sent."""
        path = f"/api/campaigns/{cid}/stop"

        async def once() -> Reply:
            method = self._stop_method
            reply = await self._call(method, path, budget, reserve=reserve, attempts=attempts)
            if reply.status == 405 and method == "PUT":
                logger.info("%s: the PUT stop answered 405; using PATCH from now on", self.display_name)
                self._stop_method = "PATCH"
                reply = await self._call("PATCH", path, budget, reserve=reserve, attempts=attempts)
            return reply

        # The retrying machinery counts its own tries; `attempts` counts the stop requests sent.
        return await self.retrying(
            Attempts(started=attempts.started),
            once,
            retry_result=lambda _: False,
            retry_error=lambda exc: isinstance(exc, SendError) and not exc.sent,
        )

    def _judge(
        self, cid: str, reply: Reply, attempts: Attempts, earlier: list[str]
    ) -> Outcome | _Doubt | _Stopped | _Refused:
        """What one answer to the stop says, before any read."""
        data = reply.json_object()
        campaign = data.get("data")
        raw_status = text_field(campaign, "status") if isinstance(campaign, dict) else None
        if 200 <= reply.status < 300:
            if isinstance(campaign, dict) and (raw_status or "").strip().lower() == "stopped":
                return _Stopped(campaign, reply)
            said = f"status {raw_status!r}" if raw_status else f"an unreadable body: {reply.snippet() or '(empty)'}"
            said = self.scrub(said)
            return _Doubt(f"the stop answered HTTP {reply.status} with {said}", OutcomeStatus.PROVIDER_ERROR, reply)
        if reply.status in (409, 422):
            return _Refused(reply)
        message = _message(data)
        if reply.status in _DOUBTFUL_HTTP or reply.status >= 500:
            said = self.scrub(message or reply.snippet() or "empty body")
            status = OutcomeStatus.RATE_LIMITED if reply.status == 429 else OutcomeStatus.PROVIDER_ERROR
            return _Doubt(f"the stop answered HTTP {reply.status} ({said})", status, reply, reply.retry_after())
        fallback = OutcomeStatus.PROVIDER_ERROR if reply.status < 400 else OutcomeStatus.INVALID_REQUEST
        status = _REFUSALS.get(reply.status, fallback)
        said = message or reply.snippet() or "empty body"
        lead = _REFUSAL_LEADS.get(reply.status, "Telco WWT refused the stop").format(cid=cid)
        return self.outcome(
            status,
            cid,
            attempts,
            reply=reply,
            provider_message=message,
            detail=_join(earlier, f"{lead} (HTTP {reply.status}: {said}). Nothing was stopped."),
        )

    async def _verified_stop(
        self, cid: str, answer: _Stopped, attempts: Attempts, budget: _Budget, earlier: list[str]
    ) -> Outcome:
        """The provider said stopped: read the campaign back once and say what it reports now."""
        answered = campaign_info(answer.campaign, cid)
        common: dict[str, Any] = {"reply": answer.reply, "provider_status": answered.state}
        try:
            info = await self._read(cid, budget)
        except _ReadFailed as exc:
            detail = (
                f"Telco WWT stopped {_describe(answered)}. Reading it back failed ({exc.reason}), "
                "so this rests on the stop's answer alone."
            )
            return self.outcome(
                OutcomeStatus.STOPPED,
                cid,
                attempts,
                campaign=answered,
                state_after=answered.state,
                detail=_join(earlier, detail),
                **common,
            )
        if info.phase is CampaignPhase.STOPPED:
            detail = f"Telco WWT stopped {_describe(info)}; the provider now reports it stopped."
            verified = True
        else:
            detail = (
                f"Telco WWT answered that {_describe(answered)} is stopped, but reading it back reports {info.state!r}."
            )
            verified = False
        return self.outcome(
            OutcomeStatus.STOPPED,
            cid,
            attempts,
            campaign=info,
            state_after=info.state,
            verified=verified,
            detail=_join(earlier, detail),
            **common,
        )

    async def _settle_refusal(
        self, cid: str, reply: Reply, attempts: Attempts, budget: _Budget, earlier: list[str]
    ) -> Outcome:
        """A 422 (or 409): the campaign's status forbids the stop; the read says which status."""
        message = _message(reply.json_object())
        said = message or reply.snippet() or "empty body"
        refused = f"Telco WWT refused the stop (HTTP {reply.status}: {said})"
        common: dict[str, Any] = {"reply": reply, "provider_message": message}
        try:
            info = await self._read(cid, budget)
        except _ReadFailed as exc:
            detail = f"{refused}; reading the campaign to learn its status failed ({exc.reason})."
            return self.outcome(OutcomeStatus.NOT_STOPPABLE, cid, attempts, detail=_join(earlier, detail), **common)
        state = info.state
        common.update(campaign=info, state_before=state, state_after=state, provider_status=state)
        described = _describe(info)
        if info.phase is CampaignPhase.STOPPED:
            status, verified = OutcomeStatus.ALREADY_STOPPED, True
            detail = f"Telco WWT: {described} was already stopped; nothing changed."
        elif info.phase is CampaignPhase.COMPLETED:
            status, verified = OutcomeStatus.ALREADY_COMPLETED, True
            detail = f"Telco WWT: {described} had already finished sending (done); nothing changed."
        elif info.phase is CampaignPhase.ACTIVE:
            # The provider refuses to stop a campaign it calls stoppable: a person must look, and a
            # refusal is not a doubt, so the stop is not sent again.
            status, verified = OutcomeStatus.PROVIDER_ERROR, False
            detail = (
                f"{refused}, yet it reports {described} as {state!r}, which should be stoppable: "
                "the campaign may still be sending. Check it in the dashboard."
            )
        elif info.phase is CampaignPhase.NOT_STOPPABLE:
            status, verified = OutcomeStatus.NOT_STOPPABLE, False
            detail = f"{refused}: {described} is in status {state!r}, which cannot be stopped."
        else:
            status, verified = OutcomeStatus.NOT_STOPPABLE, False
            detail = f"{refused}: {described} is in status {state!r}, which this app does not know."
        return self.outcome(status, cid, attempts, verified=verified, detail=_join(earlier, detail), **common)

    async def _settle_doubt(
        self, cid: str, doubt: _Doubt, attempts: Attempts, budget: _Budget, reserve: float, earlier: list[str]
    ) -> Outcome | None:
        """Read the campaign after an unclear answer. None means it is still running: send the stop again."""
        backoff = min(2.0, 0.2 * 2 ** max(attempts.count - 1, 0))
        pause = doubt.retry_after if doubt.retry_after is not None else backoff
        limited = doubt.status is OutcomeStatus.RATE_LIMITED

        def room_to_resend(reads_left: int) -> bool:
            # The pause, the reads still to do and one more stop, all inside the deadline.
            needed = pause + (1 + reads_left) * reserve + 0.1
            return attempts.count < self.options.max_attempts and budget.left() > needed

        # A rate limit refuses reads too, so wait it out first; any other doubt is read at once.
        may_resend = room_to_resend(2)
        if limited and may_resend and pause > 0:
            await asyncio.sleep(pause)
            pause = 0.0
        common: dict[str, Any] = {"reply": doubt.reply}
        if doubt.reply is not None:
            common["provider_message"] = _message(doubt.reply.json_object())
        try:
            info = await self._read(cid, budget)
        except _ReadFailed as exc:
            detail = (
                f"Telco WWT: {doubt.reason}, and reading the campaign to settle it failed ({exc.reason}). "
                "Check the campaign in the dashboard."
            )
            status = OutcomeStatus.RATE_LIMITED if limited else OutcomeStatus.UNKNOWN
            return self.outcome(status, cid, attempts, detail=_join(earlier, detail), **common)
        state = info.state
        common.update(campaign=info, state_after=state, provider_status=state)
        described = _describe(info)
        if info.phase is CampaignPhase.STOPPED:
            status = OutcomeStatus.STOPPED
            detail = f"Telco WWT: {doubt.reason}, but the provider now reports {described} as stopped."
        elif info.phase is CampaignPhase.COMPLETED:
            status = OutcomeStatus.ALREADY_COMPLETED
            detail = f"Telco WWT: {doubt.reason}; the provider reports {described} as done (it finished sending)."
        elif info.phase is CampaignPhase.NOT_STOPPABLE:
            status = OutcomeStatus.NOT_STOPPABLE
            detail = (
                f"Telco WWT: {doubt.reason}; the provider reports {described} as {state!r}, which cannot be stopped."
            )
        elif info.phase is not CampaignPhase.ACTIVE:
            status = OutcomeStatus.UNKNOWN
            detail = (
                f"Telco WWT: {doubt.reason}; the provider reports {described} in a status this app does not "
                f"know ({state!r}), so the stop was not sent again. Check the campaign in the dashboard."
            )
        elif may_resend and room_to_resend(1):
            logger.info(
                "%s: %s; campaign %s is still %r, sending the stop again",
                self.display_name,
                doubt.reason,
                cid,
                state,
            )
            if pause > 0:
                await asyncio.sleep(pause)
            return None
        else:
            status = doubt.status
            detail = (
                f"Telco WWT: {doubt.reason}; the provider still reports {described} as {state!r} "
                f"after {attempts.count} attempt(s)."
            )
        verified = status in (OutcomeStatus.STOPPED, OutcomeStatus.ALREADY_COMPLETED)
        return self.outcome(status, cid, attempts, verified=verified, detail=_join(earlier, detail), **common)

    def _auth_outcome(self, cid: str, attempts: Attempts, exc: _AuthFailed, earlier: list[str]) -> Outcome:
        if exc.after_401:
            detail = f"Telco WWT refused the stop (HTTP 401) and logging in again failed: {exc.reason}."
        else:
            detail = f"Telco WWT: could not log in: {exc.reason}; the stop was not sent."
        return self.outcome(
            exc.status,
            cid,
            attempts,
            http_status=exc.http_status,
            provider_message=exc.message,
            detail=_join(earlier, detail),
        )

    def secret_values(self) -> list[str]:
        """The API key and, once logged in, the JWT."""
        values = super().secret_values()
        if self._token is not None:
            values.append(self._token.value.get_secret_value())
        return values


@dataclass
class _Stopped:
    """A 2xx answer whose campaign says ``stopped``."""

    campaign: dict[str, Any]
    reply: Reply


@dataclass
class _Refused:
    """A 409/422: the campaign's status forbids the stop (which status, a read will tell)."""

    reply: Reply


# ----- reading WWT's JSON -----------------------------------------------------------------------


def phase_of(status: str | None) -> CampaignPhase:
    """The meaning of a WWT campaign status; unknown or missing values are `CampaignPhase.UNKNOWN`."""
    if status is None:
        return CampaignPhase.UNKNOWN
    return _PHASES.get(status.strip().lower(), CampaignPhase.UNKNOWN)


def campaign_info(data: Mapping[str, Any], campaign_id: str) -> CampaignInfo:
    """A WWT campaign object (``data`` of a read or a stop answer) as a `CampaignInfo`."""
    state = text_field(data, "status")
    sent, delivered = _statistics(data.get("statistics"))
    extra: dict[str, Any] = {}
    for key in ("sender", "start_at", "real_start_at", "finished_at", "created_at"):
        value = text_field(data, key)
        if value is not None:
            extra[key] = value
    channels = data.get("alternative_channels")
    sms = channels.get("sms") if isinstance(channels, dict) else None
    if isinstance(sms, dict):
        # The seed's table says "statistics", its example says "statistic": read either.
        sms_sent, sms_delivered = _statistics(sms.get("statistics", sms.get("statistic")))
        if sms_sent is not None:
            extra["sms_fallback_sent"] = sms_sent
        if sms_delivered is not None:
            extra["sms_fallback_delivered"] = sms_delivered
    return CampaignInfo(
        id=text_field(data, "id") or campaign_id,
        name=text_field(data, "name"),
        state=state,
        phase=phase_of(state),
        kind=text_field(data, "message_type"),
        sent=sent,
        delivered=delivered,
        price=_float_field(data, "calculated_price"),
        extra=extra,
    )


def _statistics(value: Any) -> tuple[int | None, int | None]:
    """(sent, delivered) from a statistics object, or summed over an array of them."""
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    sent: int | None = None
    delivered: int | None = None
    for item in items:
        if not isinstance(item, dict):
            continue
        s, d = int_field(item, "sent"), int_field(item, "delivered")
        if s is not None:
            sent = (sent or 0) + s
        if d is not None:
            delivered = (delivered or 0) + d
    return sent, delivered


def _float_field(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _describe(info: CampaignInfo) -> str:
    """'campaign 123 "Spring promo" (sent 8,200, delivered 7,900, price 412.5)'."""
    text = f"campaign {info.id}"
    if info.name:
        text += f" “{info.name}”"
    figures: list[str] = []
    if info.sent is not None:
        figures.append(f"sent {info.sent:,}")
    if info.delivered is not None:
        figures.append(f"delivered {info.delivered:,}")
    if info.price is not None:
        figures.append(f"price {info.price:g}")
    if figures:
        text += f" ({', '.join(figures)})"
    return text


def _message(data: Mapping[str, Any]) -> str | None:
    """WWT's error ``message``, with a compact ``errors`` when it says something."""
    message = text_field(data, "message")
    errors = data.get("errors")
    if errors and isinstance(errors, dict | list):
        flat = json.dumps(errors, ensure_ascii=False, separators=(",", ":"))
        if len(flat) > 200:
            flat = flat[:199] + "…"
        return f"{message} (errors: {flat})" if message else f"errors: {flat}"
    return message


def _join(earlier: list[str], detail: str) -> str:
    if not earlier:
        return detail
    return f"{detail} Before that: {'; '.join(earlier)}."


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _bearer_of(reply: Reply) -> str | None:
    """The JWT of a login/refresh answer, when it is a usable header value."""
    data = reply.json_object()
    value = data.get("bearer")
    inner = data.get("data")
    if value is None and isinstance(inner, dict):
        value = inner.get("bearer")
    if not isinstance(value, str):
        return None
    token = value.strip()
    # Anything else would fail inside httpx as a header error, after the stop was "sent".
    if not token or len(token) > 16_384 or not all("!" <= ch <= "~" for ch in token):
        return None
    return token


def _login_failure(reply: Reply) -> _AuthFailed:
    """What a login answer without a token means. Never quotes a 2xx body: it may hold a token."""
    data = reply.json_object()
    if 200 <= reply.status < 300:
        what = f"JSON keys {sorted(data)[:5]}" if data else ("a body that is not a JSON object")
        return _AuthFailed(
            OutcomeStatus.PROVIDER_ERROR,
            f"the login answered HTTP {reply.status} without a usable 'bearer' token ({what})",
            http_status=reply.status,
        )
    message = _message(data)
    said = message or reply.snippet(120) or "empty body"
    if reply.status in (400, 401, 422):
        status, why = OutcomeStatus.UNAUTHORIZED, "Telco WWT rejected the API key"
    elif reply.status == 403:
        status, why = OutcomeStatus.FORBIDDEN, "Telco WWT refused this API key"
    elif reply.status == 429:
        status, why = OutcomeStatus.RATE_LIMITED, "the login was rate limited"
    else:
        status, why = OutcomeStatus.PROVIDER_ERROR, "the login failed"
    return _AuthFailed(status, f"{why} (HTTP {reply.status}: {said})", http_status=reply.status, message=message)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded WITHOUT verifying it; {} for anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _token_lifetime(token: str, wall_now: float) -> float | None:
    """Seconds the token stays valid from now, or None when its payload names no expiry."""
    claims = jwt_claims(token)
    exp = _number(claims.get("exp"))
    if exp is None:
        return None
    iat = _number(claims.get("iat"))
    if iat is not None and iat <= exp:
        return exp - iat
    return exp - wall_now


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
