"""Runs `python -m bot serve` as real processes, configured only by env vars."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROVIDER_PREFIXES = ("CLEVERTAP_", "SLACK_", "SONARLY_", "WWT_", "ALTCRAFT_")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any app configuration, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_PREFIXES)}
    env.pop("DATABASE_URL", None)
    env.pop("STOPCAMPAIGN_CONFIG", None)
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ServeProcess:
    """A running `python -m bot serve` and everything it logged."""

    url: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    metrics_url: str = ""
    _new_line: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def _append(self, line: str) -> None:
        self.lines.append(line)
        new_line, self._new_line = self._new_line, asyncio.Event()
        new_line.set()

    async def wait_for_line(self, predicate: Callable[[str], bool], *, after: int = 0, timeout: float = 10.0) -> int:
        """Wait until a line logged at index `after` or later satisfies `predicate` (read from the
        process's pipe as it comes); return its index. Raises TimeoutError, or AssertionError when
        the process's output ended first."""
        checked = after
        async with asyncio.timeout(timeout):
            while True:
                for index in range(checked, len(self.lines)):
                    if predicate(self.lines[index]):
                        return index
                checked = max(checked, len(self.lines))
                assert self.reader is None or not self.reader.done(), "the process's output ended:\n" + self.log
                waiting = asyncio.create_task(self._new_line.wait())
                try:
                    await asyncio.wait({waiting} | ({self.reader} if self.reader else set()),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        async with asyncio.timeout(30):
            await self.process.wait()
        if self.reader is not None:
            await self.reader


async def start_serve(env: dict[str, str], cwd: Path) -> ServeProcess:
    """Start serve on a free port; return once it logged that it is ready (its log is read as it comes)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=str(cwd), env={**env, "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    served = ServeProcess(url=f"http://127.0.0.1:{port}", process=process)
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                raw = await process.stdout.readline()
                assert raw, "serve exited early:\n" + served.log
                served.lines.append(raw.decode())
                if "stopcampaign ready" in served.lines[-1]:
                    break
    except BaseException:
        if process.returncode is None:
            process.kill()  # never leave a server behind
        await process.wait()
        raise

    async def drain() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            served._append(raw.decode())

    served.reader = asyncio.create_task(drain())
    return served
