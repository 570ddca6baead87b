"""stopcampaign benchmarks: ``.venv/bin/python -m tests.benchmarks [--quick] [--only NAME …]``.

Run from the repository root. Every server binds 127.0.0.1 (the sandbox and the fake Slack in
this process, the app and the bare Bolt baseline as subprocesses on free ports), nothing goes
anywhere else, every loop and wait is bounded, and every process started is stopped at the
end. The full run takes several minutes; ``--quick`` shrinks every size for a smoke run (its
figures are not meaningful against the targets). These are scripts, not pytest tests.

Options:

``--only NAME``            run one benchmark (repeatable): ``ack``, ``click``, ``storm``, ``footprint``
                           (``footprint`` needs the storm's app process, so it runs the storm too)
``--quick``                small sizes for a smoke run
``--ack-requests N``       requests per concurrency level and server (default 2000)
``--ack-levels 1,10,50``   concurrency levels
``--ack-rounds N``         alternating rounds per level (default 10)
``--click-requests N``     measured clicks (default 1000)
``--click-accounts N``     CleverTap accounts the clicks are spread over (default 64)
``--storm-per-provider N`` campaigns stopped per provider in the storm (default 75)
``--starts N``             fresh starts timed by the footprint benchmark (default 5)

What each prints (tables, then its targets marked met or MISSED; a summary ends the run):

``ack``        signed ``/stopcampaign clevertap 1457432766 reason`` commands against
               ``python -m bot serve`` and against a bare Bolt AsyncApp whose handler only acks
               (``tests/benchmarks/bare_bolt.py``, Bolt's aiohttp server), alternating rounds, one
               keep-alive httpx client per worker: p50/p99/max, req/s and the client's CPU share
               per level and server, errors by kind, the ratios, memory after the run. Targets:
               p99 ≤ 0.5x bare Bolt's at 1 concurrent, ≤ 1.0x at 10 and 50, no ack over 3 s at 50
               (and, extra, every command answered with its card).
``click``      send of a signed Stop click → arrival of CleverTap's stop call at the sandbox
               (same monotonic clock), p50/p99/max, plus click → HTTP ack of the click and
               click → the "Stopping…" card at the response_url, how the clicks were spread over
               CleverTap accounts to keep the 3/s limiter idle, and campaigns stopped.
               Target: p99 < 20 ms.
``storm``      4 x N requests confirmed at once with the sandbox enforcing the providers' real
               limits: per provider the calls made (stops, reads, logins), 429s, campaigns
               stopped, outcome statuses (and the text of those not halted) and the last
               outcome's time; the total against the theoretical minimum (for the stop calls
               alone, and for the calls the app made); the click acks' latencies under the storm.
               Targets: total ≤ 1.1 x minimum (stops alone), zero 429s, every outcome posted once.
``footprint``  spawn → ``/healthz`` 200 over fresh starts, idle memory, and the storm app's
               memory idle / after the storm / peak. Targets: startup < 2 s, memory < 150 MB.

The exit status is 0 when every benchmark ran (met or missed targets alike), 1 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable
from typing import TypeVar

from tests.benchmarks import bench_ack, bench_click, bench_footprint, bench_storm
from tests.benchmarks.common import ROOT, Target, print_table

NAMES = ("ack", "click", "storm", "footprint")
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description="stopcampaign benchmarks")
    parser.add_argument("--only", action="append", choices=NAMES, help="run this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--ack-requests", type=int)
    parser.add_argument("--ack-levels", type=str)
    parser.add_argument("--ack-rounds", type=int)
    parser.add_argument("--click-requests", type=int)
    parser.add_argument("--click-accounts", type=int)
    parser.add_argument("--storm-per-provider", type=int)
    parser.add_argument("--starts", type=int)
    args = parser.parse_args(argv)
    for name in ("ack_requests", "ack_rounds", "click_requests", "click_accounts", "storm_per_provider", "starts"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def configs(
    args: argparse.Namespace,
) -> tuple[bench_ack.AckConfig, bench_click.ClickConfig, bench_storm.StormConfig, bench_footprint.FootprintConfig]:
    """Sizes from the flags: defaults, shrunk by --quick, overridden by explicit sizes."""
    ack = bench_ack.AckConfig()
    click = bench_click.ClickConfig()
    storm = bench_storm.StormConfig()
    footprint = bench_footprint.FootprintConfig()
    if args.quick:
        ack = bench_ack.AckConfig(requests=60, rounds=2, warmup=10)
        click = bench_click.ClickConfig(requests=30, accounts=8)
        storm = bench_storm.StormConfig(per_provider=6)
        footprint = bench_footprint.FootprintConfig(starts=1)
    if args.ack_requests:
        ack.requests = args.ack_requests
    if args.ack_levels:
        ack.levels = tuple(int(x) for x in args.ack_levels.split(",") if x.strip())
    if args.ack_rounds:
        ack.rounds = args.ack_rounds
    ack.rounds = max(1, min(ack.rounds, ack.requests))
    if args.click_requests:
        click.requests = args.click_requests
    if args.click_accounts:
        click.accounts = args.click_accounts
    if args.storm_per_provider:
        storm.per_provider = args.storm_per_provider
    if args.starts:
        footprint.starts = args.starts
    return ack, click, storm, footprint


def code_version() -> str:
    """The commit measured and how many files differ from it (read-only git calls)."""
    try:
        commit = subprocess.run(
            ["git", "--no-optional-locks", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{commit}" + (f" + uncommitted changes in {len(dirty)} tracked file(s)" if dirty else "")


def load() -> str:
    """The machine's load averages (other work on it skews every figure)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def main(args: argparse.Namespace) -> int:
    selected = args.only or list(NAMES)
    ack, click, storm, footprint = configs(args)
    print(f"stopcampaign benchmarks: {', '.join(selected)}{' (quick sizes)' if args.quick else ''}")
    print(f"code: {code_version()}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {load()}")
    targets: list[Target] = []
    failed: list[str] = []
    started = time.monotonic()

    async def attempt(name: str, coro: Awaitable[T]) -> T | None:
        try:
            return await coro
        except Exception:
            failed.append(name)
            sys.stdout.flush()
            print(f"\n!!! benchmark {name} failed:", file=sys.stderr)
            traceback.print_exc()
            return None

    if "ack" in selected:
        targets += await attempt("ack", bench_ack.run(ack)) or []
    if "click" in selected:
        targets += await attempt("click", bench_click.run(click)) or []
    figures: bench_storm.StormFigures | None = None
    if "storm" in selected or "footprint" in selected:
        storm_result = await attempt("storm", bench_storm.run(storm))
        if storm_result is not None:
            storm_targets, figures = storm_result
            targets += storm_targets
    if "footprint" in selected and figures is not None:
        targets += await attempt("footprint", bench_footprint.run(footprint, figures)) or []

    print(f"\n=== Summary ({time.monotonic() - started:.0f} s{', quick sizes' if args.quick else ''}; {load()}) ===")
    print_table(
        "All targets",
        ["benchmark", "target", "measured", "goal", "result"],
        [[t.benchmark, t.name, t.measured, t.goal, "met" if t.met else "MISSED"] for t in targets],
    )
    if failed:
        print(f"  benchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
