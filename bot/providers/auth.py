"""How an adapter authorizes its calls: static headers, a token in the JSON body, or a bearer session.

A `BearerSession` logs in with a long-lived key, caches the short-lived token it gets back,
renews it before it expires (a refresh call while it is still valid, a fresh login once it is
not) and, when a call is answered 401, logs in again once. One login at a time: concurrent
calls share the lock and the token, so they never stampede the login route.

Token lifetime: read from the JWT payload without verifying it. With ``iat`` and ``exp`` the
lifetime is ``exp - iat`` counted on our own monotonic clock from the moment the token arrived
(immune to clock skew); with ``exp`` alone it is ``exp`` minus our wall clock; with neither (or a
token that is not a JWT) it is `ASSUMED_TOKEN_LIFETIME`, short on purpose (a wrong guess costs one
extra login, and a 401 is caught anyway). Renewal starts a fifth of the lifetime before expiry,
at most a minute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from bot.core.models import OutcomeStatus
from bot.providers.budget import Budget
from bot.providers.wire import AuthRefused, Call, NoAnswer, NotSent, Reply

log = logging.getLogger(__name__)

ASSUMED_TOKEN_LIFETIME = 300.0
"""Seconds a token is trusted when its payload names no expiry."""
MAX_RENEW_MARGIN = 60.0
LOGIN_TRIES = 3

Send = Callable[[Call, Budget], Awaitable[Reply]]


class Auth(Protocol):
    """Puts credentials on a call, and renews them when the provider answers 401."""

    async def prepare(self, call: Call, budget: Budget) -> Call:
        """`call` with credentials; raises `AuthRefused` (or `NotSent`) when none can be had."""

    async def renew(self, rejected: Call, budget: Budget) -> bool:
        """After a 401 to `rejected`: True when fresh credentials are in place (try once more)."""

    def secrets(self) -> list[str]:
        """Secrets this auth holds beyond the account's settings (session tokens)."""


class StaticHeaders:
    """The same headers on every call (API keys in headers)."""

    def __init__(self, headers: Callable[[], Mapping[str, str]]) -> None:
        self._headers = headers

    async def prepare(self, call: Call, budget: Budget) -> Call:
        """Add the headers."""
        return call.with_headers(self._headers())

    async def renew(self, rejected: Call, budget: Budget) -> bool:
        """Static credentials cannot be renewed."""
        return False

    def secrets(self) -> list[str]:
        """None beyond the account's."""
        return []


class BodyToken:
    """A token merged into every call's JSON body (Altcraft's ``"token"``)."""

    def __init__(self, field: str, token: SecretStr) -> None:
        self._field = field
        self._token = token

    async def prepare(self, call: Call, budget: Budget) -> Call:
        """Add the token to the JSON body."""
        return call.with_json({self._field: self._token.get_secret_value()})

    async def renew(self, rejected: Call, budget: Budget) -> bool:
        """A static token cannot be renewed."""
        return False

    def secrets(self) -> list[str]:
        """None beyond the account's."""
        return []


@dataclass
class _Token:
    value: SecretStr
    renew_at: float
    expires_at: float


class BearerSession:
    """A short-lived bearer token obtained by logging in, shared by every call of one account."""

    def __init__(
        self,
        send: Send,
        *,
        login: Callable[[], Call],
        refresh: Callable[[str], Call] | None,
        token_of: Callable[[Reply], str | None],
        login_failure: Callable[[Reply], AuthRefused],
        label: str,
    ) -> None:
        self._send = send
        self._login_call = login
        self._refresh_call = refresh
        self._token_of = token_of
        self._login_failure = login_failure
        self._label = label
        self.clock: Callable[[], float] = time.monotonic
        """The clock token expiry is judged on (monotonic seconds); tests may replace it."""
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def prepare(self, call: Call, budget: Budget) -> Call:
        """Add ``Authorization: Bearer <token>``, logging in or renewing first when needed."""
        return call.with_headers(bearer(await self._current(budget)))

    async def renew(self, rejected: Call, budget: Budget) -> bool:
        """After a 401: log in again, unless another call already did since `rejected` was sent."""
        used = rejected.headers.get("Authorization", "").removeprefix("Bearer ")
        async with self._lock:
            current = self._token
            if current is not None and current.value.get_secret_value() != used:
                return True
            log.info("%s: HTTP 401 on %s; logging in again", self._label, rejected.method)
            self._token = None
            self._token = await self._login(budget)
            return True

    def secrets(self) -> list[str]:
        """The current token, once logged in."""
        return [self._token.value.get_secret_value()] if self._token is not None else []

    async def _current(self, budget: Budget) -> str:
        async with self._lock:
            current = self._token
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

    async def _login(self, budget: Budget) -> _Token:
        """Log in; retries what a login may safely retry (it changes nothing at the provider)."""
        tries = 0
        while True:
            tries += 1
            pause: float | None
            try:
                reply = await self._send(self._login_call(), budget)
            except (NotSent, NoAnswer) as exc:
                failure = AuthRefused(OutcomeStatus.UNREACHABLE, f"the login got no answer ({exc})", retryable=True)
                pause = 0.2 * tries
            else:
                token = self._token_of(reply) if reply.ok else None
                if token is not None:
                    return self._new_token(token)
                failure = self._login_failure(reply)
                hinted = reply.retry_after()
                transient = reply.status == 429 or reply.status >= 500
                pause = (hinted if hinted is not None else 0.2 * tries) if transient else None
            if pause is None or tries >= LOGIN_TRIES or not budget.allows(pause + 0.1):
                log.warning("%s: login failed: %s", self._label, failure)
                if tries >= LOGIN_TRIES:
                    failure.retryable = False  # this stop has had its login tries: no more for each resend
                raise failure
            await asyncio.sleep(pause)

    async def _refresh(self, current: _Token, budget: Budget) -> _Token | None:
        """Renew a still valid token; None when that fails (the caller then logs in)."""
        if self._refresh_call is None:
            return None
        try:
            reply = await self._send(self._refresh_call(current.value.get_secret_value()), budget)
        except (NotSent, NoAnswer) as exc:
            log.info("%s: token refresh got no answer (%s); logging in again", self._label, exc)
            return None
        token = self._token_of(reply) if reply.ok else None
        if token is None:
            log.info("%s: token refresh failed (HTTP %s); logging in again", self._label, reply.status)
            return None
        return self._new_token(token)

    def _new_token(self, value: str) -> _Token:
        lifetime = token_lifetime(value, time.time())
        assumed = lifetime is None
        seconds = ASSUMED_TOKEN_LIFETIME if lifetime is None else lifetime
        margin = min(MAX_RENEW_MARGIN, max(seconds, 0.0) / 5)
        now = self.clock()
        log.info("%s: got a token valid for %s%ds", self._label, "an assumed " if assumed else "", int(seconds))
        return _Token(SecretStr(value), renew_at=now + seconds - margin, expires_at=now + seconds)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def usable_token(value: Any) -> str | None:
    """`value` when it can be sent as a header value (printable ASCII, no spaces, sane length)."""
    if not isinstance(value, str):
        return None
    token = value.strip()
    if not token or len(token) > 16_384 or not all("!" <= ch <= "~" for ch in token):
        return None
    return token


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


def token_lifetime(token: str, wall_now: float) -> float | None:
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
