"""CleverTap: every documented answer (seeds 000, 001) and garbage → the right outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from bot.core.models import OutcomeStatus
from bot.providers.base import CampaignIdError, HttpOptions
from bot.providers.clevertap import REGION_HOSTS, CleverTapAccount, CleverTapAdapter

BASE = "https://in1.api.clevertap.com"
STOP = f"{BASE}/1/targets/stop.json"
FAST = HttpOptions(timeout=0.5, deadline=2.0, max_attempts=3)


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
    (200, {"status": "success", "state": "paused"}, OutcomeStatus.UNKNOWN, None),
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
    assert host() == "https://api.clevertap.com"
    assert host(region="sk1") == "https://sk1.api.clevertap.com"
    assert host(base_url="http://127.0.0.1:9000/ct/") == "http://127.0.0.1:9000/ct"
    assert set(REGION_HOSTS) == {"in1", "sg1", "us1", "aps3", "mec1", "sk1", "eu1"}
    with pytest.raises(ValueError, match="unknown region"):
        CleverTapAccount(account_id="A", passcode="p", region="mars1")


def test_passcode_is_secret_in_reprs() -> None:
    account = CleverTapAccount(account_id="A", passcode="top-secret")
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
        CleverTapAccount(account_id="A", passcode=passcode)


@respx.mock
async def test_absurd_answers_do_not_escape_the_adapter(adapter: CleverTapAdapter) -> None:
    respx.post(STOP).mock(return_value=httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000))
    assert (await adapter.stop("1")).status is OutcomeStatus.UNKNOWN
    respx.post(STOP).mock(return_value=httpx.Response(200, json={"status": "fail", "code": "9" * 5000}))
    assert (await adapter.stop("1")).status is OutcomeStatus.PROVIDER_ERROR
