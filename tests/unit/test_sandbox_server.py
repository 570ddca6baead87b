"""The sandbox's control API: faults, campaigns, recorded calls (secrets redacted), reset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.httpserver import RunningServer
from bot.sandbox.server import Sandbox, start_sandbox


@pytest.fixture
async def running() -> AsyncIterator[tuple[Sandbox, RunningServer, httpx.AsyncClient]]:
    box, server = await start_sandbox()
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield box, server, http
    box.release_held()
    await server.stop()


async def test_every_provider_is_mounted(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    _, _, http = running
    state = (await http.get("/_sandbox")).json()
    assert set(state) == {"clevertap", "sonarly", "wwt", "altcraft"}
    assert all(info["campaigns"] for info in state.values())


async def test_faults_through_the_control_api(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    _, _, http = running
    armed = await http.post("/_sandbox/clevertap/faults", json={"kind": "status", "status": 429, "times": 1})
    assert armed.status_code == 200
    hit = await http.post("/clevertap/1/targets/stop.json", json={"id": 1457432766})
    assert hit.status_code == 429 and hit.json()["code"] == 88
    assert (await http.post("/_sandbox/clevertap/faults", json={"kind": "nope"})).status_code == 400
    assert (await http.post("/_sandbox/unknown/faults", json={"kind": "status"})).status_code == 404


async def test_recorded_calls_hide_secrets(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    ct = box["clevertap"].account_values("")
    await http.post("/clevertap/1/targets/stop.json", json={"id": 1457432766},
                    headers={"X-CleverTap-Account-Id": ct["account_id"], "X-CleverTap-Passcode": ct["passcode"]})
    token = box["altcraft"].account_values("")["token"]
    await http.post("/altcraft/api/v1.1/campaigns/get_status", json={"token": token, "id": 101})
    calls = (await http.get("/_sandbox/clevertap/calls")).json() + (await http.get("/_sandbox/altcraft/calls")).json()
    text = str(calls)
    assert ct["passcode"] not in text and token not in text and "<redacted>" in text


async def test_put_campaign_and_reset(running: tuple[Sandbox, RunningServer, httpx.AsyncClient]) -> None:
    box, _, http = running
    created = await http.put("/_sandbox/wwt/campaigns/777", json={"name": "Made up"})
    assert created.json()["state"] == "sending"
    assert (await http.put("/_sandbox/wwt/campaigns/777", json={"bogus": 1})).status_code == 400
    await http.post("/_sandbox/reset")
    assert "777" not in box["wwt"].campaigns
