"""Footprint: time from starting ``python -m bot serve`` to ``/healthz`` answering 200, and memory.

Startup is timed over several fresh starts (a new empty SQLite file each time), polling
``/healthz`` every 5 ms for at most 30 s. To show where startup time goes, the same
interpreter is also timed doing nothing and importing the web app's modules. Memory is the
resident set (VmRSS in /proc/<pid>/status) of the storm's app process: idle right after it
answered ``/healthz``, after the storm, and its peak (VmHWM).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.server import start_sandbox
from tests.benchmarks.bench_storm import StormFigures
from tests.benchmarks.common import (
    Processes,
    Target,
    app_env,
    app_process,
    clean_environ,
    free_port,
    note,
    print_table,
    print_targets,
    provider_env,
    start_fake_slack,
)

TARGET_STARTUP = 2.0
TARGET_RSS_MB = 150.0
TARGET_RSS_MIB = TARGET_RSS_MB * 1e6 / 2**20  # 143.05 MiB; /proc reports KiB
PROBE_BOUND = 60.0


@dataclass
class FootprintConfig:
    """Sizes of the footprint benchmark."""

    starts: int = 5


async def _time_python(code: str, runs: int) -> float:
    """Median wall time of ``python -c code`` over `runs` runs."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, env=clean_environ(), stdout=asyncio.subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(process.wait(), timeout=PROBE_BOUND)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        times.append(time.monotonic() - started)
    return statistics.median(times)


async def run(config: FootprintConfig, storm: StormFigures) -> list[Target]:
    """Run the benchmark (with the storm's figures), print its tables; returns its targets."""
    print(f"\n=== Footprint: startup of python -m bot serve ({config.starts} fresh starts) and memory ===")
    slack, slack_server, _ = await start_fake_slack()
    box, box_server = await start_sandbox()
    starts: list[tuple[float, float]] = []
    try:
        for index in range(config.starts):
            processes = Processes()
            with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
                workdir = Path(tmp)
                port = free_port()
                app = app_process(
                    f"app{index}", app_env(slack, workdir, port, provider_env(box, box_server.url)), workdir, port
                )
                try:
                    await processes.start(app)
                    starts.append((app.startup_seconds or float("nan"), app.rss_mb()))
                finally:
                    await processes.stop_all()
    finally:
        box.release_held()
        await box_server.stop()
        await slack_server.stop()
    bare_python = await _time_python("pass", 3)
    imports = await _time_python("import bot.web, bot.runtime, uvicorn", 3)

    rows = [[index + 1, f"{seconds:.3f}", f"{rss:.1f}"] for index, (seconds, rss) in enumerate(starts)]
    rows.append(["storm's app", f"{storm.startup_seconds:.3f}", f"{storm.rss_idle_mb:.1f}"])
    print_table("Startup: spawn -> /healthz 200", ["start", "seconds", "idle RSS (MiB)"], rows)
    note(f"for scale: 'python -c pass' {bare_python:.3f} s; importing bot.web + runtime + uvicorn {imports:.3f} s")
    print_table(
        "Memory of the storm's app process (MiB)",
        ["idle", "after the storm", "peak (VmHWM)"],
        [[f"{storm.rss_idle_mb:.1f}", f"{storm.rss_after_mb:.1f}", f"{storm.rss_peak_mb:.1f}"]],
    )
    all_starts = [s for s, _ in starts] + [storm.startup_seconds]
    worst = max(all_starts)
    median = statistics.median(all_starts)
    rss_worst = max(storm.rss_idle_mb, storm.rss_after_mb, storm.rss_peak_mb, *(r for _, r in starts))
    targets = [
        Target(
            "footprint",
            "startup to /healthz 200 (worst start)",
            f"{worst:.2f} s (median {median:.2f} s)",
            f"< {TARGET_STARTUP:g} s",
            worst < TARGET_STARTUP,
        ),
        Target(
            "footprint",
            "resident memory, idle and after the storm",
            f"{storm.rss_idle_mb:.0f} / {storm.rss_after_mb:.0f} MiB (peak {storm.rss_peak_mb:.0f})",
            f"< {TARGET_RSS_MB:g} MB ({TARGET_RSS_MIB:.0f} MiB)",
            rss_worst < TARGET_RSS_MIB,
        ),
    ]
    print_targets(targets)
    return targets
