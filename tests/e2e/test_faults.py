"""Fault injection over real HTTP: signed Slack clicks → the real app on uvicorn → provider simulators.

Every provider goes through the same scenarios: latency past the timeout, connection refused,
connection reset mid-answer, 429 with and without Retry-After, 500/502/503, an HTML error page,
a truncated JSON body, and a stop that succeeds at the provider but whose answer is lost (alone,
after a 500, and with the state reads failing too). For each (provider, scenario) the test checks:

1. the normalized outcome, stored and posted in the channel and the incident channel, and that it
   tells the truth: `stopped` only when the provider really holds the campaign stopped, and a
   failure (`provider_error`, `rate_limited`, `unreachable`) only when it really is still running;
2. the stop calls that reached the provider: an exact count where the scenario pins it, never more
   than the retry budget, and, for providers whose stop is not repeat-safe, never a second stop
   without a state read since the previous one (exactly one when the answer was lost and a read
   shows it stopped); after a 429 with Retry-After, a stop is never re-sent sooner;
3. nothing crashed: the click got HTTP 200, Slack got the outcome, nothing logged an error;
4. the request ended (`done`): it never stays `executing`.

How it stays fast: one test per provider, and inside it every scenario at once. Each scenario has
its own simulator (all served by one uvicorn server, each under /<scenario>) and its own account of
the provider (in the app's TOML file), so each scenario's faults only ever meet its own calls.
"Connection refused" is the provider's default account, pointed by an env override at a port that
is bound but not listening. Faults that hold a request (latency, lost_answer) hold it until the
test releases it; everything waits on recorded events, never on sleeps. Timeouts: 0.5 s per call,
3 s per stop.

Run with ``-s`` to see the matrix (provider, scenario, outcome, stop calls, attempts, elapsed).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from bot.core.models import OutcomeStatus, RequestState
from bot.httpserver import RunningServer, start_server
from bot.providers.registry import adapter_class
from bot.sandbox.base import Fault, FaultKind, ProviderSimulator, RecordedCall
from bot.sandbox.server import SIMULATOR_CLASSES
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import CHANNEL, INCIDENT, AppUnderTest, StartApp, buttons, message_text

S = OutcomeStatus
PROVIDERS = ("clevertap", "sonarly", "wwt", "altcraft")
SIMULATORS: dict[str, type[ProviderSimulator]] = {cls.name: cls for cls in SIMULATOR_CLASSES}

TIMEOUT = "0.5"
DEADLINE = "3"
MAX_ATTEMPTS = 4  # HttpOptions.max_attempts: no adapter may send more stops than this
HOLD = 60.0  # held faults wait this long, i.e. until the test releases them
RETRY_AFTER = 0.3
TRUNCATED_JSON = '{"status": "succ'
REFUSED = "refused"
# Outcomes that say the campaign may still be sending: the provider must really still be running it.
FAILURES = frozenset({S.PROVIDER_ERROR, S.RATE_LIMITED, S.UNREACHABLE})


@dataclass(frozen=True)
class Target:
    """A provider's seeded running campaign, and where its stop and state reads go."""

    campaign: str
    running: str
    stopped: str
    """The campaign's state in the simulator before and after a stop (the provider's own words)."""
    stop_path: str
    stop_method: str
    read_path: str | None = None
    read_method: str | None = None

    def is_stop(self, call: RecordedCall) -> bool:
        return self.stop_path in call.path and call.method == self.stop_method

    def is_read(self, call: RecordedCall) -> bool:
        return self.read_path is not None and self.read_path in call.path and call.method == self.read_method

    def stops(self, calls: list[RecordedCall]) -> list[RecordedCall]:
        return [c for c in calls if self.is_stop(c)]


# Paths as the simulators record them (without the mount prefix). Sonarly's read path is a prefix
# of its stop path, so the method tells them apart; Altcraft's preview (`campaigns/get`) is not a
# state read and does not match `campaigns/get_status`. CleverTap has no read call at all.
TARGETS: dict[str, Target] = {
    "clevertap": Target("1457432766", "running", "stopped", "/1/targets/stop.json", "POST"),
    "sonarly": Target(
        "65f1a0c0e4b0a1b2c3d4e501",
        "running",
        "stopped",
        "/campaigns/65f1a0c0e4b0a1b2c3d4e501/stop",
        "POST",
        "/campaigns/65f1a0c0e4b0a1b2c3d4e501",
        "GET",
    ),
    "wwt": Target(
        "53651994", "sending", "stopped", "/api/campaigns/53651994/stop", "PUT", "/api/campaigns/53651994", "GET"
    ),
    "altcraft": Target("101", "Active", "Inactive", "/campaigns/deactivate", "POST", "/campaigns/get_status", "POST"),
}


def every(status: S) -> dict[str, S]:
    return dict.fromkeys(PROVIDERS, status)


def each(clevertap: S, sonarly: S, wwt: S, altcraft: S) -> dict[str, S]:
    return {"clevertap": clevertap, "sonarly": sonarly, "wwt": wwt, "altcraft": altcraft}


def stops_each(count: int) -> dict[str, int]:
    return dict.fromkeys(PROVIDERS, count)


@dataclass(frozen=True)
class Scenario:
    """One fault setup and what each provider must make of it."""

    name: str
    expect: Mapping[str, S]
    """The normalized outcome per provider."""
    on_stop: tuple[Fault, ...] = ()
    """Armed on the stop call, in order (match and method are filled in per provider)."""
    on_reads: Fault | None = None
    """Armed on the state reads too, for the providers that have them."""
    stops: Mapping[str, int] = field(default_factory=dict)
    """The exact number of stop calls that reach the provider, where the scenario pins it."""

    @property
    def retry_after(self) -> float | None:
        return next((f.retry_after for f in self.on_stop if f.retry_after is not None), None)


def held(kind: FaultKind, times: int | None = 1) -> Fault:
    return Fault(kind=kind, delay=HOLD, times=times)


def status(code: int, times: int | None = None, retry_after: float | None = None) -> Fault:
    return Fault(kind=FaultKind.STATUS, status=code, times=times, retry_after=retry_after)


def malformed(http: int | None = None, body: str | None = None, times: int | None = None) -> Fault:
    return Fault(kind=FaultKind.MALFORMED, status=http, body=body, times=times)


NO_USABLE_ANSWER = each(S.UNKNOWN, S.PROVIDER_ERROR, S.PROVIDER_ERROR, S.PROVIDER_ERROR)
"""The stop never gets a usable answer. CleverTap cannot read the campaign, so it cannot know
(README: an answer that cannot be read stays `unknown`); the others read it, see it still
running, and report that the provider failed (it may still be sending)."""

SCENARIOS: tuple[Scenario, ...] = (
    # Latency past the timeout: the stop is held (and only applied once the test releases it).
    Scenario("latency_once", every(S.STOPPED), on_stop=(held(FaultKind.LATENCY),), stops=stops_each(2)),
    Scenario("latency_persistent", NO_USABLE_ANSWER, on_stop=(held(FaultKind.LATENCY, times=None),)),
    # No connection can be made: nothing was sent (the default account, see `_start`).
    Scenario(REFUSED, every(S.UNREACHABLE), stops=stops_each(0)),
    # The connection drops halfway through the answer; nothing was applied.
    Scenario("reset_once", every(S.STOPPED), on_stop=(Fault(kind=FaultKind.RESET),), stops=stops_each(2)),
    Scenario("reset_persistent", NO_USABLE_ANSWER, on_stop=(Fault(kind=FaultKind.RESET, times=None),)),
    # Rate limits: once (then fine), persistent with Retry-After, persistent without it on the reads too.
    Scenario(
        "429_once", every(S.STOPPED), on_stop=(status(429, times=1, retry_after=RETRY_AFTER),), stops=stops_each(2)
    ),
    Scenario("429_retry_after", every(S.RATE_LIMITED), on_stop=(status(429, retry_after=RETRY_AFTER),)),
    Scenario(
        "429_stop_and_reads",
        every(S.RATE_LIMITED),
        on_stop=(status(429),),
        on_reads=status(429),
        stops={"sonarly": 1, "wwt": 1},  # no read can justify a second stop
    ),
    # Persistent server errors with the provider's own error body; the reads work and show the
    # campaign still running.
    Scenario("http_500", every(S.PROVIDER_ERROR), on_stop=(status(500),)),
    Scenario("http_502", every(S.PROVIDER_ERROR), on_stop=(status(502),)),
    Scenario("http_503", every(S.PROVIDER_ERROR), on_stop=(status(503),)),
    # 503 on the stop and on every read: nothing can settle it. Every stop got an answer (a
    # failure), so the engine's attempt history makes it a provider error everywhere: `unknown`
    # is kept for stops that got no usable answer at all.
    Scenario(
        "http_503_stop_and_reads",
        every(S.PROVIDER_ERROR),
        on_stop=(status(503),),
        on_reads=status(503),
        stops={"sonarly": 1, "wwt": 1},
    ),
    # A proxy's HTML error page, as a 502 and as a 200; a JSON body cut off in the middle.
    Scenario("html_502", every(S.PROVIDER_ERROR), on_stop=(malformed(502),)),
    Scenario("html_200", NO_USABLE_ANSWER, on_stop=(malformed(),)),
    Scenario("truncated_json", NO_USABLE_ANSWER, on_stop=(malformed(body=TRUNCATED_JSON),)),
    Scenario(
        "truncated_json_once", every(S.STOPPED), on_stop=(malformed(body=TRUNCATED_JSON, times=1),), stops=stops_each(2)
    ),
    # The stop is applied but its answer never comes back: never a false failure, and no second
    # stop once a read shows it stopped. CleverTap cannot read, so it repeats (repeat-safe), hears
    # "already stopped", and reports the lost attempt's stop.
    Scenario(
        "lost_answer",
        every(S.STOPPED),
        on_stop=(held(FaultKind.LOST_ANSWER),),
        stops={"clevertap": 2, "sonarly": 1, "wwt": 1, "altcraft": 1},
    ),
    # The same, on the second stop: a 500 (nothing applied), a read showing it running, a second
    # stop whose answer is lost, a read showing it stopped → our stop, not "already stopped".
    Scenario(
        "http_500_then_lost_answer",
        every(S.STOPPED),
        on_stop=(status(500, times=1), held(FaultKind.LOST_ANSWER)),
        stops={"clevertap": 3, "sonarly": 2, "wwt": 2, "altcraft": 2},
    ),
    # …and with the reads failing as well: a provider that must not repeat the stop says `unknown`
    # after exactly one stop; Altcraft may repeat its deactivation, and hears success.
    Scenario(
        "lost_answer_reads_fail",
        each(S.STOPPED, S.UNKNOWN, S.UNKNOWN, S.STOPPED),
        on_stop=(held(FaultKind.LOST_ANSWER),),
        on_reads=status(503),
        stops={"clevertap": 2, "sonarly": 1, "wwt": 1, "altcraft": 2},
    ),
)


# ----- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so no one else gets it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@dataclass
class Lab:
    """One simulator per scenario, all served by one uvicorn server, each under /<scenario>."""

    simulators: dict[str, ProviderSimulator] = field(default_factory=dict)
    server: RunningServer | None = None

    async def serve(self, simulators: dict[str, ProviderSimulator]) -> str:
        self.simulators = simulators
        self.server = await start_server(Starlette(routes=[Mount(f"/{n}", app=s) for n, s in simulators.items()]))
        return self.server.url

    def release_held(self) -> None:
        for sim in self.simulators.values():
            sim.release_held()

    async def settle(self) -> None:
        """Release every held request and wait until every simulator has answered them all."""
        self.release_held()
        for sim in self.simulators.values():
            await sim.wait_until(functools.partial(_idle, sim))


def _idle(sim: ProviderSimulator) -> bool:
    return sim.in_flight == 0


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    lab = Lab()
    yield lab
    lab.release_held()
    if lab.server is not None:
        await lab.server.stop()


# ----- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    """One scenario: its simulator, request, click and what the provider held at the end."""

    scenario: Scenario
    sim: ProviderSimulator | None = None
    request_id: str = ""
    mark: int = 0
    """How many calls the simulator had seen before the click (the preview's)."""
    click_status: int = 0
    campaign_state: str | None = None
    """The campaign's state at the provider once the outcome was in (before held calls are released)."""

    def calls(self) -> list[RecordedCall]:
        return self.sim.calls[self.mark :] if self.sim is not None else []


def _toml_accounts(provider: str, url: str, simulators: Mapping[str, ProviderSimulator]) -> str:
    """One account of `provider` per scenario, each pointed at its own simulator."""
    lines: list[str] = []
    for name, sim in simulators.items():
        lines.append(f"[providers.{provider}.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in sim.account_values(f"{url}/{name}").items()]
    return "\n".join(lines) + "\n"


async def _start(
    provider: str, start_app: StartApp, lab: Lab, closed_port: int, tmp_path: Path
) -> tuple[AppUnderTest, list[Run]]:
    """The app with one account per scenario; `refused` is the default account, on a closed port."""
    runs = [Run(s, None if s.name == REFUSED else SIMULATORS[provider]()) for s in SCENARIOS]
    simulators = {run.scenario.name: run.sim for run in runs if run.sim is not None}
    url = await lab.serve(simulators)
    config = tmp_path / "faults.toml"
    config.write_text(_toml_accounts(provider, url, simulators))
    klass = adapter_class(provider)
    assert klass is not None
    app = await start_app(
        providers=(provider,),
        STOPCAMPAIGN_CONFIG=str(config),
        PROVIDER_TIMEOUT_SECONDS=TIMEOUT,
        PROVIDER_DEADLINE_SECONDS=DEADLINE,
        **{f"{klass.env_prefix}BASE_URL": f"http://127.0.0.1:{closed_port}"},
    )
    return app, runs


async def _open_card(app: AppUnderTest, provider: str, run: Run) -> None:
    name = run.scenario.name
    account = provider if name == REFUSED else f"{provider}:{name}"
    ack = await app.command(f"{account} {TARGETS[provider].campaign} fault {name}")
    assert ack.status_code == 200, ack.text
    card = buttons(ack.json())
    assert STOP_ACTION in card, message_text(ack.json())
    run.request_id = card[STOP_ACTION]["value"]


def _arm(run: Run, target: Target) -> None:
    assert run.sim is not None
    run.mark = len(run.sim.calls)
    for fault in run.scenario.on_stop:
        run.sim.add_fault(fault.model_copy(update={"match": target.stop_path, "method": target.stop_method}))
    if run.scenario.on_reads is not None and target.read_path is not None:
        run.sim.add_fault(
            run.scenario.on_reads.model_copy(update={"match": target.read_path, "method": target.read_method})
        )


async def _click(app: AppUnderTest, run: Run) -> None:
    run.click_status = (await app.click(STOP_ACTION, run.request_id)).status_code


# ----- the checks --------------------------------------------------------------------------------


def _unread_resends(target: Target, calls: list[RecordedCall]) -> int:
    """Stops sent again with no state read since the previous stop."""
    count = 0
    seen_stop = read_since = False
    for call in calls:
        if target.is_read(call):
            read_since = True
        elif target.is_stop(call):
            count += seen_stop and not read_since
            seen_stop, read_since = True, False
    return count


def _early_resends(target: Target, calls: list[RecordedCall], retry_after: float) -> list[float]:
    """Gaps (s) between consecutive stops that are shorter than the provider's Retry-After."""
    times = [c.at for c in target.stops(calls)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return [round(gap, 3) for gap in gaps if gap < retry_after - 0.01]


async def _check(app: AppUnderTest, provider: str, run: Run) -> tuple[list[str], str]:
    """What is wrong with one scenario's result (nothing, when all is right), and its matrix line."""
    scenario, target = run.scenario, TARGETS[provider]
    klass = adapter_class(provider)
    assert klass is not None
    stored = await app.runtime.store.get(run.request_id)
    assert stored is not None
    outcome = stored.outcome
    calls = run.calls()
    stops = len(target.stops(calls))
    line = f"{provider:9} {scenario.name:26} {outcome.status if outcome else None!s:15} stops={stops}"
    if outcome is not None:
        line += f"  attempts={outcome.attempts}  {outcome.elapsed_ms} ms"

    problems: list[str] = []
    # (3) and (4): nothing crashed, nothing stuck.
    if run.click_status != 200:
        problems.append(f"the click answered HTTP {run.click_status}")
    if stored.state is not RequestState.DONE:
        problems.append(f"the request is {stored.state.value}, not done")
    if outcome is None:
        return [*problems, "no outcome was stored"], line
    if outcome.detail and outcome.detail.startswith("stopcampaign failed"):
        problems.append(f"the adapter raised: {outcome.detail}")

    # (1) the outcome: stored, posted, and true to what the provider holds.
    expected = scenario.expect[provider]
    if outcome.status is not expected:
        problems.append(f"outcome {outcome.status.value}, expected {expected.value}: {outcome.detail}")
    posts = [p for p in app.slack.outcomes() if run.request_id in message_text(p.body)]
    channels = sorted(str(p.body.get("channel")) for p in posts)
    if channels != sorted([CHANNEL, INCIDENT]):
        problems.append(f"the outcome was posted to {channels}, not to the channel and the incident channel")
    problems += [
        f"the post in {p.body.get('channel')} does not say {outcome.status.label!r}"
        for p in posts
        if f"*{outcome.status.label}*" not in message_text(p.body)
    ]
    if run.sim is not None:
        if outcome.status is S.STOPPED and run.campaign_state != target.stopped:
            problems.append(f"reported stopped, but the provider holds the campaign {run.campaign_state!r}")
        if outcome.status in FAILURES and run.campaign_state != target.running:
            problems.append(f"a false failure: the provider holds the campaign {run.campaign_state!r}")

    # (2) the stop calls that reached the provider.
    if scenario.name == REFUSED:
        if app.sandbox[provider].calls:
            problems.append("the refused account reached the sandbox: the base URL override did not apply")
    elif provider in scenario.stops:
        if stops != scenario.stops[provider]:
            problems.append(f"{stops} stop calls reached the provider, expected {scenario.stops[provider]}")
    elif not 1 <= stops <= MAX_ATTEMPTS:
        problems.append(f"{stops} stop calls reached the provider, expected 1 to {MAX_ATTEMPTS}")
    if scenario.name != REFUSED and outcome.attempts != stops:
        problems.append(f"the outcome counts {outcome.attempts} attempt(s), but {stops} stop(s) reached the provider")
    if not klass.repeat_safe and (unread := _unread_resends(target, calls)):
        problems.append(f"{unread} stop(s) re-sent without a state read since the previous one (not repeat-safe)")
    # CleverTap sends no Retry-After (providers.md), and its adapter rightly does not look for one.
    retry_after = scenario.retry_after if provider != "clevertap" else None
    if retry_after is not None and (early := _early_resends(target, calls, retry_after)):
        problems.append(f"stop re-sent after {early} s, before Retry-After: {scenario.retry_after:g}")
    return problems, line


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_fault_ends_in_a_true_outcome_without_a_blind_second_stop(
    provider: str,
    start_app: StartApp,
    lab: Lab,
    closed_port: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, runs = await _start(provider, start_app, lab, closed_port, tmp_path)
    for run in runs:  # one at a time: a burst of inserts on a loaded machine can pass the ack's 2 s budget
        await _open_card(app, provider, run)
    await app.runtime.tasks.wait_idle()  # the previews have read their campaigns: arm the faults now
    target = TARGETS[provider]
    for run in runs:
        if run.sim is not None:
            _arm(run, target)

    await asyncio.gather(*(_click(app, run) for run in runs))
    await app.slack.wait_for_outcomes(2 * len(runs), timeout=30)  # channel + incident each
    await app.runtime.tasks.wait_idle()
    for run in runs:
        if run.sim is not None:
            run.campaign_state = run.sim.campaigns[target.campaign].state
    await lab.settle()

    matrix: list[str] = []
    failures: list[str] = []
    for run in runs:
        problems, line = await _check(app, provider, run)
        matrix.append(line)
        failures += [f"{provider} / {run.scenario.name}: {problem}" for problem in problems]
    print("\n" + "\n".join(matrix))
    assert not failures, "\n".join(failures)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("bot", "slack_bolt")]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]
