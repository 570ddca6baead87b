"""Telco WWT (RCS) adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.core.models import CampaignPhase, OutcomeStatus
from bot.httpserver import RunningServer, start_server
from bot.providers.base import CampaignIdError, HttpOptions, PreviewUnavailable
from bot.providers.limits import LocalLimiter
from bot.providers.wwt import (
    ASSUMED_TOKEN_LIFETIME,
    DEFAULT_BASE_URL,
    WwtAccount,
    WwtAdapter,
    campaign_info,
    jwt_claims,
    phase_of,
)
from bot.sandbox.base import Fault, FaultKind, RecordedCall
from bot.sandbox.wwt import API_KEY, STOP_422_MESSAGE, WwtSimulator

FAST = HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5)

SENDING = "53651994"
SCHEDULED = "53651995"
DONE = "53651996"
STOPPED = "53651997"
CREATION = "53651998"
SPAM = "53651999"
MODERATION = "53652000"
PAUSED = "53652001"
SPARE = "53652002"

S = OutcomeStatus
UNAUTHENTICATED = json.dumps({"message": "Unauthenticated."})


# ----- fixtures ------------------------------------------------------------------------------


# One simulator and one server for the whole module (uvicorn takes 0.2 s to stop), reset before
# every test; the tests that use them run in the module's event loop.
sandbox = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sim_server() -> AsyncIterator[tuple[WwtSimulator, RunningServer]]:
    sim = WwtSimulator()
    server = await start_server(sim)
    await _no_nagle(server)
    yield sim, server
    sim.release_held()
    await server.stop()


async def _no_nagle(server: RunningServer) -> None:
    """Set TCP_NODELAY on the listening socket (accepted sockets inherit it on Linux).

    `start_server` creates its socket with proto 0, so asyncio never sets TCP_NODELAY on the
    connections; uvicorn's second write of every answer then waits ~40 ms for a delayed ACK.
    One awaited request makes sure uvicorn is serving before the socket is reached.
    """
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.get("/api/campaigns/1")
    for listener in server.server.servers:
        for sock in listener.sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest_asyncio.fixture(loop_scope="module")
async def sim(sim_server: tuple[WwtSimulator, RunningServer]) -> AsyncIterator[WwtSimulator]:
    simulator = sim_server[0]
    simulator.release_held()
    simulator.seed()
    yield simulator
    simulator.release_held()


@pytest.fixture
def server(sim_server: tuple[WwtSimulator, RunningServer]) -> RunningServer:
    return sim_server[1]


Factory = Callable[..., WwtAdapter]


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: WwtSimulator, server: RunningServer) -> AsyncIterator[Factory]:
    adapters: list[WwtAdapter] = []

    def factory(options: HttpOptions = FAST, **overrides: Any) -> WwtAdapter:
        values = {**sim.account_values(server.url), **overrides}
        # A plain-HTTP transport skips loading the CA bundle (60 ms per adapter); the sandbox is http.
        options = dataclasses.replace(options, transport=httpx.AsyncHTTPTransport(verify=False))
        adapter = WwtAdapter("sandbox", WwtAccount(**values), options)
        adapter.limiter = LocalLimiter("wwt:test", 1000, 16)  # the declared limits are not under test here
        adapters.append(adapter)
        return adapter

    yield factory
    for adapter in adapters:
        await adapter.aclose()


@pytest.fixture
def adapter(make: Factory) -> WwtAdapter:
    return make()


def stops(sim: WwtSimulator) -> list[RecordedCall]:
    return sim.calls_to("/stop")


def logins(sim: WwtSimulator) -> list[RecordedCall]:
    return sim.calls_to("/api/auth/login")


def reads(sim: WwtSimulator) -> list[RecordedCall]:
    return [c for c in sim.calls if c.method == "GET"]


def api_sequence(sim: WwtSimulator) -> list[str]:
    """Calls other than logins, as 'METHOD kind' ('PUT stop', 'GET read')."""
    return [
        f"{c.method} {'stop' if c.path.endswith('/stop') else 'read'}"
        for c in sim.calls
        if c.path.startswith("/api/campaigns")
    ]


def bearer(call: RecordedCall) -> str:
    return call.headers["authorization"].removeprefix("Bearer ")


def shift_clock(adapter: WwtAdapter, seconds: float) -> None:
    real = adapter.clock
    adapter.clock = lambda: real() + seconds


# ----- facts, account, ids -------------------------------------------------------------------


def test_declares_its_provider() -> None:
    assert WwtAdapter.name == "wwt"
    assert WwtAdapter.display_name == "Telco WWT (RCS)"
    assert set(WwtAdapter.aliases) == {"telcowwt", "rcs"}
    assert WwtAdapter.env_prefix == "WWT_"
    assert WwtAdapter.env_modifiers == frozenset({"base_url"})
    assert WwtAdapter.account_model is WwtAccount
    assert WwtAdapter.repeat_safe is False
    assert WwtAdapter.has_preview is True
    assert "cannot be resumed" in WwtAdapter.stop_meaning
    assert 0 < WwtAdapter.rate_per_second <= 10 and 0 < WwtAdapter.max_in_flight <= 4


def test_account_fields_make_the_env_names_and_hide_the_key() -> None:
    assert set(WwtAccount.model_fields) == {"api_key", "base_url"}
    account = WwtAccount(api_key="live_secret_key_123")
    assert "live_secret_key_123" not in repr(account) and "live_secret_key_123" not in str(account)
    adapter = WwtAdapter("prod", account)
    assert adapter.base_url == DEFAULT_BASE_URL == "https://one-api.wwt.world"
    assert adapter.api_host == "one-api.wwt.world"
    assert "live_secret_key_123" not in repr(adapter)
    assert WwtAdapter("x", WwtAccount(api_key="k", base_url="https://eu.example.com/")).base_url == (
        "https://eu.example.com"
    )


@pytest.mark.parametrize("fields", [{"api_key": "   "}, {}, {"api_key": "k", "base_url": "ftp://x"}])
def test_account_rejects_bad_settings(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WwtAccount(**fields)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("53651994", "53651994"), (" 42 ", "42"), ("007", "7"), ("999999999999999999", None)],
)
def test_parse_campaign_id_accepts_positive_integers(raw: str, expected: str | None) -> None:
    assert WwtAdapter.parse_campaign_id(raw) == (expected or raw.strip())


@pytest.mark.parametrize(
    "raw", ["", " ", "0", "000", "-5", "+5", "abc", "1.5", "1e6", "12 34", "١٢٣", "²", "1234567890123456789"]
)
def test_parse_campaign_id_rejects_everything_else(raw: str) -> None:
    with pytest.raises(CampaignIdError, match="Telco WWT campaign id"):
        WwtAdapter.parse_campaign_id(raw)


@given(st.text())
def test_parse_campaign_id_gives_a_positive_int_string_or_campaign_id_error(raw: str) -> None:
    try:
        parsed = WwtAdapter.parse_campaign_id(raw)
    except CampaignIdError:
        return
    assert parsed.isdigit() and int(parsed) > 0 and str(int(parsed)) == parsed


@given(st.text())
def test_jwt_claims_never_raises(token: str) -> None:
    assert isinstance(jwt_claims(token), dict)


def test_phase_vocabulary() -> None:
    expected = {
        "creation": CampaignPhase.NOT_STOPPABLE,
        "spam": CampaignPhase.NOT_STOPPABLE,
        "moderation": CampaignPhase.ACTIVE,
        "scheduled": CampaignPhase.ACTIVE,
        "sending": CampaignPhase.ACTIVE,
        "paused": CampaignPhase.ACTIVE,
        "stopped": CampaignPhase.STOPPED,
        "done": CampaignPhase.COMPLETED,
        "Sending ": CampaignPhase.ACTIVE,
        "archived": CampaignPhase.UNKNOWN,
    }
    assert {status: phase_of(status) for status in expected} == expected
    assert phase_of(None) is CampaignPhase.UNKNOWN


def test_campaign_info_reads_statistics_objects_arrays_and_wrong_types() -> None:
    info = campaign_info(
        {
            "status": "sending",
            "statistics": [{"sent": 3, "delivered": 1}, {"sent": "4", "delivered": 2}, "x"],
            "calculated_price": "12.5",
            "alternative_channels": {"sms": {"statistics": {"sent": 2}}},
        },
        "7",
    )
    assert (info.id, info.sent, info.delivered, info.price) == ("7", 7, 3, 12.5)
    assert info.extra == {"sms_fallback_sent": 2}
    odd = campaign_info({"id": [1], "name": {"x": 1}, "statistics": "lots", "calculated_price": True}, "8")
    assert (odd.id, odd.name, odd.sent, odd.price, odd.phase) == (
        "8",
        None,
        None,
        None,
        CampaignPhase.UNKNOWN,
    )


# ----- stop: the happy path and the 422 family -----------------------------------------------


@sandbox
async def test_stop_sending_campaign_logs_in_stops_and_verifies(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified
    assert (outcome.provider, outcome.account, outcome.campaign_id) == ("wwt", "sandbox", SENDING)
    assert outcome.state_after == "stopped" and outcome.provider_status == "stopped"
    assert outcome.http_status == 200 and outcome.attempts == 1
    campaign = outcome.campaign
    assert campaign is not None
    assert (campaign.sent, campaign.delivered, campaign.price, campaign.kind) == (8200, 7900, 412.5, "rcs")
    assert campaign.phase is CampaignPhase.STOPPED
    assert "sent 8,200" in outcome.detail and "delivered 7,900" in outcome.detail and "price 412.5" in outcome.detail
    assert "now reports it stopped" in outcome.detail
    assert sim.campaigns[SENDING].state == "stopped"
    login = logins(sim)
    assert len(login) == 1 and login[0].json() == {"api_key": API_KEY}
    assert api_sequence(sim) == ["PUT stop", "GET read"]
    stop_call = stops(sim)[0]
    assert sim.token_claims(bearer(stop_call)) is not None


@sandbox
@pytest.mark.parametrize(
    ("campaign_id", "state", "status", "verified"),
    [
        (STOPPED, "stopped", S.ALREADY_STOPPED, True),
        (DONE, "done", S.ALREADY_COMPLETED, True),
        (CREATION, "creation", S.NOT_STOPPABLE, False),
        (SPAM, "spam", S.NOT_STOPPABLE, False),
    ],
)
async def test_422_is_settled_by_reading_the_campaign(
    sim: WwtSimulator,
    adapter: WwtAdapter,
    campaign_id: str,
    state: str,
    status: OutcomeStatus,
    verified: bool,
) -> None:
    outcome = await adapter.stop(campaign_id)

    assert outcome.status is status and outcome.verified is verified
    assert outcome.http_status == 422
    assert outcome.provider_message is not None and STOP_422_MESSAGE in outcome.provider_message
    assert outcome.state_before == outcome.state_after == outcome.provider_status == state
    assert outcome.campaign is not None and outcome.campaign.state == state
    assert api_sequence(sim) == ["PUT stop", "GET read"]
    assert sim.campaigns[campaign_id].state == state


@sandbox
async def test_422_for_a_campaign_the_read_calls_stoppable_is_a_provider_error_not_resent(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    body = json.dumps({"message": "Invalid campaign status", "errors": []})
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=422, body=body, match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.PROVIDER_ERROR
    assert outcome.provider_message == "Invalid campaign status" and outcome.http_status == 422
    assert outcome.state_after == "sending" and "may still be sending" in outcome.detail
    assert api_sequence(sim) == ["PUT stop", "GET read"]
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_422_with_a_failed_read_stays_not_stoppable_with_the_message(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, method="GET", times=None))

    outcome = await adapter.stop(CREATION)

    assert outcome.status is S.NOT_STOPPABLE
    assert outcome.http_status == 422 and STOP_422_MESSAGE in (outcome.provider_message or "")
    assert "reading the campaign to learn its status failed" in outcome.detail
    assert len(stops(sim)) == 1


@sandbox
async def test_422_with_an_unknown_status_is_not_stoppable_and_shows_it_raw(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    sim.campaigns[SENDING].state = "archived"

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.NOT_STOPPABLE
    assert outcome.state_after == "archived"
    assert outcome.campaign is not None and outcome.campaign.phase is CampaignPhase.UNKNOWN
    assert "'archived'" in outcome.detail and len(stops(sim)) == 1


@sandbox
@pytest.mark.parametrize(
    ("http", "body", "status", "message"),
    [
        (
            400,
            {"message": "The id must be an integer.", "errors": {"id": ["bad"]}},
            S.INVALID_REQUEST,
            'The id must be an integer. (errors: {"id":["bad"]})',
        ),
        (403, {"message": "This action is unauthorized."}, S.FORBIDDEN, "This action is unauthorized."),
        (404, {"message": "Not Found"}, S.NOT_FOUND, "Not Found"),
        (418, {"message": "I'm a teapot"}, S.INVALID_REQUEST, "I'm a teapot"),
        (302, {"message": "Moved"}, S.PROVIDER_ERROR, "Moved"),
    ],
)
async def test_definite_refusals_map_without_a_read_or_a_resend(
    sim: WwtSimulator,
    adapter: WwtAdapter,
    http: int,
    body: dict[str, Any],
    status: OutcomeStatus,
    message: str,
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=http, body=json.dumps(body), match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is status
    assert outcome.http_status == http and outcome.provider_message == message
    assert f"HTTP {http}" in outcome.detail and "Nothing was stopped" in outcome.detail
    assert api_sequence(sim) == ["PUT stop"]
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_unknown_campaign_is_not_found(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    outcome = await adapter.stop("1")

    assert outcome.status is S.NOT_FOUND and outcome.http_status == 404
    assert outcome.provider_message == "Campaign not found."
    assert "does not know campaign 1" in outcome.detail


@sandbox
async def test_an_invalid_id_sends_nothing(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    outcome = await adapter.stop("abc")
    assert outcome.status is S.INVALID_REQUEST and outcome.attempts == 0
    assert sim.calls == []


# ----- auth: login, renewal, 401 ---------------------------------------------------------------


@sandbox
async def test_wrong_key_is_unauthorized_and_no_stop_is_sent(sim: WwtSimulator, make: Factory) -> None:
    adapter = make(api_key="test_WRONG_KEY_0000")

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNAUTHORIZED
    assert outcome.http_status == 401 and outcome.provider_message == "Unauthenticated."
    assert "rejected the API key" in outcome.detail and "test_WRONG_KEY_0000" not in outcome.detail
    assert len(logins(sim)) == 1 and stops(sim) == []


@sandbox
async def test_the_jwt_is_cached_across_operations(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    await adapter.stop(SENDING)
    await adapter.stop(PAUSED)
    assert len(logins(sim)) == 1
    assert len({bearer(c) for c in sim.calls if c.path.startswith("/api/campaigns")}) == 1


@sandbox
async def test_expired_jwt_leads_to_exactly_one_login_and_a_successful_stop(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    await adapter.preview(SENDING)
    old = bearer(reads(sim)[0])
    lifetime = sim.token_lifetime
    sim.clock_offset = lifetime + 5  # the provider now rejects the token…
    shift_clock(adapter, lifetime + 5)  # …and our clock knows it has expired
    assert sim.token_claims(old) is None

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 1
    assert len(logins(sim)) == 2 and sim.calls_to("/api/auth/refresh") == []
    (stop_call,) = stops(sim)
    assert bearer(stop_call) != old and sim.token_claims(bearer(stop_call)) is not None


@sandbox
async def test_a_jwt_near_expiry_is_refreshed_not_logged_in_again(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    old = bearer(reads(sim)[0])
    shift_clock(adapter, sim.token_lifetime - 30)  # inside the renewal margin, not yet expired

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED
    assert len(logins(sim)) == 1
    (refresh,) = sim.calls_to("/api/auth/refresh")
    assert bearer(refresh) == old
    (stop_call,) = stops(sim)
    assert bearer(stop_call) != old and sim.token_claims(old) is None


@sandbox
async def test_a_failed_refresh_falls_back_to_one_login(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    shift_clock(adapter, sim.token_lifetime - 30)
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match="/api/auth/refresh"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED
    assert len(sim.calls_to("/api/auth/refresh")) == 1 and len(logins(sim)) == 2
    assert len(stops(sim)) == 1


@sandbox
async def test_a_jwt_without_exp_gets_the_assumed_lifetime(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.token_has_exp = False
    await adapter.preview(SENDING)
    assert "exp" not in jwt_claims(bearer(reads(sim)[0]))

    shift_clock(adapter, ASSUMED_TOKEN_LIFETIME / 2)
    await adapter.preview(SENDING)
    assert len(logins(sim)) == 1 and sim.calls_to("/api/auth/refresh") == []

    shift_clock(adapter, ASSUMED_TOKEN_LIFETIME)  # now 1.5 lifetimes after the login
    outcome = await adapter.stop(SENDING)
    assert outcome.status is S.STOPPED
    assert len(logins(sim)) == 2 and sim.calls_to("/api/auth/refresh") == []


@sandbox
async def test_a_401_on_stop_leads_to_one_login_and_one_repeated_stop(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    sim.revoke_tokens()  # the cached JWT still looks valid to us, but the provider refuses it

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified
    assert outcome.attempts == 2
    assert len(logins(sim)) == 2
    first, second = stops(sim)
    assert bearer(first) != bearer(second) and sim.token_claims(bearer(second)) is not None


@sandbox
async def test_a_401_that_persists_after_the_one_login_is_unauthorized(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=401, body=UNAUTHENTICATED, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNAUTHORIZED
    assert outcome.http_status == 401 and outcome.provider_message == "Unauthenticated."
    assert len(stops(sim)) == 2 and len(logins(sim)) == 2
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_a_401_on_stop_then_a_refused_login_is_unauthorized(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    sim.revoke_tokens()
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=401, body=UNAUTHENTICATED, match="/api/auth/login"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNAUTHORIZED and outcome.http_status == 401 and outcome.attempts == 1
    assert "refused the stop (HTTP 401) and logging in again failed" in outcome.detail
    assert len(stops(sim)) == 1 and sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_concurrent_stops_log_in_once(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=0.2, match="/api/auth/login"))
    ids = [SENDING, SCHEDULED, MODERATION, PAUSED, SPARE]

    outcomes = await asyncio.gather(*(adapter.stop(cid) for cid in ids))

    assert [o.status for o in outcomes] == [S.STOPPED] * 5
    assert len(logins(sim)) == 1 and len(stops(sim)) == 5


@sandbox
async def test_concurrent_401s_log_in_again_once(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    sim.revoke_tokens()
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=0.2, match="/api/auth/login"))
    ids = [SENDING, SCHEDULED, PAUSED]

    outcomes = await asyncio.gather(*(adapter.stop(cid) for cid in ids))

    assert [o.status for o in outcomes] == [S.STOPPED] * 3
    assert len(logins(sim)) == 2 and len(stops(sim)) == 6


@sandbox
@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(kind=FaultKind.STATUS, status=500, times=None), S.PROVIDER_ERROR),
        (Fault(kind=FaultKind.STATUS, status=429, retry_after=0, times=None), S.RATE_LIMITED),
        (Fault(kind=FaultKind.STATUS, status=403, body='{"message": "Key disabled"}'), S.FORBIDDEN),
        (Fault(kind=FaultKind.MALFORMED), S.PROVIDER_ERROR),
        (Fault(kind=FaultKind.MALFORMED, body='{"token": "abc.def.ghi"}'), S.PROVIDER_ERROR),
        (Fault(kind=FaultKind.MALFORMED, body='{"bearer": 12345}'), S.PROVIDER_ERROR),
        (Fault(kind=FaultKind.MALFORMED, body='{"bearer": "two words"}'), S.PROVIDER_ERROR),
        (Fault(kind=FaultKind.MALFORMED, body="[]"), S.PROVIDER_ERROR),
    ],
)
async def test_a_failed_login_means_no_stop(
    sim: WwtSimulator, adapter: WwtAdapter, fault: Fault, status: OutcomeStatus
) -> None:
    sim.add_fault(fault.model_copy(update={"match": "/api/auth/login"}))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is status and outcome.attempts == 0
    assert "could not log in" in outcome.detail and "the stop was not sent" in outcome.detail
    assert "abc.def.ghi" not in outcome.detail
    assert stops(sim) == [] and 1 <= len(logins(sim)) <= 3
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_a_login_without_answer_is_unreachable(sim: WwtSimulator, make: Factory) -> None:
    adapter = make(HttpOptions(timeout=0.3, deadline=1, preview_timeout=0.3))
    sim.add_fault(Fault(kind=FaultKind.TIMEOUT, match="/api/auth/login", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNREACHABLE and "login got no answer" in outcome.detail
    assert stops(sim) == []


@sandbox
async def test_nothing_listening_is_unreachable(make: Factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = make(base_url=f"http://127.0.0.1:{port}")

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNREACHABLE and "could not connect" in outcome.detail


# ----- stop: 405, doubts, retry safety ----------------------------------------------------------


@sandbox
async def test_put_405_falls_back_to_patch_and_remembers(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.put_not_allowed = True

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 2
    assert [c.method for c in stops(sim)] == ["PUT", "PATCH"]
    assert sim.campaigns[SENDING].state == "stopped"

    second = await adapter.stop(PAUSED)
    assert second.status is S.STOPPED and second.attempts == 1
    assert [c.method for c in stops(sim)] == ["PUT", "PATCH", "PATCH"]


@sandbox
async def test_405_to_put_and_patch_is_a_provider_error(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.put_not_allowed = True
    sim.add_fault(
        Fault(
            kind=FaultKind.STATUS,
            status=405,
            body='{"message": "Method Not Allowed"}',
            method="PATCH",
            match="/stop",
        )
    )

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.PROVIDER_ERROR and outcome.http_status == 405
    assert outcome.provider_message == "Method Not Allowed" and "PUT and PATCH" in outcome.detail
    assert [c.method for c in stops(sim)] == ["PUT", "PATCH"]
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_a_lost_answer_is_settled_by_reading_never_by_a_second_stop(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    sim.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status in (S.STOPPED, S.ALREADY_STOPPED)
    assert outcome.verified and outcome.state_after == "stopped" and outcome.attempts == 1
    assert "no answer" in outcome.detail
    assert len(stops(sim)) == 1
    assert api_sequence(sim) == ["PUT stop", "GET read"]
    assert sim.campaigns[SENDING].state == "stopped"


@sandbox
async def test_a_lost_answer_with_a_failed_read_is_unknown(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match="/stop"))
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, method="GET", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNKNOWN and "reading the campaign to settle it failed" in outcome.detail
    assert len(stops(sim)) == 1


@sandbox
async def test_a_timeout_that_stopped_nothing_is_resent_after_a_read(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.TIMEOUT, match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 2
    assert api_sequence(sim) == ["PUT stop", "GET read", "PUT stop", "GET read"]
    assert "Before that: attempt 1: the stop got no answer" in outcome.detail


@sandbox
async def test_timeouts_stay_inside_the_deadline(sim: WwtSimulator, make: Factory) -> None:
    adapter = make(HttpOptions(timeout=0.5, deadline=2.5, preview_timeout=0.5))
    sim.add_fault(Fault(kind=FaultKind.TIMEOUT, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.PROVIDER_ERROR and outcome.state_after == "sending"
    assert outcome.elapsed_ms < 2500 and outcome.attempts == 2
    assert "no answer" in outcome.detail and "after 2 attempt(s)" in outcome.detail
    assert api_sequence(sim) == ["PUT stop", "GET read"] * 2


@sandbox
@pytest.mark.parametrize(
    ("fault", "status", "http"),
    [
        (Fault(kind=FaultKind.STATUS, status=500), S.STOPPED, None),
        (Fault(kind=FaultKind.STATUS, status=503), S.STOPPED, None),
        (Fault(kind=FaultKind.STATUS, status=429, retry_after=0), S.STOPPED, None),
        (
            Fault(kind=FaultKind.STATUS, status=200, body='{"data": {"id": 1, "status": "sending"}}'),
            S.STOPPED,
            None,
        ),
        (Fault(kind=FaultKind.RESET), S.STOPPED, None),
    ],
)
async def test_one_doubtful_answer_then_a_read_proving_it_runs_allows_one_more_stop(
    sim: WwtSimulator, adapter: WwtAdapter, fault: Fault, status: OutcomeStatus, http: int | None
) -> None:
    sim.add_fault(fault.model_copy(update={"match": "/stop"}))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is status and outcome.verified and outcome.attempts == 2
    assert api_sequence(sim) == ["PUT stop", "GET read", "PUT stop", "GET read"]


@sandbox
async def test_persistent_5xx_ends_as_provider_error_with_a_read_before_each_resend(
    sim: WwtSimulator, make: Factory
) -> None:
    adapter = make(HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5, max_attempts=3))
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=502, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.PROVIDER_ERROR and outcome.attempts == 3
    assert outcome.http_status == 502 and outcome.provider_message == "sandbox fault: HTTP 502"
    assert outcome.state_after == "sending" and "after 3 attempt(s)" in outcome.detail
    assert api_sequence(sim) == ["PUT stop", "GET read"] * 3


@sandbox
async def test_persistent_429_is_rate_limited(sim: WwtSimulator, make: Factory) -> None:
    adapter = make(HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5, max_attempts=2))
    body = json.dumps({"message": "Too Many Attempts."})
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=429, body=body, retry_after=0, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.RATE_LIMITED and outcome.http_status == 429
    assert outcome.provider_message == "Too Many Attempts." and outcome.attempts == 2
    assert api_sequence(sim) == ["PUT stop", "GET read"] * 2


@sandbox
async def test_retry_after_is_waited_before_the_read_and_the_second_stop(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=429, retry_after=0.3, match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.attempts == 2
    first, second = stops(sim)
    (read_between,) = [c for c in reads(sim) if first.at < c.at < second.at]
    assert read_between.at - first.at >= 0.3


@sandbox
async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=429, retry_after=30, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.RATE_LIMITED and outcome.elapsed_ms < 2000
    assert api_sequence(sim) == ["PUT stop", "GET read"]


GARBAGE = [
    pytest.param(None, 200, id="html-200"),
    pytest.param(None, 502, id="html-502"),
    pytest.param("", 200, id="empty-200"),
    pytest.param("[]", 200, id="json-array"),
    pytest.param('[{"status": "stopped"}]', 200, id="array-of-campaigns"),
    pytest.param('"stopped"', 200, id="json-string"),
    pytest.param('{"data": "stopped"}', 200, id="data-is-a-string"),
    pytest.param('{"data": {"status": 7}}', 200, id="status-is-a-number"),
    pytest.param('{"data": {"status": "stopp', 200, id="truncated"),
]


@sandbox
@pytest.mark.parametrize(("body", "http"), GARBAGE)
async def test_garbage_answers_are_doubts_settled_by_reading(
    sim: WwtSimulator, make: Factory, body: str | None, http: int
) -> None:
    adapter = make(HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5, max_attempts=2))
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, body=body, status=http, match="/stop", times=None))

    outcome = await adapter.stop(SENDING)

    # The garbage never stops anything here, so every read proves the campaign still runs.
    assert outcome.status is S.PROVIDER_ERROR and outcome.http_status == http
    assert outcome.state_after == "sending" and outcome.attempts == 2
    assert f"HTTP {http}" in outcome.detail
    if body is None:
        assert "502 Bad Gateway" in outcome.detail
    assert api_sequence(sim) == ["PUT stop", "GET read"] * 2


@sandbox
@pytest.mark.parametrize(("body", "http"), GARBAGE)
async def test_garbage_with_an_unreadable_campaign_is_unknown_after_one_stop(
    sim: WwtSimulator, adapter: WwtAdapter, body: str | None, http: int
) -> None:
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, body=body, status=http, match="/stop", times=None))
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, body=body, status=http, method="GET", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.UNKNOWN and outcome.http_status == http
    assert "Check the campaign in the dashboard" in outcome.detail
    assert len(stops(sim)) == 1


@sandbox
@pytest.mark.parametrize(
    ("state", "status"),
    [("done", S.ALREADY_COMPLETED), ("creation", S.NOT_STOPPABLE), ("archived", S.UNKNOWN)],
)
async def test_a_doubt_settled_by_a_read_that_forbids_a_resend(
    sim: WwtSimulator, adapter: WwtAdapter, state: str, status: OutcomeStatus
) -> None:
    sim.campaigns[SENDING].state = state
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match="/stop"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is status and outcome.state_after == state
    assert len(stops(sim)) == 1


@sandbox
async def test_a_failed_read_back_keeps_the_stop_unverified(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)  # log in first, so the fault hits the read-back only
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, method="GET", times=None))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and not outcome.verified
    assert outcome.state_after == "stopped"
    assert outcome.campaign is not None and outcome.campaign.sent == 8200
    assert "Reading it back failed" in outcome.detail
    assert len(stops(sim)) == 1


@sandbox
async def test_a_read_back_that_disagrees_is_reported(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    body = json.dumps({"data": {"id": int(SENDING), "name": "x", "status": "sending"}})
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=200, body=body, method="GET"))

    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and not outcome.verified
    assert outcome.state_after == "sending" and "reading it back reports 'sending'" in outcome.detail


# ----- preview and read_state -------------------------------------------------------------------


@sandbox
async def test_preview_describes_the_campaign(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    info = await adapter.preview(SENDING)

    assert info.id == SENDING and info.state == "sending" and info.phase is CampaignPhase.ACTIVE
    assert info.name is not None and "Spring sale RCS" in info.name
    assert (info.kind, info.sent, info.delivered, info.price) == ("rcs", 8200, 7900, 412.5)
    assert info.extra["sender"] == "WWT Sandbox Agent"
    assert info.extra["start_at"] and info.extra["created_at"]
    assert info.extra["sms_fallback_sent"] == 120
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
@pytest.mark.parametrize(
    ("campaign_id", "phase"),
    [
        (SCHEDULED, CampaignPhase.ACTIVE),
        (DONE, CampaignPhase.COMPLETED),
        (STOPPED, CampaignPhase.STOPPED),
        (CREATION, CampaignPhase.NOT_STOPPABLE),
        (SPAM, CampaignPhase.NOT_STOPPABLE),
        (MODERATION, CampaignPhase.ACTIVE),
        (PAUSED, CampaignPhase.ACTIVE),
    ],
)
async def test_preview_phase_of_each_seeded_state(adapter: WwtAdapter, campaign_id: str, phase: CampaignPhase) -> None:
    assert (await adapter.preview(campaign_id)).phase is phase


@sandbox
async def test_preview_of_an_unknown_status_is_unknown_and_raw(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.campaigns[SENDING].state = "Archived"
    info = await adapter.preview(SENDING)
    assert info.state == "Archived" and info.phase is CampaignPhase.UNKNOWN


@sandbox
async def test_preview_not_found(adapter: WwtAdapter) -> None:
    with pytest.raises(PreviewUnavailable, match="does not know campaign 1 "):
        await adapter.preview("1")


@sandbox
async def test_preview_slow_is_unavailable_quickly(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=5, method="GET", times=None))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PreviewUnavailable, match="no answer"):
        await adapter.preview(SENDING)
    assert loop.time() - started < 2.0


@sandbox
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("wrong_key", "could not log in"),
        ("html", "without a campaign status"),
        ("server_error", "HTTP 500"),
        ("invalid_id", "not a Telco WWT campaign id"),
    ],
)
async def test_preview_failures_are_preview_unavailable(
    sim: WwtSimulator, make: Factory, setup: str, reason: str
) -> None:
    adapter = make(api_key="test_WRONG") if setup == "wrong_key" else make()
    campaign_id = "x1" if setup == "invalid_id" else SENDING
    if setup == "html":
        sim.add_fault(Fault(kind=FaultKind.MALFORMED, method="GET"))
    if setup == "server_error":
        sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, method="GET"))
    with pytest.raises(PreviewUnavailable, match=reason) as caught:
        await adapter.preview(campaign_id)
    assert "test_WRONG" not in str(caught.value)


@sandbox
async def test_read_state(sim: WwtSimulator, adapter: WwtAdapter, make: Factory) -> None:
    await adapter.stop(SENDING)
    info = await adapter.read_state(SENDING)
    assert info is not None and info.state == "stopped" and info.phase is CampaignPhase.STOPPED
    assert await adapter.read_state("1") is None
    assert await adapter.read_state("not-an-id") is None
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, method="GET"))
    assert await adapter.read_state(SENDING) is None
    assert await make(api_key="test_WRONG").read_state(SENDING) is None


# ----- secrets ------------------------------------------------------------------------------------


@sandbox
async def test_the_key_and_the_jwt_never_leak(
    sim: WwtSimulator, adapter: WwtAdapter, make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = []
    await adapter.preview(SENDING)
    sim.revoke_tokens()
    outcomes.append(await adapter.stop(SENDING))
    shift_clock(adapter, sim.token_lifetime - 30)
    outcomes.append(await adapter.stop(PAUSED))
    # A provider that echoes the key back in an error must not get it into the outcome.
    echo = json.dumps({"message": f"Unknown key {API_KEY}"})
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=401, body=echo, match="/api/auth/login"))
    outcomes.append(await make().stop(SPARE))
    assert outcomes[-1].status is S.UNAUTHORIZED and "<redacted>" in (outcomes[-1].provider_message or "")

    tokens = {bearer(c) for c in sim.calls if "authorization" in c.headers}
    assert len(tokens) >= 3
    texts = [
        caplog.text,
        repr(adapter),
        repr(adapter.account),
        str(adapter.account),
        str(vars(adapter.account)),
    ]
    texts += [o.model_dump_json() for o in outcomes]
    for secret in [API_KEY, *tokens]:
        for text in texts:
            assert secret not in text


# ----- the simulator itself ---------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def client(sim: WwtSimulator, server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield http


async def login(client: httpx.AsyncClient) -> str:
    answer = await client.post("/api/auth/login", json={"api_key": API_KEY})
    assert answer.status_code == 200
    token: str = answer.json()["bearer"]
    return token


@sandbox
async def test_sim_login_and_its_401_and_422(sim: WwtSimulator, client: httpx.AsyncClient) -> None:
    wrong = await client.post("/api/auth/login", json={"api_key": "live_nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Unauthenticated."})
    missing = await client.post("/api/auth/login", json={})
    assert missing.status_code == 422 and set(missing.json()) == {"message", "errors"}
    token = await login(client)
    header, _, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"typ": "JWT", "alg": "HS256"}
    claims = jwt_claims(token)
    assert claims["exp"] - claims["iat"] == sim.token_lifetime and signature


@sandbox
@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer not.a.jwt", "Basic abc", "expired", "forged"])
async def test_sim_api_calls_need_a_live_token(sim: WwtSimulator, client: httpx.AsyncClient, auth: str | None) -> None:
    if auth == "expired":
        sim.token_lifetime = -10
        auth = f"Bearer {await login(client)}"
    elif auth == "forged":
        head, _, sig = (await login(client)).split(".")
        auth = f"Bearer {head}.eyJqdGkiOiJ4In0.{sig}"
    headers = {"Authorization": auth} if auth else {}
    for method, path in [("GET", f"/api/campaigns/{SENDING}"), ("PUT", f"/api/campaigns/{SENDING}/stop")]:
        answer = await client.request(method, path, headers=headers)
        assert (answer.status_code, answer.json()) == (401, {"message": "Unauthenticated."})
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_sim_read_stop_422_404_405_and_refresh(sim: WwtSimulator, client: httpx.AsyncClient) -> None:
    token = await login(client)
    auth = {"Authorization": f"Bearer {token}"}
    read = (await client.get(f"/api/campaigns/{SENDING}", headers=auth)).json()["data"]
    assert set(read) == {
        "id",
        "name",
        "sender",
        "status",
        "message_type",
        "start_at",
        "real_start_at",
        "finished_at",
        "created_at",
        "statistics",
        "calculated_price",
        "alternative_channels",
    }
    assert read["id"] == int(SENDING) and read["statistics"] == {"delivered": 7900, "sent": 8200}
    assert read["alternative_channels"]["sms"]["statistic"] == {"delivered": 120, "sent": 120}

    stopped = await client.patch(f"/api/campaigns/{PAUSED}/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["data"]["status"] == "stopped"
    assert stopped.json()["data"]["finished_at"]
    again = await client.put(f"/api/campaigns/{PAUSED}/stop", headers=auth)
    assert again.status_code == 422 and again.json() == {
        "message": STOP_422_MESSAGE,
        "errors": [{"status": "stopped"}],
    }
    missing = await client.get("/api/campaigns/1", headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"message": "Campaign not found.", "errors": []})
    assert (await client.get("/api/campaigns/abc", headers=auth)).status_code == 404

    sim.put_not_allowed = True
    refused = await client.put(f"/api/campaigns/{SENDING}/stop")
    assert refused.status_code == 405 and refused.headers["allow"] == "PATCH"
    assert sim.campaigns[SENDING].state == "sending"

    renewed = (await client.post("/api/auth/refresh", headers=auth)).json()["bearer"]
    assert renewed != token and sim.token_claims(token) is None and sim.token_claims(renewed) is not None
    assert (await client.get(f"/api/campaigns/{SENDING}", headers=auth)).status_code == 401


def test_sim_seeds_one_campaign_per_status() -> None:
    sim = WwtSimulator()
    states = {c.id: c.state for c in sim.campaigns.values()}
    assert states == {
        SENDING: "sending",
        SCHEDULED: "scheduled",
        DONE: "done",
        STOPPED: "stopped",
        CREATION: "creation",
        SPAM: "spam",
        MODERATION: "moderation",
        PAUSED: "paused",
        SPARE: "sending",
    }
    sim.campaigns[SENDING].state = "stopped"
    sim.put_not_allowed = True
    sim.seed()
    assert sim.campaigns[SENDING].state == "sending" and not sim.put_not_allowed
    assert sim.account_values("http://x") == {"api_key": API_KEY, "base_url": "http://x"}
    error = sim.error_response(503, "down")
    assert error.status_code == 503 and json.loads(bytes(error.body)) == {"message": "down", "errors": []}
