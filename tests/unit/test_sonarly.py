"""Sonarly adapter and simulator, over real HTTP against the simulator on 127.0.0.1:0."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.core.models import CampaignPhase, Outcome, OutcomeStatus
from bot.httpserver import RunningServer, start_server
from bot.providers.base import CampaignIdError, HttpOptions, PreviewUnavailable
from bot.providers.limits import LocalLimiter
from bot.providers.sonarly import DEFAULT_BASE_URL, SonarlyAccount, SonarlyAdapter, campaign_phase
from bot.sandbox.base import Fault, FaultKind
from bot.sandbox.sonarly import (
    ACCOUNT_GROUP_ID,
    API_KEY,
    COMPLETED_ID,
    DRAFT_ID,
    EXECUTE_ONLY_KEY,
    PAUSED_ID,
    READ_ONLY_KEY,
    RUNNING_ID,
    SCHEDULED_ID,
    STOPPED_ID,
    SonarlySimulator,
)

FAST: dict[str, Any] = {"timeout": 0.5, "deadline": 3, "preview_timeout": 0.5}
TRACE = re.compile(r"[0-9a-f]{24}")
UNKNOWN_ID = "65f1a0c0e4b0a1b2c3d4e5ff"

Make = Callable[..., SonarlyAdapter]


# One server for the module (stopping uvicorn takes ~0.2 s); every test gets a freshly seeded simulator.
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def without_nagle(running: RunningServer) -> None:
    """Set TCP_NODELAY on the listening socket once uvicorn serves (accepted sockets inherit it).

    `start_server` binds without it, so every small answer waits ~40 ms for a delayed ACK.
    """
    async with httpx.AsyncClient(base_url=running.url) as http:
        await http.get("/v1/accounts")  # answered once uvicorn is serving
    for listener in running.server.servers:
        for sock in listener.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served() -> AsyncIterator[tuple[SonarlySimulator, RunningServer]]:
    simulator = SonarlySimulator()
    running = await start_server(simulator)
    await without_nagle(running)
    yield simulator, running
    simulator.release_held()
    await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def sim(served: tuple[SonarlySimulator, RunningServer]) -> AsyncIterator[SonarlySimulator]:
    simulator = served[0]
    simulator.seed()
    simulator.read_wraps_campaign = True
    yield simulator
    simulator.release_held()


@pytest.fixture
def server(served: tuple[SonarlySimulator, RunningServer], sim: SonarlySimulator) -> RunningServer:
    return served[1]


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: SonarlySimulator, server: RunningServer) -> AsyncIterator[Make]:
    made: list[SonarlyAdapter] = []

    def build(max_attempts: int = 4, **overrides: Any) -> SonarlyAdapter:
        values = {**sim.account_values(server.url), **overrides}
        # The default transport loads the CA bundle (~80 ms per adapter); the sandbox speaks plain http.
        transport = httpx.AsyncHTTPTransport(verify=False)
        options = HttpOptions(**FAST, max_attempts=max_attempts, transport=transport)
        adapter = SonarlyAdapter("sandbox", SonarlyAccount.model_validate(values), options)
        # The production pacing (5/s) would only slow the suite down; limits are tested elsewhere.
        adapter.limiter = LocalLimiter("sonarly:test", 1000, 4)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make: Make) -> SonarlyAdapter:
    return make()


def stops(sim: SonarlySimulator) -> int:
    return len(sim.calls_to("/stop", "POST"))


def reads(sim: SonarlySimulator) -> int:
    return len(sim.calls_to("/campaigns/", "GET"))


def fault_stop(sim: SonarlySimulator, kind: FaultKind, **fields: Any) -> None:
    sim.add_fault(Fault(kind=kind, match="/stop", method="POST", **fields))


def fault_read(sim: SonarlySimulator, kind: FaultKind, **fields: Any) -> None:
    sim.add_fault(Fault(kind=kind, match="/campaigns/", method="GET", **fields))


def envelope_text(
    success: bool,
    data: Any = None,
    code: str | None = None,
    message: str = "",
    details: Any = None,
    trace: str = "feedfacefeedfacefeedface",
) -> str:
    error = None if success else {"code": code, "message": message, "details": details}
    return json.dumps({"success": success, "data": data, "error": error, "traceId": trace})


# ----- declared facts and the account ---------------------------------------------------------


async def test_declared_facts() -> None:
    assert SonarlyAdapter.name == "sonarly"
    assert SonarlyAdapter.repeat_safe is False
    assert SonarlyAdapter.has_preview is True
    env_names = {SonarlyAdapter.env_prefix + f.upper() for f in SonarlyAccount.model_fields}
    assert env_names == {"SONARLY_API_KEY", "SONARLY_ACCOUNT_GROUP_ID", "SONARLY_BASE_URL"}
    assert SonarlyAdapter.env_modifiers == frozenset({"base_url"})
    assert "resume" in SonarlyAdapter.stop_meaning


async def test_default_base_url_and_host() -> None:
    account = SonarlyAccount(api_key="sk_live_x", account_group_id="64f0c0ffee00000000000001")
    adapter = SonarlyAdapter("prod", account)
    try:
        assert adapter.base_url == DEFAULT_BASE_URL == "https://api.sonarly.io"
        assert adapter.api_host == "api.sonarly.io"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "values",
    [
        {"api_key": "sk_live_x", "account_group_id": "../other"},
        {"api_key": "sk_live_x", "account_group_id": "a/b"},
        {"api_key": "sk_live_x", "account_group_id": "a?b"},
        {"api_key": "sk_live_x", "account_group_id": ""},
        {"api_key": "   ", "account_group_id": "g1"},
        {"api_key": "sk live", "account_group_id": "g1"},
        {"api_key": "sk_live_\nx", "account_group_id": "g1"},
        {"api_key": "sk_live_x", "account_group_id": "g1", "base_url": "ftp://x"},
        {"api_key": "sk_live_x", "account_group_id": "g1", "unknown": "field"},
    ],
)
async def test_account_rejects_unsafe_values(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SonarlyAccount.model_validate(values)


async def test_account_never_shows_the_key() -> None:
    account = SonarlyAccount.model_validate({"api_key": "sk_live_TOPSECRET", "account_group_id": "g1"})
    for text in (repr(account), str(account), account.model_dump_json()):
        assert "TOPSECRET" not in text
    assert account.api_key.get_secret_value() == "sk_live_TOPSECRET"


async def test_campaign_phase_vocabulary() -> None:
    assert campaign_phase("running") is CampaignPhase.ACTIVE
    assert campaign_phase("Scheduled") is CampaignPhase.ACTIVE
    assert campaign_phase("in-progress") is CampaignPhase.ACTIVE
    assert campaign_phase("paused") is CampaignPhase.ACTIVE
    assert campaign_phase("STOPPED") is CampaignPhase.STOPPED
    assert campaign_phase("completed") is CampaignPhase.COMPLETED
    assert campaign_phase("draft") is CampaignPhase.NOT_STOPPABLE
    assert campaign_phase("stopping") is CampaignPhase.UNKNOWN
    assert campaign_phase("") is CampaignPhase.UNKNOWN
    assert campaign_phase(None) is CampaignPhase.UNKNOWN


# ----- campaign ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("507f1f77bcf86cd799439011", "507f1f77bcf86cd799439011"),
        ("  65F1A0C0E4B0A1B2C3D4E501 \n", "65F1A0C0E4B0A1B2C3D4E501"),
        ("spring_promo-2024", "spring_promo-2024"),
        ("x" * 64, "x" * 64),
    ],
)
async def test_parse_campaign_id_accepts(raw: str, expected: str) -> None:
    assert SonarlyAdapter.parse_campaign_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "..",
        "../accounts",
        "a/b",
        "a?b=1",
        "a#b",
        "a%2Fb",
        "a.b",
        "a b",
        "ид",
        "x" * 65,
        "a\nb",
        "<id>",
    ],
)
async def test_parse_campaign_id_rejects(raw: str) -> None:
    with pytest.raises(CampaignIdError, match="Sonarly campaign id"):
        SonarlyAdapter.parse_campaign_id(raw)


@given(st.text())
def any_text_gives_an_id_or_campaign_id_error(raw: str) -> None:
    try:
        parsed = SonarlyAdapter.parse_campaign_id(raw)
    except CampaignIdError:
        return
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", parsed)
    assert quote(parsed, safe="") == parsed


async def test_parse_campaign_id_never_raises_anything_else() -> None:
    any_text_gives_an_id_or_campaign_id_error()


# ----- stop: the documented answers -----------------------------------------------------------


async def test_stop_running_campaign(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert outcome.http_status == 200
    assert outcome.state_after == "stopped"
    assert outcome.attempts == 1
    assert outcome.trace_id is not None and TRACE.fullmatch(outcome.trace_id)
    assert f"trace {outcome.trace_id}" in outcome.detail
    assert "840 instances stopped" in outcome.detail
    assert outcome.campaign is not None
    assert outcome.campaign.extra["instancesStopped"] == 840
    assert outcome.campaign.extra["startedAt"] == "2024-03-14T08:30:00.000Z"
    assert outcome.campaign.name == "Spring promo outreach (wrong list)"
    assert outcome.campaign.phase is CampaignPhase.STOPPED
    assert sim.campaigns[RUNNING_ID].state == "stopped"

    [call] = sim.calls_to("/stop", "POST")
    assert call.path == f"/v1/accounts/{ACCOUNT_GROUP_ID}/campaigns/{RUNNING_ID}/stop"
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
    assert call.body == b""
    assert reads(sim) == 1  # the read-back


@pytest.mark.parametrize(("campaign_id", "instances"), [(SCHEDULED_ID, 0), (PAUSED_ID, 410)])
async def test_stop_scheduled_and_paused(
    adapter: SonarlyAdapter, sim: SonarlySimulator, campaign_id: str, instances: int
) -> None:
    outcome = await adapter.stop(campaign_id)
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert f"{instances} instances stopped" in outcome.detail
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == instances
    assert sim.campaigns[campaign_id].state == "stopped"


async def test_409_and_read_says_stopped_is_already_stopped(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    outcome = await adapter.stop(STOPPED_ID)

    assert outcome.status is OutcomeStatus.ALREADY_STOPPED
    assert outcome.verified is True
    assert outcome.http_status == 409
    assert outcome.provider_code == "CONFLICT"
    assert outcome.provider_message == "Campaign is stopped and cannot be stopped"
    assert outcome.state_after == "stopped"
    assert outcome.trace_id is not None and outcome.trace_id in outcome.detail
    assert stops(sim) == 1
    assert reads(sim) == 1


@pytest.mark.parametrize(
    ("campaign_id", "status", "state"),
    [
        (COMPLETED_ID, OutcomeStatus.ALREADY_COMPLETED, "completed"),
        (DRAFT_ID, OutcomeStatus.NOT_STOPPABLE, "draft"),
    ],
)
async def test_409_settled_by_the_read(
    adapter: SonarlyAdapter, sim: SonarlySimulator, campaign_id: str, status: OutcomeStatus, state: str
) -> None:
    outcome = await adapter.stop(campaign_id)
    assert outcome.status is status
    assert outcome.state_after == state
    assert outcome.provider_status == state
    assert outcome.http_status == 409
    assert f"'{state}'" in outcome.detail
    assert stops(sim) == 1
    assert sim.campaigns[campaign_id].state == state


async def test_unknown_campaign_is_not_found(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop(UNKNOWN_ID)
    assert outcome.status is OutcomeStatus.NOT_FOUND
    assert outcome.http_status == 404
    assert outcome.provider_code == "NOT_FOUND"
    assert outcome.provider_message == "Campaign not found"
    assert UNKNOWN_ID in outcome.detail and ACCOUNT_GROUP_ID in outcome.detail
    assert outcome.trace_id is not None
    assert reads(sim) == 0


async def test_unknown_account_group_is_not_found(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(account_group_id="64f0c0ffee0000000000ffff").stop(RUNNING_ID)
    assert outcome.status is OutcomeStatus.NOT_FOUND
    assert outcome.provider_message == "Account group not found"
    assert "64f0c0ffee0000000000ffff" in outcome.detail
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_wrong_key_is_unauthorized(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(api_key="sk_live_wrong_key").stop(RUNNING_ID)
    assert outcome.status is OutcomeStatus.UNAUTHORIZED
    assert outcome.http_status == 401
    assert outcome.provider_code == "UNAUTHORIZED"
    assert outcome.provider_message == "Invalid or missing API key"
    assert "api_key" in outcome.detail
    assert "sk_live_wrong_key" not in outcome.model_dump_json()
    assert stops(sim) == 1 and reads(sim) == 0


async def test_key_without_execute_is_forbidden(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(api_key=READ_ONLY_KEY).stop(RUNNING_ID)
    assert outcome.status is OutcomeStatus.FORBIDDEN
    assert outcome.http_status == 403
    assert outcome.provider_code == "FORBIDDEN"
    assert "campaigns:execute" in outcome.detail
    assert "campaigns:execute" in (outcome.provider_message or "")
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_validation_error_is_invalid_request(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop("spring-promo")
    assert outcome.status is OutcomeStatus.INVALID_REQUEST
    assert outcome.http_status == 400
    assert outcome.provider_code == "VALIDATION_ERROR"
    assert "24-character hexadecimal ObjectId" in (outcome.provider_message or "")
    assert reads(sim) == 0


async def test_validation_details_object_kept(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    body = envelope_text(
        False,
        code="VALIDATION_ERROR",
        message="Request validation failed",
        details={"campaignId": "must be an ObjectId"},
        trace="t-400",
    )
    fault_stop(sim, FaultKind.STATUS, status=400, body=body)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is OutcomeStatus.INVALID_REQUEST
    assert outcome.trace_id == "t-400"
    assert "campaignId" in (outcome.provider_message or "")
    assert "must be an ObjectId" in outcome.detail


async def test_invalid_id_is_refused_without_sending(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop("../../v1/accounts")
    assert outcome.status is OutcomeStatus.INVALID_REQUEST
    assert "Nothing was sent" in outcome.detail
    assert sim.calls == []


# ----- retry safety: doubt is settled by reading --------------------------------------------


async def test_lost_answer_stops_exactly_once(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    """The stop lands, its answer is lost: one stop only, and the read says it stopped."""
    fault_stop(sim, FaultKind.LOST_ANSWER)

    outcome = await adapter.stop(RUNNING_ID)

    assert stops(sim) == 1
    assert outcome.status in (OutcomeStatus.STOPPED, OutcomeStatus.ALREADY_STOPPED)
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert outcome.state_after == "stopped"
    assert outcome.http_status is None
    assert "no answer" in outcome.detail
    assert outcome.trace_id is not None  # the read's, the stop's own never arrived
    assert sim.campaigns[RUNNING_ID].state == "stopped"
    methods = [c.method for c in sim.calls]
    assert methods == ["POST", "GET"]


async def test_timeout_with_campaign_running_sends_one_second_stop(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert [c.method for c in sim.calls] == ["POST", "GET", "POST", "GET"]
    assert stops(sim) == 2
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert outcome.attempts == 2
    assert outcome.state_before == "running"
    assert outcome.http_status == 200
    assert "840 instances stopped" in outcome.detail
    assert "stop #1: no answer" in outcome.detail and "stop #2: HTTP 200" in outcome.detail


async def test_500_and_read_running_sends_second_stop(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert [c.method for c in sim.calls] == ["POST", "GET", "POST", "GET"]
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert outcome.attempts == 2
    assert "stop #1: HTTP 500, INTERNAL_ERROR: sandbox fault: HTTP 500" in outcome.detail
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == 840


async def test_502_html_page_and_read_running_sends_second_stop(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=502)
    outcome = await adapter.stop(RUNNING_ID)
    assert stops(sim) == 2
    assert outcome.status is OutcomeStatus.STOPPED
    assert "502 Bad Gateway" in outcome.detail


async def test_429_reads_then_stops_again_after_retry_after(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=0.3)

    outcome = await adapter.stop(RUNNING_ID)

    assert [c.method for c in sim.calls] == ["POST", "GET", "POST", "GET"]
    first, read, second, _ = sim.calls
    assert second.at - first.at >= 0.3
    assert read.at - first.at >= 0.3  # the read comes after the wait, right before the second stop
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.attempts == 2
    assert "Retry-After" in outcome.detail


async def test_429_with_retry_after_past_the_deadline(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=30)
    started = time.monotonic()

    outcome = await adapter.stop(RUNNING_ID)

    assert time.monotonic() - started < 2
    assert outcome.status is OutcomeStatus.RATE_LIMITED
    assert outcome.http_status == 429
    assert outcome.provider_code == "RATE_LIMITED"
    assert outcome.state_after == "running"
    assert "30 s" in outcome.detail
    assert stops(sim) == 1
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_429_and_read_says_stopped_is_already_stopped(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=0)
    outcome = await adapter.stop(STOPPED_ID)
    assert outcome.status is OutcomeStatus.ALREADY_STOPPED
    assert outcome.http_status == 429
    assert stops(sim) == 1


async def test_409_and_read_says_running_sends_second_stop(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.STATUS, status=409)
    outcome = await adapter.stop(RUNNING_ID)
    assert stops(sim) == 2
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True


async def test_reset_connection_is_settled_by_reading(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.RESET)
    outcome = await adapter.stop(RUNNING_ID)
    assert [c.method for c in sim.calls] == ["POST", "GET", "POST", "GET"]
    assert outcome.status is OutcomeStatus.STOPPED


async def test_unknown_status_after_500_is_never_called_stopped(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    sim.campaigns[RUNNING_ID].state = "winding_down"
    fault_stop(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert outcome.verified is False
    assert outcome.state_after == "winding_down"
    assert outcome.campaign is not None and outcome.campaign.phase is CampaignPhase.UNKNOWN
    assert "'winding_down'" in outcome.detail
    assert stops(sim) == 1


async def test_unknown_status_after_timeout_is_unknown(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    sim.campaigns[RUNNING_ID].state = "stopping"
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.state_after == "stopping"
    assert "does not know" in outcome.detail
    assert stops(sim) == 1


async def test_timeout_and_read_forbidden_is_unknown(make: Make, sim: SonarlySimulator) -> None:
    adapter = make(api_key=EXECUTE_ONLY_KEY)
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.UNKNOWN
    assert "campaigns:read" in outcome.detail
    assert stops(sim) == 1
    assert outcome.trace_id is not None  # the failed read's trace id, for support


async def test_502_and_failed_reads_never_resend(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    body = envelope_text(False, code="UPSTREAM_ERROR", message="Upstream service error", trace="trace-502")
    fault_stop(sim, FaultKind.STATUS, status=502, body=body)
    fault_read(sim, FaultKind.STATUS, status=500, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert outcome.http_status == 502
    assert outcome.provider_code == "UPSTREAM_ERROR"
    assert outcome.provider_message == "Upstream service error"
    assert outcome.trace_id == "trace-502"
    assert "trace trace-502" in outcome.detail
    assert stops(sim) == 1
    assert reads(sim) == 2  # one retry of a failed read: reads are safe to repeat


GARBAGE = [
    pytest.param("<html><body>oops</body></html>", id="html"),
    pytest.param("", id="empty"),
    pytest.param("[]", id="json-array"),
    pytest.param('"stopped"', id="json-string"),
    pytest.param('{"success": true, "data": {"campa', id="truncated"),
    pytest.param('{"success": "true", "data": null}', id="success-as-string"),
    pytest.param('{"data": {"instancesStopped": 3}}', id="no-verdict"),
]


@pytest.mark.parametrize("body", GARBAGE)
async def test_garbage_2xx_is_settled_by_reading(
    adapter: SonarlyAdapter, sim: SonarlySimulator, body: str
) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)

    outcome = await adapter.stop(RUNNING_ID)

    assert "stop #1: HTTP 200, unreadable body" in outcome.detail
    assert "read: status 'running'" in outcome.detail
    assert [c.method for c in sim.calls] == ["POST", "GET", "POST", "GET"]  # the read proved it running
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True


@pytest.mark.parametrize("body", GARBAGE)
async def test_garbage_2xx_with_unreadable_state_is_unknown(
    adapter: SonarlyAdapter, sim: SonarlySimulator, body: str
) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)
    fault_read(sim, FaultKind.MALFORMED, status=200, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.http_status == 200
    assert "Reading the campaign to settle this failed" in outcome.detail
    assert stops(sim) == 1


async def test_http_200_with_success_false_is_never_stopped(make: Make, sim: SonarlySimulator) -> None:
    adapter = make(max_attempts=3)
    body = envelope_text(False, code="STOP_FAILED", message="Could not stop instances", trace="trace-200f")
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert outcome.http_status == 200
    assert outcome.provider_code == "STOP_FAILED"
    assert outcome.provider_message == "Could not stop instances"
    assert outcome.trace_id == "trace-200f"
    assert outcome.state_after == "running"
    assert "no attempts left" in outcome.detail
    assert "no stop after #3 was sent" in outcome.detail  # not "no second stop": three went out
    assert stops(sim) == 3  # every resend was preceded by a read proving the campaign running
    assert [c.method for c in sim.calls] == ["POST", "GET"] * 3


async def test_http_200_with_success_false_on_stopped_campaign(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    body = envelope_text(False, code="CONFLICT", message="Already stopped")
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)
    outcome = await adapter.stop(STOPPED_ID)
    assert outcome.status is OutcomeStatus.ALREADY_STOPPED
    assert outcome.provider_message == "Already stopped"


async def test_success_with_wrong_data_type_keeps_verdict_but_read_back_disagrees(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.STATUS, status=200, body=envelope_text(True, data="oops"))

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is False
    assert outcome.state_after == "running"
    assert "did not say how many instances" in outcome.detail
    assert "still reports the campaign as 'running'" in outcome.detail
    assert stops(sim) == 1


async def test_failed_read_back_keeps_the_success(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_read(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is False
    assert "not verified" in outcome.detail
    assert outcome.state_after == "stopped"  # what the stop's own answer said
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == 840
    assert stops(sim) == 1 and reads(sim) == 1


@pytest.mark.parametrize(
    ("status", "expected", "words"),
    [
        (401, OutcomeStatus.UNAUTHORIZED, "api_key"),
        (403, OutcomeStatus.FORBIDDEN, "campaigns:execute"),
        (404, OutcomeStatus.NOT_FOUND, "does not know campaign"),
        (302, OutcomeStatus.PROVIDER_ERROR, "redirect"),
        (405, OutcomeStatus.INVALID_REQUEST, "HTTP 405"),
    ],
)
async def test_non_json_error_answers(
    adapter: SonarlyAdapter, sim: SonarlySimulator, status: int, expected: OutcomeStatus, words: str
) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=status)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is expected
    assert outcome.http_status == status
    assert words in outcome.detail
    assert stops(sim) == 1 and reads(sim) == 0


async def test_unreachable_sends_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    account = SonarlyAccount.model_validate(
        {"api_key": API_KEY, "account_group_id": ACCOUNT_GROUP_ID, "base_url": f"http://127.0.0.1:{port}"}
    )
    adapter = SonarlyAdapter("dead", account, HttpOptions(timeout=0.5, deadline=3, max_attempts=2))
    try:
        outcome = await adapter.stop(RUNNING_ID)
    finally:
        await adapter.aclose()
    assert outcome.status is OutcomeStatus.UNREACHABLE
    assert outcome.attempts == 2
    assert "nothing was sent" in outcome.detail


async def test_secrets_stay_out_of_outcomes(make: Make, sim: SonarlySimulator) -> None:
    adapter = make()
    outcomes: list[Outcome] = [await adapter.stop(STOPPED_ID), await adapter.stop(UNKNOWN_ID)]
    fault_stop(sim, FaultKind.TIMEOUT)
    outcomes.append(await adapter.stop(RUNNING_ID))
    outcomes.append(await make(api_key="sk_live_DO_NOT_LEAK").stop(SCHEDULED_ID))
    for outcome in outcomes:
        dumped = outcome.model_dump_json()
        assert API_KEY not in dumped
        assert "DO_NOT_LEAK" not in dumped
        assert "http://" not in outcome.detail


# ----- preview and read_state -------------------------------------------------------------


async def test_preview_running(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    info = await adapter.preview(RUNNING_ID)
    assert info.id == RUNNING_ID
    assert info.name == "Spring promo outreach (wrong list)"
    assert info.state == "running"
    assert info.phase is CampaignPhase.ACTIVE
    assert info.size == 1200
    assert info.extra["startedAt"] == "2024-03-14T08:30:00.000Z"
    assert stops(sim) == 0


@pytest.mark.parametrize(
    ("campaign_id", "phase"),
    [
        (SCHEDULED_ID, CampaignPhase.ACTIVE),
        (PAUSED_ID, CampaignPhase.ACTIVE),
        (STOPPED_ID, CampaignPhase.STOPPED),
        (COMPLETED_ID, CampaignPhase.COMPLETED),
        (DRAFT_ID, CampaignPhase.NOT_STOPPABLE),
    ],
)
async def test_preview_phases(adapter: SonarlyAdapter, campaign_id: str, phase: CampaignPhase) -> None:
    assert (await adapter.preview(campaign_id)).phase is phase


async def test_preview_accepts_unwrapped_campaign(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    sim.read_wraps_campaign = False
    info = await adapter.preview(PAUSED_ID)
    assert info.name == "Partner newsletter outreach"
    assert info.state == "paused"
    assert info.size == 600


async def test_preview_shows_unknown_status_raw(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    sim.campaigns[RUNNING_ID].state = "Warming-Up"
    info = await adapter.preview(RUNNING_ID)
    assert info.state == "Warming-Up"
    assert info.phase is CampaignPhase.UNKNOWN


async def test_preview_not_found(adapter: SonarlyAdapter) -> None:
    with pytest.raises(PreviewUnavailable, match=f"does not know campaign {UNKNOWN_ID}"):
        await adapter.preview(UNKNOWN_ID)


async def test_preview_without_read_permission_names_it(make: Make) -> None:
    with pytest.raises(PreviewUnavailable, match="lacks the campaigns:read permission"):
        await make(api_key=EXECUTE_ONLY_KEY).preview(RUNNING_ID)


async def test_preview_with_wrong_key(make: Make) -> None:
    with pytest.raises(PreviewUnavailable, match="rejected the API key"):
        await make(api_key="sk_live_nope").preview(RUNNING_ID)


async def test_preview_slow(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_read(sim, FaultKind.LATENCY, delay=5)
    started = time.monotonic()
    with pytest.raises(PreviewUnavailable, match="did not answer"):
        await adapter.preview(RUNNING_ID)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("body", ["<html>busy</html>", "[]", '{"success": true, "data": null}'])
async def test_preview_garbage(adapter: SonarlyAdapter, sim: SonarlySimulator, body: str) -> None:
    fault_read(sim, FaultKind.MALFORMED, status=200, body=body)
    with pytest.raises(PreviewUnavailable):
        await adapter.preview(RUNNING_ID)


async def test_preview_invalid_id(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    with pytest.raises(PreviewUnavailable, match="Sonarly campaign ids"):
        await adapter.preview("a/b")
    assert sim.calls == []


async def test_read_state(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    info = await adapter.read_state(COMPLETED_ID)
    assert info is not None and info.state == "completed" and info.phase is CampaignPhase.COMPLETED
    assert await adapter.read_state(UNKNOWN_ID) is None
    assert await adapter.read_state("../x") is None
    fault_read(sim, FaultKind.MALFORMED, status=200, body="[1, 2]")
    assert await adapter.read_state(RUNNING_ID) is None


# ----- the simulator itself ---------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield http


def campaign_url(campaign_id: str, group: str = ACCOUNT_GROUP_ID) -> str:
    return f"/v1/accounts/{group}/campaigns/{campaign_id}"


@pytest.mark.parametrize("header", [None, "Bearer sk_live_wrong", f"Basic {API_KEY}", "Bearer"])
async def test_sim_rejects_bad_auth_with_envelope(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    answer = await client.post(campaign_url(RUNNING_ID) + "/stop", headers=headers)
    body = answer.json()
    assert answer.status_code == 401
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == "UNAUTHORIZED" and body["error"]["message"]
    assert TRACE.fullmatch(body["traceId"])


async def test_sim_trace_ids_are_fresh(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    traces = {(await client.get(campaign_url(RUNNING_ID), headers=auth)).json()["traceId"] for _ in range(3)}
    assert len(traces) == 3


async def test_sim_unknown_group_and_permissions(client: httpx.AsyncClient, sim: SonarlySimulator) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    answer = await client.get(campaign_url(RUNNING_ID, "000000000000000000000000"), headers=auth)
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "Account group not found"

    read_only = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
    assert (await client.get(campaign_url(RUNNING_ID), headers=read_only)).status_code == 200
    denied = await client.post(campaign_url(RUNNING_ID) + "/stop", headers=read_only)
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "Missing required permission: campaigns:execute"
    assert sim.campaigns[RUNNING_ID].state == "running"

    accounts = await client.get("/v1/accounts", headers=auth)
    assert accounts.json()["data"][0]["id"] == ACCOUNT_GROUP_ID


async def test_sim_state_machine(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    first = await client.post(campaign_url(RUNNING_ID) + "/stop", headers=auth)
    body = first.json()
    assert first.status_code == 200 and body["success"] is True and body["error"] is None
    assert body["data"]["instancesStopped"] == 840
    assert body["data"]["campaign"]["status"] == "stopped"
    again = await client.post(campaign_url(RUNNING_ID) + "/stop", headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
    for campaign_id in (DRAFT_ID, COMPLETED_ID, STOPPED_ID):
        assert (await client.post(campaign_url(campaign_id) + "/stop", headers=auth)).status_code == 409


@pytest.mark.parametrize(
    ("status", "code"), [(429, "RATE_LIMITED"), (500, "INTERNAL_ERROR"), (502, "UPSTREAM_ERROR")]
)
async def test_sim_error_response_shape(sim: SonarlySimulator, status: int, code: str) -> None:
    response = sim.error_response(status, "boom")
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == code and body["error"]["message"] == "boom"
    assert TRACE.fullmatch(body["traceId"])
