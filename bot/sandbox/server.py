"""The sandbox: every provider simulator under one ASGI app, plus a small control API.

Provider APIs live under ``/<provider>`` (``/clevertap/1/targets/stop.json``). The control
API under ``/_sandbox`` lets a person or a benchmark look and steer:

``GET  /_sandbox``                                  every simulator's campaigns, faults, call count
``POST /_sandbox/reset``                            back to the seeded state
``POST /_sandbox/{provider}/faults``                arm a fault (JSON, see `bot.sandbox.base.Fault`)
``DELETE /_sandbox/{provider}/faults``              clear faults
``GET  /_sandbox/{provider}/calls``                 recorded calls (secrets redacted)
``PUT  /_sandbox/{provider}/campaigns/{id}``        create or change a campaign (JSON fields)
``GET  /_sandbox/{provider}/limits``                its limits, 429 count, in-flight count, real limits
``PUT  /_sandbox/{provider}/limits``                set limits: ``{"rate_per_second": 3, "max_in_flight": 3}``
                                                    (null or missing: that limit off; ``{"real": true}``:
                                                    the provider's real limits, see `real_limits`)
``DELETE /_sandbox/{provider}/limits``              switch limits off
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from bot.httpserver import RunningServer, start_server
from bot.sandbox.altcraft import AltcraftSimulator
from bot.sandbox.base import Fault, Limits, ProviderSimulator, SandboxCampaign, real_limits
from bot.sandbox.clevertap import CleverTapSimulator
from bot.sandbox.sonarly import SonarlySimulator
from bot.sandbox.wwt import WwtSimulator

SIMULATOR_CLASSES: tuple[type[ProviderSimulator], ...] = (
    CleverTapSimulator,
    SonarlySimulator,
    WwtSimulator,
    AltcraftSimulator,
)

_SECRET_HEADERS = {"authorization", "x-clevertap-passcode"}
_SECRET_FIELDS = {"token", "api_key", "passcode", "password"}


def _redacted(body: Any) -> Any:
    """A recorded JSON body with secret fields (Altcraft's token, WWT's api_key) hidden."""
    if isinstance(body, dict):
        return {k: ("<redacted>" if k in _SECRET_FIELDS else _redacted(v)) for k, v in body.items()}
    return body


class Sandbox:
    """All simulators and the ASGI app that serves them."""

    def __init__(self) -> None:
        self.simulators: dict[str, ProviderSimulator] = {cls.name: cls() for cls in SIMULATOR_CLASSES}
        routes: list[Any] = [
            Route("/_sandbox", self._describe, methods=["GET"]),
            Route("/_sandbox/reset", self._reset, methods=["POST"]),
            Route("/_sandbox/{provider}/faults", self._faults, methods=["POST", "DELETE"]),
            Route("/_sandbox/{provider}/calls", self._calls, methods=["GET", "DELETE"]),
            Route("/_sandbox/{provider}/campaigns/{campaign_id}", self._put_campaign, methods=["PUT"]),
            Route("/_sandbox/{provider}/limits", self._limits, methods=["GET", "PUT", "DELETE"]),
        ]
        routes += [Mount(f"/{name}", app=sim) for name, sim in self.simulators.items()]
        self.app = Starlette(routes=routes)

    def __getitem__(self, provider: str) -> ProviderSimulator:
        return self.simulators[provider]

    def accounts(self, url: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Config for one ``sandbox`` account per provider, pointed at this sandbox at `url`."""
        return {name: {"sandbox": sim.account_values(f"{url}/{name}")} for name, sim in self.simulators.items()}

    def release_held(self) -> None:
        """Let every held (timeout / lost_answer) request finish, e.g. before shutting down."""
        for sim in self.simulators.values():
            sim.release_held()

    # ----- control API -------------------------------------------------------------------------

    def _simulator(self, request: Request) -> ProviderSimulator | None:
        return self.simulators.get(request.path_params["provider"])

    async def _describe(self, request: Request) -> JSONResponse:
        return JSONResponse({name: sim.describe() for name, sim in self.simulators.items()})

    async def _reset(self, request: Request) -> JSONResponse:
        self.release_held()
        for sim in self.simulators.values():
            sim.seed()
        return JSONResponse({"ok": True})

    async def _faults(self, request: Request) -> JSONResponse:
        sim = self._simulator(request)
        if sim is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        if request.method == "DELETE":
            sim.faults.clear()
            sim.release_held()
            return JSONResponse({"ok": True})
        try:
            fault = Fault.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": exc.errors(include_url=False)}, status_code=400)
        sim.add_fault(fault)
        return JSONResponse({"ok": True, "fault": fault.model_dump()})

    async def _calls(self, request: Request) -> JSONResponse:
        sim = self._simulator(request)
        if sim is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        if request.method == "DELETE":
            sim.calls.clear()
            return JSONResponse({"ok": True})
        calls = [
            {
                "method": c.method,
                "path": c.path,
                "headers": {k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in c.headers.items()},
                "json": _redacted(c.json()),
            }
            for c in sim.calls
        ]
        return JSONResponse(calls)

    async def _limits(self, request: Request) -> JSONResponse:
        sim = self._simulator(request)
        if sim is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        if request.method == "DELETE":
            sim.clear_limits()
        elif request.method == "PUT":
            raw = await request.body()
            try:
                fields = json.loads(raw or b"{}")
            except ValueError:
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            if isinstance(fields, dict) and fields.get("real") is True and set(fields) == {"real"}:
                sim.set_real_limits()
            else:
                try:
                    limits = Limits.model_validate(fields)
                except ValidationError as exc:
                    return JSONResponse({"error": exc.errors(include_url=False)}, status_code=400)
                sim.set_limits(limits.rate_per_second, limits.max_in_flight)
        return JSONResponse(
            {
                "limits": sim.limits.model_dump(),
                "rejected_429": sim.rejected_429,
                "rejected_by": dict(sim.rejected_by),
                "in_flight": sim.in_flight,
                "real": real_limits(sim.name).model_dump(),
            }
        )

    async def _put_campaign(self, request: Request) -> JSONResponse:
        sim = self._simulator(request)
        if sim is None:
            return JSONResponse({"error": "unknown provider"}, status_code=404)
        campaign_id = request.path_params["campaign_id"]
        try:
            fields = await request.json()
            current = sim.campaigns.get(campaign_id)
            base = (
                asdict(current)
                if current
                else {"id": campaign_id, "name": f"Campaign {campaign_id}", "state": sim.new_campaign_state}
            )
            base.update({k: v for k, v in dict(fields).items() if k != "id"})
            campaign = SandboxCampaign(**base)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        sim.campaigns[campaign_id] = campaign
        return JSONResponse(asdict(campaign))


async def start_sandbox(host: str = "127.0.0.1", port: int = 0) -> tuple[Sandbox, RunningServer]:
    """Start a sandbox in this event loop; returns it and its server (``server.url``)."""
    sandbox = Sandbox()
    server = await start_server(sandbox.app, host=host, port=port)
    return sandbox, server
