"""Telco WWT (RCS) adapter on the stop engine, over real HTTP against its simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
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
from bot.core.ports import CampaignIdError, PreviewUnavailable
from bot.httpserver import RunningServer
from bot.providers.auth import ASSUMED_TOKEN_LIFETIME, BearerSession, jwt_claims
from bot.providers.base import HttpOptions
from bot.providers.verdicts import Kind, Reads
from bot.providers.wire import Reply
from bot.providers.wwt import WwtAccount, WwtAdapter, token_of
from bot.sandbox.base import Fault, FaultKind, RecordedCall
from bot.sandbox.wwt import API_KEY, STOP_422_MESSAGE, WwtSimulator
from tests.unit.sandbox_fixtures import FAST, fast_limiter, sandbox_fixtures

served, sim, server = sandbox_fixtures(WwtSimulator)
sandbox = pytest.mark.asyncio(loop_scope="module")

IDS = [str(53651994 + n) for n in range(9)]
SENDING, SCHEDULED, DONE, STOPPED, CREATION, SPAM, MODERATION, PAUSED, SPARE = IDS
S = OutcomeStatus
P = CampaignPhase
UNAUTHENTICATED = json.dumps({"message": "Unauthenticated."})
JUDGE = WwtAdapter("judge", WwtAccount(api_key="live_judge_key"))
"""For reading bodies only: never sends."""

Factory = Callable[..., WwtAdapter]


@pytest_asyncio.fixture(loop_scope="module")
async def make(sim: WwtSimulator, server: RunningServer) -> AsyncIterator[Factory]:
    made: list[WwtAdapter] = []

    def build(**overrides: Any) -> WwtAdapter:
        options: dict[str, Any] = {**FAST}
        options.update({key: overrides.pop(key) for key in ("timeout", "deadline", "max_attempts") if key in overrides})
        # A plain-HTTP transport skips loading the CA bundle; the sandbox speaks http.
        http = HttpOptions(**options, transport=httpx.AsyncHTTPTransport(verify=False), limiters=fast_limiter)
        adapter = WwtAdapter("sandbox", WwtAccount(**{**sim.account_values(server.url), **overrides}), http)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make: Factory) -> WwtAdapter:
    return make()


def stops(sim: WwtSimulator) -> list[RecordedCall]:
    return sim.calls_to("/stop")


def logins(sim: WwtSimulator) -> list[RecordedCall]:
    return sim.calls_to("/api/auth/login")


def trail(sim: WwtSimulator) -> str:
    """The campaign calls in order, logins left out: ``s`` a stop, ``r`` a read (``"srsr"``)."""
    return "".join("s" if c.path.endswith("/stop") else "r" for c in sim.calls if c.path.startswith("/api/campaigns"))


def bearer(call: RecordedCall) -> str:
    return call.headers["authorization"].removeprefix("Bearer ")


def shift_clock(adapter: WwtAdapter, seconds: float) -> None:
    session = adapter.auth
    assert isinstance(session, BearerSession)
    real = session.clock
    session.clock = lambda: real() + seconds


def reply(status: int, body: Any) -> Reply:
    return Reply.of(status, (body if isinstance(body, str) else json.dumps(body)).encode(), {})


# ----- declared facts, account, ids, bodies ----------------------------------------------------


ENV = ("API_KEY", "BASE_URL", "DASHBOARD_URL")


def test_declared_facts() -> None:
    cls = WwtAdapter
    assert (cls.name, cls.display_name, cls.env_prefix) == ("wwt", "Telco WWT (RCS)", "WWT_")
    assert cls.aliases == ("telcowwt", "rcs")
    assert (cls.repeat_safe, cls.undoable, cls.resend_when_refused_but_active) == (False, False, False)
    assert cls.reads == Reads(settle=True, before=False, back=True)
    assert (cls.rate_per_second, cls.max_in_flight, cls.default_retry_after) == (5.0, 2, None)
    assert cls.method_fallbacks == {"PUT": "PATCH"}
    assert cls.refused_by_state_http == frozenset({409, 422})
    assert cls.http_outcomes[405] is S.PROVIDER_ERROR and cls.code_outcomes == {}
    assert cls.dashboard_url_template is None and "cannot be resumed" in cls.stop_meaning
    assert {cls.env_prefix + f.upper() for f in WwtAccount.model_fields} == {f"WWT_{f}" for f in ENV}
    phases = {P.ACTIVE: "moderation scheduled planned sending paused", P.STOPPED: "stopped",
              P.COMPLETED: "done completed", P.NOT_STOPPABLE: "creation spam"}  # fmt: skip
    assert cls.phases == {state: phase for phase, states in phases.items() for state in states.split()}
    assert JUDGE.phase_of(" Sending ") is P.ACTIVE and JUDGE.phase_of("archived") is P.UNKNOWN
    assert JUDGE.phase_of(None) is P.UNKNOWN


async def test_account_host_and_hidden_key() -> None:
    account = WwtAccount(api_key=" live_secret_key_123 \n")
    assert account.api_key.get_secret_value() == "live_secret_key_123"
    adapter = WwtAdapter("prod", account)
    try:
        assert adapter.base_url == "https://one-api.wwt.world" and adapter.api_host == "one-api.wwt.world"
        assert adapter.has_preview and adapter.facts.has_preview and adapter.facts.dashboard_url(SENDING) is None
        for text in (repr(account), str(account), account.model_dump_json(), repr(adapter)):
            assert "live_secret_key_123" not in text
    finally:
        await adapter.aclose()
    assert WwtAdapter("x", WwtAccount(api_key="k", base_url="https://eu.example.com/")).base_url == (
        "https://eu.example.com"
    )


@pytest.mark.parametrize(
    "fields", [{"api_key": "   "}, {}, {"api_key": "k", "base_url": "ftp://x"}, {"api_key": "k", "other": "x"}]
)
def test_account_rejects_bad_settings(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        WwtAccount(**fields)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("53651994", "53651994"), (" 42 ", "42"), ("007", "7"), ("999999999999999999", "999999999999999999")],
)
def test_parse_campaign_id_accepts_positive_integers(raw: str, expected: str) -> None:
    assert WwtAdapter.parse_campaign_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", " ", "0", "000", "-5", "+5", "abc", "1.5", "1e6", "12 34", "١٢٣", "²", "\uff11\uff12", "1234567890123456789"],
)
def test_parse_campaign_id_rejects_everything_else(raw: str) -> None:
    with pytest.raises(CampaignIdError, match=r"Telco WWT \(RCS\) campaign id"):
        WwtAdapter.parse_campaign_id(raw)


@given(st.text())
def test_parse_campaign_id_gives_a_positive_int_string_or_campaign_id_error(raw: str) -> None:
    try:
        parsed = WwtAdapter.parse_campaign_id(raw)
    except CampaignIdError:
        return
    assert parsed.isdigit() and int(parsed) > 0 and str(int(parsed)) == parsed


def test_campaign_bodies_read_statistics_arrays_wrong_types_and_odd_digits() -> None:
    campaign = {
        "status": "sending",
        "statistics": [{"sent": 3, "delivered": 1}, {"sent": "4", "delivered": 2}, "x"],
        "calculated_price": "12.5",
        "alternative_channels": {"sms": {"statistics": {"sent": 2}}},
    }
    info = JUDGE.campaign_of(reply(200, {"data": campaign}), "7")
    assert info is not None and info.phase is P.ACTIVE
    assert (info.id, info.sent, info.delivered, info.price) == ("7", 7, 3, 12.5)
    assert info.extra == {"sms_fallback_sent": 2}
    odd = {
        "id": "²",
        "status": "stopped",
        "statistics": {"sent": "²", "delivered": "\uff11\uff12"},
        "calculated_price": "²",
    }
    body = JUDGE.stop_body(reply(200, {"data": odd}))
    assert body.success is True and body.campaign is not None
    assert (body.campaign.sent, body.campaign.delivered, body.campaign.price) == (None, None, None)
    for garbage in ({"data": {"status": 7}}, {"data": "stopped"}, [{"status": "stopped"}], {"data": {"id": 1}}):
        assert JUDGE.campaign_of(reply(200, garbage), "7") is None
        assert JUDGE.stop_body(reply(200, garbage)).success is None
    error = JUDGE.stop_body(reply(400, {"message": "The id must be an integer.", "errors": {"id": ["bad"]}}))
    assert error.message == 'The id must be an integer. (errors: {"id":["bad"]})'


KEYS = st.sampled_from(["data", "status", "statistics", "sent", "id", "message", "errors", "bearer", "sms"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


@given(st.integers(100, 599), JSON | st.binary(max_size=60))
def test_reading_any_answer_never_raises(status: int, body: Any) -> None:
    answer = Reply.of(status, body if isinstance(body, bytes) else json.dumps(body).encode(), {})
    JUDGE.stop_body(answer)
    assert isinstance(JUDGE.judge(answer, "1").kind, Kind)
    if JUDGE.campaign_of(answer, "1") is None:
        assert JUDGE.read_problem(answer, "1").info is None
    token_of(answer)
    assert JUDGE.login_failure(answer).reason


# ----- the stop: every documented answer and fault, one table ------------------------------------


@sandbox
async def test_stop_logs_in_stops_and_verifies(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    outcome = await adapter.stop(SENDING)

    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 1
    assert (outcome.provider, outcome.account, outcome.campaign_id) == ("wwt", "sandbox", SENDING)
    assert outcome.state_after == outcome.provider_status == "stopped" and outcome.http_status == 200
    campaign = outcome.campaign
    assert campaign is not None and campaign.phase is P.STOPPED
    assert (campaign.sent, campaign.delivered, campaign.price, campaign.kind) == (8200, 7900, 412.5, "rcs")
    assert "sent 8,200, delivered 7,900, price 412.5" in outcome.detail and "now reports" in outcome.detail
    assert outcome.detail.endswith("1 stop was sent.")
    (login,) = logins(sim)
    assert login.json() == {"api_key": API_KEY}
    (stop,) = stops(sim)
    assert stop.method == "PUT" and stop.body == b"" and sim.token_claims(bearer(stop)) is not None
    assert trail(sim) == "sr" and sim.campaigns[SENDING].state == "stopped"


def on_stop(kind: FaultKind, **fields: Any) -> Fault:
    return Fault(kind=kind, match="/stop", **fields)


def on_read(kind: FaultKind, **fields: Any) -> Fault:
    return Fault(kind=kind, method="GET", **{"times": None, **fields})


def case(name: str, status: S, calls: str, *faults: Fault, cid: str = SENDING, state: str | None = None,
         tries: int = 4, said: str = "", **fields: Any) -> Any:  # fmt: skip
    """One stop scenario: faults armed, then the outcome, the calls (``s`` stop, ``r`` read), the text."""
    return pytest.param(list(faults), cid, state, tries, status, calls, said, fields, id=name)


def answer(http: int, message: str) -> Fault:
    return on_stop(FaultKind.STATUS, status=http, body=json.dumps({"message": message}))


T = FaultKind
REFUSED = answer(422, "Invalid campaign status")
OLD = json.dumps({"data": {"id": int(SENDING), "name": "Spring sale RCS", "status": "sending"}})
BAD_ID = on_stop(
    T.STATUS, status=400, body=json.dumps({"message": "The id must be an integer.", "errors": {"id": [1]}})
)
# fmt: off
SCENARIOS = [
    # A 422: the read tells which state; never a second stop.
    case("422-stopped", S.ALREADY_STOPPED, "sr", cid=STOPPED, verified=True, http_status=422, state_after="stopped"),
    case("422-done", S.ALREADY_COMPLETED, "sr", cid=DONE, verified=True, said=STOP_422_MESSAGE),
    case("422-creation", S.NOT_STOPPABLE, "sr", cid=CREATION, verified=True, provider_status="creation"),
    case("422-spam", S.NOT_STOPPABLE, "sr", cid=SPAM, verified=True, state_before=None),
    case("422-active", S.NOT_STOPPABLE, "sr", REFUSED, said="a refusal is not a doubt, so no second stop was sent"),
    case("422-read-fails", S.NOT_STOPPABLE, "srr", REFUSED, on_read(T.STATUS, status=500), said="settle it failed"),
    case("422-archived", S.NOT_STOPPABLE, "sr", REFUSED, state="archived", said="a status this app does not know"),
    case("422-then-404", S.NOT_FOUND, "sr", REFUSED, on_read(T.STATUS, status=404), said="does not know campaign"),
    # Definite refusals: no read, no second stop.
    case("400", S.INVALID_REQUEST, "s", BAD_ID, provider_message='The id must be an integer. (errors: {"id":[1]})'),
    case("403", S.FORBIDDEN, "s", answer(403, "This action is unauthorized."), said="may not stop campaigns"),
    case("404", S.NOT_FOUND, "s", answer(404, "Campaign not found."), said="53651994 in account sandbox"),
    case("418", S.INVALID_REQUEST, "s", answer(418, "I'm a teapot"), said="Nothing was stopped", http_status=418),
    case("302", S.PROVIDER_ERROR, "s", answer(302, "Moved"), said="redirect", provider_message="Moved"),
    case("405-put-and-patch", S.PROVIDER_ERROR, "ss", answer(405, "No PUT").model_copy(update={"method": "PUT"}),
         answer(405, "Method Not Allowed"), said="both PUT and PATCH", provider_message="Method Not Allowed"),
    # Doubts: settled by a read; a second stop only when the read proves the campaign still runs.
    case("lost-answer", S.STOPPED, "sr", on_stop(T.LOST_ANSWER), verified=True, said="no answer", attempts=1),
    case("lost-answer-read-fails", S.UNKNOWN, "sr", on_stop(T.LOST_ANSWER), on_read(T.MALFORMED), said="dashboard"),
    case("late-own-stop-then-422", S.STOPPED, "srsr", on_stop(T.LOST_ANSWER, late=True, delay=60, method="PUT"),
         verified=True, http_status=422, said="2 stops were sent."),
    *[
        case(f"{name}-then-a-second-stop", S.STOPPED, "srsr", on_stop(kind, **kw), verified=True, attempts=2)
        for name, kind, kw in [("timeout", T.TIMEOUT, {}), ("reset", T.RESET, {}), ("500", T.STATUS, {"status": 500}),
                               ("503", T.STATUS, {"status": 503}), ("408", T.STATUS, {"status": 408}),
                               ("429", T.STATUS, {"status": 429, "retry_after": 0})]
    ],
    case("500-then-done", S.ALREADY_COMPLETED, "sr", on_stop(T.STATUS, status=500), state="done", verified=True),
    case("500-then-creation", S.NOT_STOPPABLE, "sr", on_stop(T.STATUS, status=500), state="creation"),
    case("500-then-stopped", S.STOPPED, "sr", on_stop(T.STATUS, status=500), state="stopped", verified=True),
    case("500-then-archived", S.PROVIDER_ERROR, "sr", on_stop(T.STATUS, status=500), state="archived"),
    case("502-persists", S.PROVIDER_ERROR, "srsrsr", on_stop(T.STATUS, status=502, times=None), tries=3,
         provider_message="sandbox fault: HTTP 502", said="3 attempts is the most", state_after="sending"),
    case("429-persists", S.RATE_LIMITED, "srsr", answer(429, "Too Many Attempts.").model_copy(
         update={"retry_after": 0, "times": None}), tries=2, provider_message="Too Many Attempts."),
    case("429-retry-after-beyond-the-deadline", S.RATE_LIMITED, "sr",
         on_stop(T.STATUS, status=429, retry_after=30, times=None)),
    # Any 2xx carrying the campaign is the stop taken, even showing the old status: the read-back verifies.
    case("stale-2xx-applied", S.STOPPED, "sr", on_stop(T.STATUS, status=200, body=OLD, apply=True), verified=True,
         said="its answer still shows 'sending'"),
    case("stale-2xx-not-applied", S.STOPPED, "sr", on_stop(T.STATUS, status=200, body=OLD), verified=False,
         said="still shows it as 'sending'", state_after="sending"),
    case("read-back-fails", S.STOPPED, "sr", on_read(T.STATUS, status=500), verified=False,
         said="Reading it back failed", state_after="stopped"),
]
# fmt: on


@sandbox
@pytest.mark.parametrize(("faults", "cid", "state", "tries", "status", "calls", "said", "fields"), SCENARIOS)
async def test_stop_scenarios(
    sim: WwtSimulator, make: Factory, faults: list[Fault], cid: str, state: str | None, tries: int,
    status: OutcomeStatus, calls: str, said: str, fields: dict[str, Any],
) -> None:  # fmt: skip
    if state is not None:
        sim.campaigns[cid].state = state
    for fault in faults:
        sim.add_fault(fault.model_copy())
    before = sim.campaigns[cid].state

    outcome = await make(max_attempts=tries).stop(cid)

    assert (outcome.status, trail(sim)) == (status, calls), outcome.detail
    assert said in outcome.detail and outcome.elapsed_ms < 2900, outcome.detail
    assert {key: getattr(outcome, key) for key in fields} == fields, outcome.detail
    if status not in (S.STOPPED, S.UNKNOWN):
        assert sim.campaigns[cid].state == before  # nothing changed


@sandbox
async def test_unknown_campaign_and_invalid_id(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    outcome = await adapter.stop("1")
    assert outcome.status is S.NOT_FOUND and outcome.http_status == 404
    assert outcome.provider_message == "Campaign not found." and "does not know campaign 1" in outcome.detail
    sim.calls.clear()
    invalid = await adapter.stop("abc")
    assert invalid.status is S.INVALID_REQUEST and invalid.attempts == 0 and sim.calls == []


@sandbox
async def test_put_405_falls_back_to_patch_and_remembers(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.put_not_allowed = True
    outcome = await adapter.stop(SENDING)
    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 1
    assert (await adapter.stop(PAUSED)).status is S.STOPPED
    assert [c.method for c in stops(sim)] == ["PUT", "PATCH", "PATCH"]


@sandbox
async def test_timeouts_stay_inside_the_deadline(sim: WwtSimulator, make: Factory) -> None:
    sim.add_fault(on_stop(FaultKind.TIMEOUT, times=None))
    outcome = await make(deadline=2.5).stop(SENDING)
    assert outcome.status is S.PROVIDER_ERROR and outcome.state_after == "sending"
    assert outcome.elapsed_ms < 2500 and 2 <= outcome.attempts <= 4 and "no answer" in outcome.detail
    assert trail(sim) == "sr" * outcome.attempts


@sandbox
async def test_retry_after_is_waited_before_the_read(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.add_fault(on_stop(FaultKind.STATUS, status=429, retry_after=0.3))
    outcome = await adapter.stop(SENDING)
    assert outcome.status is S.STOPPED and outcome.attempts == 2
    first, second = stops(sim)
    (between,) = [c for c in sim.calls_to("/api/campaigns", "GET") if first.at < c.at < second.at]
    assert between.at - first.at >= 0.3


GARBAGE = [None, "", "[]", '[{"status": "stopped"}]', '"stopped"', '{"data": "stopped"}', '{"data": {"status": 7}}',
           '{"data": {"status": "stopp']  # fmt: skip


@sandbox
@pytest.mark.parametrize(("body", "http"), [*((body, 200) for body in GARBAGE), (None, 502)])
@pytest.mark.parametrize("read_fails", [False, True], ids=["read-ok", "read-fails"])
async def test_garbage_answers_are_doubts_settled_by_reading(
    sim: WwtSimulator, make: Factory, body: str | None, http: int, read_fails: bool
) -> None:
    sim.add_fault(on_stop(FaultKind.MALFORMED, body=body, status=http, times=None))
    if read_fails:
        sim.add_fault(on_read(FaultKind.MALFORMED, body=body, status=http))
    outcome = await make(max_attempts=2).stop(SENDING)
    assert outcome.http_status == http and f"HTTP {http}" in outcome.detail
    if read_fails:  # unknown when no usable answer ever came back; a 5xx is an answer
        assert outcome.status is (S.PROVIDER_ERROR if http >= 500 else S.UNKNOWN) and len(stops(sim)) == 1
        assert "dashboard" in outcome.detail
    else:  # the garbage stops nothing here, so every read proves the campaign still runs
        assert outcome.status is S.PROVIDER_ERROR and outcome.state_after == "sending" and trail(sim) == "srsr"
    if body is None:
        assert "502 Bad Gateway" in outcome.detail


# ----- auth: login, renewal, 401 -----------------------------------------------------------------


@sandbox
async def test_the_jwt_is_cached_refreshed_near_expiry_and_renewed_after_expiry(
    sim: WwtSimulator, adapter: WwtAdapter
) -> None:
    await adapter.preview(SENDING)
    await adapter.stop(SENDING)
    assert len(logins(sim)) == 1 and len({bearer(c) for c in sim.calls_to("/api/campaigns")}) == 1
    old = bearer(stops(sim)[0])

    shift_clock(adapter, sim.token_lifetime - 30)  # inside the renewal margin, not yet expired
    assert (await adapter.stop(PAUSED)).status is S.STOPPED
    (refresh,) = sim.calls_to("/api/auth/refresh")
    assert bearer(refresh) == old and len(logins(sim)) == 1
    assert bearer(stops(sim)[1]) != old and sim.token_claims(old) is None

    sim.clock_offset = 2 * sim.token_lifetime  # the provider now rejects the token…
    shift_clock(adapter, sim.token_lifetime + 5)  # …and our clock knows it has expired
    outcome = await adapter.stop(SCHEDULED)
    assert outcome.status is S.STOPPED and outcome.verified and outcome.attempts == 1
    assert len(logins(sim)) == 2 and len(sim.calls_to("/api/auth/refresh")) == 1


@sandbox
async def test_a_failed_refresh_falls_back_to_one_login(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    await adapter.preview(SENDING)
    shift_clock(adapter, sim.token_lifetime - 30)
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=500, match="/api/auth/refresh"))

    assert (await adapter.stop(SENDING)).status is S.STOPPED
    assert len(sim.calls_to("/api/auth/refresh")) == 1 and len(logins(sim)) == 2 and len(stops(sim)) == 1


@sandbox
async def test_a_jwt_without_exp_gets_the_assumed_lifetime(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    sim.token_has_exp = False
    await adapter.preview(SENDING)
    assert "exp" not in jwt_claims(bearer(sim.calls_to("/api/campaigns")[0]))
    shift_clock(adapter, ASSUMED_TOKEN_LIFETIME / 2)
    await adapter.preview(SENDING)
    assert len(logins(sim)) == 1
    shift_clock(adapter, ASSUMED_TOKEN_LIFETIME)  # now 1.5 lifetimes after the login
    assert (await adapter.stop(SENDING)).status is S.STOPPED
    assert len(logins(sim)) == 2 and sim.calls_to("/api/auth/refresh") == []


@sandbox
@pytest.mark.parametrize("setup", ["revoked", "always_401", "login_refused"])
async def test_a_401_on_the_stop_logs_in_again_once(sim: WwtSimulator, adapter: WwtAdapter, setup: str) -> None:
    await adapter.preview(SENDING)
    sim.revoke_tokens()  # the cached JWT still looks valid to us, but the provider refuses it
    if setup == "always_401":
        sim.add_fault(on_stop(FaultKind.STATUS, status=401, body=UNAUTHENTICATED, times=None))
    if setup == "login_refused":
        sim.add_fault(Fault(kind=FaultKind.STATUS, status=401, body=UNAUTHENTICATED, match="/api/auth/login"))

    outcome = await adapter.stop(SENDING)

    assert outcome.attempts == 1 and len(logins(sim)) == 2  # one judged attempt; 401 + repeat inside it
    if setup == "revoked":
        assert outcome.status is S.STOPPED and outcome.verified
        first, second = stops(sim)
        assert bearer(first) != bearer(second) and sim.token_claims(bearer(second)) is not None
    elif setup == "always_401":
        assert outcome.status is S.UNAUTHORIZED and outcome.http_status == 401
        assert outcome.provider_message == "Unauthenticated." and "even after a fresh login" in outcome.detail
        assert len(stops(sim)) == 2
    else:
        assert outcome.status is S.UNAUTHORIZED and outcome.http_status == 401
        assert "logging in failed" in outcome.detail and len(stops(sim)) == 1
    assert sim.campaigns[SENDING].state == ("stopped" if setup == "revoked" else "sending")


@sandbox
@pytest.mark.parametrize("revoke", [False, True])
async def test_concurrent_stops_share_one_login(sim: WwtSimulator, adapter: WwtAdapter, revoke: bool) -> None:
    if revoke:
        await adapter.preview(SENDING)
        sim.revoke_tokens()
    sim.add_fault(Fault(kind=FaultKind.LATENCY, delay=0.2, match="/api/auth/login"))
    ids = [SENDING, SCHEDULED, MODERATION, PAUSED, SPARE]

    outcomes = await asyncio.gather(*(adapter.stop(cid) for cid in ids))

    assert [o.status for o in outcomes] == [S.STOPPED] * 5
    assert len(logins(sim)) == 1 + revoke and len(stops(sim)) == 5 * (1 + revoke)


def login_fault(kind: FaultKind = FaultKind.STATUS, **fields: Any) -> Fault:
    return Fault(kind=kind, match="/api/auth/login", **fields)


# fmt: off
LOGIN_FAILURES = [
    (login_fault(status=401, body=UNAUTHENTICATED), S.UNAUTHORIZED, "rejected the API key (HTTP 401: Unauthenticated"),
    (login_fault(status=422, body='{"message": "The api key field is required."}'), S.UNAUTHORIZED, "is required"),
    (login_fault(status=403, body='{"message": "Key disabled"}'), S.FORBIDDEN, "refused this API key"),
    (login_fault(status=500, times=None), S.PROVIDER_ERROR, "the login failed (HTTP 500"),
    (login_fault(status=429, retry_after=0, times=None), S.RATE_LIMITED, "rate limited"),
    (login_fault(FaultKind.MALFORMED), S.PROVIDER_ERROR, "a body that is not a JSON object"),
    (login_fault(FaultKind.MALFORMED, body='{"token": "abc.def.ghi"}'), S.PROVIDER_ERROR, "JSON keys ['token']"),
    (login_fault(FaultKind.MALFORMED, body='{"bearer": 12345}'), S.PROVIDER_ERROR, "without a usable 'bearer'"),
    (login_fault(FaultKind.MALFORMED, body='{"bearer": "two words"}'), S.PROVIDER_ERROR, "usable 'bearer'"),
    (login_fault(FaultKind.MALFORMED, body="[]"), S.PROVIDER_ERROR, "not a JSON object"),
]
# fmt: on


@sandbox
@pytest.mark.parametrize(("fault", "status", "said"), LOGIN_FAILURES)
async def test_a_failed_login_means_no_stop(
    sim: WwtSimulator, make: Factory, fault: Fault, status: OutcomeStatus, said: str
) -> None:
    sim.add_fault(fault.model_copy())

    outcome = await make(max_attempts=2).stop(SENDING)

    assert outcome.status is status and "logging in failed" in outcome.detail and said in outcome.detail
    assert outcome.detail.endswith("No stop was sent.") and "abc.def.ghi" not in outcome.detail
    retried = fault.status in (429, 500)  # only those are worth another login: 3 for the whole stop
    assert len(logins(sim)) == (3 if retried else 1) and stops(sim) == []
    assert sim.campaigns[SENDING].state == "sending"


@sandbox
async def test_no_login_answer_or_nothing_listening_is_unreachable(sim: WwtSimulator, make: Factory) -> None:
    sim.add_fault(Fault(kind=FaultKind.TIMEOUT, match="/api/auth/login", times=None))
    outcome = await make(timeout=0.3, deadline=1).stop(SENDING)
    assert outcome.status is S.UNREACHABLE and "login got no answer" in outcome.detail and stops(sim) == []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await make(base_url=f"http://127.0.0.1:{port}", timeout=0.3, deadline=1).stop(SENDING)
    assert outcome.status is S.UNREACHABLE and "could not connect" in outcome.detail


# ----- preview and read_state --------------------------------------------------------------------


@sandbox
async def test_preview_describes_the_campaign(sim: WwtSimulator, adapter: WwtAdapter) -> None:
    info = await adapter.preview(SENDING)
    assert info.id == SENDING and info.state == "sending" and info.phase is P.ACTIVE
    assert info.name is not None and "Spring sale RCS" in info.name
    assert (info.kind, info.sent, info.delivered, info.price) == ("rcs", 8200, 7900, 412.5)
    assert info.extra["sender"] == "WWT Sandbox Agent" and info.extra["start_at"] and info.extra["created_at"]
    assert info.extra["sms_fallback_sent"] == 120 and sim.campaigns[SENDING].state == "sending"
    phases = [P.ACTIVE, P.ACTIVE, P.COMPLETED, P.STOPPED, P.NOT_STOPPABLE, P.NOT_STOPPABLE, P.ACTIVE, P.ACTIVE]
    assert [(await adapter.preview(cid)).phase for cid in IDS[:8]] == phases
    sim.campaigns[SENDING].state = "Archived"
    info = await adapter.preview(SENDING)
    assert info.state == "Archived" and info.phase is P.UNKNOWN


@sandbox
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("wrong_key", "logging in failed"),
        ("html", "holds no campaign"),
        ("server_error", "HTTP 500"),
        ("slow", "did not answer within"),
        ("gone", "does not know campaign 1 "),
        ("invalid_id", r"Telco WWT \(RCS\) campaign id"),
    ],
)
async def test_preview_failures_are_preview_unavailable(
    sim: WwtSimulator, make: Factory, setup: str, reason: str
) -> None:
    adapter = make(api_key="test_WRONG") if setup == "wrong_key" else make()
    campaign_id = {"invalid_id": "x1", "gone": "1"}.get(setup, SENDING)
    faults = {
        "html": Fault(kind=FaultKind.MALFORMED, method="GET"),
        "server_error": Fault(kind=FaultKind.STATUS, status=500, method="GET", times=None),
        "slow": Fault(kind=FaultKind.LATENCY, delay=5, method="GET", times=None),
    }
    if setup in faults:
        sim.add_fault(faults[setup])
    started = asyncio.get_running_loop().time()
    with pytest.raises(PreviewUnavailable, match=reason) as caught:
        await adapter.preview(campaign_id)
    assert "test_WRONG" not in str(caught.value) and asyncio.get_running_loop().time() - started < 2.0


@sandbox
async def test_read_state(sim: WwtSimulator, adapter: WwtAdapter, make: Factory) -> None:
    await adapter.stop(SENDING)
    info = await adapter.read_state(SENDING)
    assert info is not None and info.state == "stopped" and info.phase is P.STOPPED
    assert await adapter.read_state("1") is None and await adapter.read_state("not-an-id") is None
    sim.add_fault(Fault(kind=FaultKind.MALFORMED, method="GET"))
    assert await adapter.read_state(SENDING) is None
    assert await make(api_key="test_WRONG").read_state(SENDING) is None


# ----- secrets ------------------------------------------------------------------------------------


@sandbox
async def test_the_key_and_the_jwt_never_leak(
    sim: WwtSimulator, adapter: WwtAdapter, make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await adapter.preview(SENDING)
    sim.revoke_tokens()
    outcomes = [await adapter.stop(SENDING)]
    shift_clock(adapter, sim.token_lifetime - 30)
    outcomes.append(await adapter.stop(PAUSED))
    # A provider that echoes the key back, at login or on the stop, must not get it anywhere.
    echo = json.dumps({"message": f"Unknown key {API_KEY}"})
    sim.add_fault(Fault(kind=FaultKind.STATUS, status=401, body=echo, match="/api/auth/login"))
    refused = await make().stop(SPARE)
    assert refused.status is S.UNAUTHORIZED and "<redacted>" in refused.detail
    token = bearer(stops(sim)[-1])
    sim.add_fault(on_stop(FaultKind.STATUS, status=400, body=json.dumps({"message": f"bad {token} {API_KEY}"})))
    echoed = await adapter.stop(SCHEDULED)
    assert echoed.status is S.INVALID_REQUEST and echoed.provider_message == "bad <redacted> <redacted>"
    outcomes += [refused, echoed]

    tokens = {bearer(c) for c in sim.calls if "authorization" in c.headers}
    assert len(tokens) >= 3
    texts = [caplog.text, repr(adapter), repr(adapter.account), str(adapter.account), *map(repr, outcomes)]
    for secret in [API_KEY, *tokens]:
        assert not [text for text in texts if secret in text]


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
async def test_sim_login_tokens_and_their_401s(sim: WwtSimulator, client: httpx.AsyncClient) -> None:
    wrong = await client.post("/api/auth/login", json={"api_key": "live_nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Unauthenticated."})
    missing = await client.post("/api/auth/login", json={})
    assert missing.status_code == 422 and set(missing.json()) == {"message", "errors"}
    token = await login(client)
    header, _, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"typ": "JWT", "alg": "HS256"} and signature
    claims = jwt_claims(token)
    assert claims["exp"] - claims["iat"] == sim.token_lifetime
    head, _, sig = token.split(".")
    sim.token_lifetime = -10
    expired = await login(client)
    for auth in [None, "Bearer", "Bearer not.a.jwt", "Basic abc", f"Bearer {expired}", f"Bearer {head}.e30.{sig}"]:
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
    fields = "id name sender status message_type start_at real_start_at finished_at created_at statistics"
    assert set(read) == {*fields.split(), "calculated_price", "alternative_channels"}
    assert read["id"] == int(SENDING) and read["statistics"] == {"delivered": 7900, "sent": 8200}
    assert read["alternative_channels"]["sms"]["statistic"] == {"delivered": 120, "sent": 120}
    stopped = await client.patch(f"/api/campaigns/{PAUSED}/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["data"]["status"] == "stopped"
    again = await client.put(f"/api/campaigns/{PAUSED}/stop", headers=auth)
    assert (again.status_code, again.json()) == (422, {"message": STOP_422_MESSAGE, "errors": [{"status": "stopped"}]})
    missing = await client.get("/api/campaigns/1", headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"message": "Campaign not found.", "errors": []})
    assert (await client.get("/api/campaigns/abc", headers=auth)).status_code == 404
    sim.put_not_allowed = True
    refused = await client.put(f"/api/campaigns/{SENDING}/stop")
    assert refused.status_code == 405 and refused.headers["allow"] == "PATCH"
    renewed = (await client.post("/api/auth/refresh", headers=auth)).json()["bearer"]
    assert renewed != token and sim.token_claims(token) is None and sim.token_claims(renewed) is not None
    assert (await client.get(f"/api/campaigns/{SENDING}", headers=auth)).status_code == 401
    seeded = ["sending", "scheduled", "done", "stopped", "creation", "spam", "moderation", "paused", "sending"]
    assert {c.id: c.state for c in WwtSimulator().campaigns.values()} == dict(zip(IDS, seeded, strict=True))
