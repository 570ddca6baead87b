"""Per-account limits: the moving window and the in-flight cap, per process and across processes."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from bot.providers.limits import AccountLimiter, LimiterFactory, LocalLimiter


async def run_through(limiters: list[AccountLimiter], calls: int) -> tuple[list[float], int]:
    """Push `calls` requests through the limiters (round robin); return entry times and peak in flight."""
    entered: list[float] = []
    inside = 0
    peak = 0
    release = asyncio.Event()

    async def one(limiter: AccountLimiter) -> None:
        nonlocal inside, peak
        async with limiter:
            entered.append(time.monotonic())
            inside += 1
            peak = max(peak, inside)
            if len(entered) >= 3:
                release.set()
            await release.wait()  # hold the slot until several are in: the cap must show
            inside -= 1

    async with asyncio.timeout(20):
        await asyncio.gather(*(one(limiters[i % len(limiters)]) for i in range(calls)))
    return sorted(entered), peak


def assert_rate(entered: list[float], per_second: int) -> None:
    # The window is enforced when the slot is taken; entry is observed after the storage answered
    # (a Redis round trip), hence a small tolerance.
    for earlier, later in zip(entered, entered[per_second:], strict=False):
        assert later - earlier >= 0.95, "more requests in one second than the rate allows"


async def test_local_limiter_keeps_rate_and_in_flight() -> None:
    limiter = LocalLimiter("clevertap:test", rate_per_second=3, max_in_flight=3)
    entered, peak = await run_through([limiter], 7)
    assert peak <= 3
    assert_rate(entered, 3)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        LocalLimiter("x", 0, 1)


async def test_redis_limits_hold_across_processes(redis_url: str) -> None:
    prefix = f"test-{secrets.token_hex(4)}"
    # Two factories stand for two processes: nothing is shared between them but Redis.
    first, second = LimiterFactory(redis_url, prefix), LimiterFactory(redis_url, prefix)
    try:
        limiters = [first("clevertap", "default", 3, 3), second("clevertap", "default", 3, 3)]
        entered, peak = await run_through(limiters, 8)
        assert peak <= 3
        assert_rate(entered, 3)
        assert await first.ping()
    finally:
        await first.aclose()
        await second.aclose()


async def test_without_redis_the_factory_builds_local_limiters() -> None:
    factory = LimiterFactory()
    assert isinstance(factory("clevertap", "default", 3, 3), LocalLimiter)
    assert await factory.ping()
    await factory.aclose()


async def hold_three(limiters: list[AccountLimiter]) -> tuple[int, asyncio.Event, list[asyncio.Task[None]], list[int]]:
    """Start 6 requests that hold their slot; return once 3 are inside."""
    state = [0, 0]  # inside, peak
    three_in, go = asyncio.Event(), asyncio.Event()

    async def one(limiter: AccountLimiter) -> None:
        async with limiter:
            state[0] += 1
            state[1] = max(state[1], state[0])
            if state[0] == 3:
                three_in.set()
            await go.wait()
            state[0] -= 1

    tasks = [asyncio.create_task(one(limiters[i % len(limiters)])) for i in range(6)]
    async with asyncio.timeout(10):
        await three_in.wait()
    return state[0], go, tasks, state


async def test_local_in_flight_cap() -> None:
    limiter = LocalLimiter("wwt:test", rate_per_second=1000, max_in_flight=3)
    inside, go, tasks, state = await hold_three([limiter])
    assert inside == 3
    assert limiter._in_flight.locked()  # the 4th to 6th wait for a slot
    go.set()
    await asyncio.gather(*tasks)
    assert state[1] == 3


async def test_redis_in_flight_cap_across_processes(redis_url: str) -> None:
    import redis.asyncio as redis_asyncio

    prefix = f"test-{secrets.token_hex(4)}"
    first, second = LimiterFactory(redis_url, prefix), LimiterFactory(redis_url, prefix)
    client = redis_asyncio.from_url(redis_url)
    try:
        limiters = [first("wwt", "default", 1000, 3), second("wwt", "default", 1000, 3)]
        inside, go, tasks, state = await hold_three(limiters)
        assert inside == 3
        assert len(await client.keys(f"{prefix}:inflight:*")) == 3  # every shared slot is taken
        go.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        assert state[1] == 3
        assert await client.keys(f"{prefix}:inflight:*") == []  # all released
    finally:
        await client.aclose()
        await first.aclose()
        await second.aclose()


async def test_a_held_redis_slot_is_renewed_and_a_dead_holder_s_slot_expires(redis_url: str) -> None:
    """A live holder keeps its slot past the lease; a holder that died (never released, never
    renewed again) frees it within one lease, so no other process waits for minutes."""
    import redis.asyncio as redis_asyncio
    from limits.aio.storage import MemoryStorage

    from bot.providers.limits import RedisLimiter

    prefix = f"test-{secrets.token_hex(4)}"
    client = redis_asyncio.from_url(redis_url)
    lease = 0.6
    try:
        holder = RedisLimiter(client, MemoryStorage(), "ct:default", 1000, 1, prefix, slot_lease=lease)
        other = RedisLimiter(client, MemoryStorage(), "ct:default", 1000, 1, prefix, slot_lease=lease)
        await holder.acquire()
        with pytest.raises(TimeoutError):  # three leases long, the live holder's slot stays taken
            async with asyncio.timeout(lease * 3):
                await other.acquire()
        # The holder dies: its renewal stops, nothing releases the slot.
        for slot in holder._held.all():
            slot._keeper.cancel()
        async with asyncio.timeout(lease * 4):
            await other.acquire()
        await other.__aexit__(None, None, None)
    finally:
        await client.aclose()
