"""Storm: many requests confirmed at once across the four providers, under the providers' real limits.

The sandbox (this process) enforces each provider's real limits (`bot.sandbox.base.real_limits`:
CleverTap's published 3/s and 3 in flight, the other adapters' declared figures) and counts
the 429s it answers. The app is ``python -m bot serve``, one default account per provider,
``INCIDENT_CHANNEL`` unset, so each outcome is exactly one message at the fake Slack (its live record,
updated in place with the outcome).

Phases: create the campaigns (Python, on the simulators) → one command per campaign (cards;
the previews of Sonarly, WWT and Altcraft run and settle, not timed) → every Stop click sent at
once → wait for every outcome. The total runs from the first click to the last outcome post.

The theoretical minimum: a sliding 1-second window of ``w = floor(rate)`` calls lets call ``k``
(from 0) go no earlier than ``floor(k / w)`` s after the first, so ``N`` calls need at least
``floor((N - 1) / w)`` s (the in-flight caps do not bind at the sandbox's sub-millisecond
service times). It is given twice: for the stop calls alone (what the limits allow for the job,
the target's reference) and for the calls the app actually made (with logins and read-backs).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.core.models import OutcomeStatus
from bot.sandbox.base import ProviderSimulator, SandboxCampaign, real_limits
from bot.sandbox.server import Sandbox, start_sandbox
from tests.benchmarks.common import (
    Processes,
    Target,
    app_env,
    app_process,
    click_body,
    command_body,
    free_port,
    ms,
    note,
    outcome_status,
    percentile,
    print_table,
    print_targets,
    provider_env,
    signed_headers,
    start_fake_slack,
    stop_button_value,
)
from tests.fakes.slack import SlackCall

PROVIDERS = ("clevertap", "sonarly", "wwt", "altcraft")
WITH_PREVIEW = ("sonarly", "wwt", "altcraft")
STOPPED_STATE = {"clevertap": "stopped", "sonarly": "stopped", "wwt": "stopped", "altcraft": "Inactive"}
COMMAND_CONCURRENCY = 10
COMMAND_ATTEMPTS = 5
PHASE_BOUND = 300.0
REQUEST_ID = re.compile(r"request `([A-Za-z0-9_-]+)`")


@dataclass
class StormConfig:
    """Sizes of the storm benchmark."""

    per_provider: int = 75


@dataclass
class StormFigures:
    """What the footprint benchmark takes from the storm's app process."""

    startup_seconds: float
    rss_idle_mb: float
    rss_after_mb: float
    rss_peak_mb: float


def campaign_ids(provider: str, count: int) -> list[str]:
    """Ids of the storm's campaigns, in each provider's id format."""
    if provider == "sonarly":
        return [f"66{index:022x}" for index in range(count)]
    first = {"clevertap": 3_000_000_000, "wwt": 60_000_000, "altcraft": 9_000}[provider]
    return [str(first + index) for index in range(count)]


def add_campaigns(sim: ProviderSimulator, ids: list[str]) -> None:
    """Stoppable campaigns in the provider's own active state."""
    for index, cid in enumerate(ids):
        name = f"Storm {sim.name} {index}"
        if sim.name == "clevertap":
            campaign = SandboxCampaign(cid, name, "running", kind="push", size=50_000)
        elif sim.name == "sonarly":
            campaign = SandboxCampaign(
                cid, name, "running", size=500, extra={"activeInstances": 300, "startedAt": "2024-03-14T08:30:00.000Z"}
            )
        elif sim.name == "wwt":
            campaign = SandboxCampaign(cid, name, "sending", kind="rcs", size=5_000, sent=1_000, delivered=900)
        else:
            campaign = SandboxCampaign(
                cid,
                name,
                "Active",
                kind="broadcast",
                size=20_000,
                sent=2_000,
                extra={"channel": "email", "queued": 900},
            )
        sim.campaigns[cid] = campaign


def call_kind(provider: str, method: str, path: str) -> str:
    """stop, read or login, from a recorded call."""
    if provider == "clevertap" or path.endswith("/stop") or path.endswith("/deactivate"):
        return "stop"
    if "/auth/" in path:
        return "login"
    return "read"


def minimum_seconds(calls: int, rate: float) -> int:
    """Least time (s) between the first and the last of `calls` calls under a sliding 1-s window."""
    window = max(1, math.floor(rate))
    return (calls - 1) // window if calls > 0 else 0


async def run(config: StormConfig) -> tuple[list[Target], StormFigures]:
    """Run the benchmark, print its tables; returns its targets and the app's footprint figures."""
    n = config.per_provider
    total = n * len(PROVIDERS)
    print(f"\n=== Storm: {total} requests confirmed at once ({n} per provider) under the real limits ===")
    processes = Processes()
    slack, slack_server, _arrivals = await start_fake_slack()
    box, box_server = await start_sandbox()
    ids = {provider: campaign_ids(provider, n) for provider in PROVIDERS}
    for provider in PROVIDERS:
        add_campaigns(box[provider], ids[provider])
        box[provider].set_real_limits()
    rows = [[p, box[p].limits.rate_per_second, box[p].limits.max_in_flight] for p in PROVIDERS]
    print_table("Sandbox limits (real ones)", ["provider", "requests/s", "in flight"], rows)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
            workdir = Path(tmp)
            port = free_port()
            app = app_process("app", app_env(slack, workdir, port, provider_env(box, box_server.url)), workdir, port)
            await processes.start(app)
            startup = app.startup_seconds or math.nan
            rss_idle = app.rss_mb()
            limits = httpx.Limits(max_connections=total, max_keepalive_connections=total, keepalive_expiry=600)
            async with httpx.AsyncClient(limits=limits, timeout=PHASE_BOUND, trust_env=False) as http:
                commands_started = time.monotonic()
                request_ids, refused = await _commands(http, app.url, ids, slack.response_url)
                async with asyncio.timeout(PHASE_BOUND):  # previews settle: one card redraw each
                    await slack.wait_for("response_url", n * len(WITH_PREVIEW), timeout=PHASE_BOUND)
                await _idle(box)
                setup_seconds = time.monotonic() - commands_started
                before_calls = {p: len(box[p].calls) for p in PROVIDERS}
                before_429 = {p: dict(box[p].rejected_by) for p in PROVIDERS}
                before_posts = len(slack.outcomes())

                started = time.monotonic()
                acks = await _clicks(http, app.url, request_ids, slack.response_url)
                expected = before_posts + total
                bound = 3 * max(minimum_seconds(n * 3, real_limits(p).rate_per_second or 1) for p in PROVIDERS) + 60
                # Each channel's live record is posted at the click and becomes the outcome in place
                # (chat.update): the storm ends when the last message reads as an outcome.
                await slack.wait_for_outcomes(expected, timeout=bound)
                finished = time.monotonic()
            await _idle(box)
            rss_after = app.rss_mb()
            rss_peak = _peak_rss(app.pid)
            posts = slack.outcomes()[before_posts:]
            await processes.stop_all()
    finally:
        await processes.stop_all()
        box.release_held()
        await box_server.stop()
        await slack_server.stop()
    note(
        f"setup (not timed): {total} commands at {COMMAND_CONCURRENCY} concurrent and their previews took "
        f"{setup_seconds:.1f} s; commands refused and sent again: {sum(refused.values())}"
    )
    for text, count in refused.most_common(3):
        note(f"  {count} x {text!r}")
    targets = _report(
        config, box, ids, request_ids, posts, acks, started, finished, before_calls, before_429
    )
    return targets, StormFigures(startup, rss_idle, rss_after, rss_peak)


async def _idle(box: Sandbox) -> None:
    """Wait until no simulator is handling a call."""

    def idle(sim: ProviderSimulator) -> Callable[[], bool]:
        return lambda: sim.in_flight == 0

    for sim in box.simulators.values():
        await sim.wait_until(idle(sim), timeout=PHASE_BOUND)


def _peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def _commands(
    http: httpx.AsyncClient, url: str, ids: dict[str, list[str]], response_url: Callable[[], str]
) -> tuple[dict[str, dict[str, str]], Counter[str]]:
    """One command per campaign; returns request id -> campaign id by provider, and refusals by text.

    A command the app refuses with "try again" (e.g. its store was too slow for the ack budget)
    is sent again, at most `COMMAND_ATTEMPTS` times.
    """
    jobs = [(provider, cid) for provider in PROVIDERS for cid in ids[provider]]
    found: dict[str, dict[str, str]] = {provider: {} for provider in PROVIDERS}
    refused: Counter[str] = Counter()
    queue = list(reversed(jobs))

    async def send(provider: str, cid: str) -> str:
        for _ in range(COMMAND_ATTEMPTS):
            body = command_body(f"{provider} {cid} storm", response_url())
            answer = await http.post(f"{url}/slack/events", content=body, headers=signed_headers(body))
            request_id = stop_button_value(answer.json()) if answer.status_code == 200 else None
            if request_id is not None:
                return request_id
            text = answer.text
            if answer.status_code != 200 or "try again" not in text.lower():
                break
            refused[str(answer.json().get("text", text))[:90]] += 1
        raise RuntimeError(f"{provider} {cid}: no card (HTTP {answer.status_code}: {answer.text[:300]})")

    async def worker() -> None:
        for _ in range(len(jobs)):  # bounded by the number of jobs
            if not queue:
                return
            provider, cid = queue.pop()
            found[provider][await send(provider, cid)] = cid

    async with asyncio.timeout(PHASE_BOUND):
        await asyncio.gather(*(worker() for _ in range(COMMAND_CONCURRENCY)))
    return found, refused


async def _clicks(
    http: httpx.AsyncClient, url: str, request_ids: dict[str, dict[str, str]], response_url: Callable[[], str]
) -> list[float]:
    """Every Stop click at once (bodies signed beforehand); returns the click acks' latencies."""
    bodies = [click_body(rid, response_url()) for by_id in request_ids.values() for rid in by_id]
    prepared = [(body, signed_headers(body)) for body in bodies]

    async def click(body: bytes, headers: dict[str, str]) -> float:
        sent = time.perf_counter()
        answer = await http.post(f"{url}/slack/events", content=body, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"click answered HTTP {answer.status_code}")
        return time.perf_counter() - sent

    async with asyncio.timeout(PHASE_BOUND):
        return list(await asyncio.gather(*(click(body, headers) for body, headers in prepared)))


@dataclass
class _Provider:
    calls: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rejected_rate: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    last_outcome: float = 0.0
    stopped: int = 0


def _detail(body: dict[str, object]) -> str:
    """The lines of an outcome message's text that explain it (meaning, detail), on one line."""
    lines = [line.strip() for line in str(body.get("text", "")).splitlines() if line.strip()]
    return " | ".join(lines[1:3])[:300]


def _report(
    config: StormConfig,
    box: Sandbox,
    ids: dict[str, list[str]],
    request_ids: dict[str, dict[str, str]],
    posts: list[SlackCall],
    acks: list[float],
    started: float,
    finished: float,
    before_calls: dict[str, int],
    before_429: dict[str, dict[str, int]],
) -> list[Target]:
    n = config.per_provider
    total = n * len(PROVIDERS)
    owner = {rid: provider for provider, by_id in request_ids.items() for rid in by_id}
    figures = {provider: _Provider() for provider in PROVIDERS}
    seen: Counter[str] = Counter()
    for post in posts:
        body = post.body
        match = REQUEST_ID.search(json.dumps(body))
        provider = owner.get(match.group(1)) if match else None
        if match:
            seen[match.group(1)] += 1
        if provider is None:
            continue
        status = outcome_status(body)
        figures[provider].statuses[status.value if status else "?"] += 1
        if status is None or not status.campaign_is_halted:
            figures[provider].details[_detail(body)] += 1
        figures[provider].last_outcome = max(figures[provider].last_outcome, post.at - started)
    for provider in PROVIDERS:
        sim = box[provider]
        for call in sim.calls[before_calls[provider] :]:
            if not call.limited:
                figures[provider].calls[call_kind(provider, call.method, call.path)] += 1
        by_rate = sim.rejected_by["rate"] - before_429[provider]["rate"]
        by_in_flight = sim.rejected_by["in_flight"] - before_429[provider]["in_flight"]
        figures[provider].rejected = by_rate + by_in_flight
        figures[provider].rejected_rate = by_rate
        figures[provider].stopped = sum(
            1 for cid in ids[provider] if sim.campaigns[cid].state == STOPPED_STATE[provider]
        )

    elapsed = finished - started
    rows = []
    min_stops = 0
    min_app = 0
    for provider in PROVIDERS:
        f = figures[provider]
        rate = real_limits(provider).rate_per_second or 1.0
        made = sum(f.calls.values())
        floor_stops = minimum_seconds(n, rate)
        floor_app = minimum_seconds(made, rate)
        min_stops, min_app = max(min_stops, floor_stops), max(min_app, floor_app)
        rows.append(
            [
                provider,
                f.calls["stop"],
                f.calls["read"],
                f.calls["login"],
                f"{f.rejected} ({f.rejected_rate} rate)",
                f"{f.stopped}/{n}",
                ", ".join(f"{k} {v}" for k, v in sorted(f.statuses.items())),
                f"{f.last_outcome:.2f}",
                floor_stops,
                floor_app,
            ]
        )
    print_table(
        "Per provider (calls during the storm; times in s after the first click)",
        [
            "provider",
            "stops",
            "reads",
            "logins",
            "429s (by rate)",
            "stopped",
            "outcomes",
            "last",
            "min:stops",
            "min:app",
        ],
        rows,
    )
    all_429 = sum(box[p].rejected_429 for p in PROVIDERS)
    posted_once = sum(1 for rid in owner if seen[rid] == 1)
    goal = 1.1 * min_stops
    print_table(
        "Storm",
        ["figure", "value"],
        [
            ["requests confirmed at once", total],
            ["total: first click -> last outcome posted", f"{elapsed:.2f} s"],
            ["theoretical minimum, stop calls only (reference)", f"{min_stops} s"],
            ["theoretical minimum, the calls the app made", f"{min_app} s"],
            ["total / minimum (stops only)", f"{elapsed / min_stops:.3f}" if min_stops else "n/a"],
            ["total / minimum (app's calls)", f"{elapsed / min_app:.3f}" if min_app else "n/a"],
            ["429s answered during the storm", sum(f.rejected for f in figures.values())],
            ["429s answered in the whole run (previews included)", all_429],
            ["outcomes posted (one message each, updated in place)", len(posts)],
            ["requests whose outcome was posted exactly once", f"{posted_once}/{total}"],
            [
                "click acks p50 / p99 / max (ms)",
                f"{ms(percentile(acks, 50))} / {ms(percentile(acks, 99))} / {ms(max(acks, default=0.0))}",
            ],
        ],
    )
    halted = sum(f.statuses[s.value] for f in figures.values() for s in OutcomeStatus if s.campaign_is_halted)
    note(f"outcomes that say the campaign is halted: {halted}/{total}")
    for provider in PROVIDERS:
        for detail, count in figures[provider].details.most_common(3):
            note(f"  {provider}, {count} x: {detail}")
    note("(outcome statuses come from the posted messages; 'stopped' counts the sandbox's campaign states)")
    targets = [
        Target(
            "storm",
            "total within 10% of the limits' minimum",
            f"{elapsed:.2f} s vs {min_stops} s",
            f"<= {goal:.1f} s",
            elapsed <= goal,
        ),
        Target("storm", "429s from the sandbox", str(all_429), "0", all_429 == 0),
        Target(
            "storm",
            "every outcome posted",
            f"{posted_once}/{total} ({len(posts)} posts)",
            f"{total}/{total}",
            posted_once == total and len(posts) == total,
        ),
    ]
    print_targets(targets)
    return targets
