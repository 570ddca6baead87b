"""StopService edge cases: a stop that hangs past its cap, and a shutdown in the middle of a stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bot.core.models import Actor, Outcome, RequestState
from bot.core.parsing import StopCommand
from bot.core.service import NullNotifier, StopService
from bot.providers.clevertap import CleverTapAccount, CleverTapAdapter
from bot.providers.registry import ProviderRegistry
from bot.store.repository import Store

ALICE = Actor(id="U0ALICE")


class HangingAdapter(CleverTapAdapter):
    """A CleverTap adapter whose stop never answers; `entered` is set when the stop starts."""

    entered: ClassVar[asyncio.Event]

    async def stop(self, campaign_id: str) -> Outcome:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[StopService]:
    store = Store.from_url(f"sqlite:///{tmp_path / 's.db'}")
    await store.initialize()
    HangingAdapter.entered = asyncio.Event()
    adapter = HangingAdapter("default", CleverTapAccount(account_id="A", passcode="pass"))
    registry = ProviderRegistry([adapter], {"clevertap": "default"})
    yield StopService(store, registry, NullNotifier(), execute_timeout=0.3)
    await registry.aclose()
    await store.close()


async def new_request(service: StopService) -> str:
    command = StopCommand("clevertap", "default", "1457432766", "test")
    return (await service.create_request(command, ALICE)).id


async def test_a_stop_past_its_cap_ends_as_unknown(service: StopService) -> None:
    request_id = await new_request(service)
    result = await service.confirm(request_id, ALICE)
    assert result.outcome is not None and result.outcome.status.value == "unknown"
    assert "did not finish within 0.3 s" in result.outcome.detail
    stored = await service.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE


async def test_a_shutdown_mid_stop_stores_an_honest_outcome(service: StopService) -> None:
    service.execute_timeout = 60
    request_id = await new_request(service)
    task: asyncio.Task[Any] = asyncio.create_task(service.confirm(request_id, ALICE))
    await HangingAdapter.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await service.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert stored.outcome is not None and stored.outcome.status.value == "unknown"
    assert "shut down while this stop was running" in stored.outcome.detail


async def test_a_long_stop_keeps_its_request_alive_for_recovery(service: StopService) -> None:
    service.heartbeat_seconds = 0.01
    request_id = await new_request(service)
    beats = asyncio.Event()
    real_touch = service.store.touch

    async def touch(rid: str) -> None:
        await real_touch(rid)
        beats.set()

    service.store.touch = touch  # type: ignore[method-assign,assignment]
    task: asyncio.Task[Any] = asyncio.create_task(service.confirm(request_id, ALICE))
    await HangingAdapter.entered.wait()
    await beats.wait()
    # A request refreshed this instant is not stuck, however old its stop is.
    assert await service.recover_stuck(timedelta(seconds=5)) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
