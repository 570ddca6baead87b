"""Where the app posts a signed payload's ``response_url``, with `python -m bot serve` as a real process:
only to Slack's hosts, or to the host of ``SLACK_API_URL`` (here the fake Slack on 127.0.0.1). A reply
link naming any other host (here a second recorder reached as ``localhost``) gets nothing, and the
log names its host only, never the link (a response_url is a credential for 30 minutes).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.httpserver import RunningServer, start_server
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from tests import slack_requests
from tests.e2e.conftest import BOT_TOKEN, CHANNEL, INCIDENT, OTHER, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.e2e.processes import clean_environment, free_port
from tests.fakes.slack import FakeSlack

REFUSED = "did not post to a response_url at 'localhost'"


@dataclass
class Served:
    """A `serve` process whose log can be waited on."""

    url: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def wait_for_log(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait until the log read so far satisfies `predicate`."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self.changed:
                self.lines.append(raw.decode(errors="replace"))
                self.changed.notify_all()


@dataclass
class Stranger:
    """A second recorder, on another port, reached by a host name that is not SLACK_API_URL's."""

    slack: FakeSlack
    port: int

    def response_url(self) -> str:
        return f"http://localhost:{self.port}/response/{secrets.token_hex(8)}"


@pytest.fixture
async def stranger() -> AsyncIterator[Stranger]:
    recorder = FakeSlack()
    server: RunningServer = await start_server(recorder.app)
    recorder.url = server.url
    yield Stranger(recorder, server.port)
    await server.stop()


@pytest.fixture
async def served(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[Served]:
    box, box_server = sandbox
    port = free_port()
    env = clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{fake_slack.url}/api/",  # http://127.0.0.1:<port>/api/
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        INCIDENT_CHANNEL=INCIDENT,
        PORT=str(port),
        LOG_FORMAT="text",
        **provider_env(box, box_server.url, ("clevertap",)),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    served = Served(url=f"http://127.0.0.1:{port}", process=process)
    served.reader = asyncio.create_task(served.read())
    try:
        await served.wait_for_log(lambda: "stopcampaign ready" in served.log or served.process.returncode is not None,
                                  timeout=60)
        assert "stopcampaign ready" in served.log, served.log
        yield served
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            await process.wait()
        await served.reader


async def test_a_response_url_at_another_host_gets_nothing_while_the_flow_goes_on(
    served: Served, fake_slack: FakeSlack, stranger: Stranger, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, _ = sandbox
    async with httpx.AsyncClient(timeout=10) as http:
        app = AppUnderTest(url=served.url, web=None, slack=fake_slack, sandbox=box, http=http)

        # The usual flow: the reply links are the fake Slack's (SLACK_API_URL's host), the card follows.
        ack = await app.command("clevertap 1457432766 wrong segment")
        await app.click(STOP_ACTION, buttons(ack.json())[STOP_ACTION]["value"])
        await fake_slack.wait_for_outcomes(2)
        cards = await fake_slack.wait_for("response_url", 2)  # "Stopping…", then the outcome
        assert "stopped" in str(cards[-1].body)

        # A signed click whose response_url names another host: the stop goes on, no card goes there.
        ack = await app.command("clevertap 1457432767 wrong price")
        elsewhere = stranger.response_url()
        await app.click(STOP_ACTION, buttons(ack.json())[STOP_ACTION]["value"], response_url=elsewhere)
        await fake_slack.wait_for_outcomes(4)  # the channel and the incident channel have the outcome
        await served.wait_for_log(lambda: served.log.count(REFUSED) >= 2 or bool(stranger.slack.calls))
        assert stranger.slack.calls == []

        # A command whose response_url names another host: the note for its card ("already pending") is
        # not posted there either.
        await app.command("clevertap 1457432770 spare")  # pending, with the fake's link
        command = slack_requests.command_body("clevertap 1457432770 again", stranger.response_url(), user=OTHER,
                                              channel=CHANNEL)
        answer = await app.post_signed(command, "application/x-www-form-urlencoded")
        assert STOP_ACTION in buttons(answer.json())  # the card rides in the answer, as ever
        await served.wait_for_log(lambda: served.log.count(REFUSED) >= 3 or bool(stranger.slack.calls))
        assert stranger.slack.calls == []

    token = elsewhere.rsplit("/", 1)[1]
    assert token not in served.log  # the host only, never the link
