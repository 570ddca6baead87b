"""One account's HTTP line to its provider: the limiter, one call's timeout, the body cap, health.

Every call an adapter makes (stop, read, login) goes through `ProviderChannel.send`, which
raises `NotSent` when the call surely never reached the provider and `NoAnswer` when it may
have, and otherwise returns the answer as a `Reply` (its body read up to `MAX_BODY_BYTES`).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.core.models import ProviderHealth
from bot.metrics import PROVIDER_LATENCY
from bot.providers.budget import Budget
from bot.providers.limits import AccountLimiter
from bot.providers.wire import MAX_BODY_BYTES, Call, NoAnswer, NotSent, Reply, Sending

USER_AGENT = "stopcampaign/0.1 (+https://api.slack.com)"


class ProviderChannel:
    """The HTTP connection pool of one account, behind the account's limiter."""

    def __init__(
        self, provider: str, base_url: str, limiter: AccountLimiter, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.provider = provider
        self.limiter = limiter
        self.health = ProviderHealth()
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    async def send(
        self,
        call: Call,
        budget: Budget,
        *,
        reserve: float = 0.0,
        timeout: float | None = None,
        sending: Sending | None = None,
    ) -> Reply:
        """One HTTP exchange under the account's limiter; raises `NotSent` or `NoAnswer`.

        The call's timeout is taken after the limiter let it through, so queueing never eats it;
        `sending` is awaited there too, right before the call leaves.
        """
        queued_since = time.monotonic()
        # `sending` (recording the attempt) runs once the limiter admitted the call, before its
        # last spacing gate, so it adds no jitter between the gate and the provider.
        await self.limiter.acquire(sending)
        try:
            budget.queued += time.monotonic() - queued_since
            seconds = budget.call_timeout(reserve)
            if timeout is not None:
                seconds = min(seconds, timeout)
            started = time.monotonic()
            try:
                # httpx's read timeout is per chunk: a body trickling in must not outlive the call.
                async with asyncio.timeout(seconds + 0.5):
                    return await self._http(call, seconds)
            except TimeoutError:
                raise NoAnswer("no answer in time") from None
            finally:
                PROVIDER_LATENCY.labels(self.provider, call.method).observe(time.monotonic() - started)
        finally:
            await self.limiter.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _http(self, call: Call, seconds: float) -> Reply:
        try:
            reply = await self._http_once(call, seconds)
        except (NotSent, NoAnswer) as exc:
            self.health.failed(str(exc))
            raise
        self.health.answered(reply.status)
        return reply

    async def _http_once(self, call: Call, seconds: float) -> Reply:
        try:
            request = self._client.build_request(
                call.method,
                call.path,
                json=call.json,
                headers=dict(call.headers),
                timeout=httpx.Timeout(seconds, connect=min(3.0, seconds)),
            )
        except (UnicodeError, ValueError, httpx.HTTPError) as exc:
            raise NotSent(f"the request could not be built ({type(exc).__name__})") from None
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
            raise NotSent(describe_http_error(exc)) from None
        except httpx.HTTPError as exc:
            raise NoAnswer(describe_http_error(exc)) from None
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    break
        except httpx.HTTPError as exc:
            raise NoAnswer(describe_http_error(exc)) from None
        finally:
            await response.aclose()
        raw = b"".join(chunks)
        return Reply.of(response.status_code, raw[:MAX_BODY_BYTES], response.headers, truncated=size > MAX_BODY_BYTES)


def describe_http_error(exc: httpx.HTTPError) -> str:
    """A plain sentence for a transport error, without URLs that could carry secrets."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({kind})"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return f"connection failed ({kind})"
