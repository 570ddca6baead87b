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

from bot.core.models import Attempt, AttemptState, CampaignPhase, Outcome, OutcomeStatus
from bot.core.ports import CampaignIdError, PreviewUnavailable
from bot.httpserver import RunningServer
from bot.providers.base import HttpOptions
from bot.providers.sonarly import SonarlyAccount, SonarlyAdapter
from bot.providers.verdicts import Kind, Reads
from bot.providers.wire import Reply
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
from tests.unit.sandbox_fixtures import FAST, fast_limiter, sandbox_fixtures

S = OutcomeStatus
TRACE = re.compile(r"[0-9a-f]{24}")
UNKNOWN_ID = "65f1a0c0e4b0a1b2c3d4e5ff"

Make = Callable[..., SonarlyAdapter]


# One server for the module (stopping uvicorn takes ~0.2 s); every test gets a freshly seeded simulator.
pytestmark = pytest.mark.asyncio(loop_scope="module")
served, sim, server = sandbox_fixtures(SonarlySimulator)


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: SonarlySimulator, server: RunningServer) -> AsyncIterator[Make]:
    sim.read_wraps_campaign = True
    made: list[SonarlyAdapter] = []

    def build(max_attempts: int = 4, **overrides: Any) -> SonarlyAdapter:
        values = {**sim.account_values(server.url), **overrides}
        # The default transport loads the CA bundle (~80 ms per adapter); the sandbox speaks plain http.
        transport = httpx.AsyncHTTPTransport(verify=False)
        options = HttpOptions(**FAST, max_attempts=max_attempts, transport=transport, limiters=fast_limiter)
        adapter = SonarlyAdapter("sandbox", SonarlyAccount.model_validate(values), options)
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


def methods(sim: SonarlySimulator) -> list[str]:
    return [c.method for c in sim.calls]


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


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    text = body if isinstance(body, str) else json.dumps(body)
    return Reply.of(status, text.encode(), httpx.Headers(headers or {}))


def ends_with_stop_count(outcome: Outcome, count: int) -> bool:
    if count == 0:
        return outcome.detail.endswith("No stop was sent.")
    return outcome.detail.endswith(f"{count} stop{' was' if count == 1 else 's were'} sent.")


# ----- declared facts and the account ---------------------------------------------------------


async def test_declared_facts() -> None:
    cls = SonarlyAdapter
    assert (cls.name, cls.display_name, cls.aliases, cls.env_prefix) == ("sonarly", "Sonarly", ("sonar",), "SONARLY_")
    assert cls.id_format == "token"
    assert cls.repeat_safe is False
    assert cls.resend_when_refused_but_active is False
    assert cls.undoable is False
    assert cls.reads == Reads(settle=True, before=False, back=True)
    assert (cls.rate_per_second, cls.max_in_flight) == (5.0, 2)
    assert cls.default_retry_after == 1.0
    assert cls.default_base_url == "https://api.sonarly.io"
    assert cls.http_outcomes == {400: S.INVALID_REQUEST, 401: S.UNAUTHORIZED, 403: S.FORBIDDEN, 404: S.NOT_FOUND}
    assert cls.code_outcomes == {}
    assert cls.refused_by_state_http == frozenset({409, 422})
    assert cls.method_fallbacks == {}
    assert set(cls.outcome_notes) == {S.UNAUTHORIZED, S.FORBIDDEN, S.NOT_FOUND, S.INVALID_REQUEST}
    assert cls.dashboard_url_template is None  # Sonarly publishes no campaign page URL
    env_names = {cls.env_prefix + f.upper() for f in SonarlyAccount.model_fields}
    assert env_names == {"SONARLY_API_KEY", "SONARLY_ACCOUNT_GROUP_ID", "SONARLY_BASE_URL", "SONARLY_DASHBOARD_URL"}
    assert cls.env_modifiers == frozenset({"base_url", "dashboard_url"})
    assert "resume" in cls.stop_meaning
    kind = cls.kind()
    assert kind.named("sonar") and kind.named("Sonarly") and kind.campaign_id_hint == cls.campaign_id_hint


async def test_facts_default_base_url_and_host() -> None:
    account = SonarlyAccount(api_key="sk_live_x", account_group_id="64f0c0ffee00000000000001")
    adapter = SonarlyAdapter("prod", account)
    try:
        assert adapter.base_url == "https://api.sonarly.io"
        assert adapter.api_host == "api.sonarly.io"
        assert adapter.has_preview is True
        facts = adapter.facts
        assert facts.provider == "sonarly" and facts.account == "prod"
        assert facts.api_host == "api.sonarly.io"
        assert facts.has_preview is True and facts.no_preview_reason == ""
        assert facts.stop_meaning == SonarlyAdapter.stop_meaning
        assert facts.undoable is False
        assert facts.dashboard_url_template is None
        assert facts.dashboard_url(RUNNING_ID) is None
        assert "sk_live_x" not in repr(adapter)
    finally:
        await adapter.aclose()


async def test_dashboard_url_from_the_account() -> None:
    account = SonarlyAccount.model_validate(
        {
            "api_key": "sk_live_x",
            "account_group_id": "g1",
            "dashboard_url": "https://app.sonarly.io/{account_group_id}/campaigns/{campaign_id}?key={api_key}",
        }
    )
    adapter = SonarlyAdapter("prod", account)
    try:
        facts = adapter.facts
        assert facts.dashboard_url_template is not None
        # The account group is filled in; a secret never is.
        assert facts.dashboard_url("c1") == "https://app.sonarly.io/g1/campaigns/c1?key={api_key}"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "values",
    [
        {"api_key": "sk_live_x", "account_group_id": "../other"},
        {"api_key": "sk_live_x", "account_group_id": "a/b"},
        {"api_key": "sk_live_x", "account_group_id": "a?b"},
        {"api_key": "sk_live_x", "account_group_id": ""},
        {"api_key": "sk_live_x", "account_group_id": "x" * 65},
        {"api_key": "   ", "account_group_id": "g1"},
        {"api_key": "sk live", "account_group_id": "g1"},
        {"api_key": "sk_live_\nx", "account_group_id": "g1"},
        {"api_key": "sk_live_é", "account_group_id": "g1"},
        {"api_key": "sk_live_x", "account_group_id": "g1", "base_url": "ftp://x"},
        {"api_key": "sk_live_x", "account_group_id": "g1", "dashboard_url": "javascript:alert(1)"},
        {"api_key": "sk_live_x", "account_group_id": "g1", "unknown": "field"},
    ],
)
async def test_account_rejects_unsafe_values(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SonarlyAccount.model_validate(values)


async def test_account_strips_the_key_and_never_shows_it() -> None:
    account = SonarlyAccount.model_validate({"api_key": " sk_live_TOPSECRET \n", "account_group_id": "g1"})
    for text in (repr(account), str(account), account.model_dump_json()):
        assert "TOPSECRET" not in text
    assert account.api_key.get_secret_value() == "sk_live_TOPSECRET"


async def test_campaign_phase_vocabulary(adapter: SonarlyAdapter) -> None:
    expected = {
        CampaignPhase.NOT_STOPPABLE: ("draft", "archived", "deleted"),
        CampaignPhase.ACTIVE: ("scheduled", "running", "active", "sending", "in_progress", "paused"),
        CampaignPhase.STOPPED: ("stopped", "cancelled", "canceled"),
        CampaignPhase.COMPLETED: ("completed", "finished"),
    }
    assert {status: phase for phase, words in expected.items() for status in words} == SonarlyAdapter.phases
    assert adapter.phase_of("Scheduled") is CampaignPhase.ACTIVE
    assert adapter.phase_of("in-progress") is CampaignPhase.ACTIVE
    assert adapter.phase_of("In Progress") is CampaignPhase.ACTIVE
    assert adapter.phase_of("STOPPED") is CampaignPhase.STOPPED
    for unknown in ("stopping", "winding_down", "", None):
        assert adapter.phase_of(unknown) is CampaignPhase.UNKNOWN


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


REJECTED_IDS = ["", "   ", "..", "../accounts", "a/b", "a?b=1", "a#b", "a%2Fb", "a.b", "a b", "ид", "x" * 65, "a\nb"]
NOT_ASCII_DIGITS = ["\uff11\uff12\uff13", "\u00b2"]  # full-width "123", superscript two


@pytest.mark.parametrize("raw", [*REJECTED_IDS, "<id>", *NOT_ASCII_DIGITS])
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


# ----- reading bodies: never raises -------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    (
        "success",
        "data",
        "error",
        "traceId",
        "campaign",
        "status",
        "instancesStopped",
        "code",
        "message",
        "details",
        "name",
        "id",
        "selectedLeadCount",
        "startedAt",
    )
)
ENVELOPE = st.recursive(
    JSON,
    lambda inner: st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


async def test_bodies_never_raise(adapter: SonarlyAdapter) -> None:
    @given(
        st.integers(min_value=100, max_value=599),
        ENVELOPE,
        st.dictionaries(st.sampled_from(["x-trace-id", "x-request-id", "retry-after"]), st.text(max_size=10)),
    )
    def check(status: int, body: Any, headers: dict[str, str]) -> None:
        answer = Reply(status, json.dumps(body), body, headers)
        adapter.stop_body(answer)
        info = adapter.campaign_of(answer, RUNNING_ID)
        assert info is None or info.id is not None
        verdict = adapter.judge(answer, RUNNING_ID)
        assert isinstance(verdict.kind, Kind)
        if not (200 <= status < 300 and info is not None):
            assert adapter.read_problem(answer, RUNNING_ID).info is None

    check()


async def test_raw_bytes_never_raise(adapter: SonarlyAdapter) -> None:
    @given(st.integers(min_value=100, max_value=599), st.binary(max_size=200))
    def check(status: int, raw: bytes) -> None:
        answer = Reply.of(status, raw, {})
        adapter.stop_body(answer)
        adapter.campaign_of(answer, RUNNING_ID)
        adapter.judge(answer, RUNNING_ID)
        adapter.read_problem(answer, RUNNING_ID)

    check()


async def test_digits_that_are_not_ascii_are_no_numbers(adapter: SonarlyAdapter) -> None:
    campaign = {"id": RUNNING_ID, "status": "running", "selectedLeadCount": "\uff11\uff12"}  # full-width "12"
    body = {"success": True, "data": {"campaign": campaign, "instancesStopped": "\u00b2"}, "error": None}
    stop = adapter.stop_body(reply(200, body))
    assert stop.extra == {}
    assert stop.note == "Sonarly did not say how many instances it stopped"
    info = adapter.campaign_of(reply(200, body), RUNNING_ID)
    assert info is not None and info.size is None and info.state == "running"


async def test_trace_id_from_the_body_else_the_headers(adapter: SonarlyAdapter) -> None:
    assert adapter.stop_body(reply(500, {"traceId": "body-1"}, {"X-Trace-Id": "hdr-1"})).trace_id == "body-1"
    assert adapter.stop_body(reply(500, {"success": False}, {"X-Trace-Id": "hdr-1"})).trace_id == "hdr-1"
    assert adapter.stop_body(reply(502, "<html/>", {"X-Request-Id": "req-1"})).trace_id == "req-1"
    assert adapter.stop_body(reply(502, "<html/>")).trace_id is None


async def test_error_details_are_kept(adapter: SonarlyAdapter) -> None:
    def message(details: Any) -> str | None:
        body = {"success": False, "error": {"code": "VALIDATION_ERROR", "message": "Bad", "details": details}}
        return adapter.stop_body(reply(400, body)).message

    assert message("campaignId is invalid") == "Bad (campaignId is invalid)"
    assert message({"campaignId": "must be an ObjectId"}) == 'Bad ({"campaignId": "must be an ObjectId"})'
    assert message(["a", "b"]) == 'Bad (["a", "b"])'
    assert message({}) == "Bad"
    assert message(None) == "Bad"
    assert adapter.stop_body(reply(400, {"error": {"details": "only details"}})).message == "only details"
    assert adapter.stop_body(reply(400, {"error": "not an object"})).message is None


async def test_success_must_be_a_json_boolean(adapter: SonarlyAdapter) -> None:
    for flag in ("true", 1, None, "yes"):
        assert adapter.stop_body(reply(200, {"success": flag, "data": {"instancesStopped": 3}})).success is None
        assert adapter.judge(reply(200, {"success": flag}), RUNNING_ID).kind is Kind.DOUBT
    assert adapter.stop_body(reply(200, {"success": True})).success is True
    assert adapter.stop_body(reply(200, {"success": False})).success is False


# ----- stop: the documented answers -----------------------------------------------------------


async def test_stop_running_campaign(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert outcome.http_status == 200
    assert outcome.state_after == "stopped"
    assert outcome.provider_status == "stopped"
    assert outcome.attempts == 1
    assert outcome.provider == "sonarly" and outcome.account == "sandbox" and outcome.campaign_id == RUNNING_ID
    assert outcome.trace_id is not None and TRACE.fullmatch(outcome.trace_id)
    assert f"trace {outcome.trace_id}" in outcome.detail
    assert "Sonarly accepted the stop: 840 instances stopped" in outcome.detail
    assert "now reports the campaign as 'stopped'" in outcome.detail
    assert ends_with_stop_count(outcome, 1)
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
    assert methods(sim) == ["POST", "GET"]  # the read-back
    assert sim.calls[1].path == f"/v1/accounts/{ACCOUNT_GROUP_ID}/campaigns/{RUNNING_ID}"


@pytest.mark.parametrize(("campaign_id", "instances"), [(SCHEDULED_ID, 0), (PAUSED_ID, 410)])
async def test_stop_scheduled_and_paused(
    adapter: SonarlyAdapter, sim: SonarlySimulator, campaign_id: str, instances: int
) -> None:
    outcome = await adapter.stop(campaign_id)
    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert f"{instances} instances stopped" in outcome.detail
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == instances
    assert sim.campaigns[campaign_id].state == "stopped"


async def test_one_instance_is_singular(adapter: SonarlyAdapter) -> None:
    body = {"success": True, "data": {"instancesStopped": 1}, "error": None, "traceId": "t1"}
    assert adapter.stop_body(reply(200, body)).note == "1 instance stopped (trace t1)"


async def test_409_and_read_says_stopped_is_already_stopped(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop(STOPPED_ID)

    assert outcome.status is S.ALREADY_STOPPED
    assert outcome.verified is True
    assert outcome.http_status == 409
    assert outcome.provider_code == "CONFLICT"
    assert outcome.provider_message == "Campaign is stopped and cannot be stopped"
    assert outcome.state_after == "stopped"
    assert outcome.trace_id is not None and outcome.trace_id in outcome.detail
    assert "nothing changed" in outcome.detail
    assert stops(sim) == 1
    assert reads(sim) == 1


@pytest.mark.parametrize(
    ("campaign_id", "status", "state"),
    [
        (COMPLETED_ID, S.ALREADY_COMPLETED, "completed"),
        (DRAFT_ID, S.NOT_STOPPABLE, "draft"),
    ],
)
async def test_409_settled_by_the_read(
    adapter: SonarlyAdapter, sim: SonarlySimulator, campaign_id: str, status: OutcomeStatus, state: str
) -> None:
    outcome = await adapter.stop(campaign_id)
    assert outcome.status is status
    assert outcome.verified is True
    assert outcome.state_after == state
    assert outcome.provider_status == state
    assert outcome.http_status == 409
    assert f"'{state}'" in outcome.detail
    assert stops(sim) == 1 and reads(sim) == 1
    assert sim.campaigns[campaign_id].state == state


async def test_unknown_campaign_is_not_found(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop(UNKNOWN_ID)
    assert outcome.status is S.NOT_FOUND
    assert outcome.http_status == 404
    assert outcome.provider_code == "NOT_FOUND"
    assert outcome.provider_message == "Campaign not found"
    assert f"Sonarly does not know campaign {UNKNOWN_ID} in account group {ACCOUNT_GROUP_ID}." in outcome.detail
    assert "{" not in outcome.detail
    assert outcome.trace_id is not None
    assert reads(sim) == 0
    assert ends_with_stop_count(outcome, 1)


async def test_unknown_account_group_is_not_found(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(account_group_id="64f0c0ffee0000000000ffff").stop(RUNNING_ID)
    assert outcome.status is S.NOT_FOUND
    assert outcome.provider_message == "Account group not found"
    assert "64f0c0ffee0000000000ffff" in outcome.detail
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_wrong_key_is_unauthorized(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(api_key="sk_live_wrong_key").stop(RUNNING_ID)
    assert outcome.status is S.UNAUTHORIZED
    assert outcome.http_status == 401
    assert outcome.provider_code == "UNAUTHORIZED"
    assert outcome.provider_message == "Invalid or missing API key"
    assert "api_key" in outcome.detail and "Nothing was stopped" in outcome.detail
    assert "sk_live_wrong_key" not in outcome.model_dump_json()
    assert stops(sim) == 1 and reads(sim) == 0  # a static key is not renewed: no repeat after the 401


async def test_key_without_execute_is_forbidden(make: Make, sim: SonarlySimulator) -> None:
    outcome = await make(api_key=READ_ONLY_KEY).stop(RUNNING_ID)
    assert outcome.status is S.FORBIDDEN
    assert outcome.http_status == 403
    assert outcome.provider_code == "FORBIDDEN"
    assert "lacks the campaigns:execute permission" in outcome.detail
    assert "campaigns:execute" in (outcome.provider_message or "")
    assert stops(sim) == 1 and reads(sim) == 0
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_validation_error_is_invalid_request(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop("spring-promo")
    assert outcome.status is S.INVALID_REQUEST
    assert outcome.http_status == 400
    assert outcome.provider_code == "VALIDATION_ERROR"
    assert "24-character hexadecimal ObjectId" in (outcome.provider_message or "")
    assert "Check the campaign id" in outcome.detail
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
    assert outcome.status is S.INVALID_REQUEST
    assert outcome.trace_id == "t-400"
    assert "campaignId" in (outcome.provider_message or "")
    assert "must be an ObjectId" in outcome.detail


async def test_invalid_id_is_refused_without_sending(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    outcome = await adapter.stop("../../v1/accounts")
    assert outcome.status is S.INVALID_REQUEST
    assert outcome.attempts == 0
    assert ends_with_stop_count(outcome, 0)
    assert sim.calls == []


# ----- retry safety: doubt is settled by reading --------------------------------------------


async def test_lost_answer_stops_exactly_once(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    """The stop lands, its answer is lost: one stop only, and the read says it stopped."""
    fault_stop(sim, FaultKind.LOST_ANSWER)

    outcome = await adapter.stop(RUNNING_ID)

    assert stops(sim) == 1
    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert outcome.attempts == 1
    assert outcome.state_after == "stopped"
    assert outcome.http_status is None
    assert "gave no answer to the stop" in outcome.detail and "so the stop went through" in outcome.detail
    assert outcome.trace_id is not None  # the read's, the stop's own never arrived
    assert sim.campaigns[RUNNING_ID].state == "stopped"
    assert methods(sim) == ["POST", "GET"]


async def test_late_lost_answer_is_our_stop(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    """The lost stop takes effect only after the read showed it running: the second stop hears 409."""
    fault_stop(sim, FaultKind.LOST_ANSWER, late=True)

    outcome = await adapter.stop(RUNNING_ID)

    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    assert outcome.status is S.STOPPED  # not "already stopped": the first stop did it
    assert outcome.verified is True
    assert outcome.http_status == 409
    assert outcome.attempts == 2
    assert ends_with_stop_count(outcome, 2)


async def test_timeout_with_campaign_running_sends_one_second_stop(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert outcome.attempts == 2
    assert outcome.state_before is None  # Sonarly declares no read before the stop
    assert outcome.http_status == 200
    assert "840 instances stopped" in outcome.detail
    assert "stop #1: no answer" in outcome.detail and "read: 'running'" in outcome.detail
    assert "stop #2: HTTP 200" in outcome.detail
    assert ends_with_stop_count(outcome, 2)


async def test_500_and_read_running_sends_second_stop(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert outcome.attempts == 2
    assert "stop #1: HTTP 500 · INTERNAL_ERROR · sandbox fault: HTTP 500" in outcome.detail
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == 840


async def test_502_html_page_and_read_running_sends_second_stop(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=502)
    outcome = await adapter.stop(RUNNING_ID)
    assert stops(sim) == 2
    assert outcome.status is S.STOPPED
    assert "stop #1: HTTP 502" in outcome.detail


async def test_502_html_page_persistent_shows_the_page(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=502, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.PROVIDER_ERROR
    assert "502 Bad Gateway" in outcome.detail
    assert outcome.state_after == "running"
    assert stops(sim) == 4 and methods(sim) == ["POST", "GET"] * 4


async def test_429_reads_then_stops_again_after_retry_after(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=0.3)

    outcome = await adapter.stop(RUNNING_ID)

    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    first, read, second, _ = sim.calls
    assert second.at - first.at >= 0.3
    assert read.at - first.at >= 0.3  # the read comes after the wait, right before the second stop
    assert outcome.status is S.STOPPED
    assert outcome.attempts == 2
    assert "waited 0.3 s (rate limit)" in outcome.detail


async def test_429_without_retry_after_waits_a_second(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429)

    outcome = await adapter.stop(RUNNING_ID)

    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    first, read, _, _ = sim.calls
    assert read.at - first.at >= 1.0  # default_retry_after
    assert outcome.status is S.STOPPED
    assert "waited 1 s (rate limit)" in outcome.detail


async def test_429_with_retry_after_past_the_deadline(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=30)
    started = time.monotonic()

    outcome = await adapter.stop(RUNNING_ID)

    assert time.monotonic() - started < 2
    assert outcome.status is S.RATE_LIMITED
    assert outcome.http_status == 429
    assert outcome.provider_code == "RATE_LIMITED"
    assert outcome.state_after == "running"
    assert "No further stop was sent (the time allowed for the stop is used up)" in outcome.detail
    assert stops(sim) == 1
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_429_on_stop_and_reads_is_rate_limited(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=0, times=None)
    fault_read(sim, FaultKind.STATUS, status=429, retry_after=0, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.RATE_LIMITED
    assert stops(sim) == 1 and reads(sim) == 2  # no read can justify a second stop
    assert "No second stop was sent" in outcome.detail


async def test_429_and_read_says_stopped_is_already_stopped(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=429, retry_after=0)
    outcome = await adapter.stop(STOPPED_ID)
    assert outcome.status is S.ALREADY_STOPPED
    assert outcome.http_status == 429
    assert stops(sim) == 1


async def test_409_and_read_says_running_sends_no_second_stop(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=409)
    outcome = await adapter.stop(RUNNING_ID)
    assert methods(sim) == ["POST", "GET"]
    assert outcome.status is S.NOT_STOPPABLE
    assert outcome.verified is False
    assert outcome.provider_message == "sandbox fault: HTTP 409"
    assert outcome.state_after == "running"
    assert "a refusal is not a doubt, so no second stop was sent" in outcome.detail
    assert sim.campaigns[RUNNING_ID].state == "running"


async def test_409_and_failed_read_is_not_stoppable(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=409)
    fault_read(sim, FaultKind.STATUS, status=500, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.NOT_STOPPABLE
    assert "Reading the campaign to settle it failed" in outcome.detail
    assert stops(sim) == 1 and reads(sim) == 2


async def test_reset_connection_is_settled_by_reading(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.RESET)
    outcome = await adapter.stop(RUNNING_ID)
    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    assert outcome.status is S.STOPPED


async def test_unknown_status_after_500_is_never_called_stopped(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    sim.campaigns[RUNNING_ID].state = "winding_down"
    fault_stop(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.PROVIDER_ERROR
    assert outcome.verified is False
    assert outcome.state_after == "winding_down"
    assert outcome.campaign is not None and outcome.campaign.phase is CampaignPhase.UNKNOWN
    assert "'winding_down'" in outcome.detail
    assert stops(sim) == 1


async def test_unknown_status_after_timeout_is_unknown(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    sim.campaigns[RUNNING_ID].state = "stopping"
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.UNKNOWN
    assert outcome.state_after == "stopping"
    assert "does not know" in outcome.detail
    assert stops(sim) == 1


async def test_timeout_and_read_forbidden_is_unknown(make: Make, sim: SonarlySimulator) -> None:
    adapter = make(api_key=EXECUTE_ONLY_KEY)
    fault_stop(sim, FaultKind.TIMEOUT)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.UNKNOWN
    assert "lacks the campaigns:read permission" in outcome.detail
    assert stops(sim) == 1 and reads(sim) == 1  # a 403 is no passing failure: not read again
    assert outcome.trace_id is not None  # the failed read's trace id, for support


async def test_timeout_and_read_not_found_is_not_found(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.TIMEOUT)
    fault_read(sim, FaultKind.STATUS, status=404, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.NOT_FOUND
    assert f"does not know campaign {RUNNING_ID} in account group {ACCOUNT_GROUP_ID}" in outcome.detail
    assert stops(sim) == 1


async def test_502_and_failed_reads_never_resend(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    body = envelope_text(False, code="UPSTREAM_ERROR", message="Upstream service error", trace="trace-502")
    fault_stop(sim, FaultKind.STATUS, status=502, body=body)
    fault_read(sim, FaultKind.STATUS, status=500, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.PROVIDER_ERROR
    assert outcome.http_status == 502
    assert outcome.provider_code == "UPSTREAM_ERROR"
    assert outcome.provider_message == "Upstream service error"
    assert outcome.trace_id == "trace-502"
    assert "trace trace-502" in outcome.detail
    assert "No second stop was sent" in outcome.detail
    assert stops(sim) == 1
    assert reads(sim) == 2  # one retry of a failed read: reads are safe to repeat


async def test_503_on_stop_and_reads_is_provider_error(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.STATUS, status=503, times=None)
    fault_read(sim, FaultKind.STATUS, status=503, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.PROVIDER_ERROR  # an answer came back: not `unknown`
    assert stops(sim) == 1


async def test_lost_answer_and_failed_reads_is_unknown(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_stop(sim, FaultKind.LOST_ANSWER)
    fault_read(sim, FaultKind.STATUS, status=503, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.UNKNOWN
    assert stops(sim) == 1
    assert ends_with_stop_count(outcome, 1)


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
async def test_garbage_2xx_is_settled_by_reading(adapter: SonarlyAdapter, sim: SonarlySimulator, body: str) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)

    outcome = await adapter.stop(RUNNING_ID)

    assert "stop #1: HTTP 200;" in outcome.detail
    assert "read: 'running'" in outcome.detail
    assert methods(sim) == ["POST", "GET", "POST", "GET"]  # the read proved it running
    assert outcome.status is S.STOPPED
    assert outcome.verified is True


@pytest.mark.parametrize("body", GARBAGE)
async def test_garbage_2xx_with_unreadable_state_is_unknown(
    adapter: SonarlyAdapter, sim: SonarlySimulator, body: str
) -> None:
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)
    fault_read(sim, FaultKind.MALFORMED, status=200, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.UNKNOWN
    assert outcome.http_status == 200
    assert "Reading the campaign to settle it failed" in outcome.detail
    assert "unreadable answer to the read" in outcome.detail
    assert stops(sim) == 1


async def test_garbage_2xx_every_time_is_provider_error(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    """No usable answer ever, but each read shows the campaign running: the provider failed, it may still send."""
    fault_stop(sim, FaultKind.MALFORMED, status=200, times=None)
    outcome = await adapter.stop(RUNNING_ID)
    assert outcome.status is S.PROVIDER_ERROR
    assert outcome.state_after == "running"
    assert methods(sim) == ["POST", "GET"] * 4  # never a stop without a read since the previous one
    assert ends_with_stop_count(outcome, 4)


async def test_http_200_with_success_false_is_never_stopped_nor_sent_again(make: Make, sim: SonarlySimulator) -> None:
    adapter = make(max_attempts=3)
    body = envelope_text(False, code="STOP_FAILED", message="Could not stop instances", trace="trace-200f")
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body, times=None)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.PROVIDER_ERROR
    assert outcome.http_status == 200
    assert outcome.provider_code == "STOP_FAILED"
    assert outcome.provider_message == "Could not stop instances"
    assert outcome.trace_id == "trace-200f"
    assert outcome.state_after == "running"
    assert outcome.attempts == 1
    assert "sending again could hide the failure, so no second stop was sent" in outcome.detail
    assert ends_with_stop_count(outcome, 1)
    assert methods(sim) == ["POST", "GET"]  # the read shows what became of it; no resend


async def test_http_200_with_success_false_on_stopped_campaign(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    body = envelope_text(False, code="CONFLICT", message="Already stopped")
    fault_stop(sim, FaultKind.MALFORMED, status=200, body=body)
    outcome = await adapter.stop(STOPPED_ID)
    assert outcome.status is S.ALREADY_STOPPED
    assert outcome.provider_message == "Already stopped"
    assert stops(sim) == 1


async def test_success_with_wrong_data_type_keeps_verdict_but_read_back_disagrees(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    fault_stop(sim, FaultKind.STATUS, status=200, body=envelope_text(True, data="oops"))

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.STOPPED
    assert outcome.verified is False
    assert outcome.state_after == "running"
    assert "did not say how many instances" in outcome.detail
    assert "still shows it as 'running'" in outcome.detail
    assert stops(sim) == 1


async def test_success_on_a_non_2xx_is_doubt(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    body = envelope_text(True, data={"instancesStopped": 3})
    verdict = adapter.judge(reply(409, body), RUNNING_ID)
    assert verdict.kind is Kind.DOUBT and verdict.may_have_applied
    assert "answered HTTP 409 yet said success" in verdict.headline
    fault_stop(sim, FaultKind.STATUS, status=409, body=body)
    outcome = await adapter.stop(RUNNING_ID)
    assert methods(sim) == ["POST", "GET", "POST", "GET"]
    assert outcome.status is S.STOPPED


async def test_failed_read_back_keeps_the_success(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_read(sim, FaultKind.STATUS, status=500)

    outcome = await adapter.stop(RUNNING_ID)

    assert outcome.status is S.STOPPED
    assert outcome.verified is False
    assert "not verified" in outcome.detail
    assert outcome.state_after == "stopped"  # what the stop's own answer said
    assert outcome.campaign is not None and outcome.campaign.extra["instancesStopped"] == 840
    assert stops(sim) == 1 and reads(sim) == 1


@pytest.mark.parametrize(
    ("status", "expected", "words"),
    [
        (401, S.UNAUTHORIZED, "api_key"),
        (403, S.FORBIDDEN, "campaigns:execute"),
        (404, S.NOT_FOUND, "does not know campaign"),
        (302, S.PROVIDER_ERROR, "redirect"),
        (405, S.INVALID_REQUEST, "HTTP 405"),
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
    assert outcome.status is S.UNREACHABLE
    assert outcome.attempts == 2
    assert "could not be reached" in outcome.detail
    assert ends_with_stop_count(outcome, 0)


async def test_restart_after_a_lost_stop_reads_instead_of_stopping(
    adapter: SonarlyAdapter, sim: SonarlySimulator
) -> None:
    sim.campaigns[RUNNING_ID].state = "stopped"  # the stop the crashed process sent did arrive
    earlier = [Attempt(number=1, state=AttemptState.SENDING)]
    outcome = await adapter.stop(RUNNING_ID, earlier=earlier)
    assert outcome.status is S.STOPPED
    assert outcome.verified is True
    assert methods(sim) == ["GET"]
    assert ends_with_stop_count(outcome, 1)


async def test_secrets_stay_out_of_outcomes(make: Make, sim: SonarlySimulator) -> None:
    adapter = make()
    outcomes: list[Outcome] = [await adapter.stop(STOPPED_ID), await adapter.stop(UNKNOWN_ID)]
    fault_stop(sim, FaultKind.TIMEOUT)
    outcomes.append(await adapter.stop(RUNNING_ID))
    # A provider that echoes the key back: it is redacted, never shown.
    fault_stop(sim, FaultKind.STATUS, status=400, body=envelope_text(False, "X", "BAD", f"key {API_KEY} is odd"))
    outcomes.append(await adapter.stop(SCHEDULED_ID))
    outcomes.append(await make(api_key="sk_live_DO_NOT_LEAK").stop(SCHEDULED_ID))
    for outcome in outcomes:
        dumped = outcome.model_dump_json()
        assert API_KEY not in dumped
        assert "DO_NOT_LEAK" not in dumped
        assert "http://" not in outcome.detail
    assert "<redacted>" in (outcomes[3].provider_message or "")


# ----- preview and read_state -------------------------------------------------------------


async def test_preview_running(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    info = await adapter.preview(RUNNING_ID)
    assert info.id == RUNNING_ID
    assert info.name == "Spring promo outreach (wrong list)"
    assert info.state == "running"
    assert info.phase is CampaignPhase.ACTIVE
    assert info.size == 1200
    assert info.extra["startedAt"] == "2024-03-14T08:30:00.000Z"
    assert methods(sim) == ["GET"]
    assert sim.calls[0].headers["authorization"] == f"Bearer {API_KEY}"


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
    with pytest.raises(PreviewUnavailable, match=f"does not know campaign {UNKNOWN_ID} in account group"):
        await adapter.preview(UNKNOWN_ID)


async def test_preview_without_read_permission_names_it(make: Make) -> None:
    with pytest.raises(PreviewUnavailable, match="lacks the campaigns:read permission"):
        await make(api_key=EXECUTE_ONLY_KEY).preview(RUNNING_ID)


async def test_preview_with_wrong_key(make: Make) -> None:
    with pytest.raises(PreviewUnavailable, match="rejected the API key") as caught:
        await make(api_key="sk_live_nope").preview(RUNNING_ID)
    assert "sk_live_nope" not in str(caught.value)


async def test_preview_slow(adapter: SonarlyAdapter, sim: SonarlySimulator) -> None:
    fault_read(sim, FaultKind.LATENCY, delay=5)
    started = time.monotonic()
    with pytest.raises(PreviewUnavailable, match="did not answer"):
        await adapter.preview(RUNNING_ID)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("<html>busy</html>", "unreadable answer"),
        ("[]", "unreadable answer"),
        ('{"success": true, "data": null}', "holds no campaign"),
        ('{"success": false, "data": null, "error": {"code": "X", "message": "nope"}}', "reported a failure"),
    ],
)
async def test_preview_garbage(adapter: SonarlyAdapter, sim: SonarlySimulator, body: str, words: str) -> None:
    fault_read(sim, FaultKind.MALFORMED, status=200, body=body)
    with pytest.raises(PreviewUnavailable, match=words):
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
    assert stops(sim) == 0


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


async def test_sim_state_machine(client: httpx.AsyncClient, sim: SonarlySimulator) -> None:
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
    await sim.wait_for_calls(5, "/stop", "POST")


@pytest.mark.parametrize(("status", "code"), [(429, "RATE_LIMITED"), (500, "INTERNAL_ERROR"), (502, "UPSTREAM_ERROR")])
async def test_sim_error_response_shape(sim: SonarlySimulator, status: int, code: str) -> None:
    response = sim.error_response(status, "boom")
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body["success"] is False and body["data"] is None
    assert body["error"]["code"] == code and body["error"]["message"] == "boom"
    assert TRACE.fullmatch(body["traceId"])
