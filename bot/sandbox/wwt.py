"""Simulator of Telco WWT's One API (seed 003): JWT login, campaign read and campaign stop.

Routes (relative to the mount path ``/wwt``):

``POST /api/auth/login``               ``{"api_key": …}`` → ``{"bearer": <JWT>}``; a wrong key → 401
``POST /api/auth/refresh``             a valid bearer → a new ``{"bearer": …}`` (the old one is revoked)
``GET  /api/campaigns/{id}``           ``{"data": {campaign}}``
``PUT|PATCH /api/campaigns/{id}/stop`` moderation/scheduled/sending/paused → ``stopped``; else 422

Auth failures (no, unknown, revoked or expired token; wrong key at login) answer 401
``{"message": "Unauthenticated."}``. The One API is a Laravel application (its 422 is Laravel's
``{"message", "errors"}``), and that is Laravel's own 401 body; WWT documents no other.
Unknown or non-numeric ids answer 404 ``{"message": "Campaign not found.", "errors": []}``.

Tokens are JWT-shaped (header.payload.signature, base64url JSON, HMAC-SHA256 with a key of
this instance) with ``iat``/``exp`` claims. Switches on the instance:

``token_lifetime``    seconds from issue to ``exp`` (default 3600; negative issues expired tokens)
``token_has_exp``     False issues tokens without ``exp`` (they never expire here)
``clock_offset``      seconds added to this simulator's clock (makes issued tokens expire)
``put_not_allowed``   True makes ``PUT …/stop`` answer 405 (Allow: PATCH), as Laravel does
``revoke_tokens()``   forgets every issued token: the next API call answers 401

Seeded campaigns (sandbox API key ``test_SANDBOX0WWT0KEY0000000000``):

========  ==========  =====================================================
id        status      name
========  ==========  =====================================================
53651994  sending     Spring sale RCS (wrong segment) — sent 8,200, delivered 7,900
53651995  scheduled   Weekend price drop RCS
53651996  done        Onboarding carousel — sent 12,000, delivered 11,450
53651997  stopped     Flash sale (stopped) — sent 1,300, delivered 1,200
53651998  creation    Draft: loyalty points
53651999  spam        Crypto giveaway (rejected in moderation)
53652000  moderation  Black Friday teaser
53652001  paused      Cart reminder RCS — sent 2,100, delivered 1,980
53652002  sending     New store opening (spare) — sent 400, delivered 350
========  ==========  =====================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.sandbox.base import ProviderSimulator, SandboxCampaign

API_KEY = "test_SANDBOX0WWT0KEY0000000000"
"""The sandbox account's API key (WWT keys start with ``live_`` or ``test_``)."""

STOPPABLE = frozenset({"moderation", "scheduled", "sending", "paused"})
UNAUTHENTICATED = {"message": "Unauthenticated."}
STOP_422_MESSAGE = (
    "Invalid campaign status. The campaign must be in one of following status to be able to stop: "
    '"scheduled", "sending", "paused", "moderation"'
)

_SENDER = "WWT Sandbox Agent"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


class WwtSimulator(ProviderSimulator):
    """Telco WWT's login, campaign read and campaign stop, with JWTs that expire."""

    name = "wwt"
    new_campaign_state = "sending"

    def __init__(self) -> None:
        self.token_lifetime: float = 3600.0
        self.token_has_exp = True
        self.clock_offset = 0.0
        self.put_not_allowed = False
        self._signing_key = secrets.token_bytes(32)
        self._live_tokens: set[str] = set()
        super().__init__()

    def seed(self) -> None:
        """Seeded campaigns, no calls, no faults, no tokens, default switches."""
        super().seed()
        self.token_lifetime = 3600.0
        self.token_has_exp = True
        self.clock_offset = 0.0
        self.put_not_allowed = False
        self._live_tokens = set()

    def now(self) -> float:
        """This simulator's wall clock (epoch seconds), shifted by `clock_offset`."""
        return time.time() + self.clock_offset

    # ----- what a simulator declares -----------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Login, refresh, campaign read and stop."""
        return [
            Route("/api/auth/login", self.login, methods=["POST"]),
            Route("/api/auth/refresh", self.refresh, methods=["POST"]),
            Route("/api/campaigns/{campaign_id}", self.read, methods=["GET"]),
            Route("/api/campaigns/{campaign_id}/stop", self.stop, methods=["PUT", "PATCH"]),
        ]

    def seed_campaigns(self) -> list[SandboxCampaign]:
        """Well-known ids, one per status (see the module docstring)."""

        def campaign(
            cid: int,
            name: str,
            state: str,
            sent: int = 0,
            delivered: int = 0,
            price: float = 0.0,
            sms: int = 0,
        ) -> SandboxCampaign:
            created = 1_715_670_000 + (cid - 53_651_994) * 3600
            started = state not in ("creation", "spam", "moderation", "scheduled")
            finished = state in ("stopped", "done")
            return SandboxCampaign(
                id=str(cid),
                name=f"RCS api campaign / {_stamp(created)} — {name}",
                state=state,
                kind="rcs",
                size=max(sent, 1000),
                sent=sent,
                delivered=delivered,
                price=price,
                extra={
                    "sender": _SENDER,
                    "created_at": _stamp(created),
                    "start_at": _stamp(created + 600),
                    "real_start_at": _stamp(created + 610) if started else None,
                    "finished_at": _stamp(created + 7200) if finished else None,
                    "sms_sent": sms,
                    "sms_delivered": sms,
                },
            )

        return [
            campaign(53651994, "Spring sale RCS (wrong segment)", "sending", 8200, 7900, 412.5, 120),
            campaign(53651995, "Weekend price drop RCS", "scheduled", price=150.0),
            campaign(53651996, "Onboarding carousel", "done", 12000, 11450, 600.0, 300),
            campaign(53651997, "Flash sale (stopped)", "stopped", 1300, 1200, 65.0),
            campaign(53651998, "Draft: loyalty points", "creation"),
            campaign(53651999, "Crypto giveaway (rejected in moderation)", "spam"),
            campaign(53652000, "Black Friday teaser", "moderation", price=88.2),
            campaign(53652001, "Cart reminder RCS", "paused", 2100, 1980, 105.0),
            campaign(53652002, "New store opening (spare)", "sending", 400, 350, 20.0),
        ]

    def account_values(self, base_url: str) -> dict[str, Any]:
        """The sandbox API key and URL."""
        return {"api_key": API_KEY, "base_url": base_url}

    def error_response(self, status: int, message: str) -> Response:
        """The One API's error body: Laravel's ``{"message", "errors"}``."""
        return JSONResponse({"message": message, "errors": []}, status_code=status)

    # ----- tokens ---------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A signed JWT for the sandbox account, live until revoked or expired."""
        now = self.now()
        jti = secrets.token_hex(8)
        claims: dict[str, Any] = {"iss": "one-api-sandbox", "sub": "sandbox", "iat": int(now), "jti": jti}
        if self.token_has_exp:
            claims["exp"] = int(now + self.token_lifetime)
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        self._live_tokens.add(jti)
        return f"{header}.{payload}.{_b64(signature)}"

    def revoke_tokens(self) -> None:
        """Forget every issued token: the next API call with any of them answers 401."""
        self._live_tokens.clear()

    def token_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this simulator issued and still accepts, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header, payload, signature = parts
        expected = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(signature), expected):
                return None
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("jti") not in self._live_tokens:
            return None
        exp = claims.get("exp")
        if isinstance(exp, int | float) and self.now() >= exp:
            return None
        return claims

    def _authorized(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.token_claims(token.strip())

    # ----- routes ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """API key → JWT."""
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        key = payload.get("api_key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            return JSONResponse(
                {
                    "message": "The api key field is required.",
                    "errors": {"api_key": ["The api key field is required."]},
                },
                status_code=422,
            )
        if not hmac.compare_digest(key.encode(), API_KEY.encode()):
            return JSONResponse(UNAUTHENTICATED, status_code=401)
        return JSONResponse({"bearer": self.issue_token()})

    async def refresh(self, request: Request) -> Response:
        """A valid JWT → a new one; the old one stops working."""
        claims = self._authorized(request)
        if claims is None:
            return JSONResponse(UNAUTHENTICATED, status_code=401)
        self._live_tokens.discard(claims.get("jti"))
        return JSONResponse({"bearer": self.issue_token()})

    def _campaign(self, request: Request) -> SandboxCampaign | None:
        raw = request.path_params["campaign_id"]
        if not raw.isascii() or not raw.isdigit():
            return None
        return self.campaigns.get(str(int(raw)))

    async def read(self, request: Request) -> Response:
        """``GET /api/campaigns/{id}``."""
        if self._authorized(request) is None:
            return JSONResponse(UNAUTHENTICATED, status_code=401)
        campaign = self._campaign(request)
        if campaign is None:
            return self.error_response(404, "Campaign not found.")
        return JSONResponse({"data": self.campaign_json(campaign)})

    async def stop(self, request: Request) -> Response:
        """``PUT|PATCH /api/campaigns/{id}/stop``: final ``stopped`` for a stoppable campaign, else 422."""
        if request.method == "PUT" and self.put_not_allowed:
            # Routing answers before the auth middleware runs, as in Laravel.
            message = (
                f"The PUT method is not supported for route {request.url.path.lstrip('/')}. Supported methods: PATCH."
            )
            return JSONResponse({"message": message}, status_code=405, headers={"Allow": "PATCH"})
        if self._authorized(request) is None:
            return JSONResponse(UNAUTHENTICATED, status_code=401)
        campaign = self._campaign(request)
        if campaign is None:
            return self.error_response(404, "Campaign not found.")
        if campaign.state not in STOPPABLE:
            return JSONResponse({"message": STOP_422_MESSAGE, "errors": [{"status": campaign.state}]}, status_code=422)
        campaign.state = "stopped"
        campaign.extra["finished_at"] = _stamp(self.now())
        return JSONResponse({"data": self.campaign_json(campaign)})

    @staticmethod
    def campaign_json(campaign: SandboxCampaign) -> dict[str, Any]:
        """A campaign in the documented answer shape."""
        extra = campaign.extra
        sms = extra.get("sms_sent", 0)
        sms_delivered = extra.get("sms_delivered", 0)
        return {
            "id": int(campaign.id) if campaign.id.isdigit() else campaign.id,
            "name": campaign.name,
            "sender": extra.get("sender", _SENDER),
            "status": campaign.state,
            "message_type": campaign.kind or "rcs",
            "start_at": extra.get("start_at"),
            "real_start_at": extra.get("real_start_at"),
            "finished_at": extra.get("finished_at"),
            "created_at": extra.get("created_at"),
            "statistics": {"delivered": campaign.delivered, "sent": campaign.sent},
            "calculated_price": campaign.price,
            "alternative_channels": {"sms": {"statistic": {"delivered": sms_delivered, "sent": sms}}},
        }
