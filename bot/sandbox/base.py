"""The shared machinery of the provider simulators: campaigns, recorded calls and fault switches.

A simulator subclass declares its provider's routes, its sandbox credentials, its seeded
campaigns and the body its API sends for a given HTTP error; the base records every call,
applies faults and lets tests wait for calls (an `asyncio.Condition`, never a sleep).

Fault kinds:

``latency``      wait ``delay`` seconds, then answer normally.
``status``       answer ``status`` (with ``body`` or the provider's own error body, and
                 ``Retry-After: retry_after`` when set); nothing is applied.
``timeout``      hold the request ``delay`` seconds (default 60) without applying it.
``lost_answer``  apply the request (the campaign really stops), then hold the answer
                 ``delay`` seconds: the stop succeeded but its answer is lost. With
                 ``late``, the request is applied only once the next other call to this
                 simulator has been answered (a stop that takes effect after the first read).
``malformed``    answer ``status`` (default 200) with ``body`` or an HTML error page.
``reset``        apply nothing and drop the connection after half an answer.

``apply`` (with ``status`` and ``malformed``) applies the request first and throws its real
answer away, so the campaign changes but the caller hears only the fault's answer.

Limits (off by default; `ProviderSimulator.set_limits`, or ``PUT /_sandbox/{provider}/limits``):
a simulator can enforce its provider's rate limits the way the provider would, per simulator
(the sandbox has one account per provider):

``rate_per_second``  at most this many requests accepted in any sliding 1-second window
                     (``floor(rate)``, at least 1); rejected calls do not count in the window.
``max_in_flight``    at most this many requests being handled at once, including calls held
                     by ``latency``, ``timeout`` and ``lost_answer`` faults.

A call over either limit is recorded (``RecordedCall.limited``), answered with the provider's
own 429 body (`ProviderSimulator.error_response`) without being applied and without using up
a fault, and counted in ``rejected_429`` (split by limit in ``rejected_by``). `real_limits`
gives each provider's real figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]

HTML_ERROR_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class SandboxCampaign:
    """One simulated campaign, in the provider's own state vocabulary."""

    id: str
    name: str
    state: str
    kind: str | None = None
    size: int = 0
    sent: int = 0
    delivered: int = 0
    price: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordedCall:
    """One request a simulator received (faulted or not)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    limited: bool = False
    """True when a limit refused the call (answered 429, nothing applied)."""

    def json(self) -> Any:
        """The body parsed as JSON, or None."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class FaultKind(StrEnum):
    """What a fault does; see the module docstring."""

    LATENCY = "latency"
    STATUS = "status"
    TIMEOUT = "timeout"
    LOST_ANSWER = "lost_answer"
    MALFORMED = "malformed"
    RESET = "reset"


class Fault(BaseModel):
    """A fault switch: applies to the next `times` matching calls (None: until cleared)."""

    kind: FaultKind
    status: int | None = None
    body: str | None = None
    delay: float = Field(default=0.0, ge=0, le=600)
    retry_after: float | None = None
    times: int | None = Field(default=1, ge=1)
    match: str | None = None
    method: str | None = None
    late: bool = False
    """``lost_answer`` only: apply the request after the next other call has been answered."""
    apply: bool = False
    """``status`` and ``malformed`` only: apply the request, then answer with the fault's answer."""

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a call."""
        if self.method and self.method.upper() != method.upper():
            return False
        return self.match is None or self.match in path


class Limits(BaseModel):
    """A simulator's rate limits; None switches a limit off (both None: no limits, the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_second: float | None = Field(default=None, gt=0, le=100_000)
    max_in_flight: int | None = Field(default=None, ge=1, le=100_000)

    @property
    def window_size(self) -> int | None:
        """How many calls one sliding 1-second window accepts, or None without a rate limit."""
        if self.rate_per_second is None:
            return None
        return max(1, math.floor(self.rate_per_second))

    @property
    def active(self) -> bool:
        """True when at least one limit is set."""
        return self.rate_per_second is not None or self.max_in_flight is not None


PUBLISHED_LIMITS: dict[str, Limits] = {
    # CleverTap documents 3 requests per second and 3 concurrent requests per account per API.
    "clevertap": Limits(rate_per_second=3, max_in_flight=3),
}
"""Limits a provider publishes. Providers missing here publish none (see `real_limits`)."""


def real_limits(provider: str) -> Limits:
    """The provider's real limits: the published ones, else what its adapter declares it keeps to.

    Sonarly, Telco WWT and Altcraft publish no figures, so the adapters' own ``rate_per_second``
    and ``max_in_flight`` (``bot/providers/<provider>.py``) stand in for them.
    """
    published = PUBLISHED_LIMITS.get(provider)
    if published is not None:
        return published
    from bot.providers.registry import adapter_class  # late: the providers package is heavier

    klass = adapter_class(provider)
    if klass is None:
        raise KeyError(f"unknown provider {provider!r}")
    return Limits(rate_per_second=klass.rate_per_second, max_in_flight=klass.max_in_flight)


class ProviderSimulator(ABC):
    """An HTTP simulator of one provider's API, mounted under ``/<name>`` in the sandbox."""

    name: ClassVar[str]
    """Provider name, also the mount path (``/clevertap``)."""
    new_campaign_state: ClassVar[str] = "running"
    """The state of a campaign created through the control API without one (an active state)."""

    def __init__(self) -> None:
        self.campaigns: dict[str, SandboxCampaign] = {}
        self.calls: list[RecordedCall] = []
        self.faults: list[Fault] = []
        self.limits = Limits()
        self.rejected_429 = 0
        """Calls refused by a limit since the last seed/reset."""
        self.rejected_by: dict[str, int] = {"rate": 0, "in_flight": 0}
        """`rejected_429` split by the limit that refused the call."""
        self.in_flight = 0
        """Calls being handled right now (held ones included)."""
        self.clock: Callable[[], float] = time.monotonic
        """The clock of the rate window, in seconds (tests may replace it to move time by hand)."""
        self._window: deque[float] = deque()
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._late: list[tuple[Scope, bytes]] = []
        self.seed()
        self.app = Starlette(routes=self.routes())

    # ----- what a simulator declares --------------------------------------------------------

    @abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The provider's API routes, relative to the mount path."""

    @abstractmethod
    def seed_campaigns(self) -> list[SandboxCampaign]:
        """The well-known campaigns the sandbox starts with (listed in the README)."""

    @abstractmethod
    def account_values(self, base_url: str) -> dict[str, Any]:
        """Account settings that point an adapter at this simulator with valid credentials."""

    @abstractmethod
    def error_response(self, status: int, message: str) -> Response:
        """The provider's own answer for an HTTP error (used by ``status`` faults)."""

    # ----- state ---------------------------------------------------------------------------

    def seed(self) -> None:
        """Put the campaigns back to their seeded states and forget calls, faults and limits."""
        self.campaigns = {c.id: c for c in self.seed_campaigns()}
        self.calls.clear()
        self.faults.clear()
        self.limits = Limits()
        self.rejected_429 = 0
        self.rejected_by = {"rate": 0, "in_flight": 0}
        self._window.clear()
        self._late = []

    def set_limits(self, rate_per_second: float | None = None, max_in_flight: int | None = None) -> Limits:
        """Enforce a rate (sliding 1-second window) and/or an in-flight cap; None switches one off.

        Setting limits starts a fresh rate window and keeps the `rejected_429` count.
        """
        self.limits = Limits(rate_per_second=rate_per_second, max_in_flight=max_in_flight)
        self._window.clear()
        return self.limits

    def set_real_limits(self) -> Limits:
        """Enforce this provider's real limits (`real_limits`)."""
        real = real_limits(self.name)
        return self.set_limits(real.rate_per_second, real.max_in_flight)

    def clear_limits(self) -> None:
        """Switch the limits off."""
        self.set_limits(None, None)

    def release_held(self) -> None:
        """Let every request held by a timeout / lost_answer fault finish now."""
        self._release.set()
        self._release = asyncio.Event()

    def add_fault(self, fault: Fault) -> None:
        """Arm a fault switch."""
        self.faults.append(fault)

    def calls_to(self, path_part: str, method: str | None = None) -> list[RecordedCall]:
        """Recorded calls whose path contains `path_part` (and with `method`, when given)."""
        return [c for c in self.calls if path_part in c.path and (method is None or c.method == method.upper())]

    async def wait_for_calls(
        self, count: int, path_part: str = "", method: str | None = None, timeout: float = 10.0
    ) -> list[RecordedCall]:
        """Wait until at least `count` matching calls arrived; raise TimeoutError otherwise."""

        def enough() -> bool:
            return len(self.calls_to(path_part, method)) >= count

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(enough)
        return self.calls_to(path_part, method)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds; it is checked whenever a call arrives or finishes."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def _refusal(self, now: float) -> str | None:
        """Take a slot under the limits for a call arriving at `now`; the limit that refuses it, or None."""
        limits = self.limits
        if limits.max_in_flight is not None and self.in_flight >= limits.max_in_flight:
            return "in_flight"
        size = limits.window_size
        if size is not None:
            window = self._window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= size:
                return "rate"
            window.append(now)
        return None

    # ----- the ASGI entry: record, fault, dispatch ------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(self.clock())
        admitted = refusal is None
        call = RecordedCall(
            method=scope["method"], path=path, headers=headers, body=body, at=time.monotonic(), limited=not admitted
        )
        if refusal is not None:
            self.rejected_429 += 1
            self.rejected_by[refusal] += 1
        else:
            self.in_flight += 1
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if not admitted:
            await self.error_response(429, "sandbox limit: too many requests")(scope, receive, send)
            return
        late = list(self._late)
        try:
            await self._dispatch(call, scope, receive, send, body)
        finally:
            self.in_flight -= 1
            # Requests held back by a `late` lost_answer take effect once a later call was answered.
            for pending in late:
                if pending in self._late:
                    self._late.remove(pending)
                    await self._apply_quietly(*pending)
            async with self._changed:
                self._changed.notify_all()

    async def _dispatch(self, call: RecordedCall, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """Answer an admitted call: through a fault when one matches, by the provider's routes otherwise."""
        path = call.path
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        fault = self._take_fault(call.method, path)
        if fault is None:
            await self.app(scope, replay_receive, send)
            return
        await self._apply_fault(fault, scope, replay_receive, send, body)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    async def _hold(self, seconds: float) -> None:
        release = self._release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=seconds)

    async def _apply_quietly(self, scope: Scope, body: bytes) -> None:
        """Run a request through the provider's routes and throw the answer away."""
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        await self.app(scope, receive, _Discard())

    async def _apply_fault(self, fault: Fault, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        kind = fault.kind
        if fault.apply and kind in (FaultKind.STATUS, FaultKind.MALFORMED):
            await self._apply_quietly(scope, body)
        if kind is FaultKind.LATENCY:
            await self._hold(fault.delay)
            await self.app(scope, receive, send)
        elif kind is FaultKind.STATUS:
            status = fault.status or 500
            if fault.body is not None:
                response: Response = Response(fault.body, status_code=status, media_type="application/json")
            else:
                response = self.error_response(status, f"sandbox fault: HTTP {status}")
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
            if fault.delay:
                await self._hold(fault.delay)
            await response(scope, receive, send)
        elif kind is FaultKind.TIMEOUT:
            await self._hold(fault.delay or 60.0)
            await self.error_response(504, "sandbox fault: timed out")(scope, receive, send)
        elif kind is FaultKind.LOST_ANSWER:
            if fault.late:
                self._late.append((scope, body))
            else:
                await self._apply_quietly(scope, body)
            await self._hold(fault.delay or 60.0)
            await self.error_response(504, "sandbox fault: answer lost")(scope, receive, send)
        elif kind is FaultKind.MALFORMED:
            text = fault.body if fault.body is not None else HTML_ERROR_PAGE
            media = "application/json" if fault.body is not None else "text/html"
            await Response(text, status_code=fault.status or 200, media_type=media)(scope, receive, send)
        elif kind is FaultKind.RESET:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"400")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"status": "succ', "more_body": True})
            raise ConnectionResetError("sandbox fault: connection reset mid-answer")

    # ----- the control API ------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """State for the control API: campaigns, faults, call count, limits and 429 count."""
        return {
            "campaigns": [asdict(c) for c in self.campaigns.values()],
            "faults": [f.model_dump() for f in self.faults],
            "calls": len(self.calls),
            "limits": self.limits.model_dump(),
            "rejected_429": self.rejected_429,
            "rejected_by": dict(self.rejected_by),
            "in_flight": self.in_flight,
        }


class _Discard:
    """An ASGI `send` that swallows the answer (for ``lost_answer``)."""

    async def __call__(self, message: Message) -> None:
        return None


def json_error(status: int, payload: dict[str, Any]) -> JSONResponse:
    """A JSON answer with a status; a small helper for simulators."""
    return JSONResponse(payload, status_code=status)
