"""Click to provider: from sending a signed Stop click to the sandbox receiving the stop call.

The sandbox and the fake Slack run in this process, so the click's send time and the sandbox's
arrival time (`RecordedCall.at`) come from the same monotonic clock; the app is
``python -m bot serve`` in a subprocess. Each request is a ``/stopcampaign clevertap:<account>
<id>`` command (not timed) and then the Stop click (timed until the stop call arrives); the next
request starts only after the previous outcome was posted and its card replaced, so requests
never overlap.

CleverTap's adapter spaces calls of one account at 3 per second. To time the app and not that
limiter, the requests are spread round-robin over many CleverTap accounts (a TOML file via
``STOPCAMPAIGN_CONFIG``, every account pointing at the sandbox), and a request whose account was
used less than 0.34 s before waits out the rest first (the table says how often that happened).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.sandbox.base import SandboxCampaign
from bot.sandbox.server import Sandbox, start_sandbox
from tests.benchmarks.common import (
    Arrivals,
    Processes,
    Target,
    app_env,
    app_process,
    click_body,
    command_body,
    free_port,
    ms,
    note,
    percentile,
    print_table,
    print_targets,
    signed_headers,
    start_fake_slack,
    stop_button_value,
)
from tests.fakes.slack import FakeSlack

STOP_PATH = "/1/targets/stop.json"
FIRST_ID = 2_000_000_000
ACCOUNT_SPACING = 0.34  # > 1/3 s: the adapter's limiter lets the call through at once
STEP_BOUND = 10.0  # seconds one command, click or outcome may take
TARGET_P99 = 0.020


@dataclass
class ClickConfig:
    """Sizes of the click benchmark."""

    requests: int = 1000
    accounts: int = 64
    warmup: int = 0
    """Requests before measuring (0: one per account, so every account's connection is open)."""


@dataclass
class Timings:
    """Per measured request, seconds after the click was sent."""

    to_stop: list[float] = field(default_factory=list)
    to_ack: list[float] = field(default_factory=list)
    to_stopping_card: list[float] = field(default_factory=list)
    limiter_waits: int = 0
    min_reuse: float = float("inf")


def toml_accounts(box: Sandbox, url: str, count: int) -> str:
    """A TOML file with `count` CleverTap accounts (a000, a001, …) on the sandbox."""
    values = box["clevertap"].account_values(f"{url}/clevertap")
    lines = []
    for index in range(count):
        lines += [
            f"[providers.clevertap.a{index:03d}]",
            f'account_id = "{values["account_id"]}"',
            f'passcode = "{values["passcode"]}"',
            f'base_url = "{values["base_url"]}"',
        ]
        if index == 0:
            lines.append("default = true")
        lines.append("")
    return "\n".join(lines)


async def run(config: ClickConfig) -> list[Target]:
    """Run the benchmark, print its tables; returns its targets."""
    print("\n=== Click to provider: signed Stop click -> sandbox receives CleverTap's stop ===")
    warmup = config.warmup or config.accounts
    note(
        f"{config.requests} measured requests (+{warmup} warm-up), one at a time, round-robin over "
        f"{config.accounts} CleverTap accounts."
    )
    note(
        "Why accounts and not pauses: the adapter spaces one account's calls at 3/s; spreading the clicks over "
        "many accounts (a TOML file) keeps that limiter idle, so this times the app, not the limiter, without "
        "1,000 pauses of 1/3 s (a request still waits if its account was used < 0.34 s before; counted below)."
    )
    processes = Processes()
    slack, slack_server, arrivals = await start_fake_slack()
    box, box_server = await start_sandbox()
    sim = box["clevertap"]
    total = warmup + config.requests
    for index in range(total):
        cid = str(FIRST_ID + index)
        sim.campaigns[cid] = SandboxCampaign(cid, f"Benchmark push {index}", "running", kind="push", size=10_000)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-click-") as tmp:
            workdir = Path(tmp)
            config_file = workdir / "stopcampaign.toml"
            config_file.write_text(toml_accounts(box, box_server.url, config.accounts))
            port = free_port()
            app = app_process(
                "app", app_env(slack, workdir, port, {"STOPCAMPAIGN_CONFIG": str(config_file)}), workdir, port
            )
            await processes.start(app)
            timings = Timings()
            last_used: dict[str, float] = {}
            limits = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=600)
            async with (
                httpx.AsyncClient(limits=limits, timeout=STEP_BOUND, trust_env=False) as http,
                asyncio.timeout(total * STEP_BOUND / 5 + 60),  # a whole-run bound on top of each step's
            ):
                for index in range(total):
                    await _one(index, index >= warmup, config, app.url, http, box, slack, arrivals, timings, last_used)
            stopped = sum(1 for i in range(total) if sim.campaigns[str(FIRST_ID + i)].state == "stopped")
            await processes.stop_all()
    finally:
        await processes.stop_all()
        box.release_held()
        await box_server.stop()
        await slack_server.stop()
    return _report(config, timings, stopped, total)


async def _one(
    index: int,
    measured: bool,
    config: ClickConfig,
    url: str,
    http: httpx.AsyncClient,
    box: Sandbox,
    slack: FakeSlack,
    arrivals: Arrivals,
    timings: Timings,
    last_used: dict[str, float],
) -> None:
    sim = box["clevertap"]
    account = f"a{index % config.accounts:03d}"
    cid = FIRST_ID + index
    body = command_body(f"clevertap:{account} {cid} benchmark click {index}", slack.response_url())
    ack = await http.post(f"{url}/slack/events", content=body, headers=signed_headers(body))
    request_id = stop_button_value(ack.json()) if ack.status_code == 200 else None
    if request_id is None:
        raise RuntimeError(f"command {index}: no card (HTTP {ack.status_code}: {ack.text[:300]})")

    previous = last_used.get(account)
    if previous is not None:
        gap = time.monotonic() - previous
        timings.min_reuse = min(timings.min_reuse, gap)
        if gap < ACCOUNT_SPACING:
            timings.limiter_waits += 1
            await asyncio.sleep(ACCOUNT_SPACING - gap)
    stops_before = len(sim.calls_to(STOP_PATH))
    posts_before = len(slack.outcomes())
    cards_before = len(slack.of("response_url"))
    click = click_body(request_id, slack.response_url())
    headers = signed_headers(click)
    clicked = time.monotonic()
    last_used[account] = clicked
    answer = await http.post(f"{url}/slack/events", content=click, headers=headers)
    acked = time.monotonic()
    if answer.status_code != 200:
        raise RuntimeError(f"click {index}: HTTP {answer.status_code}")
    stops = await sim.wait_for_calls(stops_before + 1, STOP_PATH, timeout=STEP_BOUND)
    stop_at = stops[stops_before].at
    # Wait for the tail of this stop (outcome posted, card replaced) so requests never overlap.
    await slack.wait_for_outcomes(posts_before + 1, timeout=STEP_BOUND)
    await slack.wait_for("response_url", cards_before + 2, timeout=STEP_BOUND)
    if not measured:
        return
    timings.to_stop.append(stop_at - clicked)
    timings.to_ack.append(acked - clicked)
    cards = arrivals.after(clicked, "/response/")
    if cards:  # the "Stopping..." card: the first response_url post after the click
        timings.to_stopping_card.append(cards[0] - clicked)


def _row(name: str, values: Sequence[float]) -> list[object]:
    return [name, len(values), ms(percentile(values, 50)), ms(percentile(values, 99)), ms(max(values, default=0.0))]


def _report(config: ClickConfig, timings: Timings, stopped: int, total: int) -> list[Target]:
    print_table(
        "Click to provider (ms; send of the click -> arrival at the sandbox, same monotonic clock)",
        ["interval", "n", "p50", "p99", "max"],
        [
            _row("click -> stop call at the sandbox", timings.to_stop),
            _row("  click -> HTTP ack of the click", timings.to_ack),
            _row("  click -> 'Stopping...' card at response_url", timings.to_stopping_card),
        ],
    )
    reuse = "n/a" if timings.min_reuse == float("inf") else f"{timings.min_reuse * 1000:.0f} ms"
    note(
        f"shortest reuse of one account: {reuse}; requests that waited for the 1/3 s spacing first: "
        f"{timings.limiter_waits}; campaigns stopped: {stopped}/{total}"
    )
    p99 = percentile(timings.to_stop, 99)
    targets = [
        Target("click", "click -> provider p99", f"{ms(p99)} ms", f"< {TARGET_P99 * 1000:g} ms", p99 < TARGET_P99),
    ]
    print_targets(targets)
    return targets
