"""What the benchmarks share: servers on 127.0.0.1, the app as a real process, signing, figures.

Every server binds 127.0.0.1 (port 0, or a free port for subprocesses), every wait is bounded
in time and count, and every process started here is stopped by `Processes.stop_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.core.models import OutcomeStatus
from bot.httpserver import RunningServer, start_server
from bot.providers.registry import ADAPTER_CLASSES, adapter_class
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests import slack_requests
from tests.fakes.slack import FakeSlack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOST = "127.0.0.1"

SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-bench-bot-token-not-real"
CHANNEL = "C0BENCH"
REQUESTER = "U0BENCH"

STARTUP_BOUND = 30.0
"""Seconds a server process may take to answer before a benchmark gives up."""
POLL_INTERVAL = 0.005


# ----- requests as Slack sends them -------------------------------------------------------------


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    return slack_requests.sign(body, secret, timestamp)


def signed_headers(body: bytes) -> dict[str, str]:
    """Headers of a signed, form-encoded Slack request."""
    return {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}


def command_body(text: str, response_url: str, *, user: str = REQUESTER, channel: str = CHANNEL) -> bytes:
    """A ``/stopcampaign`` slash command payload (the e2e tests' builder)."""
    return slack_requests.command_body(text, response_url, user=user, channel=channel)


def click_body(value: str, response_url: str, *, action_id: str = STOP_ACTION, user: str = REQUESTER) -> bytes:
    """A ``block_actions`` payload for a click on a card button carrying `value` (the request id)."""
    payload = slack_requests.block_actions_payload(
        value, response_url, user=user, channel=CHANNEL, action_id=action_id
    )
    return slack_requests.interactive_body(payload)


def stop_button_value(card: Any) -> str | None:
    """The request id on the Stop button of a confirmation card (an ack body), or None."""
    if not isinstance(card, dict):
        return None
    for block in card.get("blocks", []):
        if isinstance(block, dict) and block.get("type") == "actions":
            for element in block.get("elements", []):
                if element.get("action_id") == STOP_ACTION and isinstance(element.get("value"), str):
                    return str(element["value"])
    return None


def outcome_status(post_body: Mapping[str, Any]) -> OutcomeStatus | None:
    """The normalized status of an outcome message posted with chat.postMessage."""
    text = str(post_body.get("text", ""))
    for status in OutcomeStatus:
        if status.description in text:
            return status
    return None


# ----- servers in this process --------------------------------------------------------------------


@dataclass
class Arrivals:
    """Monotonic arrival times of requests at an ASGI app, by path (recorded before the app runs)."""

    times: list[tuple[float, str]] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.times.append((time.monotonic(), str(scope.get("path", ""))))
            await app(scope, receive, send)

        return recorded

    def after(self, since: float, path_part: str) -> list[float]:
        """Arrival times at or after `since` of requests whose path contains `path_part`."""
        return [t for t, path in self.times if t >= since and path_part in path]


async def start_fake_slack() -> tuple[FakeSlack, RunningServer, Arrivals]:
    """The fake Slack Web API on 127.0.0.1 (a free port), with arrival times."""
    slack = FakeSlack()
    arrivals = Arrivals()
    server = await start_server(arrivals.wrap(slack.app), host=HOST)
    slack.url = server.url
    return slack, server, arrivals


def provider_env(box: Sandbox, url: str, providers: Iterable[str] | None = None) -> dict[str, str]:
    """Env vars configuring each provider's default account (all, or `providers`) on the sandbox."""
    wanted = None if providers is None else set(providers)
    env: dict[str, str] = {}
    for provider, named in box.accounts(url).items():
        if wanted is not None and provider not in wanted:
            continue
        klass = adapter_class(provider)
        assert klass is not None
        for key, value in named["sandbox"].items():
            env[f"{klass.env_prefix}{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that configures the app or points it elsewhere."""
    prefixes = (*(c.env_prefix for c in ADAPTER_CLASSES), "SLACK_", "STOPCAMPAIGN_")
    dropped = {
        "DATABASE_URL",
        "INCIDENT_CHANNEL",
        "PORT",
        "HOST",
        "LOG_LEVEL",
        "REQUEST_TTL_SECONDS",
        "PROVIDER_TIMEOUT_SECONDS",
        "PROVIDER_DEADLINE_SECONDS",
        "PREVIEW_TIMEOUT_SECONDS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in dropped}
    env["NO_PROXY"] = env["no_proxy"] = HOST
    env["PYTHONUNBUFFERED"] = "1"
    return env


def app_env(slack: FakeSlack, workdir: Path, port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Env for ``python -m bot serve`` on 127.0.0.1:`port`, talking to the fake Slack, store in `workdir`."""
    env = clean_environ()
    env.update(
        {
            "HOST": HOST,
            "PORT": str(port),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack.url}/api/",
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        }
    )
    env.update(extra or {})
    return env


# ----- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for a subprocess that must be told its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class ServerProcess:
    """A server subprocess on 127.0.0.1:`port` whose output goes to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str = "/healthz"
    ready_status: int | None = 200
    """HTTP status that means ready; None: any HTTP answer does."""
    process: asyncio.subprocess.Process | None = None
    startup_seconds: float | None = None
    _log: TextIO | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def start(self) -> float:
        """Spawn the process and poll until it answers; returns seconds from spawn to ready."""
        self._log = self.log_path.open("a")
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, cwd=str(self.cwd), env=self.env, stdout=self._log, stderr=asyncio.subprocess.STDOUT
        )
        deadline = started + STARTUP_BOUND
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:
            for _ in range(int(STARTUP_BOUND / POLL_INTERVAL) + 1):
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    answer = await http.get(f"{self.url}{self.ready_path}")
                except httpx.TransportError:
                    answer = None
                if answer is not None and (self.ready_status is None or answer.status_code == self.ready_status):
                    self.startup_seconds = time.monotonic() - started
                    return self.startup_seconds
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL)
        raise RuntimeError(f"{self.name} did not answer within {STARTUP_BOUND:g} s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


class Processes:
    """Every server process a benchmark started, stopped together at the end."""

    def __init__(self) -> None:
        self._started: list[ServerProcess] = []

    async def start(self, server: ServerProcess) -> ServerProcess:
        self._started.append(server)
        await server.start()
        return server

    async def stop_all(self) -> None:
        while self._started:
            await self._started.pop().stop()


def app_process(name: str, env: dict[str, str], workdir: Path, port: int) -> ServerProcess:
    """``python -m bot serve`` on 127.0.0.1:`port`."""
    argv = [sys.executable, "-m", "bot", "serve", "--host", HOST, "--port", str(port)]
    return ServerProcess(name=name, argv=argv, env=env, cwd=workdir, port=port)


# ----- figures ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds for a table."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


@dataclass
class Target:
    """One target of a benchmark and whether the run met it."""

    benchmark: str
    name: str
    measured: str
    goal: str
    met: bool


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  " + "  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).replace("x", "").replace("%", "").isdigit()


def print_targets(targets: Sequence[Target]) -> None:
    """The targets of one benchmark, met or missed."""
    print_table(
        "Targets",
        ["target", "measured", "goal", "result"],
        [[t.name, t.measured, t.goal, "met" if t.met else "MISSED"] for t in targets],
    )


def note(text: str) -> None:
    """A line of explanation under a table."""
    print(f"  {text}")
    sys.stdout.flush()
