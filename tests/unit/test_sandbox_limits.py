"""Sandbox rate limits over real HTTP: sliding 1-second window, in-flight cap, 429 count, control API.

Time in the rate window is moved by hand (`ProviderSimulator.clock`), and held calls are
awaited through the simulator's condition (`wait_until`), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.providers.registry import ADAPTER_CLASSES
from bot.sandbox.base import Fault, FaultKind, Limits, ProviderSimulator, real_limits
from bot.sandbox.server import Sandbox, start_sandbox

CT_STOP = "/clevertap/1/targets/stop.json"
RUNNING = 1457432766
SPARE_RUNNING = 1457432770
BOUND = 10.0  # seconds any single wait in these tests may take


@dataclass
class ManualClock:
    """A clock for the rate window that moves only when told."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def running() -> AsyncIterator[tuple[Sandbox, RunningServer, httpx.AsyncClient]]:
    box, server = await start_sandbox()
    async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as http:
        yield box, server, http
    box.release_held()
    await server.stop()


def ct_headers(box: Sandbox) -> dict[str, str]:
    values = box["clevertap"].account_values("")
    return {"X-CleverTap-Account-Id": values["account_id"], "X-CleverTap-Passcode": values["passcode"]}


async def ct_stop(http: httpx.AsyncClient, box: Sandbox, campaign_id: int = RUNNING) -> httpx.Response:
    return await http.post(CT_STOP, json={"id": campaign_id}, headers=ct_headers(box))


def manual_clock(sim: ProviderSimulator) -> ManualClock:
    clock = ManualClock()
    sim.clock = clock
    return clock


async def test_no_limits_by_default(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    sim = box["clevertap"]
    assert sim.limits == Limits() and not sim.limits.active
    answers = await asyncio.gather(*(ct_stop(http, box, SPARE_RUNNING) for _ in range(20)))
    assert all(a.status_code == 200 for a in answers)
    state = (await http.get("/_sandbox")).json()
    assert all(info["limits"] == {"rate_per_second": None, "max_in_flight": None} for info in state.values())
    assert all(info["rejected_429"] == 0 for info in state.values())


async def test_rate_limit_answers_the_providers_429_without_applying(
    running: tuple[Sandbox, RunningServer, httpx.AsyncClient],
) -> None:
    box, _, http = running
    sim = box["clevertap"]
    manual_clock(sim)
    sim.set_limits(rate_per_second=3)
    for _ in range(3):
        assert (await ct_stop(http, box, 1457432769)).status_code == 200  # an already stopped campaign
    refused = await ct_stop(http, box, RUNNING)
    assert refused.status_code == 429
    assert refused.json() == {"status": "fail", "error": "sandbox limit: too many requests", "code": 88}
    assert sim.campaigns[str(RUNNING)].state == "running"  # not applied
    assert sim.rejected_429 == 1
    assert [c.limited for c in sim.calls] == [False, False, False, True]


async def test_rate_window_slides(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    sim = box["clevertap"]
    clock = manual_clock(sim)
    sim.set_limits(rate_per_second=3)
    start = clock.now
    plan = [  # (seconds after start, expected HTTP status)
        (0.0, 200),
        (0.5, 200),
        (0.6, 200),
        (0.9, 429),  # 0.0, 0.5, 0.6 are in the window
        (1.0, 200),  # 0.0 has left the window (it covers (t-1, t])
        (1.4, 429),  # 0.5, 0.6, 1.0
        (1.5, 200),  # 0.5 left
        (1.59, 429),  # rejected calls do not count: still 0.6, 1.0, 1.5
        (1.6, 200),
    ]
    for offset, expected in plan:
        clock.now = start + offset
        answer = await ct_stop(http, box, 1457432769)
        assert answer.status_code == expected, offset
    assert sim.rejected_429 == 3 and sim.rejected_by == {"rate": 3, "in_flight": 0}


async def test_fractional_rate_rounds_down(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    sim = box["clevertap"]
    manual_clock(sim)
    sim.set_limits(rate_per_second=2.5)
    statuses = [(await ct_stop(http, box, 1457432769)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_in_flight_counts_calls_held_by_latency_faults(
    running: tuple[Sandbox, RunningServer, httpx.AsyncClient],
) -> None:
    box, _, http = running
    sim = box["clevertap"]
    sim.set_limits(max_in_flight=2)
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=60, times=3))
    held = [asyncio.create_task(ct_stop(http, box, 1457432769)) for _ in range(2)]
    try:
        await sim.wait_until(lambda: sim.in_flight == 2, timeout=BOUND)
        refused = await ct_stop(http, box, RUNNING)
        assert refused.status_code == 429 and refused.json()["code"] == 88
        assert sim.campaigns[str(RUNNING)].state == "running"
        assert sim.rejected_429 == 1 and sim.rejected_by == {"rate": 0, "in_flight": 1}
        assert sim.faults and sim.faults[0].times == 1  # the refused call did not use up the fault
        described = (await http.get("/_sandbox")).json()["clevertap"]
        assert described["in_flight"] == 2 and described["rejected_429"] == 1
    finally:
        sim.faults.clear()
        sim.release_held()
        async with asyncio.timeout(BOUND):
            answers = await asyncio.gather(*held)
    assert [a.status_code for a in answers] == [200, 200]
    await sim.wait_until(lambda: sim.in_flight == 0, timeout=BOUND)
    assert (await ct_stop(http, box, RUNNING)).status_code == 200
    assert sim.campaigns[str(RUNNING)].state == "stopped"


async def test_in_flight_is_released_after_faults_that_fail(
    running: tuple[Sandbox, RunningServer, httpx.AsyncClient],
) -> None:
    box, _, http = running
    sim = box["clevertap"]
    sim.set_limits(max_in_flight=1)
    sim.add_fault(Fault(kind=FaultKind.RESET))
    with pytest.raises(httpx.HTTPError):
        await ct_stop(http, box, 1457432769)
    await sim.wait_until(lambda: sim.in_flight == 0, timeout=BOUND)
    assert (await ct_stop(http, box, 1457432769)).status_code == 200
    assert sim.rejected_429 == 0


@pytest.mark.parametrize(
    ("provider", "method", "path", "check"),
    [
        ("sonarly", "GET", "/v1/accounts", lambda body: body["error"]["code"] == "RATE_LIMITED"),
        ("wwt", "POST", "/api/auth/login", lambda body: set(body) == {"message", "errors"}),
        ("altcraft", "POST", "/api/v1.1/campaigns/get_status", lambda body: body["error"] == 429),
    ],
)
async def test_each_provider_answers_its_own_429(
    running: tuple[Sandbox, RunningServer, httpx.AsyncClient], provider: str, method: str, path: str, check: Any
) -> None:
    box, _, http = running
    sim = box[provider]
    manual_clock(sim)
    sim.set_limits(rate_per_second=1)
    await http.request(method, f"/{provider}{path}", json={})
    refused = await http.request(method, f"/{provider}{path}", json={})
    assert refused.status_code == 429 and check(refused.json())
    assert sim.rejected_429 == 1
    assert all(other.rejected_429 == 0 for name, other in box.simulators.items() if name != provider)


async def test_limits_through_the_control_api(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    sim = box["clevertap"]
    manual_clock(sim)
    put = await http.put("/_sandbox/clevertap/limits", json={"rate_per_second": 1, "max_in_flight": 3})
    assert put.status_code == 200
    assert put.json()["limits"] == {"rate_per_second": 1.0, "max_in_flight": 3}
    assert put.json()["real"] == {"rate_per_second": 3.0, "max_in_flight": 3}
    assert sim.limits == Limits(rate_per_second=1, max_in_flight=3)
    await ct_stop(http, box, 1457432769)
    assert (await ct_stop(http, box, 1457432769)).status_code == 429
    state = (await http.get("/_sandbox")).json()["clevertap"]
    assert state["limits"] == {"rate_per_second": 1.0, "max_in_flight": 3} and state["rejected_429"] == 1
    got = (await http.get("/_sandbox/clevertap/limits")).json()
    assert got["rejected_429"] == 1 and got["in_flight"] == 0
    assert got["rejected_by"] == {"rate": 1, "in_flight": 0}

    cleared = await http.put("/_sandbox/clevertap/limits", json={"rate_per_second": None, "max_in_flight": None})
    assert cleared.json()["limits"] == {"rate_per_second": None, "max_in_flight": None}
    assert (await ct_stop(http, box, 1457432769)).status_code == 200
    assert cleared.json()["rejected_429"] == 1  # clearing limits keeps the count

    real = await http.put("/_sandbox/wwt/limits", json={"real": True})
    assert real.json()["limits"] == real_limits("wwt").model_dump()
    assert (await http.delete("/_sandbox/wwt/limits")).json()["limits"] == Limits().model_dump()

    await http.put("/_sandbox/altcraft/limits", json={"max_in_flight": 2})
    assert box["altcraft"].limits == Limits(max_in_flight=2)  # a missing field is off


@pytest.mark.parametrize(
    "body",
    [
        b'{"rate_per_second": 0}',
        b'{"rate_per_second": -1}',
        b'{"max_in_flight": 0}',
        b'{"max_in_flight": 1.5}',
        b'{"rate_per_second": "fast"}',
        b'{"burst": 3}',
        b'{"real": false}',
        b"[3, 3]",
        b"not json",
    ],
)
async def test_bad_limits_are_refused(running: tuple[Sandbox, RunningServer, httpx.AsyncClient], body: bytes) -> None:
    box, _, http = running
    answer = await http.put("/_sandbox/clevertap/limits", content=body)
    assert answer.status_code == 400
    assert box["clevertap"].limits == Limits()


async def test_unknown_provider_limits(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    _, _, http = running
    assert (await http.put("/_sandbox/nope/limits", json={"rate_per_second": 1})).status_code == 404
    assert (await http.get("/_sandbox/nope/limits")).status_code == 404


async def test_reset_clears_limits_and_count(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    sim = box["clevertap"]
    manual_clock(sim)
    sim.set_limits(rate_per_second=1)
    await ct_stop(http, box, 1457432769)
    await ct_stop(http, box, 1457432769)
    assert sim.rejected_429 == 1
    await http.post("/_sandbox/reset")
    assert sim.limits == Limits() and sim.rejected_429 == 0 and sim.rejected_by == {"rate": 0, "in_flight": 0}
    assert (await ct_stop(http, box, 1457432769)).status_code == 200


def test_real_limits() -> None:
    assert real_limits("clevertap") == Limits(rate_per_second=3, max_in_flight=3)
    for klass in ADAPTER_CLASSES:
        if klass.name == "clevertap":
            continue
        declared = Limits(rate_per_second=klass.rate_per_second, max_in_flight=klass.max_in_flight)
        assert real_limits(klass.name) == declared
    assert real_limits("sonarly") == Limits(rate_per_second=5, max_in_flight=2)
    with pytest.raises(KeyError):
        real_limits("nope")


async def test_set_real_limits_on_every_simulator() -> None:
    box = Sandbox()
    for name, sim in box.simulators.items():
        assert sim.set_real_limits() == real_limits(name)
        assert sim.describe()["limits"] == real_limits(name).model_dump()
