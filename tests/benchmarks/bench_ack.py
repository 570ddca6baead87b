"""Ack latency: signed ``/stopcampaign`` commands against ``python -m bot serve`` and a bare Bolt app.

Both servers run as subprocesses on 127.0.0.1 for the whole benchmark. For each concurrency
level the requests are split into rounds that alternate between the two servers (so drift in
the machine's load hits both alike), each server with its own keep-alive pool for the level:
one httpx client per worker, its connection opened before measuring (see `make_pool` for why
not one shared client). Latency is client-side: from sending the signed request to the full
answer. Our app's answer must carry the confirmation card (else it counts as an error).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.sandbox.server import start_sandbox
from bot.slack.blocks import STOP_ACTION
from tests.benchmarks.common import (
    BOT_TOKEN,
    HERE,
    SIGNING_SECRET,
    Processes,
    ServerProcess,
    Target,
    app_env,
    app_process,
    clean_environ,
    command_body,
    free_port,
    ms,
    note,
    percentile,
    print_table,
    print_targets,
    provider_env,
    signed_headers,
    start_fake_slack,
    stop_button_value,
)

COMMAND_TEXT = "clevertap 1457432766 reason"
ACK_LIMIT = 3.0  # Slack's deadline for an ack
ROUND_BOUND = 300.0  # seconds one round may take at most


@dataclass
class AckConfig:
    """Sizes of the ack benchmark."""

    requests: int = 2000
    levels: tuple[int, ...] = (1, 10, 50)
    rounds: int = 10
    warmup: int = 50


@dataclass
class Series:
    """Latencies of one server at one level."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    client_cpu: float = 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def max(self) -> float:
        return max(self.latencies, default=float("nan"))

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class Server:
    """One server under test: its URL and what its answer must contain (None: any 200)."""

    name: str
    url: str
    expect: bytes | None


def make_pool(level: int) -> list[httpx.AsyncClient]:
    """The keep-alive pool of one level: one httpx client (one kept-alive connection) per worker.

    One shared AsyncClient with `level` connections was tried first: at 50 workers httpcore's
    pool itself queued requests for seconds (p99 3.8 s against the bare Bolt app, against 0.4 s
    with a client per worker at the same throughput), which timed the client, not the server.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=600)
    return [httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) for _ in range(level)]


async def _round(
    pool: list[httpx.AsyncClient],
    server: Server,
    count: int,
    series: Series | None,
    make_body: Callable[[], bytes],
) -> None:
    """`count` signed commands from one worker per pool client; latencies into `series` (None: warm-up)."""
    remaining = count
    url = f"{server.url}/slack/events"

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        for _ in range(count):  # bounded; stops as soon as the shared quota is used up
            if remaining <= 0:
                return
            remaining -= 1
            body = make_body()
            headers = signed_headers(body)
            started = time.perf_counter()
            try:
                answer = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                if series is not None:
                    series.errors[type(exc).__name__] += 1
                continue
            elapsed = time.perf_counter() - started
            if series is None:
                continue
            if answer.status_code != 200:
                series.errors[f"HTTP {answer.status_code}"] += 1
            elif server.expect is not None and server.expect not in answer.content:
                series.errors[f"no card: {answer.text[:80]}"] += 1
            else:
                series.latencies.append(elapsed)

    wall, cpu = time.perf_counter(), time.process_time()
    async with asyncio.timeout(ROUND_BOUND):
        await asyncio.gather(*(worker(client) for client in pool[: min(len(pool), count)]))
    if series is not None:
        series.wall += time.perf_counter() - wall
        series.client_cpu += time.process_time() - cpu


async def run(config: AckConfig) -> list[Target]:
    """Run the benchmark, print its tables; returns its targets."""
    print("\n=== Ack latency: python -m bot serve vs a bare Bolt AsyncApp (ack only, aiohttp server) ===")
    note(
        f"{config.requests} signed '/stopcampaign {COMMAND_TEXT}' per level and server, levels "
        f"{', '.join(map(str, config.levels))}, {config.rounds} alternating rounds per level, "
        "one keep-alive httpx client per worker."
    )
    processes = Processes()
    slack, slack_server, _ = await start_fake_slack()
    box, box_server = await start_sandbox()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
            workdir = Path(tmp)
            port = free_port()
            env = app_env(slack, workdir, port, provider_env(box, box_server.url, ["clevertap"]))
            ours = app_process("app", env, workdir, port)
            bare_port = free_port()
            bare_env = clean_environ() | {
                "PORT": str(bare_port),
                "BENCH_SLACK_BOT_TOKEN": BOT_TOKEN,
                "BENCH_SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "BENCH_SLACK_API_URL": f"{slack.url}/api/",
            }
            bare = ServerProcess(
                name="bare-bolt",
                argv=[sys.executable, str(HERE / "bare_bolt.py")],
                env=bare_env,
                cwd=workdir,
                port=bare_port,
                ready_path="/slack/events",
                ready_status=None,  # aiohttp answers 405 to a GET once it listens
            )
            await processes.start(ours)
            await processes.start(bare)
            results = await _measure(config, ours, bare, slack.response_url)
            rss_ours, rss_bare = ours.rss_mb(), bare.rss_mb()
            await processes.stop_all()
    finally:
        await processes.stop_all()
        box.release_held()
        await box_server.stop()
        await slack_server.stop()
    return _report(config, results, rss_ours, rss_bare)


async def _measure(
    config: AckConfig, ours: ServerProcess, bare: ServerProcess, response_url: Callable[[], str]
) -> dict[int, dict[str, Series]]:
    def make_body() -> bytes:
        return command_body(COMMAND_TEXT, response_url())

    servers = [Server("stopcampaign", ours.url, STOP_ACTION.encode()), Server("bare Bolt", bare.url, None)]
    # The answer must be the card: check once that our app really does the work being timed.
    async with httpx.AsyncClient(timeout=10, trust_env=False) as probe:
        body = make_body()
        answer = await probe.post(f"{ours.url}/slack/events", content=body, headers=signed_headers(body))
        if answer.status_code != 200 or stop_button_value(answer.json()) is None:
            raise RuntimeError(f"the app did not answer with a card: HTTP {answer.status_code} {answer.text[:300]}")

    results: dict[int, dict[str, Series]] = {}
    for level in config.levels:
        results[level] = {server.name: Series() for server in servers}
        pools = {server.name: make_pool(level) for server in servers}
        try:
            for server in servers:  # open every connection of the pool, warm the server
                await _round(pools[server.name], server, max(config.warmup, 2 * level), None, make_body)
            per_round = [config.requests // config.rounds] * config.rounds
            per_round[-1] += config.requests - sum(per_round)
            for index, count in enumerate(per_round):
                order = servers if index % 2 == 0 else list(reversed(servers))
                for server in order:
                    await _round(pools[server.name], server, count, results[level][server.name], make_body)
        finally:
            for pool in pools.values():
                for client in pool:
                    await client.aclose()
        ours_series, bare_series = results[level]["stopcampaign"], results[level]["bare Bolt"]
        note(f"level {level}: stopcampaign p99 {ms(ours_series.p(99))} ms, bare Bolt p99 {ms(bare_series.p(99))} ms")
    return results


def _report(config: AckConfig, results: dict[int, dict[str, Series]], rss_ours: float, rss_bare: float) -> list[Target]:
    rows = []
    for level, by_server in results.items():
        for name, series in by_server.items():
            rate = len(series.latencies) / series.wall if series.wall else 0.0
            cpu = 100 * series.client_cpu / series.wall if series.wall else 0.0
            rows.append(
                [
                    level,
                    name,
                    len(series.latencies),
                    series.error_count,
                    ms(series.p(50)),
                    ms(series.p(99)),
                    ms(series.max),
                    f"{rate:.0f}",
                    f"{cpu:.0f}%",
                ]
            )
    print_table(
        "Ack latency (ms, client side)",
        ["concurrent", "server", "ok", "errors", "p50", "p99", "max", "req/s", "client CPU"],
        rows,
    )
    for level, by_server in results.items():
        for name, series in by_server.items():
            for kind, count in series.errors.most_common(5):
                note(f"errors at {level} concurrent, {name}: {count} x {kind}")
    note("client CPU: this process's CPU time over the rounds' wall time (near 100%: the client limits the figures)")
    ratio_rows = []
    for level, by_server in results.items():
        ours, bare = by_server["stopcampaign"], by_server["bare Bolt"]
        ratio_rows.append(
            [level, f"{ours.p(50) / bare.p(50):.2f}", f"{ours.p(99) / bare.p(99):.2f}", f"{ours.max / bare.max:.2f}"]
        )
    print_table("stopcampaign / bare Bolt", ["concurrent", "p50 ratio", "p99 ratio", "max ratio"], ratio_rows)
    note(f"resident memory after the run: stopcampaign {rss_ours:.1f} MiB, bare Bolt {rss_bare:.1f} MiB")

    targets: list[Target] = []
    for level, by_server in results.items():
        ours, bare = by_server["stopcampaign"], by_server["bare Bolt"]
        ratio = ours.p(99) / bare.p(99)
        goal = 0.5 if level == 1 else 1.0
        targets.append(
            Target(
                "ack",
                f"p99 at {level} concurrent vs bare Bolt",
                f"{ratio:.2f}x",
                f"≤ {goal:g}x",
                ratio <= goal and ours.error_count == 0,
            )
        )
    top = max(results)
    at_top = results[top]["stopcampaign"]
    # Transport failures (a 10 s client timeout) are acks that never came in time; a "try again"
    # answer did come in time, so it is counted by the next target instead.
    slow = sum(1 for x in at_top.latencies if x > ACK_LIMIT)
    slow += sum(count for kind, count in at_top.errors.items() if not kind.startswith(("no card", "HTTP")))
    targets.append(
        Target(
            "ack",
            f"acks over {ACK_LIMIT:g} s at {top} concurrent",
            f"{slow} (max {ms(at_top.max)} ms)",
            "0",
            slow == 0,
        )
    )
    failed = sum(by["stopcampaign"].error_count for by in results.values())
    sent = sum(len(by["stopcampaign"].latencies) + by["stopcampaign"].error_count for by in results.values())
    targets.append(
        Target("ack", "(extra) commands answered with their card", f"{sent - failed}/{sent}", "all", failed == 0)
    )
    if any(s.error_count for by in results.values() for s in by.values()):
        note("errors (non-200, no card, transport failures) are left out of the percentiles and fail the p99 targets")
    print_targets(targets)
    return targets
