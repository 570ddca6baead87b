"""Sandbox-backed fixtures shared by the adapter tests: one simulator served for a whole module.

Starting and stopping uvicorn takes ~0.2 s, so each adapter test module serves its simulator once
and reseeds it before every test::

    served, sim, server = sandbox_fixtures(SonarlySimulator)

The tests that use them must run in the module's event loop
(``pytestmark = pytest.mark.asyncio(loop_scope="module")``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from bot.httpserver import RunningServer, start_server
from bot.providers.limits import LocalLimiter
from bot.sandbox.base import ProviderSimulator

SimT = TypeVar("SimT", bound=ProviderSimulator)

FAST: dict[str, Any] = {"timeout": 0.5, "deadline": 3, "preview_timeout": 0.5}
"""`HttpOptions` keyword arguments that keep failing cases quick."""


def fast_limiter(provider: str, account: str, rate: float, in_flight: int) -> LocalLimiter:
    """A limiter that never waits: the production pacing is tested on its own elsewhere."""
    return LocalLimiter(f"{provider}:{account}:test", 1000, 4)


def sandbox_fixtures(make: Callable[[], SimT]) -> tuple[Any, Any, Any]:
    """Module fixtures ``served`` (simulator, server), ``sim`` (reseeded per test) and ``server``."""

    @pytest_asyncio.fixture(loop_scope="module", scope="module")
    async def served() -> AsyncIterator[tuple[SimT, RunningServer]]:
        simulator = make()
        running = await start_server(simulator)
        yield simulator, running
        simulator.release_held()
        await running.stop()

    @pytest_asyncio.fixture(loop_scope="module")
    async def sim(served: tuple[SimT, RunningServer]) -> AsyncIterator[SimT]:
        simulator = served[0]
        simulator.seed()
        yield simulator
        simulator.release_held()

    @pytest.fixture
    def server(served: tuple[SimT, RunningServer], sim: SimT) -> RunningServer:
        return served[1]

    return served, sim, server
