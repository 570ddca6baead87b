"""Simulator of Altcraft's campaign API, v72 (seed 004): deactivate, get_status and get.

Every answer is Altcraft's envelope ``{"data": …, "error": N, "error_text": "…"}`` on HTTP 200,
including failures, as Altcraft does:

- ``token`` in the JSON body missing or wrong → ``error 401`` ("API token required" / "Invalid
  API token"); the read-only token may read but gets ``error 403`` ("No access") on deactivate.
- ``id`` missing or not a positive integer (an int or a numeric string such as ``"15"``, as the
  docs' own example sends) → ``error 400`` ("Incorrect request: id"); a body that is not a JSON
  object → ``error 400`` ("Incorrect request").
- An unknown id → ``error 400`` with ``error_text`` "Campaign not found". The docs name no
  not-found code; 400 is the documented "incorrect request", and the adapter keys on the text.
- ``abort_if_running`` may be a bool or "true"/"false" (the docs' example sends a string);
  default false, as documented.

``campaigns/deactivate`` moves an ``Active`` campaign to ``Inactive`` and records in the campaign's
``extra`` whether its queued messages were dropped (``abort_if_running`` true) or are still sent.
Deactivating an ``Inactive`` or ``Completed`` campaign answers success and changes nothing (the
docs do not say; this is the sandbox's assumption, and the adapter settles either way by reading).

Seeded campaigns (state, type, queued messages):

=====  ==========  ==========  ============================================
id     state       type        name
=====  ==========  ==========  ============================================
101    Active      broadcast   Black Friday blast (wrong segment), 12 000 queued
102    Active      regular     Daily weather notification, 3 500 queued
103    Active      trigger     Abandoned cart trigger, 40 queued
104    Completed   broadcast   Spring newsletter (finished)
105    Inactive    broadcast   Old promo (stopped), deactivated earlier
106    Active      broadcast   Spare active campaign, 900 queued
=====  ==========  ==========  ============================================

Sandbox tokens: ``sandbox-altcraft-token`` (full rights), ``sandbox-altcraft-readonly`` (reads only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.sandbox.base import ProviderSimulator, SandboxCampaign

# Sandbox-only credentials, published in the README on purpose.
TOKEN = "sandbox-altcraft-token"  # noqa: S105
READONLY_TOKEN = "sandbox-altcraft-readonly"  # noqa: S105
API = "/api/v1.1"

ACTIVE = "Active"
INACTIVE = "Inactive"
COMPLETED = "Completed"
# States a campaign may be given through the control API that also mean "running".
_ACTIVE_ALIASES = frozenset({"active", "running", "sending"})


def envelope(data: Any = None, error: int = 0, error_text: str = "Successful operation") -> JSONResponse:
    """Altcraft's answer shape; failures too are HTTP 200 with ``error`` ≠ 0."""
    return JSONResponse({"data": data, "error": error, "error_text": error_text})


class AltcraftSimulator(ProviderSimulator):
    """``POST /api/v1.1/campaigns/{deactivate,get_status,get}`` with Altcraft's envelope."""

    name = "altcraft"
    new_campaign_state = "Active"

    def routes(self) -> list[BaseRoute]:
        """The stop route and the two read routes."""
        return [
            Route(f"{API}/campaigns/deactivate", self.deactivate, methods=["POST"]),
            Route(f"{API}/campaigns/get_status", self.get_status, methods=["POST"]),
            Route(f"{API}/campaigns/get", self.get, methods=["POST"]),
        ]

    def seed_campaigns(self) -> list[SandboxCampaign]:
        """Well-known ids, one per interesting state and type."""
        return [
            SandboxCampaign(
                "101",
                "Black Friday blast (wrong segment)",
                ACTIVE,
                kind="broadcast",
                size=250_000,
                sent=80_000,
                extra={"channel": "email", "queued": 12_000},
            ),
            SandboxCampaign(
                "102", "Daily weather notification", ACTIVE, kind="regular", extra={"channel": "push", "queued": 3_500}
            ),
            SandboxCampaign(
                "103", "Abandoned cart trigger", ACTIVE, kind="trigger", extra={"channel": "email", "queued": 40}
            ),
            SandboxCampaign(
                "104",
                "Spring newsletter",
                COMPLETED,
                kind="broadcast",
                size=60_000,
                sent=60_000,
                extra={"channel": "email", "queued": 0},
            ),
            SandboxCampaign(
                "105",
                "Old promo (stopped)",
                INACTIVE,
                kind="broadcast",
                size=10_000,
                sent=4_000,
                extra={"channel": "sms", "queued": 0, "abort_if_running": True},
            ),
            SandboxCampaign(
                "106",
                "Spare active campaign",
                ACTIVE,
                kind="broadcast",
                size=20_000,
                sent=1_000,
                extra={"channel": "email", "queued": 900},
            ),
        ]

    def account_values(self, base_url: str) -> dict[str, Any]:
        """Sandbox token and URL (abort_if_running left to the adapter's default)."""
        return {"token": TOKEN, "base_url": base_url}

    def error_response(self, status: int, message: str) -> Response:
        """Altcraft's envelope with the HTTP status as the error code."""
        return JSONResponse({"data": None, "error": status, "error_text": message}, status_code=status)

    # ----- request checks ---------------------------------------------------------------------

    async def _payload(self, request: Request) -> dict[str, Any] | None:
        try:
            payload = await request.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _auth(self, payload: dict[str, Any]) -> tuple[str | None, Response | None]:
        """The token's rights ("full" or "read"), or Altcraft's 401 answer."""
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            return None, envelope(None, 401, "API token required")
        if token == TOKEN:
            return "full", None
        if token == READONLY_TOKEN:
            return "read", None
        return None, envelope(None, 401, "Invalid API token")

    def _campaign(self, payload: dict[str, Any]) -> tuple[SandboxCampaign | None, Response | None]:
        raw = payload.get("id")
        value: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
            value = int(raw.strip())
        if value is None or value <= 0:
            return None, envelope(None, 400, "Incorrect request: id")
        campaign = self.campaigns.get(str(value))
        if campaign is None:
            return None, envelope(None, 400, "Campaign not found")
        return campaign, None

    async def _checked(
        self, request: Request, *, needs: str
    ) -> tuple[SandboxCampaign | None, dict[str, Any], Response | None]:
        payload = await self._payload(request)
        if payload is None:
            return None, {}, envelope(None, 400, "Incorrect request")
        rights, failure = self._auth(payload)
        if failure is not None:
            return None, payload, failure
        campaign, failure = self._campaign(payload)
        if failure is not None:
            return None, payload, failure
        if needs == "full" and rights != "full":
            return None, payload, envelope(None, 403, "No access")
        return campaign, payload, None

    # ----- routes -----------------------------------------------------------------------------

    async def deactivate(self, request: Request) -> Response:
        """Deactivate a campaign; with ``abort_if_running`` its queued messages are dropped."""
        campaign, payload, failure = await self._checked(request, needs="full")
        if failure is not None or campaign is None:
            return failure or envelope(None, 400, "Incorrect request")
        abort = _bool(payload.get("abort_if_running", False))
        if abort is None:
            return envelope(None, 400, "Incorrect request: abort_if_running")
        if _is_active(campaign):
            queued = int(campaign.extra.get("queued", 0))
            campaign.state = INACTIVE
            campaign.extra["abort_if_running"] = abort
            campaign.extra["deactivated_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if abort:
                campaign.extra["queued_dropped"] = queued
                campaign.extra["queued"] = 0
            else:
                campaign.extra["queued_still_sent"] = queued
        return envelope(None)

    async def get_status(self, request: Request) -> Response:
        """``data: {is_active, is_completed, status}``."""
        campaign, _, failure = await self._checked(request, needs="read")
        if failure is not None or campaign is None:
            return failure or envelope(None, 400, "Incorrect request")
        return envelope(_status_data(campaign))

    async def get(self, request: Request) -> Response:
        """The campaign's details, in the documented shape of ``campaigns/get``."""
        campaign, _, failure = await self._checked(request, needs="read")
        if failure is not None or campaign is None:
            return failure or envelope(None, 400, "Incorrect request")
        channel = str(campaign.extra.get("channel", "email"))
        data = {
            "id": int(campaign.id) if campaign.id.isdigit() else campaign.id,
            "name": campaign.name,
            "description": "",
            "type": campaign.kind or "broadcast",
            "updated_user": "sandbox",
            "update_time": "2024-05-20T09:17:53.362Z",
            **_status_data(campaign),
            "data_id": 1,
            "data_type": "list",
            "content": [
                {
                    "subject": campaign.name,
                    "from_email": "",
                    "from_name": "",
                    "replyto_email": "",
                    "replyto_name": "",
                    "message_id": 21,
                }
            ],
            "subid": "",
            "resource_id": 26,
            "channel": channel,
            "for_confirm": False,
        }
        return envelope(data)


def _is_active(campaign: SandboxCampaign) -> bool:
    return campaign.state.lower() in _ACTIVE_ALIASES


def _status_data(campaign: SandboxCampaign) -> dict[str, Any]:
    completed = campaign.state.lower() == COMPLETED.lower()
    active = _is_active(campaign)
    status = ACTIVE if active else (COMPLETED if completed else campaign.state)
    return {"is_active": active, "is_completed": completed, "status": status}


def _bool(value: Any) -> bool | None:
    """A JSON bool or its string form ("true"/"false"); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
