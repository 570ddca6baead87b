"""Altcraft adapter against its simulator over real HTTP (127.0.0.1:0), plus bodies, ids and settings."""

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

from bot.core.models import CampaignPhase, Outcome, OutcomeStatus
from bot.core.ports import CampaignIdError, PreviewUnavailable
from bot.httpserver import RunningServer
from bot.providers.altcraft import DEFAULT_BASE_URL, AltcraftAccount, AltcraftAdapter
from bot.providers.base import HttpOptions
from bot.providers.verdicts import Kind, Reads
from bot.providers.wire import Reply
from bot.sandbox.altcraft import READONLY_TOKEN, TOKEN, AltcraftSimulator
from bot.sandbox.base import Fault, FaultKind
from tests.unit.sandbox_fixtures import FAST, fast_limiter, sandbox_fixtures

S = OutcomeStatus
P = CampaignPhase
DEACTIVATE = "campaigns/deactivate"
GET_STATUS = "campaigns/get_status"
GET = "campaigns/get"  # also a prefix of get_status: count it with `previews`

Make = Callable[..., AltcraftAdapter]

pytestmark = pytest.mark.asyncio(loop_scope="module")
served, sim, server = sandbox_fixtures(AltcraftSimulator)


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: AltcraftSimulator, server: RunningServer) -> AsyncIterator[Make]:
    made: list[AltcraftAdapter] = []

    def build(max_attempts: int = 4, real_limiter: bool = False, **values: Any) -> AltcraftAdapter:
        account = AltcraftAccount.model_validate(sim.account_values(server.url) | values)
        options = HttpOptions(
            **FAST,
            max_attempts=max_attempts,
            backoff=0.01,
            transport=httpx.AsyncHTTPTransport(verify=False),  # the sandbox speaks plain http
            limiters=None if real_limiter else fast_limiter,
        )
        adapter = AltcraftAdapter("sandbox", account, options)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make: Make) -> AltcraftAdapter:
    return make()


def body(error: Any, text: Any, data: Any = None) -> str:
    return json.dumps({"data": data, "error": error, "error_text": text})


def fault(sim: AltcraftSimulator, kind: FaultKind, match: str = DEACTIVATE, **fields: Any) -> None:
    sim.add_fault(Fault(kind=kind, match=match, **fields))


def deactivations(sim: AltcraftSimulator) -> list[Any]:
    return [c.json() for c in sim.calls_to(DEACTIVATE)]


def reads(sim: AltcraftSimulator) -> int:
    return len(sim.calls_to(GET_STATUS))


def sent(outcome: Outcome, count: int) -> bool:
    if count == 0:
        return outcome.detail.endswith("No stop was sent.")
    return outcome.detail.endswith(f"{count} stop{' was' if count == 1 else 's were'} sent.")


# ----- facts, settings, ids -----------------------------------------------------------------------


async def test_declared_facts() -> None:
    cls = AltcraftAdapter
    assert (cls.name, cls.display_name, cls.aliases) == ("altcraft", "Altcraft", ("ac", "altkraft"))
    assert cls.id_format == "positive_integer" and cls.default_base_url == DEFAULT_BASE_URL == "https://ru.altkraft.com"
    assert cls.repeat_safe is True and cls.undoable is True and cls.resend_when_refused_but_active is False
    assert cls.reads == Reads(settle=True, before=True, back=True)
    assert (cls.rate_per_second, cls.max_in_flight) == (5.0, 3)
    assert cls.http_outcomes == {400: S.INVALID_REQUEST, 401: S.UNAUTHORIZED, 403: S.FORBIDDEN, 404: S.PROVIDER_ERROR}
    codes = {"400": S.INVALID_REQUEST, "401": S.UNAUTHORIZED, "402": S.FORBIDDEN, "403": S.FORBIDDEN}
    assert cls.code_outcomes == {**codes, "404": S.NOT_FOUND, "429": S.RATE_LIMITED}
    assert cls.refused_by_state_http == frozenset({409, 422}) and cls.method_fallbacks == {}
    assert "tariff limit" in cls.outcome_notes[S.FORBIDDEN]
    # ALTCRAFT_ABORT_IF_RUNNING alone (without ALTCRAFT_TOKEN) does not make Altcraft configured.
    assert cls.env_prefix == "ALTCRAFT_" and set(AltcraftAccount.model_fields) - cls.env_modifiers == {"token"}
    assert cls.env_modifiers == frozenset({"abort_if_running", "base_url", "dashboard_url"})
    kind = cls.kind()
    assert kind.named("altkraft") and kind.named("AC") and "positive whole number" in kind.campaign_id_hint
    facts = cls("prod", AltcraftAccount(token="t")).facts
    assert facts.has_preview and facts.undoable and facts.api_host == "ru.altkraft.com"


async def test_account_defaults_and_secrecy() -> None:
    account = AltcraftAccount.model_validate({"token": "s3cret-token"})
    assert account.abort_if_running is True
    assert "s3cret-token" not in repr(account) and "s3cret-token" not in str(account.model_dump())
    adapter = AltcraftAdapter("prod", account)
    assert adapter.base_url == DEFAULT_BASE_URL and "s3cret-token" not in repr(adapter)
    for bad in ({"token": "   "}, {"abort_if_running": "false"}, {"token": "t", "abort_if_running": "maybe"}):
        with pytest.raises(ValidationError):
            AltcraftAccount.model_validate(bad)
    for extra in ({"base_url": "ftp://x"}, {"unknown": 1}, {"dashboard_url": "javascript:alert(1)"}):
        with pytest.raises(ValidationError):
            AltcraftAccount.model_validate({"token": "t", **extra})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://altcraft.example.com/api/v1.1/", "https://altcraft.example.com"),
        ("https://altcraft.example.com/API/V1.1", "https://altcraft.example.com"),
        ("https://example.com/altcraft/api/v1.1", "https://example.com/altcraft"),
        ("https://altcraft.example.com:8443", "https://altcraft.example.com:8443"),
    ],
)
async def test_base_url_drops_a_pasted_api_prefix(url: str, expected: str) -> None:
    account = AltcraftAccount.model_validate({"token": "t", "abort_if_running": "false", "base_url": url})
    assert account.abort_if_running is False  # env strings are accepted
    assert AltcraftAdapter("onprem", account).base_url == expected


async def test_stop_meaning_follows_the_account_setting() -> None:
    dropping = AltcraftAdapter("a", AltcraftAccount(token="t"))
    sending = AltcraftAdapter("b", AltcraftAccount(token="t", abort_if_running=False))
    assert "dropped" in dropping.describe_stop() and "STILL SENT" not in dropping.describe_stop()
    assert "STILL SENT" in sending.describe_stop() and sending.facts.stop_meaning == sending.describe_stop()
    assert "abort_if_running" in AltcraftAdapter.stop_meaning and "activated again" in AltcraftAdapter.stop_meaning


@pytest.mark.parametrize(("raw", "expected"), [("118", "118"), (" 42 ", "42"), ("007", "7"), ("1", "1")])
async def test_parse_campaign_id_accepts_positive_integers(raw: str, expected: str) -> None:
    assert AltcraftAdapter.parse_campaign_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "0", "000", "-5", "+5", "abc", "1.5", "1e3", "12 34", "١٢", "²", "\uff11\uff12", "9" * 19, "#118"],
)
async def test_parse_campaign_id_rejects_the_rest(raw: str) -> None:
    with pytest.raises(CampaignIdError, match=r"positive|too long"):
        AltcraftAdapter.parse_campaign_id(raw)


async def test_parse_campaign_id_never_raises_anything_else() -> None:
    @given(st.text())
    def check(raw: str) -> None:
        try:
            result = AltcraftAdapter.parse_campaign_id(raw)
        except CampaignIdError:
            return
        assert result.isdigit() and int(result) > 0 and str(int(result)) == result

    check()


# ----- bodies, without HTTP -------------------------------------------------------------------------

JUDGE = AltcraftAdapter("judge", AltcraftAccount(token="sandbox-token"))
"""For reading bodies only: never sends."""
ENVELOPE = st.dictionaries(
    st.sampled_from(["data", "error", "error_text", "is_active", "is_completed", "status", "id", "content"]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=12,
    ),
    max_size=5,
)


async def test_reading_a_body_never_raises() -> None:
    @given(st.integers(100, 599), ENVELOPE | st.binary(max_size=100))
    def check(http_status: int, payload: Any) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        answer = Reply.of(http_status, raw, {})
        assert isinstance(JUDGE.judge(answer, "1").kind, Kind)
        if JUDGE.campaign_of(answer, "1") is None:
            assert JUDGE.read_problem(answer, "1").problem

    check()


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        ("0", "Successful operation", None),
        (None, None, None),
        ("1", "Объект не существует", S.NOT_FOUND),  # the text wins over any code
        ("429", "Too many requests", S.RATE_LIMITED),
        ("777", "Something unusual", S.PROVIDER_ERROR),
        ("-1", None, S.PROVIDER_ERROR),
    ],
)
async def test_body_codes(code: str | None, text: str | None, status: OutcomeStatus | None) -> None:
    assert JUDGE.code_status(code, text) is status


async def test_digits_that_are_not_ascii_are_no_code() -> None:
    for odd in ("\u00b2", "\uff10", "zero", True, 1.5, "9" * 40):
        stop = JUDGE.stop_body(Reply.of(200, body(odd, "x").encode(), {}))
        assert stop.success is None and stop.code is None
    assert JUDGE.stop_body(Reply.of(200, body("0", "ok").encode(), {})).success is True  # the docs send strings


@pytest.mark.parametrize(
    ("data", "phase", "state"),
    [
        ({"status": "Inactive"}, P.STOPPED, "Inactive"),
        ({"status": "Completed"}, P.COMPLETED, "Completed"),
        ({"status": "waiting"}, P.ACTIVE, "waiting"),
        ({"status": "deleted"}, P.NOT_STOPPABLE, "deleted"),
        ({"status": "Weird"}, P.UNKNOWN, "Weird"),
        ({"is_active": "false", "is_completed": "false", "status": "Paused"}, P.STOPPED, "Paused"),
        ({"is_active": True, "is_completed": True, "status": "Active"}, P.COMPLETED, "Active"),
        ({"is_active": 0}, P.STOPPED, "Inactive"),
        ({"is_active": "²", "status": "active"}, P.ACTIVE, "active"),
    ],
)
async def test_read_state_phase_from_flags_else_status(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, data: dict[str, Any], phase: CampaignPhase, state: str
) -> None:
    fault(sim, FaultKind.STATUS, GET_STATUS, status=200, body=body(0, "Successful operation", data))
    info = await adapter.read_state("101")
    assert info is not None and (info.phase, info.state) == (phase, state)


# ----- stop: documented answers ------------------------------------------------------------------


@pytest.mark.parametrize(("campaign_id", "kind"), [("101", "broadcast"), ("102", "regular"), ("103", "trigger")])
async def test_stop_active_campaign_drops_queue_by_default(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, campaign_id: str, kind: str
) -> None:
    queued = sim.campaigns[campaign_id].extra["queued"]
    outcome = await adapter.stop(campaign_id)

    assert outcome.status is S.STOPPED and outcome.verified is True
    assert (outcome.state_before, outcome.state_after) == ("Active", "Inactive")
    assert outcome.campaign is not None and outcome.campaign.phase is P.STOPPED
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == ("0", "Successful operation", 200)
    assert (outcome.attempts, outcome.provider, outcome.account) == (1, "altcraft", "sandbox")
    assert "Altcraft accepted the stop: messages already queued are dropped." in outcome.detail
    assert "now reports the campaign as 'Inactive'" in outcome.detail and sent(outcome, 1)
    assert deactivations(sim) == [{"token": TOKEN, "id": int(campaign_id), "abort_if_running": True}]
    campaign = sim.campaigns[campaign_id]
    assert campaign.kind == kind and campaign.state == "Inactive"
    assert campaign.extra["queued_dropped"] == queued and campaign.extra["queued"] == 0
    assert [c.path.rsplit("/", 1)[-1] for c in sim.calls] == ["get_status", "deactivate", "get_status"]
    assert sim.calls[0].json() == {"token": TOKEN, "id": int(campaign_id)}


async def test_stop_with_abort_off_sends_false_and_queue_is_still_sent(sim: AltcraftSimulator, make: Make) -> None:
    outcome = await make(abort_if_running=False).stop("101")
    assert outcome.status is S.STOPPED and outcome.verified and "still sent" in outcome.detail
    assert deactivations(sim) == [{"token": TOKEN, "id": 101, "abort_if_running": False}]
    assert sim.campaigns["101"].extra["queued_still_sent"] == 12_000
    assert "queued_dropped" not in sim.campaigns["101"].extra


@pytest.mark.parametrize(
    ("campaign_id", "status", "state", "words"),
    [
        ("104", S.ALREADY_COMPLETED, "Completed", "(finished) before the stop"),
        ("105", S.ALREADY_STOPPED, "Inactive", "before the stop, so nothing changed"),
    ],
)
async def test_stop_halted_campaign_is_already_halted(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, campaign_id: str, status: OutcomeStatus, state: str, words: str
) -> None:
    outcome = await adapter.stop(campaign_id)
    assert outcome.status is status and outcome.verified
    assert outcome.state_before == outcome.state_after == state and outcome.provider_code == "0"
    assert words in outcome.detail
    # Sent anyway: with abort_if_running it may still drop a leftover queue.
    assert deactivations(sim) == [{"token": TOKEN, "id": int(campaign_id), "abort_if_running": True}]
    assert sim.campaigns[campaign_id].state == state


@pytest.mark.parametrize(
    ("campaign_id", "token", "status", "code", "message", "note"),
    [
        ("999", TOKEN, S.NOT_FOUND, "400", "Campaign not found", "Altcraft does not know campaign 999 at http://"),
        ("101", "not-the-token", S.UNAUTHORIZED, "401", "Invalid API token", "check the account's token"),
        ("101", READONLY_TOKEN, S.FORBIDDEN, "403", "No access", "Error 403 means the token has no access"),
    ],
    ids=["unknown-campaign", "wrong-token", "read-only-token"],
)
async def test_the_sandbox_refusals_on_http_200_are_final(
    sim: AltcraftSimulator, make: Make, campaign_id: str, token: str, status: OutcomeStatus, code: str,
    message: str, note: str,
) -> None:  # fmt: skip
    outcome = await make(token=token).stop(campaign_id)
    assert outcome.status is status
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (code, message, 200)
    assert f"refused the stop (HTTP 200, code {code}: {message})." in outcome.detail and note in outcome.detail
    assert "Nothing was stopped" in outcome.detail and "{" not in outcome.detail and sent(outcome, 1)
    # A refusal is final: no settling read, no second stop; the read before still shows the state.
    assert outcome.attempts == 1 and reads(sim) == 1 and deactivations(sim)[0]["token"] == token
    assert outcome.state_before == outcome.state_after == ("Active" if token == READONLY_TOKEN else None)
    assert token not in outcome.model_dump_json()
    assert sim.campaigns["101"].state == "Active"


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (400, "Incorrect request", S.INVALID_REQUEST),
        (401, "API token required", S.UNAUTHORIZED),
        (402, "Tariff limit reached", S.FORBIDDEN),
        (403, "No access", S.FORBIDDEN),
        (404, "Not found", S.NOT_FOUND),
        (400, "Campaign does not exist", S.NOT_FOUND),
        (400, "Кампания не найдена", S.NOT_FOUND),
        # Texts naming a state are not read as one: a refusal is final (the old adapter read first).
        (400, "Campaign is not active", S.INVALID_REQUEST),
    ],
)
async def test_refusals_in_the_body_on_http_200(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, code: int, text: str, status: OutcomeStatus
) -> None:
    fault(sim, FaultKind.STATUS, status=200, body=body(code, text), times=None)
    outcome = await adapter.stop("101")
    assert outcome.status is status
    assert (outcome.provider_code, outcome.provider_message, outcome.http_status) == (str(code), text, 200)
    assert f"code {code}: {text}" in outcome.detail and "Nothing was stopped" in outcome.detail
    assert outcome.attempts == 1 and outcome.verified is False and reads(sim) == 1
    assert sim.campaigns["101"].state == "Active"


@pytest.mark.parametrize(("code", "text"), [(777, "Something unusual"), (500, "Internal error")])
async def test_unknown_codes_on_http_200_are_provider_errors_settled_by_reading_never_sent_again(
    sim: AltcraftSimulator, make: Make, code: int, text: str
) -> None:
    fault(sim, FaultKind.STATUS, status=200, body=body(code, text), times=None)
    outcome = await make(max_attempts=2).stop("101")
    assert outcome.status is S.PROVIDER_ERROR and outcome.provider_code == str(code)
    assert f"code {code}: {text}" in outcome.detail  # the raw text, as the docs ask
    assert "reported a failure" in outcome.detail and "still reports the campaign as 'Active'" in outcome.detail
    assert "no second stop was sent" in outcome.detail
    assert outcome.attempts == 1 and reads(sim) == 2  # before, and one settling read


async def test_success_that_reads_back_active_is_not_verified(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    fault(sim, FaultKind.STATUS, status=200, body=body(0, "Successful operation"))  # not applied
    outcome = await adapter.stop("101")
    assert outcome.status is S.STOPPED and outcome.verified is False
    assert outcome.state_after == "Active" and "still shows it as 'Active'" in outcome.detail


async def test_success_with_failed_read_back_stays_stopped(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    fault(sim, FaultKind.STATUS, GET_STATUS, status=500, times=None)
    outcome = await adapter.stop("101")
    assert outcome.status is S.STOPPED and outcome.verified is False
    assert "not verified" in outcome.detail and "HTTP 500" in outcome.detail
    assert outcome.state_before is None and outcome.state_after is None
    assert sim.campaigns["101"].state == "Inactive"


# ----- stop: lost answers, server errors, rate limits ----------------------------------------------


@pytest.mark.parametrize("before_fails", [False, True])
async def test_lost_answer_is_settled_by_the_state_read(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, before_fails: bool
) -> None:
    if before_fails:
        fault(sim, FaultKind.STATUS, GET_STATUS, status=502)
    fault(sim, FaultKind.LOST_ANSWER)
    outcome = await adapter.stop("106")
    assert outcome.status is S.STOPPED and outcome.verified and outcome.state_after == "Inactive"
    assert "gave no answer to the stop" in outcome.detail and "so the stop went through" in outcome.detail
    assert outcome.attempts == 1 and len(deactivations(sim)) == 1  # not sent again
    assert outcome.state_before == (None if before_fails else "Active")
    assert sim.campaigns["106"].extra["queued_dropped"] == 900


async def test_lost_answer_on_a_campaign_inactive_before_the_stop_is_already_stopped(
    sim: AltcraftSimulator, adapter: AltcraftAdapter
) -> None:
    # The read before the stop already showed it inactive: a halted read after a lost answer
    # cannot be our stop's doing.
    fault(sim, FaultKind.LOST_ANSWER)
    outcome = await adapter.stop("105")
    assert outcome.status is S.ALREADY_STOPPED and outcome.verified and outcome.attempts == 1
    assert outcome.state_before == "Inactive"


@pytest.mark.parametrize(
    "armed",
    [
        Fault(kind=FaultKind.TIMEOUT, match=DEACTIVATE),
        Fault(kind=FaultKind.RESET, match=DEACTIVATE),
        Fault(kind=FaultKind.STATUS, status=500, match=DEACTIVATE),
        Fault(kind=FaultKind.MALFORMED, body="", match=DEACTIVATE),
        Fault(kind=FaultKind.STATUS, status=429, retry_after=0.1, match=DEACTIVATE),
    ],
    ids=["timeout", "reset", "500", "empty-200", "429"],
)
async def test_doubt_once_is_read_then_sent_again(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, armed: Fault
) -> None:
    sim.add_fault(armed)
    outcome = await adapter.stop("101")
    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 2
    assert len(deactivations(sim)) == 2 and sent(outcome, 2)
    assert reads(sim) == 3  # before, the settling read (still active), after the success


async def test_persistent_server_error_with_campaign_still_active(sim: AltcraftSimulator, make: Make) -> None:
    fault(sim, FaultKind.STATUS, status=500, times=None)
    outcome = await make(max_attempts=2).stop("101")
    assert outcome.status is S.PROVIDER_ERROR and outcome.attempts == 2
    assert (outcome.http_status, outcome.provider_code) == (500, "500")
    assert outcome.provider_message == "sandbox fault: HTTP 500"
    assert "still reports the campaign as 'Active'" in outcome.detail and outcome.state_after == "Active"
    assert "2 attempts is the most this app makes" in outcome.detail


async def test_everything_failing_after_sending_is_a_provider_error(sim: AltcraftSimulator, make: Make) -> None:
    # A 502 page is an answer: `unknown` is kept for stops that got none (the old adapter said unknown).
    fault(sim, FaultKind.MALFORMED, match="", status=502, times=None)
    outcome = await make(max_attempts=2).stop("101")
    assert outcome.status is S.PROVIDER_ERROR and outcome.http_status == 502 and outcome.attempts == 2
    assert "502 Bad Gateway" in outcome.detail and "Reading the campaign to settle it failed" in outcome.detail


async def test_timeouts_with_reads_failing_are_unknown(sim: AltcraftSimulator, make: Make) -> None:
    fault(sim, FaultKind.TIMEOUT, times=None)
    fault(sim, FaultKind.STATUS, GET_STATUS, status=503, times=None)
    outcome = await make(max_attempts=2).stop("101")
    assert outcome.status is S.UNKNOWN and outcome.http_status is None
    assert "Check the campaign in Altcraft's dashboard" in outcome.detail and sent(outcome, 2)
    sim.release_held()


async def test_unreachable_when_nothing_listens(make: Make) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        outcome = await make(max_attempts=2, base_url=f"http://127.0.0.1:{port}").stop("101")
    assert outcome.status is S.UNREACHABLE and outcome.attempts == 2
    assert outcome.http_status is None and sent(outcome, 0)


async def test_persistent_rate_limit_in_the_body(sim: AltcraftSimulator, make: Make) -> None:
    fault(sim, FaultKind.STATUS, status=200, body=body(429, "Too many requests"), times=None)
    outcome = await make(max_attempts=2).stop("101")
    assert outcome.status is S.RATE_LIMITED and outcome.attempts == 2
    assert (outcome.provider_code, outcome.provider_message) == ("429", "Too many requests")


async def test_declared_limits_are_used(make: Make) -> None:
    adapter = make(real_limiter=True)
    assert (adapter.limiter.rate_per_second, adapter.limiter.max_in_flight) == (5.0, 3)
    outcome = await adapter.stop("106")
    assert outcome.status is S.STOPPED and outcome.verified


# ----- stop: garbage and answers that are not Altcraft's ---------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "payload", "shown", "status"),
    [
        (200, None, "502 Bad Gateway", S.PROVIDER_ERROR),  # a proxy's HTML page
        (200, "", "(empty body)", S.PROVIDER_ERROR),
        (200, "[]", "[]", S.PROVIDER_ERROR),
        (200, '"ok"', '"ok"', S.PROVIDER_ERROR),
        (200, '{"error": "zero", "error_text": 5}', '"zero"', S.PROVIDER_ERROR),
        (200, '{"data": null, "error": null}', '"error": null', S.PROVIDER_ERROR),
        (200, '{"data": null, "err', '{"data": null, "err', S.PROVIDER_ERROR),
        (503, None, "502 Bad Gateway", S.PROVIDER_ERROR),
        (500, body(0, "Successful operation"), "HTTP 500", S.PROVIDER_ERROR),  # success inside an error
        (400, body(0, "Successful operation"), "yet said success", S.PROVIDER_ERROR),
        (409, '{"conflict": true}', "state prevents it", S.NOT_STOPPABLE),  # refused by state, read active
    ],
)
async def test_garbage_is_settled_by_reading_never_a_false_success(
    sim: AltcraftSimulator, make: Make, http_status: int, payload: str | None, shown: str, status: OutcomeStatus
) -> None:
    fault(sim, FaultKind.MALFORMED, status=http_status, body=payload, times=None)
    outcome = await make(max_attempts=1).stop("101")
    assert outcome.status is status and outcome.http_status == http_status and shown in outcome.detail
    assert outcome.attempts == 1 and outcome.state_after == "Active"
    assert reads(sim) == 2  # before, and the settling read
    assert sim.campaigns["101"].state == "Active"


@pytest.mark.parametrize(
    ("http_status", "payload", "expected", "words"),
    [
        (401, "Unauthorized", S.UNAUTHORIZED, "HTTP 401"),
        (403, "<html>Forbidden</html>", S.FORBIDDEN, "HTTP 403"),
        (404, "<html>Not Found</html>", S.PROVIDER_ERROR, "check the base URL"),
        (301, "", S.PROVIDER_ERROR, "redirect"),
        (418, "teapot", S.INVALID_REQUEST, "HTTP 418"),
    ],
)
async def test_http_errors_without_an_altcraft_body(
    sim: AltcraftSimulator, make: Make, http_status: int, payload: str, expected: OutcomeStatus, words: str
) -> None:
    fault(sim, FaultKind.MALFORMED, status=http_status, body=payload, times=None)
    outcome = await make(max_attempts=1).stop("101")
    assert outcome.status is expected and outcome.http_status == http_status and words in outcome.detail
    assert outcome.attempts == 1


async def test_a_base_url_without_the_api_is_named(make: Make, server: RunningServer) -> None:
    adapter = make(base_url=f"{server.url}/nowhere")
    outcome = await adapter.stop("101")
    assert outcome.status is S.PROVIDER_ERROR and outcome.http_status == 404 and outcome.attempts == 1
    assert f"check the base URL ({server.url}/nowhere)" in outcome.detail
    assert "read before: read failed (HTTP 404 without Altcraft's answer" in outcome.detail
    with pytest.raises(PreviewUnavailable, match="check the base URL"):
        await adapter.preview("101")


@pytest.mark.parametrize("digits", ["\u00b2", "\uff11\uff12"])
async def test_digits_that_are_not_ascii_never_abort_a_stop(
    sim: AltcraftSimulator, adapter: AltcraftAdapter, digits: str
) -> None:
    fault(sim, FaultKind.STATUS, status=200, body=body(digits, digits), apply=True)
    outcome = await adapter.stop("101")
    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 1


async def test_token_echoed_by_an_error_page_is_scrubbed(sim: AltcraftSimulator, make: Make) -> None:
    fault(sim, FaultKind.MALFORMED, status=200, body=f"<html>bad request: token={TOKEN}</html>", times=None)
    fault(sim, FaultKind.STATUS, GET_STATUS, status=400, body=body(400, f"bad token {TOKEN}"), times=None)
    outcome = await make(max_attempts=1).stop("101")
    assert TOKEN not in outcome.model_dump_json() and "<redacted>" in outcome.detail


async def test_invalid_id_passed_to_stop_is_an_outcome(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    outcome = await adapter.stop("abc")
    assert outcome.status is S.INVALID_REQUEST and "positive whole number" in outcome.detail
    assert outcome.attempts == 0 and sent(outcome, 0) and sim.calls == []


# ----- preview and read_state ------------------------------------------------------------------------


async def test_preview_describes_the_campaign(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    info = await adapter.preview("102")
    assert (info.id, info.name, info.kind, info.state, info.phase) == (
        "102",
        "Daily weather notification",
        "regular",
        "Active",
        P.ACTIVE,
    )
    assert info.extra["channel"] == "push" and info.extra["is_active"] is True
    assert info.extra["is_completed"] is False and info.extra["messages"] == 1
    [call] = sim.calls
    assert call.path.endswith("/api/v1.1/campaigns/get") and call.json() == {"token": TOKEN, "id": 102}


@pytest.mark.parametrize(
    ("campaign_id", "phase", "state"), [("104", P.COMPLETED, "Completed"), ("105", P.STOPPED, "Inactive")]
)
async def test_preview_phases(adapter: AltcraftAdapter, campaign_id: str, phase: CampaignPhase, state: str) -> None:
    info = await adapter.preview(campaign_id)
    assert (info.phase, info.state) == (phase, state)


@pytest.mark.parametrize(
    ("token", "armed", "words"),
    [
        (TOKEN, None, "does not know campaign 999"),
        ("wrong", None, "rejected the token"),
        (TOKEN, Fault(kind=FaultKind.LATENCY, delay=5, match=GET), "did not answer"),
        (TOKEN, Fault(kind=FaultKind.MALFORMED, match=GET), "unreadable"),
        (TOKEN, Fault(kind=FaultKind.MALFORMED, body="[]", match=GET), "unexpected"),
        (TOKEN, Fault(kind=FaultKind.MALFORMED, body='{"data": "x", "error": 0}', match=GET), "unexpected"),
        (TOKEN, Fault(kind=FaultKind.MALFORMED, body='{"data": {}, "error": "x"}', match=GET), "unexpected"),
        (TOKEN, Fault(kind=FaultKind.STATUS, status=503, match=GET), "HTTP 503"),
    ],
)
async def test_preview_unavailable(
    sim: AltcraftSimulator, make: Make, token: str, armed: Fault | None, words: str
) -> None:
    if armed is not None:
        sim.add_fault(armed)
    with pytest.raises(PreviewUnavailable, match=words):
        await make(token=token).preview("999" if words.endswith("999") else "101")
    sim.release_held()


async def test_read_state(sim: AltcraftSimulator, adapter: AltcraftAdapter) -> None:
    info = await adapter.read_state("101")
    assert info is not None and (info.state, info.phase) == ("Active", P.ACTIVE) and info.name is None
    assert await adapter.read_state("999") is None
    assert await adapter.read_state("not a number") is None
    fault(sim, FaultKind.MALFORMED, GET_STATUS)
    assert await adapter.read_state("101") is None


# ----- the simulator itself ----------------------------------------------------------------------------


async def test_simulator_documented_shapes_and_checks(sim: AltcraftSimulator, server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"{server.url}/api/v1.1") as client:

        async def post(method: str, payload: Any) -> dict[str, Any]:
            response = await client.post(f"/campaigns/{method}", json=payload)
            assert response.status_code == 200  # Altcraft answers failures on HTTP 200
            result: dict[str, Any] = response.json()
            return result

        assert await post("get_status", {"id": 101}) == {"data": None, "error": 401, "error_text": "API token required"}
        assert (await post("get_status", {"token": "x", "id": 101}))["error"] == 401
        active = {"is_active": True, "is_completed": False, "status": "Active"}
        assert (await post("get_status", {"token": TOKEN, "id": "101"}))["data"] == active
        for bad in (None, "abc", 1.5, True, -3, 0, [101]):
            answer = await post("get_status", {"token": TOKEN, "id": bad})
            assert answer["error"] == 400 and answer["data"] is None
        assert (await post("get", {"token": TOKEN, "id": 12345}))["error_text"] == "Campaign not found"
        assert (await post("deactivate", [1, 2]))["error"] == 400
        assert (await post("deactivate", {"token": READONLY_TOKEN, "id": 106}))["error"] == 403
        bad_flag = await post("deactivate", {"token": TOKEN, "id": 106, "abort_if_running": "maybe"})
        assert bad_flag["error"] == 400 and sim.campaigns["106"].state == "Active"
        # The docs' own example: id and flag as strings.
        assert (await post("deactivate", {"token": TOKEN, "id": "15", "abort_if_running": "true"}))["error"] == 400
        ok = {"data": None, "error": 0, "error_text": "Successful operation"}
        assert await post("deactivate", {"token": TOKEN, "id": "106", "abort_if_running": "true"}) == ok
        assert sim.campaigns["106"].extra["queued_dropped"] == 900
        # The flag defaults to false, as documented: the queue is still sent.
        assert (await post("deactivate", {"token": TOKEN, "id": 102}))["error"] == 0
        assert sim.campaigns["102"].extra["queued_still_sent"] == 3_500
        details = (await post("get", {"token": TOKEN, "id": 102}))["data"]
        assert details["type"] == "regular" and details["status"] == "Inactive" and details["is_active"] is False


async def test_simulator_seed_and_error_body(sim: AltcraftSimulator) -> None:
    states = [(c.id, c.state, c.kind) for c in sim.campaigns.values()]
    assert [f"{id_} {state} {kind}" for id_, state, kind in states] == [
        "101 Active broadcast", "102 Active regular", "103 Active trigger",
        "104 Completed broadcast", "105 Inactive broadcast", "106 Active broadcast",
    ]  # fmt: skip
    response = sim.error_response(502, "upstream down")
    assert response.status_code == 502
    assert json.loads(bytes(response.body)) == {"data": None, "error": 502, "error_text": "upstream down"}
    assert sim.account_values("http://x") == {"token": TOKEN, "base_url": "http://x"}
