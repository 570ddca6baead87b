"""The database failing under a live `python -m bot serve` (issue 18): down (connections closed,
new ones refused) or frozen (queries never answer), through a TCP proxy in front of PostgreSQL.

- A Stop or Cancel click while the database is down is answered at once through the click's
  response_url (nothing was sent, press again), logged once, and works once the database is back.
- A database outage longer than STUCK_EXECUTING_SECONDS while a stop is in flight does not make
  the process take its own live stop for a dead one: one stop call, one outcome per channel.
- ``GET /healthz`` and ``/stopcampaign history`` answer at once while the database is frozen.

Real processes configured by env vars only; the fake Slack, the provider sandbox and the proxy
run in the test process. Every wait is on an event (the fakes' records, the proxy's records,
lines read from the process's pipe) with a deadline that only bounds a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from bot.core.models import OutcomeStatus, RequestState
from bot.httpserver import RunningServer
from bot.sandbox.base import Fault, FaultKind
from bot.sandbox.server import Sandbox
from bot.slack.blocks import CANCEL_ACTION, STOP_ACTION
from bot.store.repository import Store
from tests.conftest import DatabaseFactory
from tests.e2e.conftest import (
    BOT_TOKEN,
    CHANNEL,
    INCIDENT,
    SIGNING_SECRET,
    AppUnderTest,
    buttons,
    message_text,
    provider_env,
)
from tests.e2e.processes import ServeProcess, clean_environment, start_serve
from tests.fakes.slack import Failure, FakeSlack, SlackCall
from tests.fakes.tcp_proxy import Mode, TcpProxy

CAMPAIGN = "1457432766"
STOP_PATH = "/1/targets/stop.json"
STUCK_SECONDS = 4
HEARTBEAT_SECONDS = STUCK_SECONDS / 4
"""A live stop refreshes its request every quarter of STUCK_EXECUTING_SECONDS (README)."""
SWEEP_TTL_SECONDS = 5
"""A card lifetime that makes the process sweep for stuck stops every 1.25 s."""
SWEEP_LEAD = 0.2
"""How long before the stop's next heartbeat the sweep must be due when the database comes back."""
OUTCOME_RETRY_QUIET = (3.8, 6.6)
"""Seconds after the provider's answer between which the outage ends. The process holds the
outcome and tries to write it again after pauses of 0.5, 1, 2, 4… s (at 0.5, 1.5, 3.5, 7.5 s):
in between, the outcome's write is not what reaches the database first once it is back (the
next sweep comes at the latest 0.8 s after the database, well before 7.5 s)."""
SLACK_ACK_SECONDS = 3.0
"""Slack gives up on a command or click not answered within 3 s."""
HEALTHZ_SECONDS = 5.0
TOLD_WITHIN = 10.0
"""Bound on "told at once" (a failure only: the answer is expected within milliseconds)."""

Start = Callable[..., Awaitable[ServeProcess]]


# ----- plumbing -------------------------------------------------------------------------------


def through(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{proxy.host}:{proxy.port}"))


@pytest.fixture
async def database(postgres_database: DatabaseFactory) -> str:
    """A fresh PostgreSQL database (its real URL, not through the proxy)."""
    return await postgres_database()


@pytest.fixture
async def proxy(database: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test database's server, up."""
    parts = urlsplit(database)
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


@pytest.fixture
async def start(
    tmp_path: Path,
    fake_slack: FakeSlack,
    sandbox: tuple[Sandbox, RunningServer],
    database: str,
    proxy: TcpProxy,
) -> AsyncIterator[Start]:
    """Start `python -m bot serve` on the proxied database (env overrides as keyword arguments).

    At the end the proxy is brought up (a process waiting on a frozen database could not stop),
    and each process is stopped, killed when it does not stop in time."""
    box, box_server = sandbox
    started: list[ServeProcess] = []

    async def run(**overrides: str) -> ServeProcess:
        env = clean_environment(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=f"{fake_slack.url}/api/",
            DATABASE_URL=through(database, proxy),
            INCIDENT_CHANNEL=INCIDENT,
            PROVIDER_TIMEOUT_SECONDS="5",
            PROVIDER_DEADLINE_SECONDS="10",
            **provider_env(box, box_server.url, ("clevertap",)),
        )
        env |= overrides
        process = await start_serve(env, tmp_path)
        started.append(process)
        return process

    try:
        yield run
    finally:
        proxy.up()
        box.release_held()
        for process in started:
            await stop_or_kill(process)


async def stop_or_kill(process: ServeProcess, grace: float = 20.0) -> None:
    """SIGTERM, and SIGKILL when it has not exited within `grace` seconds."""
    if process.process.returncode is None:
        process.process.terminate()
    try:
        async with asyncio.timeout(grace):
            await process.process.wait()
    except TimeoutError:
        process.process.kill()
    await process.stop()


@contextlib.asynccontextmanager
async def talking_to(process: ServeProcess, fake_slack: FakeSlack, box: Sandbox, timeout: float = 10.0
                     ) -> AsyncIterator[AppUnderTest]:
    """Slack's side of a running process (signed corpus requests over HTTP)."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        yield AppUnderTest(url=process.url, web=None, slack=fake_slack, sandbox=box, http=http)


async def pending_request(app: AppUnderTest, campaign: str = CAMPAIGN) -> str:
    """Ask for a stop (the card is acked at once) and return its request id once its row is written
    (``status <id>`` waits for this process's own write of the request, then reads it)."""
    ack = await app.command(f"clevertap {campaign} store fault test")
    assert ack.status_code == 200, ack.text
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    status = await app.command(f"status {request_id}")
    assert status.status_code == 200 and f"Request {request_id}" in status.text, status.text
    return str(request_id)


async def stored(database: str, request_id: str) -> tuple[Any, list[str]]:
    """The request and its audit events, read from the database itself (not through the proxy)."""
    store = Store.from_url(database)
    await store.initialize(migrate=False)
    try:
        request = await store.get(request_id)
        events = [entry.event for entry in await store.audit(request_id)]
    finally:
        await store.close()
    return request, events


async def calls_to(fake_slack: FakeSlack, url: str, count: int = 1, timeout: float = TOLD_WITHIN) -> list[SlackCall]:
    """Wait until `count` posts reached one response_url; return every post to it so far."""
    path = urlsplit(url).path

    def posted() -> list[SlackCall]:
        return [c for c in fake_slack.of("response_url") if c.path == path]

    async with asyncio.timeout(timeout):
        while len(posted()) < count:
            await fake_slack.wait_for("response_url", len(fake_slack.of("response_url")) + 1, timeout=timeout)
    return posted()


def strings(value: Any) -> list[str]:
    """Every string in a JSON value (a message's text fallback and all its block texts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def readable(message: dict[str, Any]) -> str:
    """A message's words as a reader sees them: mrkdwn emphasis dropped, lower case, one space."""
    text = " ".join(strings(message))
    for mark in ("*", "_", "`", "~"):
        text = text.replace(mark, "")
    return " ".join(text.lower().split())


def records(process: ServeProcess, after: int = 0) -> list[dict[str, Any]]:
    """The process's JSON log records from line `after` on (other lines are skipped)."""
    found = []
    for line in process.lines[after:]:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def log_summary(process: ServeProcess, after: int, limit: int = 30) -> str:
    """The process's log from line `after` on, one short line per record (a traceback only named)."""
    lines = [
        f"{str(r.get('time', ''))[11:]} {r.get('level')} {r.get('logger')} [{r.get('request_id')}] "
        f"{str(r.get('message', ''))[:160]}{' (with a traceback)' if 'exc_info' in r else ''}"
        for r in records(process, after)
    ]
    return "\n".join(lines[-limit:]) or "(nothing)"


def logged_at(record: dict[str, Any]) -> float:
    """When a record was logged (its ``time``, local wall clock as `time.time()`)."""
    return datetime.strptime(str(record["time"]), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def is_problem(line: str) -> bool:
    """A JSON log line at WARNING or above."""
    if not line.startswith("{"):
        return False
    try:
        return str(json.loads(line).get("level")) in ("WARNING", "ERROR", "CRITICAL")
    except ValueError:
        return False


def names_the_store(record: dict[str, Any]) -> bool:
    message = str(record.get("message", "")).lower()
    return "store" in message or "database" in message


# ----- 1. a click while the database is down --------------------------------------------------

NAME = {STOP_ACTION: "Stop", CANCEL_ACTION: "Cancel"}
TOLD = {
    STOP_ACTION: ("store is unreachable", "nothing was sent", "press stop again"),
    CANCEL_ACTION: ("store is unreachable", "not cancelled", "press cancel again"),
}


@pytest.mark.parametrize("button", [STOP_ACTION, CANCEL_ACTION], ids=["stop", "cancel"])
async def test_a_click_while_the_database_is_down_is_answered_and_works_once_it_is_back(
    button: str, start: Start, proxy: TcpProxy, database: str, fake_slack: FakeSlack,
    sandbox: tuple[Sandbox, RunningServer],
) -> None:
    box, _ = sandbox
    simulator = box["clevertap"]
    process = await start()
    async with talking_to(process, fake_slack, box) as app:
        request_id = await pending_request(app)

        proxy.down()
        clicked_at, first_line = time.time(), len(process.lines)
        first_url = fake_slack.response_url()
        answer = await app.click(button, request_id, response_url=first_url)
        assert answer.status_code == 200, answer.text
        try:
            told = await calls_to(fake_slack, first_url)
        except TimeoutError:
            pytest.fail(
                f"{NAME[button]} clicked while the database was down: nothing came back through the click's "
                f"response_url within {TOLD_WITHIN:g} s, so the requester is never told the click was lost. "
                "The process logged since the click:\n" + log_summary(process, first_line)
            )
        text = readable(told[0].body)
        missing = [phrase for phrase in TOLD[button] if phrase not in text]
        assert not missing, f"the answer to a {NAME[button]} click while the database is down lacks {missing}: {text}"
        if told[0].body.get("replace_original"):
            assert button in buttons(told[0].body), (
                f"the answer replaced the card without its {NAME[button]} button, so it cannot be pressed again: {text}"
            )
        assert simulator.calls_to(STOP_PATH, "POST") == [], "a stop reached CleverTap while the store was down"
        try:
            await process.wait_for_line(
                lambda line: is_problem(line) and request_id in line, after=first_line, timeout=TOLD_WITHIN
            )
        except TimeoutError:
            pytest.fail(f"the lost {NAME[button]} click was not logged (a WARNING or ERROR line with request id "
                        f"{request_id}):\n" + log_summary(process, first_line))

        proxy.up()
        back_at = time.time()
        request, _ = await stored(database, request_id)
        assert request is not None and request.state is RequestState.PENDING, (
            f"after the outage the request should still wait for a click: {request}"
        )
        assert simulator.calls_to(STOP_PATH, "POST") == [], "a stop was sent without a new click"

        second_url = fake_slack.response_url()
        answer = await app.click(button, request_id, response_url=second_url)
        assert answer.status_code == 200, answer.text
        if button == STOP_ACTION:
            await simulator.wait_until(lambda: simulator.campaigns[CAMPAIGN].state == "stopped", timeout=30)
            outcomes = await fake_slack.wait_for_outcomes(2, timeout=30)
            assert sorted(m.body["channel"] for m in outcomes) == [CHANNEL, INCIDENT]
        else:
            await calls_to(fake_slack, second_url, timeout=30)
        await stop_or_kill(process)  # graceful: whatever the click started is finished

    request, _ = await stored(database, request_id)
    assert request is not None
    if button == STOP_ACTION:
        assert len(simulator.calls_to(STOP_PATH, "POST")) == 1, "the campaign was not stopped exactly once"
        assert request.state is RequestState.DONE and request.outcome is not None
        assert request.outcome.status is OutcomeStatus.STOPPED, request.outcome
    else:
        assert simulator.calls_to(STOP_PATH, "POST") == []
        assert request.state is RequestState.CANCELLED, request

    # Logged once, why, without a traceback: what the process wrote between the lost click and the
    # database's return (the background loops' own failures during the outage aside).
    outage = [r for r in records(process, first_line) if clicked_at <= logged_at(r) < back_at]
    # (The command's own background look for other pending requests may still run when the
    # database goes down: its line is about the command, not the click.)
    problems = [r for r in outage if r.get("request_id") == request_id
                and str(r.get("level")) in ("WARNING", "ERROR", "CRITICAL")
                and r.get("logger") != "bot.slack.listeners.commands"]
    assert len(problems) == 1 and names_the_store(problems[0]), (
        f"expected one WARNING/ERROR line naming the store for the lost {NAME[button]} click, got {problems}"
    )
    traced = [r for r in outage if "Traceback" in json.dumps(r) and r.get("logger") != "bot.runtime"]
    assert not traced, f"the lost {NAME[button]} click was logged with a traceback: {traced}"


# ----- 2. an outage longer than STUCK_EXECUTING_SECONDS during a live stop ---------------------


def failure_times(process: ServeProcess, after: int, words: tuple[str, ...]) -> list[float]:
    """When the process logged a WARNING/ERROR naming one of `words`, from line `after` on."""
    return [
        logged_at(r) for r in records(process, after)
        if str(r.get("level")) in ("WARNING", "ERROR", "CRITICAL")
        and any(word in str(r.get("message", "")).lower() for word in words)
    ]


def beats(knocks: list[float], every: float, run: int = 3) -> list[float]:
    """The knocks that end a run of `run` + 1 knocks one after the other, each `every` seconds
    (plus the few milliseconds a failing try takes) after the one before: the stop's heartbeat,
    among the other loops' knocks."""

    def before(at: float) -> float | None:
        earlier = [u for u in knocks if every - 0.005 <= at - u <= every + 0.03]
        return max(earlier) if earlier else None

    found = []
    for knock in knocks:
        at: float | None = knock
        for _ in range(run):
            at = before(at) if at is not None else None
        if at is not None:
            found.append(knock)
    return found


def more_attempts(proxy: TcpProxy, than: int) -> Callable[[], bool]:
    return lambda: len(proxy.attempts) > than


async def up_just_before_a_sweep(proxy: TcpProxy, process: ServeProcess, after: int, deadline: float) -> None:
    """Bring the database back at the worst moment for a live stop: right after its heartbeat
    failed, when the process's next sweep for stuck stops is due well before its next heartbeat.

    Once the database answers again, whichever of the process's loops reaches it first decides:
    the stop's heartbeat (the stop is alive), the outcome's write (the stop is done), or the sweep
    (the stop has been silent for longer than the threshold). A correct process never resumes its
    own live stop whatever the order; this picks the order that shows it when it does. The
    heartbeat is the series of connection attempts a quarter of STUCK_EXECUTING_SECONDS apart that
    the proxy refuses; the sweeps are the failures the process logs ("stuck" stops, "sweep"), on
    its own timestamps. When they do not tell by `deadline` (`time.monotonic`), the database comes
    back then.
    """
    wall = time.time() - time.monotonic()
    seen = len(proxy.attempts)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline - time.monotonic()):
            while True:
                await proxy.wait_until(more_attempts(proxy, seen), timeout=60)
                seen = len(proxy.attempts)
                knocks = [a.at for a in proxy.attempts if a.mode is Mode.DOWN]
                beat = beats(knocks, HEARTBEAT_SECONDS)
                sweeps = [t - wall for t in failure_times(process, after, ("sweep", "stuck"))]
                if not beat or beat[-1] != knocks[-1] or len(sweeps) < 2:
                    continue  # the newest knock is not the heartbeat's
                next_sweep = sweeps[-1] + (sweeps[-1] - sweeps[-2])
                if beat[-1] + 0.05 < next_sweep < beat[-1] + HEARTBEAT_SECONDS - SWEEP_LEAD:
                    break
    proxy.up()


async def test_an_outage_longer_than_the_stuck_threshold_does_not_resume_a_live_stop(
    start: Start, proxy: TcpProxy, database: str, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer],
) -> None:
    box, _ = sandbox
    simulator = box["clevertap"]
    # The stop takes a second at CleverTap: the outage starts while it is in flight, and CleverTap
    # answers during the outage.
    simulator.add_fault(Fault(kind=FaultKind.LATENCY, delay=1, match="/targets/stop", method="POST"))
    # The live record's first post waits at Slack until the database is back (within the Slack
    # client's 10 s), so the outage never cuts the record's bookkeeping in two (a post leased just
    # before it would wait out its lease, a minute).
    fake_slack.fail("chat.postMessage", Failure(kind="hang"))
    process = await start(
        STUCK_EXECUTING_SECONDS=str(STUCK_SECONDS),  # the stop's heartbeat: every second
        # Sweeps every 1.25 s (a quarter of the card's lifetime), out of step with the heartbeat:
        # at least one sweep in two comes well before a heartbeat.
        REQUEST_TTL_SECONDS=str(SWEEP_TTL_SECONDS),
    )
    async with talking_to(process, fake_slack, box) as app:
        request_id = await pending_request(app)
        answer = await app.click(STOP_ACTION, request_id)
        assert answer.status_code == 200, answer.text

        await simulator.wait_for_calls(1, STOP_PATH, "POST", timeout=10)  # the stop is in flight
        await fake_slack.wait_for("chat.postMessage", 1, timeout=10)  # the live record waits at Slack
        first_line = len(process.lines)
        proxy.down()
        down_at = proxy.mode_since
        await simulator.wait_until(lambda: simulator.in_flight == 0, timeout=10)  # CleverTap answered: stopped
        answered_at = time.monotonic()
        await process.wait_for_line(is_problem, after=first_line, timeout=10)  # the process saw the store fail
        # The outage lasts longer than the threshold, and ends while the process pauses between two
        # tries to write the outcome it holds: the database comes back once the process knocks on
        # it (heartbeat, sweeps) that late, at the moment `up_just_before_a_sweep` picks.
        back_after = max(down_at + STUCK_SECONDS + 0.5, answered_at + OUTCOME_RETRY_QUIET[0])
        try:
            await proxy.wait_until(lambda: any(a.mode is Mode.DOWN and a.at >= back_after for a in proxy.attempts),
                                   timeout=30)
        except TimeoutError:
            pytest.fail("the process stopped trying the database during the outage")
        await up_just_before_a_sweep(proxy, process, first_line, answered_at + OUTCOME_RETRY_QUIET[1])
        fake_slack.release()  # the live record's first post fails now; the outbox makes it again

        await fake_slack.wait_for_outcomes(2, timeout=60)
        await stop_or_kill(process)  # graceful: a stop in flight is finished, posts under way are made

    request, events = await stored(database, request_id)
    sent = simulator.calls_to(STOP_PATH, "POST")
    assert len(sent) == 1, (
        f"{len(sent)} stop calls reached CleverTap: after the outage the process took its own live stop "
        f"for a dead one and sent it again (audit events: {events})"
    )
    assert "recovering" not in events, f"the process resumed its own live stop (audit events: {events})"
    assert request is not None and request.state is RequestState.DONE and request.outcome is not None, request
    assert request.outcome.status is OutcomeStatus.STOPPED, request.outcome
    assert request.outcome.attempts == 1, f"not the process's own answer: {request.outcome}"

    for post in fake_slack.calls:
        if post.method in ("chat.postMessage", "chat.update", "response_url"):
            text = readable(post.body)
            assert "restart" not in text and "attempts: 0" not in text and "0 attempt(s)" not in text, (
                f"a post speaks of a restart that never happened: {text}"
            )
    outcomes = fake_slack.outcomes()
    assert sorted(m.body["channel"] for m in outcomes) == [CHANNEL, INCIDENT], [m.body for m in outcomes]
    assert all(request_id in message_text(m.body) for m in outcomes)


# ----- 3. /healthz and history on a frozen database --------------------------------------------


async def test_healthz_answers_at_once_while_the_database_is_frozen(
    start: Start, proxy: TcpProxy
) -> None:
    process = await start()
    async with httpx.AsyncClient(timeout=HEALTHZ_SECONDS) as http:
        healthy = await http.get(f"{process.url}/healthz")
        assert healthy.status_code == 200, healthy.text

        proxy.freeze()
        began = time.monotonic()
        try:
            answer = await http.get(f"{process.url}/healthz")
        except httpx.TimeoutException:
            pytest.fail(f"GET /healthz did not answer within {HEALTHZ_SECONDS:g} s while the database was frozen")
        took = time.monotonic() - began
    body = answer.json()
    assert answer.status_code == 503, f"{answer.status_code} {body} after {took:.1f} s"
    assert body.get("status") == "unavailable" and "store" in body.get("degraded", []), body
    reason = body.get("reasons", {}).get("store")
    assert isinstance(reason, str) and reason, f"no reason given for the store: {body}"


async def test_history_is_answered_within_slack_s_3_seconds_while_the_database_is_frozen(
    start: Start, proxy: TcpProxy, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer],
) -> None:
    box, _ = sandbox
    process = await start()
    async with talking_to(process, fake_slack, box, timeout=SLACK_ACK_SECONDS) as app:
        await pending_request(app)  # something to list

        proxy.freeze()
        began = time.monotonic()
        try:
            answer = await app.command("history")
        except httpx.TimeoutException:
            pytest.fail(
                f"/stopcampaign history was not answered within Slack's {SLACK_ACK_SECONDS:g} s while the "
                "database was frozen (Slack shows the user an operation_timeout error)"
            )
        took = time.monotonic() - began
    assert answer.status_code == 200, answer.text
    text = readable(answer.json())
    assert "history could not be read right now" in text, f"after {took:.1f} s: {answer.text}"
