"""CleverTap: every documented answer (seeds 000, 001) and garbage → the right outcome."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.core.models import OutcomeStatus
from bot.core.ports import CampaignIdError
from bot.providers.base import HttpOptions
from bot.providers.clevertap import REGION_HOSTS, CleverTapAccount, CleverTapAdapter
from bot.providers.wire import Reply
from tests.unit.sandbox_fixtures import fast_limiter

BASE = "https://in1.api.clevertap.com"
STOP = f"{BASE}/1/targets/stop.json"
FAST = HttpOptions(
    timeout=0.5,
    deadline=2.0,
    max_attempts=3,
    backoff=0.01,
    limiters=fast_limiter,
)


JUDGE = CleverTapAdapter("p", CleverTapAccount(account_id="A", passcode="p", region="in1"))
"""For judging answers only: never sends."""


@pytest.fixture
async def adapter() -> AsyncIterator[CleverTapAdapter]:
    ct = CleverTapAdapter("prod", CleverTapAccount(account_id="ACC", passcode="secret-pass", region="in1"), FAST)
    yield ct
    await ct.aclose()


CASES = [
    # (HTTP status, body, expected status, expected provider code)
    (
        200,
        {"status": "success", "campaign_id": 1457432766, "state": "stopped", "stopped_at": "2025-07-07T12:45:00Z"},
        OutcomeStatus.STOPPED,
        None,
    ),
    (
        200,
        {"status": "success", "campaign_id": 1457432766, "state": "already_stopped"},
        OutcomeStatus.ALREADY_STOPPED,
        None,
    ),
    (
        200,
        {"status": "success", "campaign_id": 1457432766, "state": "already_completed"},
        OutcomeStatus.ALREADY_COMPLETED,
        None,
    ),
    (200, {"status": "success"}, OutcomeStatus.STOPPED, None),
    (200, {"status": "Success", "state": "Already-Stopped"}, OutcomeStatus.ALREADY_STOPPED, None),
    (200, {"status": "success", "state": "already completed"}, OutcomeStatus.ALREADY_COMPLETED, None),
    (
        409,
        {"status": "success", "campaign_id": 1457432766, "state": "already_stopped"},
        OutcomeStatus.ALREADY_STOPPED,
        None,
    ),
    (409, {"status": "fail", "error": "Campaign already stopped", "code": 74}, OutcomeStatus.ALREADY_STOPPED, "74"),
    (400, {"status": "fail", "error": "Invalid Campaign ID", "code": 21}, OutcomeStatus.INVALID_REQUEST, "21"),
    (400, {"status": "fail", "error": "Invalid Campaign ID", "code": 400}, OutcomeStatus.INVALID_REQUEST, "400"),
    (401, {"status": "fail", "error": "Invalid Credentials", "code": 101}, OutcomeStatus.UNAUTHORIZED, "101"),
    (401, {"status": "fail", "error": "Invalid Credentials", "code": 401}, OutcomeStatus.UNAUTHORIZED, "401"),
    (200, {"status": "fail", "error": "Invalid Credentials", "code": 101}, OutcomeStatus.UNAUTHORIZED, "101"),
    (404, {"status": "fail", "error": "Campaign not found", "code": 73}, OutcomeStatus.NOT_FOUND, "73"),
    (403, {"status": "fail", "error": "Forbidden"}, OutcomeStatus.FORBIDDEN, None),
    (418, {"status": "fail", "error": "teapot"}, OutcomeStatus.INVALID_REQUEST, None),
    (200, {"status": "success", "state": "paused"}, OutcomeStatus.UNKNOWN, None),  # success, undocumented state
]


@pytest.mark.parametrize(("http_status", "body", "expected", "code"), CASES)
@respx.mock
async def test_documented_answers(
    adapter: CleverTapAdapter, http_status: int, body: dict[str, Any], expected: OutcomeStatus, code: str | None
) -> None:
    route = respx.post(STOP).mock(return_value=httpx.Response(http_status, json=body))
    outcome = await adapter.stop("1457432766")
    assert outcome.status is expected
    assert outcome.provider_code == code
    assert outcome.http_status == http_status
    assert outcome.provider == "clevertap" and outcome.account == "prod"
    assert route.call_count == 1
    assert "secret-pass" not in outcome.model_dump_json()
    if "error" in body:
        assert outcome.provider_message == body["error"]


@respx.mock
async def test_request_shape(adapter: CleverTapAdapter) -> None:
    route = respx.post(STOP).mock(return_value=httpx.Response(200, json={"status": "success", "state": "stopped"}))
    await adapter.stop("1457432766")
    request = route.calls.last.request
    assert request.headers["X-CleverTap-Account-Id"] == "ACC"
    assert request.headers["X-CleverTap-Passcode"] == "secret-pass"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == b'{"id":1457432766}'


@pytest.mark.parametrize(
    ("http_status", "content", "expected"),
    [
        (502, b"<html><body>Bad Gateway</body></html>", OutcomeStatus.PROVIDER_ERROR),
        (500, b"", OutcomeStatus.PROVIDER_ERROR),
        (200, b"<html>oops</html>", OutcomeStatus.UNKNOWN),
        (200, b"", OutcomeStatus.UNKNOWN),
        (200, b"[1, 2]", OutcomeStatus.UNKNOWN),
        (200, b'"success"', OutcomeStatus.UNKNOWN),
        (200, b'{"status": "succ', OutcomeStatus.UNKNOWN),
        (200, b'{"status": 5, "state": []}', OutcomeStatus.UNKNOWN),
        (429, b"Too Many Requests", OutcomeStatus.RATE_LIMITED),
        (404, b"not json", OutcomeStatus.NOT_FOUND),
    ],
)
@respx.mock
async def test_garbage_answers(
    adapter: CleverTapAdapter, http_status: int, content: bytes, expected: OutcomeStatus
) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(http_status, content=content))
    outcome = await adapter.stop("1457432766")
    assert outcome.status is expected
    assert outcome.detail


@respx.mock
async def test_rate_limit_is_retried_then_succeeds(adapter: CleverTapAdapter) -> None:
    route = respx.post(STOP).mock(
        side_effect=[
            httpx.Response(429, json={"status": "fail", "error": "Rate limit exceeded", "code": 88}),
            httpx.Response(200, json={"status": "fail", "error": "Rate limit exceeded", "code": 88}),
            httpx.Response(200, json={"status": "success", "state": "stopped"}),
        ]
    )
    outcome = await adapter.stop("1457432766")
    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.attempts == 3 and route.call_count == 3


@respx.mock
async def test_retries_are_bounded(adapter: CleverTapAdapter) -> None:
    route = respx.post(STOP).mock(return_value=httpx.Response(500, json={"status": "fail", "error": "boom"}))
    outcome = await adapter.stop("1457432766")
    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert route.call_count == FAST.max_attempts == outcome.attempts


@respx.mock
async def test_connect_error_is_unreachable_and_read_timeout_is_unknown(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(side_effect=httpx.ConnectError("refused"))
    assert (await adapter.stop("1")).status is OutcomeStatus.UNREACHABLE
    respx.post(STOP).mock(side_effect=httpx.ReadTimeout("slow"))
    outcome = await adapter.stop("1")
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert "dashboard" in outcome.detail


@respx.mock
async def test_timeout_then_success_is_stopped(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"status": "success", "state": "already_stopped"}),
        ]
    )
    outcome = await adapter.stop("1")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.attempts == 2


def test_regions_and_base_url() -> None:
    def host(**kw: str) -> str:
        return CleverTapAdapter("a", CleverTapAccount(account_id="A", passcode="p", **kw)).base_url

    assert host(region="in1") == "https://in1.api.clevertap.com"
    assert host(region="EU1") == "https://api.clevertap.com"
    assert host(region="sk1") == "https://sk1.api.clevertap.com"
    assert host(base_url="http://127.0.0.1:9000/ct/") == "http://127.0.0.1:9000/ct"
    assert set(REGION_HOSTS) == {"in1", "sg1", "us1", "aps3", "mec1", "sk1", "eu1"}
    with pytest.raises(ValueError, match="unknown region"):
        CleverTapAccount(account_id="A", passcode="p", region="mars1")
    # No silent default: an India project sent to the EU host would only ever hear 401.
    with pytest.raises(ValidationError, match="region") as missing:
        CleverTapAccount(account_id="A", passcode="p")
    assert missing.value.errors()[0]["loc"] == ("region",)


def test_passcode_is_secret_in_reprs() -> None:
    account = CleverTapAccount(account_id="A", passcode="top-secret", region="us1")
    assert "top-secret" not in repr(account) and "top-secret" not in str(account.model_dump())


@given(st.text())
def test_campaign_id_parsing_never_raises_anything_else(raw: str) -> None:
    try:
        value = CleverTapAdapter.parse_campaign_id(raw)
    except CampaignIdError:
        return
    assert value.isdigit() and int(value) > 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "fail", "code": 5, "error": "Something odd"}, OutcomeStatus.PROVIDER_ERROR),
        ({"status": "fail", "error": "Invalid Credentials"}, OutcomeStatus.UNAUTHORIZED),
        ({"status": "fail", "error": "Campaign not found"}, OutcomeStatus.NOT_FOUND),
        ({"status": "fail"}, OutcomeStatus.PROVIDER_ERROR),
    ],
)
@respx.mock
async def test_a_fail_verdict_on_http_200_is_never_unknown(
    adapter: CleverTapAdapter, body: dict[str, Any], expected: OutcomeStatus
) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(200, json=body))
    assert (await adapter.stop("1")).status is expected


@respx.mock
async def test_already_stopped_after_a_lost_answer_is_reported_as_stopped(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(side_effect=[httpx.ReadTimeout("lost"),
                                       httpx.Response(200, json={"status": "success", "state": "already_stopped"})])
    outcome = await adapter.stop("1")
    assert outcome.status is OutcomeStatus.STOPPED and "most likely stopped it" in outcome.detail


@respx.mock
async def test_echoed_secrets_are_scrubbed(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(
        401, json={"status": "fail", "error": "Invalid passcode secret-pass for ACC", "code": 101}))
    outcome = await adapter.stop("1")
    assert "secret-pass" not in outcome.model_dump_json() and "<redacted>" in outcome.detail


@pytest.mark.parametrize("passcode", ["pässcode", "pass\ncode"])
def test_a_passcode_must_be_sendable_as_a_header(passcode: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        CleverTapAccount(account_id="A", passcode=passcode, region="in1")


@respx.mock
async def test_a_bare_success_says_the_older_api_cannot_tell_stopped_from_already_stopped(
    adapter: CleverTapAdapter,
) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(200, json={"status": "success"}))
    outcome = await adapter.stop("1457432766")
    assert outcome.status is OutcomeStatus.STOPPED and "already stopped" in outcome.detail


def test_declared_facts() -> None:
    adapter = CleverTapAdapter("prod", CleverTapAccount(account_id="W9R-1", passcode="p", region="in1"))
    facts = adapter.facts
    assert facts.display_name == "CleverTap" and facts.api_host == "in1.api.clevertap.com"
    assert not facts.has_preview and "no API to read one campaign" in facts.no_preview_reason
    assert facts.dashboard_url("1457432766") == (
        "https://dashboard.clevertap.com/W9R-1/campaigns/campaign/1457432766/report/stats"
    )
    assert CleverTapAdapter.repeat_safe and not CleverTapAdapter.reads.settle
    overridden = CleverTapAccount(account_id="A", passcode="p", region="in1",
                                  dashboard_url="https://in1.dashboard.clevertap.com/A/c/{campaign_id}")
    assert CleverTapAdapter("x", overridden).facts.dashboard_url("7") == "https://in1.dashboard.clevertap.com/A/c/7"


@given(st.integers(100, 599), st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10), max_size=6)))
def test_judging_never_raises(http_status: int, body: dict[str, Any] | None) -> None:
    raw = json.dumps(body).encode() if body is not None else b"\xff\xfe garbage"
    verdict = JUDGE.judge(Reply.of(http_status, raw, {}), "1")
    assert verdict.headline


@respx.mock
async def test_absurd_answers_do_not_escape_the_adapter(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000))
    assert (await adapter.stop("1")).status is OutcomeStatus.UNKNOWN
    respx.post(STOP).mock(return_value=httpx.Response(200, json={"status": "fail", "code": "9" * 5000}))
    assert (await adapter.stop("1")).status is OutcomeStatus.PROVIDER_ERROR
