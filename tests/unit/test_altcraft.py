"""Altcraft adapter against its simulator over real HTTP (127.0.0.1:0), plus id parsing and settings."""

from __future__ import annotations

import json
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
from bot.providers.altcraft import DEFAULT_BASE_URL, AltcraftAccount, AltcraftAdapter
from bot.providers.base import CampaignIdError, HttpOptions, PreviewUnavailable
from bot.providers.limits import LocalLimiter
from bot.sandbox.altcraft import READONLY_TOKEN, TOKEN, AltcraftSimulator
from bot.sandbox.base import Fault, FaultKind

OPTIONS = HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5)
FEW_ATTEMPTS = HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5, max_attempts=2)
# For answers that never come: a local simulator answers in milliseconds.
ONE_ATTEMPT = HttpOptions(timeout=0.5, deadline=3, preview_timeout=0.5, max_attempts=1)
QUICK = HttpOptions(timeout=0.25, deadline=3, preview_timeout=0.25)

DEACTIVATE = "campaigns/deactivate"
GET_STATUS = "campaigns/get_status"


def body(error: int, text: str, data: Any = None) -> str:
    return json.dumps({"data": data, "error": error, "error_text": text})


# ----- fixtures -------------------------------------------------------------------------------------


# One simulator and server for the module (uvicorn takes ~0.2 s to stop); each test starts from the
# seeded state with no faults and no recorded calls, and releases anything it left held.
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared() -> AsyncIterator[tuple[AltcraftSimulator, RunningServer]]:
    simulator = AltcraftSimulator()
    running = await start_server(simulator)
    yield simulator, running
    simulator.release_held()
    await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared: tuple[AltcraftSimulator, RunningServer]) -> AsyncIterator[AltcraftSimulator]:
    simulator = shared[0]
    simulator.seed()
    yield simulator
    simulator.release_held()


@pytest.fixture
def server(shared: tuple[AltcraftSimulator, RunningServer]) -> RunningServer:
    return shared[1]


MakeAdapter = Callable[..., AltcraftAdapter]


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: AltcraftSimulator, server: RunningServer) -> AsyncIterator[MakeAdapter]:
    made: list[AltcraftAdapter] = []

    def factory(options: HttpOptions = OPTIONS, real_limiter: bool = False, **values: Any) -> AltcraftAdapter:
        account = AltcraftAccount.model_validate(sim.account_values(server.url) | values)
        adapter = AltcraftAdapter("sandbox", account, options)
        if not real_limiter:
            # The real limiter spaces calls 0.2 s apart; tests do not need to wait for it.
            adapter.limiter = LocalLimiter("altcraft:test", 1000.0, AltcraftAdapter.max_in_flight)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make: MakeAdapter) -> AltcraftAdapter:
    return make()


def deactivate_bodies(sim: AltcraftSimulator) -> list[Any]:
    return [c.json() for c in sim.calls_to(DEACTIVATE)]


# ----- ids, settings, facts --------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("118", "118"), (" 42 ", "42"), ("007", "7"), ("1", "1")])
def test_parse_campaign_id_accepts_positive_integers(raw: str, expected: str) -> None:
    assert AltcraftAdapter.parse_campaign_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "0", "000", "-5", "+5", "abc", "1.5", "1e3", "12 34", "١٢", "²", "9" * 19, "#118"]
)
def test_parse_campaign_id_rejects_the_rest(raw: str) -> None:
    with pytest.raises(CampaignIdError, match=r"positive|too long"):
        AltcraftAdapter.parse_campaign_id(raw)


@given(st.text())
def test_parse_campaign_id_never_raises_anything_else(raw: str) -> None:
    try:
        result = AltcraftAdapter.parse_campaign_id(raw)
    except CampaignIdError:
        return
    assert result.isdigit() and int(result) > 0 and str(int(result)) == result


def test_account_defaults_and_secrecy() -> None:
    account = AltcraftAccount.model_validate({"token": "s3cret-token"})
    assert account.abort_if_running is True
    assert "s3cret-token" not in repr(account) and "s3cret-token" not in str(account.model_dump())
    adapter = AltcraftAdapter("prod", account)
    assert adapter.base_url == DEFAULT_BASE_URL == "https://ru.altkraft.com"
    assert adapter.api_host == "ru.altkraft.com"
    assert adapter.drops_queued_messages is True
    with pytest.raises(ValidationError):
        AltcraftAccount.model_validate({"token": "   "})
    with pytest.raises(ValidationError):
        AltcraftAccount.model_validate({"abort_if_running": "false"})


def test_account_from_env_strings_and_base_url_forms() -> None:
    account = AltcraftAccount.model_validate(
        {"token": "t", "abort_if_running": "false", "base_url": "https://altcraft.example.com/api/v1.1/"}
    )
    assert account.abort_if_running is False
    assert AltcraftAdapter("onprem", account).base_url == "https://altcraft.example.com"
    assert AltcraftAdapter.env_prefix + "ABORT_IF_RUNNING" == "ALTCRAFT_ABORT_IF_RUNNING"
    assert AltcraftAdapter.env_modifiers == frozenset({"abort_if_running", "base_url"})
    assert set(AltcraftAccount.model_fields) == {"token", "base_url", "abort_if_running"}


def test_stop_meaning_follows_the_account_setting() -> None:
    dropping = AltcraftAdapter("a", AltcraftAccount(token="t"))
    sending = AltcraftAdapter("b", AltcraftAccount(token="t", abort_if_running=False))
    assert "dropped" in dropping.describe_stop() and "STILL SENT" not in dropping.describe_stop()
    assert "STILL SENT" in sending.describe_stop() and sending.drops_queued_messages is False
    assert "abort_if_running" in AltcraftAdapter.stop_meaning
    assert AltcraftAdapter.repeat_safe is True and AltcraftAdapter.has_preview is True


@in_module_loop
async def test_declared_limits_are_used(make: MakeAdapter) -> None:
    adapter = make(real_limiter=True)
    assert (adapter.limiter.rate_per_second, adapter.limiter.max_in_flight) == (5.0, 3)
    outcome = await adapter.stop("106")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified


# ----- stop: documented answers -----------------------------------------------------------------------


@pytest.mark.parametrize(("campaign_id", "kind"), [("101", "broadcast"), ("102", "regular"), ("103", "trigger")])
@in_module_loop
async def test_stop_active_campaign_drops_queue_by_default(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, campaign_id: str, kind: str
) -> None:
    queued = sim.campaigns[campaign_id].extra["queued"]
    outcome = await adapter.stop(campaign_id)

    assert outcome.status is OutcomeStatus.STOPPED
    assert outcome.verified is True
    assert (outcome.state_before, outcome.state_after) == ("Active", "Inactive")
    assert outcome.campaign is not None and outcome.campaign.phase is CampaignPhase.STOPPED
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (
        "0",
        "Successful operation",
        200,
    )
    assert outcome.attempts == 1 and outcome.provider == "altcraft" and outcome.account == "sandbox"
    assert "dropped" in outcome.detail
    assert deactivate_bodies(sim) == [{"token": TOKEN, "id": int(campaign_id), "abort_if_running": True}]
    campaign = sim.campaigns[campaign_id]
    assert campaign.kind == kind and campaign.state == "Inactive"
    assert campaign.extra["queued_dropped"] == queued and campaign.extra["queued"] == 0
    # read before, deactivate, read after
    assert [c.path.rsplit("/", 1)[-1] for c in sim.calls] == ["get_status", "deactivate", "get_status"]


@in_module_loop
async def test_stop_with_abort_off_sends_false_and_queue_is_still_sent(
    sim: AltcraftSimulator, make: MakeAdapter
) -> None:
    adapter = make(abort_if_running=False)
    outcome = await adapter.stop("101")

    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified
    assert "still sent" in outcome.detail
    assert deactivate_bodies(sim) == [{"token": TOKEN, "id": 101, "abort_if_running": False}]
    assert sim.campaigns["101"].extra["queued_still_sent"] == 12_000
    assert "queued_dropped" not in sim.campaigns["101"].extra


@in_module_loop
async def test_stop_completed_campaign_is_already_completed(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    outcome = await adapter.stop("104")
    assert outcome.status is OutcomeStatus.ALREADY_COMPLETED
    assert outcome.verified and outcome.state_before == outcome.state_after == "Completed"
    assert outcome.provider_code == "0"
    assert len(sim.calls_to(DEACTIVATE)) == 1
    assert sim.campaigns["104"].state == "Completed"


@in_module_loop
async def test_stop_inactive_campaign_is_already_stopped(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    outcome = await adapter.stop("105")
    assert outcome.status is OutcomeStatus.ALREADY_STOPPED
    assert outcome.verified and outcome.state_before == outcome.state_after == "Inactive"
    assert "already inactive" in outcome.detail
    # Sent anyway: with abort_if_running it may still drop a leftover queue.
    assert deactivate_bodies(sim) == [{"token": TOKEN, "id": 105, "abort_if_running": True}]


@in_module_loop
async def test_stop_unknown_campaign_is_not_found(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    outcome = await adapter.stop("999")
    assert outcome.status is OutcomeStatus.NOT_FOUND
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (
        "400",
        "Campaign not found",
        200,
    )
    assert "Campaign not found" in outcome.detail
    assert outcome.attempts == 1 and len(sim.calls_to(DEACTIVATE)) == 1
    assert outcome.state_before is None


@in_module_loop
async def test_wrong_token_is_unauthorized_even_on_http_200(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(token="not-the-token")
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.UNAUTHORIZED
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (
        "401",
        "Invalid API token",
        200,
    )
    assert outcome.attempts == 1
    assert deactivate_bodies(sim)[0]["token"] == "not-the-token"
    assert "not-the-token" not in outcome.model_dump_json()
    assert sim.campaigns["101"].state == "Active"


@in_module_loop
async def test_read_only_token_is_forbidden_and_state_is_read(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(token=READONLY_TOKEN)
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.FORBIDDEN
    assert (outcome.provider_code, outcome.provider_message) == ("403", "No access")
    assert outcome.state_after == "Active" and "still reads as Active" in outcome.detail
    assert len(sim.calls_to(GET_STATUS)) == 2  # before, and after the refusal
    assert sim.campaigns["101"].state == "Active"


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (400, "Incorrect request", OutcomeStatus.INVALID_REQUEST),
        (401, "API token required", OutcomeStatus.UNAUTHORIZED),
        (402, "Tariff limit reached", OutcomeStatus.FORBIDDEN),
        (403, "No access", OutcomeStatus.FORBIDDEN),
        (404, "Not found", OutcomeStatus.NOT_FOUND),
        (400, "Campaign does not exist", OutcomeStatus.NOT_FOUND),
        (777, "Something unusual", OutcomeStatus.PROVIDER_ERROR),
        (500, "Internal error", OutcomeStatus.PROVIDER_ERROR),
    ],
)
@in_module_loop
async def test_body_error_codes_on_http_200(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, code: int, text: str, status: OutcomeStatus
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=200, body=body(code, text), match=DEACTIVATE, times=None))
    outcome = await adapter.stop("101")

    assert outcome.status is status
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (str(code), text, 200)
    assert f"error {code} ({text})" in outcome.detail
    assert outcome.attempts == 1 and outcome.verified is False
    assert sim.campaigns["101"].state == "Active"
    if code == 402:
        assert "tariff limit" in outcome.detail


@in_module_loop
async def test_error_on_already_inactive_campaign_is_settled_by_reading(
    sim: AltcraftSimulator, adapter: AltcraftAdapter
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=200, body=body(400, "Campaign is not active"), match=DEACTIVATE))
    outcome = await adapter.stop("105")
    assert outcome.status is OutcomeStatus.ALREADY_STOPPED and outcome.verified
    assert (outcome.provider_code, outcome.provider_message) == ("400", "Campaign is not active")
    assert outcome.state_after == "Inactive"


@in_module_loop
async def test_error_on_completed_campaign_is_already_completed(
    sim: AltcraftSimulator, adapter: AltcraftAdapter
) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=200, body=body(400, "Campaign is completed"), match=DEACTIVATE))
    outcome = await adapter.stop("104")
    assert outcome.status is OutcomeStatus.ALREADY_COMPLETED
    assert outcome.provider_code == "400" and outcome.state_after == "Completed"


@in_module_loop
async def test_success_that_reads_back_active_is_not_verified(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    # A fault answers success without applying it: the read-back still sees the campaign active.
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=200, body=body(0, "Successful operation"), match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified is False
    assert outcome.state_after == "Active" and "still shows it as Active" in outcome.detail


@in_module_loop
async def test_success_with_failed_read_back_stays_stopped(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match=GET_STATUS, times=None))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified is False
    assert "not verified" in outcome.detail and "HTTP 500" in outcome.detail
    assert outcome.state_before is None and outcome.state_after is None
    assert sim.campaigns["101"].state == "Inactive"


# ----- stop: lost answers, timeouts, retries -----------------------------------------------------------


@in_module_loop
async def test_lost_answer_is_settled_by_the_state_read(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=QUICK)
    sim.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified
    assert outcome.state_after == "Inactive" and "no answer" in outcome.detail
    assert outcome.attempts == 1 and len(sim.calls_to(DEACTIVATE)) == 1  # not sent again
    assert sim.campaigns["101"].extra["queued_dropped"] == 12_000


@in_module_loop
async def test_lost_answer_on_inactive_campaign_is_already_stopped(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=QUICK)
    sim.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match=DEACTIVATE))
    outcome = await adapter.stop("105")
    assert outcome.status is OutcomeStatus.ALREADY_STOPPED and outcome.verified
    assert outcome.attempts == 1


@in_module_loop
async def test_lost_answer_without_a_before_read_still_counts_as_stopped(
    sim: AltcraftSimulator, make: MakeAdapter
) -> None:
    adapter = make(options=QUICK)
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=502, match=GET_STATUS))  # the read before fails
    sim.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match=DEACTIVATE))
    outcome = await adapter.stop("106")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified
    assert outcome.state_before is None and outcome.state_after == "Inactive"


@pytest.mark.parametrize("kind", [FaultKind.TIMEOUT, FaultKind.RESET])
@in_module_loop
async def test_unapplied_lost_request_is_sent_again_after_reading_active(
    sim: AltcraftSimulator, make: MakeAdapter, kind: FaultKind
) -> None:
    adapter = make(options=QUICK)
    sim.add_fault(Fault(kind=kind, match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified
    assert outcome.attempts == 2 and len(sim.calls_to(DEACTIVATE)) == 2
    # before, after the lost answer (still active), after the success
    assert len(sim.calls_to(GET_STATUS)) == 3


@in_module_loop
async def test_server_error_once_then_success(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified and outcome.attempts == 2


@in_module_loop
async def test_persistent_server_error_with_campaign_still_active(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=FEW_ATTEMPTS)
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match=DEACTIVATE, times=None))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert outcome.http_status == 500 and outcome.provider_code == "500"
    assert outcome.provider_message == "sandbox fault: HTTP 500"
    assert outcome.attempts == 2 and "still reads as Active" in outcome.detail
    assert outcome.state_after == "Active"


@in_module_loop
async def test_everything_failing_after_sending_is_unknown(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=FEW_ATTEMPTS)
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, status=502, times=None))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.http_status == 502 and "502 Bad Gateway" in outcome.detail
    assert "reading the campaign failed" in outcome.detail and outcome.attempts == 2


@in_module_loop
async def test_unreachable_when_nothing_listens(make: MakeAdapter) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = make(options=FEW_ATTEMPTS, base_url=f"http://127.0.0.1:{port}")
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.UNREACHABLE
    assert outcome.attempts == 2 and "nothing was sent" in outcome.detail
    assert outcome.http_status is None


@in_module_loop
async def test_rate_limit_honours_retry_after_then_succeeds(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=429, retry_after=0.1, match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.attempts == 2
    assert len(sim.calls_to(GET_STATUS)) == 2  # a 429 needs no state read


@in_module_loop
async def test_persistent_rate_limit(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=FEW_ATTEMPTS)
    sim.add_fault(
        Fault(
            kind=FaultKind.STATUS,
            status=200,
            body=body(429, "Too many requests"),
            match=DEACTIVATE,
            times=None,
        )
    )
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.RATE_LIMITED
    assert (outcome.provider_code, outcome.provider_message, outcome.attempts) == (
        "429",
        "Too many requests",
        2,
    )


# ----- stop: garbage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "shown"),
    [
        (200, None, "502 Bad Gateway"),  # the base's HTML error page
        (200, "", "(empty body)"),
        (200, "[]", "[]"),
        (200, '"ok"', '"ok"'),
        (200, '{"error": "zero", "error_text": 5}', '"zero"'),
        (200, '{"data": null, "error": null}', '"error": null'),
        (200, '{"data": null, "err', '{"data": null, "err'),
        (503, None, "502 Bad Gateway"),
        (409, '{"conflict": true}', "HTTP 409"),
    ],
)
@in_module_loop
async def test_garbage_answers_are_settled_then_reported(
    sim: AltcraftSimulator, make: MakeAdapter, status: int, payload: str | None, shown: str
) -> None:
    adapter = make(options=ONE_ATTEMPT)  # retries are tested below; one attempt keeps this fast
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, status=status, body=payload, match=DEACTIVATE, times=None))
    outcome = await adapter.stop("101")
    # Never applied, and the state read proves it: a provider failure, not a false success.
    assert outcome.status is OutcomeStatus.PROVIDER_ERROR
    assert outcome.http_status == status and shown in outcome.detail
    assert outcome.attempts == 1 and outcome.state_after == "Active"
    assert len(sim.calls_to(GET_STATUS)) == 2  # before, and the settling read
    assert sim.campaigns["101"].state == "Active"


@in_module_loop
async def test_garbage_once_is_resent_after_reading_active(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, body="", match=DEACTIVATE))
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.STOPPED and outcome.verified and outcome.attempts == 2


@pytest.mark.parametrize(
    ("status", "payload", "expected", "words"),
    [
        (401, "Unauthorized", OutcomeStatus.UNAUTHORIZED, "HTTP 401"),
        (403, "<html>Forbidden</html>", OutcomeStatus.FORBIDDEN, "HTTP 403"),
        (404, "<html>Not Found</html>", OutcomeStatus.PROVIDER_ERROR, "check the base URL"),
        (301, "", OutcomeStatus.PROVIDER_ERROR, "redirect"),
        (418, "teapot", OutcomeStatus.INVALID_REQUEST, "HTTP 418"),
    ],
)
@in_module_loop
async def test_http_level_errors_without_an_altcraft_body(
    sim: AltcraftSimulator, make: MakeAdapter, status: int, payload: str, expected: OutcomeStatus, words: str
) -> None:
    adapter = make(options=ONE_ATTEMPT)
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, status=status, body=payload, match=DEACTIVATE, times=None))
    outcome = await adapter.stop("101")
    assert outcome.status is expected
    assert outcome.http_status == status and words in outcome.detail
    assert outcome.attempts == 1


@in_module_loop
async def test_error_zero_inside_http_error_is_not_trusted(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=ONE_ATTEMPT)
    sim.add_fault(
        Fault(
            kind=FaultKind.STATUS,
            status=500,
            body=body(0, "Successful operation"),
            match=DEACTIVATE,
            times=None,
        )
    )
    outcome = await adapter.stop("101")
    assert outcome.status is OutcomeStatus.PROVIDER_ERROR and outcome.http_status == 500


@in_module_loop
async def test_token_echoed_by_an_error_page_is_scrubbed(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=ONE_ATTEMPT)
    echo = f"<html>bad request: token={TOKEN}</html>"
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, status=200, body=echo, match=DEACTIVATE, times=None))
    outcome = await adapter.stop("101")
    dumped = outcome.model_dump_json()
    assert TOKEN not in dumped and "<redacted>" in outcome.detail


@in_module_loop
async def test_invalid_id_passed_to_stop_is_an_outcome(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    outcome = await adapter.stop("abc")
    assert outcome.status is OutcomeStatus.INVALID_REQUEST and "positive whole number" in outcome.detail
    assert sim.calls == []


# ----- preview and read_state -----------------------------------------------------------------------------


@in_module_loop
async def test_preview_describes_the_campaign(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    info = await adapter.preview("102")
    assert (info.id, info.name, info.kind, info.state, info.phase) == (
        "102",
        "Daily weather notification",
        "regular",
        "Active",
        CampaignPhase.ACTIVE,
    )
    assert info.extra["channel"] == "push" and info.extra["is_active"] is True
    assert info.extra["is_completed"] is False and info.extra["messages"] == 1
    call = sim.calls_to("campaigns/get")[-1]
    assert call.path.endswith("/campaigns/get") and call.json() == {"token": TOKEN, "id": 102}


@pytest.mark.parametrize(
    ("campaign_id", "phase", "state"),
    [("104", CampaignPhase.COMPLETED, "Completed"), ("105", CampaignPhase.STOPPED, "Inactive")],
)
@in_module_loop
async def test_preview_phases(adapter: AltcraftAdapter, campaign_id: str, phase: CampaignPhase, state: str) -> None:
    info = await adapter.preview(campaign_id)
    assert (info.phase, info.state) == (phase, state)


@in_module_loop
async def test_preview_not_found(adapter: AltcraftAdapter) -> None:
    with pytest.raises(PreviewUnavailable, match="does not know this campaign"):
        await adapter.preview("999")


@in_module_loop
async def test_preview_bad_token(make: MakeAdapter) -> None:
    with pytest.raises(PreviewUnavailable, match="rejected the token"):
        await make(token="wrong").preview("101")


@in_module_loop
async def test_preview_slow(sim: AltcraftSimulator, make: MakeAdapter) -> None:
    adapter = make(options=QUICK)
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=5, match="campaigns/get"))
    with pytest.raises(PreviewUnavailable, match="did not answer"):
        await adapter.preview("101")


@pytest.mark.parametrize("payload", [None, "[]", '{"data": "x", "error": 0}', '{"data": {}, "error": "x"}'])
@in_module_loop
async def test_preview_garbage(sim: AltcraftSimulator, adapter: AltcraftAdapter, payload: str | None) -> None:
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, body=payload, match="campaigns/get"))
    with pytest.raises(PreviewUnavailable, match=r"unreadable|unexpected"):
        await adapter.preview("101")


@in_module_loop
async def test_read_state(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    info = await adapter.read_state("101")
    assert info is not None and (info.state, info.phase) == ("Active", CampaignPhase.ACTIVE)
    assert await adapter.read_state("999") is None
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, match=GET_STATUS))
    assert await adapter.read_state("101") is None


@pytest.mark.parametrize(
    ("data", "phase"),
    [
        ({"status": "Inactive"}, CampaignPhase.STOPPED),
        ({"status": "Completed"}, CampaignPhase.COMPLETED),
        ({"status": "waiting"}, CampaignPhase.ACTIVE),
        ({"status": "deleted"}, CampaignPhase.NOT_STOPPABLE),
        ({"status": "Weird"}, CampaignPhase.UNKNOWN),
        ({"is_active": "false", "is_completed": "false", "status": "Paused"}, CampaignPhase.STOPPED),
        ({"is_active": True, "is_completed": True, "status": "Active"}, CampaignPhase.COMPLETED),
    ],
)
@in_module_loop
async def test_read_state_phase_from_flags_or_status(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, data: dict[str, Any], phase: CampaignPhase
) -> None:
    sim.add_fault(
        Fault(kind=FaultKind.STATUS, status=200, body=body(0, "Successful operation", data), match=GET_STATUS)
    )
    info = await adapter.read_state("101")
    assert info is not None and info.phase is phase and info.state == data["status"]


# ----- the simulator itself ----------------------------------------------------------------------------


@in_module_loop
async def test_simulator_documented_shapes_and_checks(sim: AltcraftSimulator, server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"{server.url}/api/v1.1") as client:

        async def post(method: str, payload: Any) -> dict[str, Any]:
            response = await client.post(f"/campaigns/{method}", json=payload)
            assert response.status_code == 200  # Altcraft answers failures on HTTP 200
            result: dict[str, Any] = response.json()
            return result

        assert await post("get_status", {"id": 101}) == {
            "data": None,
            "error": 401,
            "error_text": "API token required",
        }
        assert (await post("get_status", {"token": "x", "id": 101}))["error"] == 401
        assert await post("get_status", {"token": TOKEN, "id": "101"}) == {
            "data": {"is_active": True, "is_completed": False, "status": "Active"},
            "error": 0,
            "error_text": "Successful operation",
        }
        for bad in (None, "abc", 1.5, True, -3, 0, [101]):
            answer = await post("get_status", {"token": TOKEN, "id": bad})
            assert answer["error"] == 400 and answer["data"] is None
        assert (await post("get", {"token": TOKEN, "id": 12345}))["error_text"] == "Campaign not found"
        assert (await post("deactivate", [1, 2]))["error"] == 400
        assert (await post("deactivate", {"token": READONLY_TOKEN, "id": 106}))["error"] == 403
        bad_flag = await post("deactivate", {"token": TOKEN, "id": 106, "abort_if_running": "maybe"})
        assert bad_flag["error"] == 400 and sim.campaigns["106"].state == "Active"
        # The docs' own example: id and flag as strings.
        assert await post("deactivate", {"token": TOKEN, "id": "15", "abort_if_running": "true"}) == {
            "data": None,
            "error": 400,
            "error_text": "Campaign not found",
        }
        assert await post("deactivate", {"token": TOKEN, "id": "106", "abort_if_running": "true"}) == {
            "data": None,
            "error": 0,
            "error_text": "Successful operation",
        }
        assert sim.campaigns["106"].extra["queued_dropped"] == 900
        # The flag defaults to false, as documented: the queue is still sent.
        assert (await post("deactivate", {"token": TOKEN, "id": 102}))["error"] == 0
        assert sim.campaigns["102"].extra["queued_still_sent"] == 3_500
        details = (await post("get", {"token": TOKEN, "id": 102}))["data"]
        assert details["type"] == "regular" and details["status"] == "Inactive" and details["is_active"] is False


def test_simulator_seed_and_error_body(sim: AltcraftSimulator) -> None:
    states = {c.id: (c.state, c.kind) for c in sim.campaigns.values()}
    assert states == {
        "101": ("Active", "broadcast"),
        "102": ("Active", "regular"),
        "103": ("Active", "trigger"),
        "104": ("Completed", "broadcast"),
        "105": ("Inactive", "broadcast"),
        "106": ("Active", "broadcast"),
    }
    response = sim.error_response(502, "upstream down")
    assert response.status_code == 502
    assert json.loads(bytes(response.body)) == {"data": None, "error": 502, "error_text": "upstream down"}
    assert sim.account_values("http://x") == {"token": TOKEN, "base_url": "http://x"}
