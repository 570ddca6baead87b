"""Simulator of Sonarly's campaign API (seed 002), mounted at ``/sonarly`` in the sandbox.

Routes, under the mount path:

``GET  /v1/accounts``                                                the account groups of the key
``GET  /v1/accounts/{accountGroupId}/campaigns/{campaignId}``        read one campaign
``POST /v1/accounts/{accountGroupId}/campaigns/{campaignId}/stop``   stop it (no body)

Every answer is Sonarly's envelope ``{"success", "data", "error", "traceId"}`` with a fresh
trace id. Checks run in this order: bearer key (missing or wrong → 401), account group
(unknown → 404), permission (``campaigns:read`` to read, ``campaigns:execute`` to stop → 403),
campaign id (not a 24-hex ObjectId → 400 ``VALIDATION_ERROR``), campaign (unknown → 404).

Keys: `API_KEY` has both permissions, `READ_ONLY_KEY` only ``campaigns:read``,
`EXECUTE_ONLY_KEY` only ``campaigns:execute``. Account group: `ACCOUNT_GROUP_ID`.

State machine (the docs only show ``draft``; the rest is this sandbox's assumption, matching
the adapter's vocabulary): ``draft → scheduled → running ⇄ paused → completed``. A stop moves
``scheduled``, ``running`` or ``paused`` to ``stopped`` and answers 200 with
``instancesStopped`` (the campaign's active outreach instances, 0 when scheduled); any other
status (``draft``, ``stopped``, ``completed``, or one set by hand) answers 409 ``CONFLICT``.

Seeded campaigns (account group ``64f0c0ffee00000000000001``):

========================  ===========  ================================  =====  ================
id                        status       name                              leads  active instances
========================  ===========  ================================  =====  ================
65f1a0c0e4b0a1b2c3d4e501  running      Spring promo outreach (wrong list)  1200  840
65f1a0c0e4b0a1b2c3d4e502  scheduled    Webinar invite, wave 2              450  0
65f1a0c0e4b0a1b2c3d4e503  completed    Q1 reactivation                     300  0
65f1a0c0e4b0a1b2c3d4e504  stopped      Trial follow-up (halted)            150  0
65f1a0c0e4b0a1b2c3d4e505  draft        New sequence (draft)                  0  0
65f1a0c0e4b0a1b2c3d4e506  paused       Partner newsletter outreach         600  410
65f1a0c0e4b0a1b2c3d4e507  running      Demo follow-ups (spare)              80  35
========================  ===========  ================================  =====  ================
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.sandbox.base import ProviderSimulator, SandboxCampaign

API_KEY = "sk_test_sonarly_sandbox_full"
READ_ONLY_KEY = "sk_test_sonarly_sandbox_readonly"
EXECUTE_ONLY_KEY = "sk_test_sonarly_sandbox_execonly"
ACCOUNT_GROUP_ID = "64f0c0ffee00000000000001"

READ = "campaigns:read"
EXECUTE = "campaigns:execute"
KEY_PERMISSIONS: dict[str, frozenset[str]] = {
    API_KEY: frozenset({READ, EXECUTE}),
    READ_ONLY_KEY: frozenset({READ}),
    EXECUTE_ONLY_KEY: frozenset({EXECUTE}),
}

STOPPABLE = frozenset({"scheduled", "running", "paused"})

RUNNING_ID = "65f1a0c0e4b0a1b2c3d4e501"
SCHEDULED_ID = "65f1a0c0e4b0a1b2c3d4e502"
COMPLETED_ID = "65f1a0c0e4b0a1b2c3d4e503"
STOPPED_ID = "65f1a0c0e4b0a1b2c3d4e504"
DRAFT_ID = "65f1a0c0e4b0a1b2c3d4e505"
PAUSED_ID = "65f1a0c0e4b0a1b2c3d4e506"
SPARE_RUNNING_ID = "65f1a0c0e4b0a1b2c3d4e507"

_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
_ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "UPSTREAM_ERROR",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
_CREATED = "2024-03-13T09:00:00.000Z"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def envelope(
    status: int, data: Any = None, *, code: str | None = None, message: str = "", details: Any = None
) -> JSONResponse:
    """Sonarly's envelope with a fresh trace id: success with `data`, or an error."""
    error = (
        None
        if status < 400
        else {"code": code or _ERROR_CODES.get(status, "ERROR"), "message": message, "details": details}
    )
    body = {
        "success": status < 400,
        "data": data if status < 400 else None,
        "error": error,
        "traceId": secrets.token_hex(12),
    }
    return JSONResponse(body, status_code=status)


class SonarlySimulator(ProviderSimulator):
    """Sonarly's campaign read and stop routes, its auth and its campaign states."""

    name = "sonarly"

    read_wraps_campaign: bool = True
    """The read answers ``data: {"campaign": {…}}`` (like the stop); False answers ``data: {…}``."""

    def routes(self) -> list[BaseRoute]:
        """The account list, the campaign read and the stop."""
        return [
            Route("/v1/accounts", self.list_accounts, methods=["GET"]),
            Route("/v1/accounts/{group}/campaigns/{campaign_id}", self.read, methods=["GET"]),
            Route("/v1/accounts/{group}/campaigns/{campaign_id}/stop", self.stop, methods=["POST"]),
        ]

    def seed_campaigns(self) -> list[SandboxCampaign]:
        """Well-known ids, one per interesting status (see the module docstring)."""

        def campaign(
            suffix: str, name: str, state: str, leads: int, active: int, started: bool
        ) -> SandboxCampaign:
            return SandboxCampaign(
                id=f"65f1a0c0e4b0a1b2c3d4e5{suffix}",
                name=name,
                state=state,
                size=leads,
                extra={
                    "activeInstances": active,
                    "startedAt": "2024-03-14T08:30:00.000Z" if started else None,
                },
            )

        return [
            campaign("01", "Spring promo outreach (wrong list)", "running", 1200, 840, True),
            campaign("02", "Webinar invite, wave 2", "scheduled", 450, 0, False),
            campaign("03", "Q1 reactivation", "completed", 300, 0, True),
            campaign("04", "Trial follow-up (halted)", "stopped", 150, 0, True),
            campaign("05", "New sequence (draft)", "draft", 0, 0, False),
            campaign("06", "Partner newsletter outreach", "paused", 600, 410, True),
            campaign("07", "Demo follow-ups (spare)", "running", 80, 35, True),
        ]

    def account_values(self, base_url: str) -> dict[str, Any]:
        """Sandbox key (both permissions), account group and URL."""
        return {"api_key": API_KEY, "account_group_id": ACCOUNT_GROUP_ID, "base_url": base_url}

    def error_response(self, status: int, message: str) -> Response:
        """Sonarly's error envelope for an HTTP error."""
        return envelope(status, message=message)

    # ----- routes ---------------------------------------------------------------------------

    def _guard(self, request: Request, permission: str | None) -> Response | None:
        """Auth, account group and permission, in the real API's order; None when all pass."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        granted = KEY_PERMISSIONS.get(key.strip()) if scheme.lower() == "bearer" else None
        if granted is None:
            return envelope(401, message="Invalid or missing API key")
        group = request.path_params.get("group")
        if group is not None and group != ACCOUNT_GROUP_ID:
            return envelope(404, message="Account group not found")
        if permission is not None and permission not in granted:
            return envelope(403, message=f"Missing required permission: {permission}")
        return None

    def _campaign(self, request: Request) -> SandboxCampaign | Response:
        campaign_id = request.path_params["campaign_id"]
        if not _OBJECT_ID.fullmatch(campaign_id):
            return envelope(
                400,
                message="Request validation failed",
                details="campaignId must be a 24-character hexadecimal ObjectId",
            )
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            return envelope(404, message="Campaign not found")
        return campaign

    @staticmethod
    def campaign_json(campaign: SandboxCampaign) -> dict[str, Any]:
        """A campaign as Sonarly's API shows it."""
        extra = campaign.extra
        return {
            "id": campaign.id,
            "name": campaign.name,
            "description": extra.get("description", ""),
            "status": campaign.state,
            "selectedLeadCount": campaign.size,
            "includeConversationHistory": True,
            "autoCancelOnMessageReceived": True,
            "outreachLanguage": "en",
            "createdAt": extra.get("createdAt", _CREATED),
            "updatedAt": extra.get("updatedAt", _CREATED),
            "startedAt": extra.get("startedAt"),
            "rateLimitedUntil": None,
        }

    async def list_accounts(self, request: Request) -> Response:
        """The one sandbox account group."""
        denied = self._guard(request, None)
        if denied is not None:
            return denied
        return envelope(200, [{"id": ACCOUNT_GROUP_ID, "name": "Sandbox account group"}])

    async def read(self, request: Request) -> Response:
        """Read one campaign."""
        denied = self._guard(request, READ)
        if denied is not None:
            return denied
        found = self._campaign(request)
        if isinstance(found, Response):
            return found
        shown = self.campaign_json(found)
        return envelope(200, {"campaign": shown} if self.read_wraps_campaign else shown)

    async def stop(self, request: Request) -> Response:
        """Stop a scheduled, running or paused campaign; 409 for any other status."""
        denied = self._guard(request, EXECUTE)
        if denied is not None:
            return denied
        found = self._campaign(request)
        if isinstance(found, Response):
            return found
        if found.state not in STOPPABLE:
            return envelope(409, message=f"Campaign is {found.state} and cannot be stopped")
        # Campaigns created through the control API carry no count: assume every unsent lead is active.
        raw_active = found.extra.get("activeInstances", max(found.size - found.sent, 0))
        instances = raw_active if isinstance(raw_active, int) and found.state != "scheduled" else 0
        found.state = "stopped"
        found.extra["activeInstances"] = 0
        found.extra["updatedAt"] = _now()
        return envelope(200, {"campaign": self.campaign_json(found), "instancesStopped": instances})
