"""Per-account request limits: a rate (requests per second) and a cap on requests in flight.

CleverTap, for one, counts both: 3 requests per second per account, and 3 concurrent requests
per account per API. The rate is a moving window from the `limits` library: in memory (per
process) by default, or on Redis (``REDIS_URL``) so that it holds across every process. The
in-flight cap is an asyncio semaphore per process, or on Redis a set of leased redis-py locks
("slots") shared by every process.

A moving window is exact when the slot is taken, but the provider counts arrivals, and
requests do not all take the same time to get there: three sent just inside one second can
arrive as four inside the provider's. So consecutive requests of an account are also spaced
by ``SPACING / rate`` (10 % slower than the limit): any three then span at least 1.1 s, which
absorbs up to 100 ms of jitter between leaving here and arriving there.

A rate-limit cache never blocks a kill switch: when Redis fails (down, unreachable, too slow),
every account falls back to its limits in this process (`SharedLimiter`), a warning is logged
once per outage, `stopcampaign_limiter_fallbacks_total` counts the calls, and `/healthz`
reports the limits as degraded. Redis is tried again every `RETRY_REDIS_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from bot.metrics import LIMITER_FALLBACKS

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOT_LEASE_SECONDS = 10.0
"""A slot's lease on Redis; its holder renews it every third of that, so only a slot held by a
process that died (kill -9 mid-call, or queued behind the rate) expires, within this long."""
SPACING = 1.1
"""Consecutive requests of one account are at least SPACING / rate seconds apart."""
REDIS_TIMEOUT_SECONDS = 1.0
"""Connect and socket timeout of the limiter's Redis calls: a hung Redis must not hold a stop."""
RETRY_REDIS_SECONDS = 5.0
"""After a Redis failure, limits stay local this long before Redis is tried again."""
REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class AccountLimiter(Protocol):
    """Holds a request until both the in-flight cap and the rate allow it (``async with``)."""

    rate_per_second: float
    max_in_flight: int

    async def acquire(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Wait until a request may go; `ready` is awaited once admitted, before the last spacing gate."""
        ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _RateWindow:
    """``rate`` requests in any one-second window, waiting (never failing) until one is free."""

    def __init__(self, storage: Storage, key: str, rate_per_second: float) -> None:
        self._strategy = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(max(1, int(rate_per_second)))
        self._key = key

    async def wait(self) -> None:
        while not await self._strategy.hit(self._item, self._key):
            stats = await self._strategy.get_window_stats(self._item, self._key)
            # A little jitter so waiters in several processes do not all retry at the same instant.
            await asyncio.sleep(max(0.005, stats.reset_time - time.time()) + random.uniform(0, 0.01))


class _LocalSpacing:
    """Consecutive requests at least `interval` apart, within this process."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            pause = self._next - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self._next = time.monotonic() + self._interval


class _RedisSpacing:
    """Consecutive requests at least `interval` apart across processes: a redis-py lock that is
    never released, only left to expire after `interval` (millisecond precision in Redis)."""

    def __init__(self, redis: Any, key: str, interval: float) -> None:
        self._redis = redis
        self._key = key
        self._interval = interval

    async def wait(self) -> None:
        gate = self._redis.lock(self._key, timeout=self._interval, sleep=0.002)
        await gate.acquire(blocking=True)


class LocalLimiter:
    """Limits within this process (no Redis)."""

    def __init__(self, key: str, rate_per_second: float, max_in_flight: int) -> None:
        if rate_per_second <= 0 or max_in_flight <= 0:
            raise ValueError("rate_per_second and max_in_flight must be positive")
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._rate = _RateWindow(MemoryStorage(), key, rate_per_second)
        self._spacing = _LocalSpacing(SPACING / rate_per_second)

    async def acquire(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Take an in-flight slot and a place in the rate window; `ready` runs before the spacing gate."""
        await self._in_flight.acquire()
        try:
            await self._rate.wait()
            if ready is not None:
                await ready()
            await self._spacing.wait()  # last: nothing may stand between the gate and the send
        except BaseException:
            self._in_flight.release()
            raise

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._in_flight.release()


class HeldByTask(Generic[T]):
    """What each task has acquired and not yet released, last first (one limiter serves many
    concurrent stops, and each must release what it took itself)."""

    def __init__(self) -> None:
        self._held: dict[asyncio.Task[Any] | None, list[T]] = {}

    def push(self, item: T) -> None:
        """Record what the current task acquired."""
        self._held.setdefault(asyncio.current_task(), []).append(item)

    def all(self) -> list[T]:
        """Everything held now, by any task."""
        return [item for items in self._held.values() for item in items]

    def pop(self) -> T:
        """What the current task acquired last."""
        task = asyncio.current_task()
        held = self._held[task]
        item = held.pop()
        if not held:
            del self._held[task]
        return item


class RedisLimiter:
    """Limits shared by every process using the same Redis."""

    def __init__(
        self,
        redis: Any,
        storage: Storage,
        key: str,
        rate_per_second: float,
        max_in_flight: int,
        prefix: str,
        slot_lease: float = SLOT_LEASE_SECONDS,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        self._redis = redis
        self._key = key
        self._prefix = prefix
        self._rate = _RateWindow(storage, key, rate_per_second)
        self._spacing = _RedisSpacing(redis, f"{prefix}:spacing:{key}", SPACING / rate_per_second)
        self._slot_lease = slot_lease
        self._held: HeldByTask[_Slot] = HeldByTask()

    async def acquire(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Take a shared slot and a place in the shared window; `ready` runs before the spacing gate."""
        slot = await self._take_slot()
        try:
            await self._rate.wait()
            if ready is not None:
                await ready()
            await self._spacing.wait()  # last: nothing may stand between the gate and the send
        except BaseException:
            await slot.release()
            raise
        self._held.push(slot)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._held.pop().release()

    async def _take_slot(self) -> _Slot:
        slots = list(range(self.max_in_flight))
        while True:
            random.shuffle(slots)
            for index in slots:
                key = f"{self._prefix}:inflight:{self._key}:{index}"
                lock = self._redis.lock(key, timeout=self._slot_lease)
                if await lock.acquire(blocking=False):
                    return _Slot(lock, self._slot_lease)
            await asyncio.sleep(0.01 + random.uniform(0, 0.01))


class _Slot:
    """A leased in-flight slot, renewed while its holder lives."""

    def __init__(self, lock: Any, lease: float) -> None:
        self._lock = lock
        self._keeper = asyncio.create_task(self._keep(lease / 3), name="limiter-slot-lease")

    async def _keep(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(*REDIS_FAILURES):  # Redis away: the outage logic takes over
                await self._lock.reacquire()

    async def release(self) -> None:
        """Stop renewing and free the slot."""
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper
        with contextlib.suppress(Exception):  # an expired lease was already released by Redis
            await self._lock.release()


class RedisOutage:
    """Whether the shared limiter's Redis is usable; one per process, shared by every account."""

    def __init__(self, retry_seconds: float = RETRY_REDIS_SECONDS) -> None:
        self.retry_seconds = retry_seconds
        self.since: float | None = None
        """Wall-clock time the current outage began, or None while Redis works."""
        self._retry_at = 0.0

    @property
    def degraded(self) -> bool:
        """True during an outage (limits are kept per process)."""
        return self.since is not None

    def usable(self) -> bool:
        """True when Redis should be tried (it works, or it is time to try it again)."""
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        """Redis failed: keep limits local for a while; warn once per outage."""
        self._retry_at = time.monotonic() + self.retry_seconds
        if self.since is None:
            self.since = time.time()
            log.warning(
                "the shared rate limiter (Redis) failed (%s); provider calls go out under this process's own "
                "limits until it is back",
                type(exc).__name__,
            )

    def recovered(self) -> None:
        """Redis answered again."""
        if self.since is not None:
            log.warning("the shared rate limiter (Redis) is back after %.0f s", time.time() - self.since)
            self.since = None


class SharedLimiter:
    """The Redis limiter while Redis works, else this process's own limits for the same account."""

    def __init__(self, shared: RedisLimiter, local: LocalLimiter, outage: RedisOutage) -> None:
        self.rate_per_second = shared.rate_per_second
        self.max_in_flight = shared.max_in_flight
        self._shared = shared
        self._local = local
        self._outage = outage
        self._held: HeldByTask[AccountLimiter] = HeldByTask()

    async def acquire(self, ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Redis's limits, else (Redis failed) this process's own; `ready` runs once, when admitted."""
        used: AccountLimiter = self._local
        called = False

        async def once() -> None:
            nonlocal called
            if ready is not None and not called:
                called = True
                await ready()

        if self._outage.usable():
            try:
                await self._shared.acquire(once)
            except REDIS_FAILURES as exc:
                self._outage.failed(exc)
            else:
                self._outage.recovered()
                used = self._shared
        if used is self._local:
            LIMITER_FALLBACKS.inc()
            await self._local.acquire(once)
        self._held.push(used)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._held.pop().__aexit__(exc_type, exc, tb)


class LimiterFactory:
    """Builds the limiter of each account: local, or on Redis when a URL is given."""

    def __init__(self, redis_url: str | None = None, prefix: str = "stopcampaign") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._redis: Any = None
        self._storage: Storage | None = None
        self.outage = RedisOutage()
        if redis_url:
            import redis.asyncio as redis_asyncio

            wait = REDIS_TIMEOUT_SECONDS
            self._redis = redis_asyncio.from_url(redis_url, socket_connect_timeout=wait, socket_timeout=wait)
            self._storage = RedisStorage(
                _limits_uri(redis_url),
                implementation="redispy",
                key_prefix=f"{prefix}:rate",
                socket_connect_timeout=wait,
                socket_timeout=wait,
            )

    def __call__(self, provider: str, account: str, rate_per_second: float, max_in_flight: int) -> AccountLimiter:
        key = f"{provider}:{account}"
        if self._redis is None or self._storage is None:
            return LocalLimiter(key, rate_per_second, max_in_flight)
        shared = RedisLimiter(self._redis, self._storage, key, rate_per_second, max_in_flight, self.prefix)
        return SharedLimiter(shared, LocalLimiter(key, rate_per_second, max_in_flight), self.outage)

    async def ping(self) -> bool:
        """True when Redis answers (always True without Redis); an answer ends an outage."""
        if self._redis is None:
            return True
        try:
            answered = bool(await self._redis.ping())
        except REDIS_FAILURES as exc:
            self.outage.failed(exc)
            return False
        if answered:
            self.outage.recovered()
        return answered

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose()


def _limits_uri(redis_url: str) -> str:
    """`limits` names its async Redis storage ``async+redis://``."""
    for scheme in ("redis://", "rediss://", "unix://"):
        if redis_url.startswith(scheme):
            return "async+" + redis_url
    return redis_url
