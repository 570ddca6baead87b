"""Simulator of CleverTap's Stop Scheduled Campaign API (seeds 000 and 001).

Checks the ``X-CleverTap-Account-Id`` / ``X-CleverTap-Passcode`` headers (401, code 101),
validates the ``id`` (400, code 21), answers 404 code 73 for unknown ids, and otherwise moves
a scheduled or running campaign to stopped, answering as seed 000 documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.sandbox.base import ProviderSimulator, SandboxCampaign

ACCOUNT_ID = "SANDBOX-CT-ACCOUNT"
PASSCODE = "sandbox-ct-passcode"

_ERROR_CODES = {400: 21, 401: 101, 404: 73, 409: 74, 429: 88}


class CleverTapSimulator(ProviderSimulator):
    """``POST /1/targets/stop.json`` with CleverTap's documented answers."""

    name = "clevertap"

    def routes(self) -> list[BaseRoute]:
        """The stop route."""
        return [Route("/1/targets/stop.json", self.stop, methods=["POST"])]

    def seed_campaigns(self) -> list[SandboxCampaign]:
        """Well-known ids, one per state."""
        return [
            SandboxCampaign("1457432766", "Diwali sale push (wrong segment)", "running", kind="push", size=120_000),
            SandboxCampaign("1457432767", "Weekend price drop email", "scheduled", kind="email", size=45_000),
            SandboxCampaign("1457432768", "Onboarding day 3", "completed", kind="push", size=8_000),
            SandboxCampaign("1457432769", "Old flash sale", "stopped", kind="sms", size=2_000),
            SandboxCampaign("1457432770", "Cart reminder (spare)", "running", kind="push", size=30_000),
        ]

    def account_values(self, base_url: str) -> dict[str, Any]:
        """Sandbox credentials and URL."""
        return {"account_id": ACCOUNT_ID, "passcode": PASSCODE, "base_url": base_url}

    def error_response(self, status: int, message: str) -> Response:
        """CleverTap's fail body for an HTTP error."""
        return JSONResponse(
            {"status": "fail", "error": message, "code": _ERROR_CODES.get(status, status)}, status_code=status
        )

    async def stop(self, request: Request) -> Response:
        """Stop a campaign the way CleverTap documents."""
        if (
            request.headers.get("x-clevertap-account-id") != ACCOUNT_ID
            or request.headers.get("x-clevertap-passcode") != PASSCODE
        ):
            return self.error_response(401, "Invalid Credentials")
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        raw_id = payload.get("id") if isinstance(payload, dict) else None
        if isinstance(raw_id, bool) or not isinstance(raw_id, int) or raw_id <= 0:
            return self.error_response(400, "Invalid Campaign ID")
        campaign = self.campaigns.get(str(raw_id))
        if campaign is None:
            return self.error_response(404, "Campaign not found")
        if campaign.state == "stopped":
            return JSONResponse({"status": "success", "campaign_id": raw_id, "state": "already_stopped"})
        if campaign.state == "completed":
            return JSONResponse({"status": "success", "campaign_id": raw_id, "state": "already_completed"})
        campaign.state = "stopped"
        stopped_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return JSONResponse({"status": "success", "campaign_id": raw_id, "state": "stopped", "stopped_at": stopped_at})
