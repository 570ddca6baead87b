"""Per-account request limits: a rate (requests per second) and a cap on requests in flight.

CleverTap, for one, counts both: 3 requests per second per account, and 3 concurrent requests
per account per API. Each adapter owns one `AccountLimiter`, and the registry builds one adapter
per configured account, so the limits hold however many stops run at once in this process.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiolimiter import AsyncLimiter


class AccountLimiter:
    """Holds a request until both the in-flight cap and the rate allow it."""

    def __init__(self, rate_per_second: float, max_in_flight: int) -> None:
        if rate_per_second <= 0 or max_in_flight <= 0:
            raise ValueError("rate_per_second and max_in_flight must be positive")
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # A bucket of size 1 refilled every 1/rate seconds spaces requests evenly, which is what
        # a provider counting "N per second" over sliding windows accepts without a 429.
        self._rate = AsyncLimiter(1, 1 / rate_per_second)

    async def __aenter__(self) -> None:
        await self._in_flight.acquire()
        try:
            await self._rate.acquire()
        except BaseException:
            self._in_flight.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_flight.release()
