"""A process dies (kill -9) or is shut down (SIGTERM) with a dozen confirmed CleverTap stops
queued behind the provider's 3/s limit: after a restart every campaign is stopped and every
outcome is posted exactly once, in its channel and in the incident channel.

Real `python -m bot serve` processes, on SQLite (one process, then its successor) and on
PostgreSQL (two processes at once, then a successor of the one that died competing with the
survivor for the orphaned stops).
"""

from __future__ import annotations

import json
import secrets
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bot.core.models import OutcomeStatus, RequestState
from bot.httpserver import RunningServer
from bot.sandbox.base import Fault, FaultKind, SandboxCampaign
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from bot.store.repository import Store
from tests.conftest import DatabaseFactory
from tests.e2e.conftest import BOT_TOKEN, CHANNEL, INCIDENT, SIGNING_SECRET, AppUnderTest, buttons, provider_env
from tests.e2e.processes import ServeProcess, clean_environment, start_serve
from tests.fakes.slack import Failure, FakeSlack

STOPS = 12
STOP_PATH = "/1/targets/stop.json"
CAMPAIGNS = [str(1_800_000_000 + n) for n in range(STOPS)]


def environment(fake_slack: FakeSlack, box: Sandbox, box_url: str, database: str) -> dict[str, str]:
    return clean_environment(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"{fake_slack.url}/api/",
        DATABASE_URL=database,
        INCIDENT_CHANNEL=INCIDENT,
        STUCK_EXECUTING_SECONDS="4",
        PROVIDER_TIMEOUT_SECONDS="2",
        OUTBOX_LEASE_SECONDS="20",
        **provider_env(box, box_url, ("clevertap",)),
    )


async def kill_all(processes: list[ServeProcess]) -> None:
    """Never leave a server behind, whatever failed."""
    for process in processes:
        if process.process.returncode is None:
            process.process.kill()
        await process.stop()


async def queue_stops(process: ServeProcess, fake_slack: FakeSlack, box: Sandbox) -> list[str]:
    """Confirm a stop on each campaign; return once two stops were answered and a third is in flight."""
    simulator = box["clevertap"]
    simulator.set_real_limits()  # the sandbox answers 429 past CleverTap's 3/s
    for n, campaign in enumerate(CAMPAIGNS):
        simulator.campaigns[campaign] = SandboxCampaign(campaign, f"Crash {n}", "running", kind="push")
    request_ids = []
    async with httpx.AsyncClient(timeout=30) as http:
        app = AppUnderTest(url=process.url, web=None, slack=fake_slack, sandbox=box, http=http)
        for campaign in CAMPAIGNS:
            ack = await app.command(f"clevertap {campaign} crash test")
            request_ids.append(buttons(ack.json())[STOP_ACTION]["value"])
        for request_id in request_ids:
            assert (await app.click(STOP_ACTION, request_id)).status_code == 200
    await simulator.wait_for_calls(2, STOP_PATH, "POST", timeout=30)
    # The third stop reaches CleverTap and takes effect, but its answer never comes back.
    simulator.add_fault(Fault(kind=FaultKind.LOST_ANSWER, match=STOP_PATH, method="POST", delay=60))
    await simulator.wait_for_calls(3, STOP_PATH, "POST", timeout=30)
    return request_ids


async def assert_each_stopped_and_told_once(
    database: str,
    request_ids: list[str],
    fake_slack: FakeSlack,
    box: Sandbox,
    survivors: list[ServeProcess],
    cut_off_before: int = 0,
) -> None:
    simulator = box["clevertap"]
    await simulator.wait_until(
        lambda: all(simulator.campaigns[c].state == "stopped" for c in CAMPAIGNS), timeout=60
    )
    await fake_slack.wait_for_outcomes(2 * STOPS, timeout=60)
    for process in survivors:
        await process.stop()  # graceful: a post under way is finished, not cut off

    store = Store.from_url(database)
    await store.initialize(migrate=False)
    try:
        for request_id in request_ids:
            stored = await store.get(request_id)
            assert stored is not None and stored.state is RequestState.DONE, stored
            assert stored.outcome is not None and stored.outcome.status is OutcomeStatus.STOPPED, stored.outcome
        assert await store.outbox_depth() == 0
    finally:
        await store.close()

    posts = Counter()  # type: Counter[tuple[str, str]]
    for call in fake_slack.outcomes():
        text = str(call.body)
        owners = [r for r in request_ids if r in text]
        assert len(owners) == 1, text
        posts[(owners[0], call.body["channel"])] += 1
    expected = {(r, channel) for r in request_ids for channel in (CHANNEL, INCIDENT)}
    assert set(posts) == expected
    assert all(count == 1 for count in posts.values()), posts
    # A live record is left saying "is stopping" beside its outcome only where kill -9 cut its post off
    # between Slack's answer and its record (chat.postMessage has no idempotency key).
    outcomes = fake_slack.outcomes()
    stale = [m for m in fake_slack.messages() if m not in outcomes]
    assert all(fake_slack.calls.index(m) < cut_off_before for m in stale), [m.body["channel"] for m in stale]
    # Never a stop the attempt log did not justify: one per campaign, plus at most one repeat of
    # the stop whose answer was lost (CleverTap's stop is repeat-safe).
    taken = [call for call in simulator.calls_to(STOP_PATH, "POST") if not call.limited]  # a 429 changes nothing
    sent = Counter(call.json()["id"] for call in taken)
    assert set(sent) == {int(c) for c in CAMPAIGNS} and sum(sent.values()) <= STOPS + 1, sent
    for process in survivors:  # a resumed stop's log lines carry its request id
        for line in process.lines:
            if line.startswith("{") and "stop finished" in line:
                assert json.loads(line)["request_id"] in request_ids, line


@pytest.mark.parametrize("how", ["kill", "terminate"])
async def test_stops_queued_when_the_process_dies_are_all_sent_after_a_restart(
    how: str, tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    box, box_server = sandbox
    database = f"sqlite:///{tmp_path / 'crash.db'}"
    env = environment(fake_slack, box, box_server.url, database)
    started: list[ServeProcess] = []
    try:
        first = await start_serve(env, tmp_path)
        started.append(first)
        request_ids = await queue_stops(first, fake_slack, box)
        cut_off_before = 0
        if how == "kill":
            cut_off_before = len(fake_slack.calls)
            first.process.send_signal(signal.SIGKILL)
        else:
            first.process.terminate()
        await first.stop()
        assert "Traceback" not in first.log

        second = await start_serve(env, tmp_path)
        started.append(second)
        await assert_each_stopped_and_told_once(database, request_ids, fake_slack, box, [second], cut_off_before)
        assert "Traceback" not in second.log
    finally:
        await kill_all(started)


async def test_a_dead_process_s_stops_are_resumed_once_by_two_processes_on_postgresql(
    tmp_path: Path,
    fake_slack: FakeSlack,
    sandbox: tuple[Sandbox, RunningServer],
    postgres_database: DatabaseFactory,
    redis_url: str,
) -> None:
    box, box_server = sandbox
    database = await postgres_database()
    env = environment(fake_slack, box, box_server.url, database)
    env |= {"REDIS_URL": redis_url, "REDIS_PREFIX": f"crash-{secrets.token_hex(4)}"}  # one set of limits
    started: list[ServeProcess] = []
    try:
        doomed = await start_serve(env, tmp_path)
        started.append(doomed)
        survivor = await start_serve(env, tmp_path)
        started.append(survivor)
        request_ids = await queue_stops(doomed, fake_slack, box)
        cut_off_before = len(fake_slack.calls)
        doomed.process.send_signal(signal.SIGKILL)
        await doomed.stop()
        successor = await start_serve(env, tmp_path)
        started.append(successor)
        await assert_each_stopped_and_told_once(
            database, request_ids, fake_slack, box, [survivor, successor], cut_off_before
        )
        for process in (survivor, successor):
            assert "Traceback" not in process.log
    finally:
        await kill_all(started)


async def test_a_post_cut_off_by_kill_9_is_made_by_the_next_process(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    """The process dies while Slack has not answered an outcome post: the post stays owed, and
    the next process makes it once the dead one's lease ran out; nothing else is posted twice."""
    box, box_server = sandbox
    database = f"sqlite:///{tmp_path / 'mid-post.db'}"
    env = environment(fake_slack, box, box_server.url, database)
    started: list[ServeProcess] = []
    try:
        first = await start_serve(env, tmp_path)
        started.append(first)
        fake_slack.fail("chat.postMessage", Failure(kind="hang"), times=2)  # the first post to each channel
        async with httpx.AsyncClient(timeout=30) as http:
            app = AppUnderTest(url=first.url, web=None, slack=fake_slack, sandbox=box, http=http)
            ack = await app.command("clevertap 1457432766 killed mid-post")
            request_id = buttons(ack.json())[STOP_ACTION]["value"]
            await app.click(STOP_ACTION, request_id)
        await fake_slack.wait_for("chat.postMessage", 2, timeout=30)  # both posts left hanging
        first.process.send_signal(signal.SIGKILL)
        await first.stop()

        second = await start_serve(env, tmp_path)
        started.append(second)
        await box["clevertap"].wait_until(lambda: box["clevertap"].campaigns["1457432766"].state == "stopped")
        posts = await fake_slack.wait_for("chat.postMessage", 4, timeout=60)  # after the 20 s lease
        await second.stop()
    finally:
        await kill_all(started)
    assert sorted(p.body["channel"] for p in posts) == [CHANNEL, CHANNEL, INCIDENT, INCIDENT]
    # The two cut off never answered; the next process made one message per channel, no more.
    assert sorted(m.body["channel"] for m in fake_slack.messages()) == [CHANNEL, INCIDENT]
    assert len(fake_slack.outcomes()) == 2
    # Killed while its live record was being posted, the stop may still have been running: a
    # repeat-safe CleverTap stop is then sent once more, never more.
    assert 1 <= len(box["clevertap"].calls_to(STOP_PATH, "POST")) <= 2
    store = Store.from_url(database)
    await store.initialize(migrate=False)
    try:
        stored = await store.get(request_id)
        assert stored is not None and stored.outcome is not None and stored.outcome.status is OutcomeStatus.STOPPED
        assert await store.outbox_depth() == 0
    finally:
        await store.close()


async def test_a_record_slack_took_before_a_kill_is_found_and_updated_after_the_restart(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> None:
    """kill -9 while Slack holds the answer to an accepted "… is stopping …" post: the successor
    finds that message (by the metadata every post carries) and turns it into the outcome, so the
    channel never keeps a stale "is stopping" beside a second message."""
    box, box_server = sandbox
    database = f"sqlite:///{tmp_path / 'record.db'}"
    env = environment(fake_slack, box, box_server.url, database)
    fake_slack.accept_then_hold("chat.postMessage", CHANNEL)  # in the channel, but no answer comes back
    processes = [await start_serve(env, tmp_path)]
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            app = AppUnderTest(url=processes[0].url, web=None, slack=fake_slack, sandbox=box, http=http)
            request_id = buttons((await app.command(f"clevertap {CAMPAIGNS[0]} record"))
                                 .json())[STOP_ACTION]["value"]
            box["clevertap"].campaigns[CAMPAIGNS[0]] = SandboxCampaign(CAMPAIGNS[0], "Record", "running", kind="push")
            await app.click(STOP_ACTION, request_id)
        await processes[0].wait_for_line(lambda line: "stop finished" in line, timeout=30)  # the outcome is in hand
        await fake_slack.wait_until_message(CHANNEL)  # Slack has the channel's record; the process never hears
        processes[0].process.send_signal(signal.SIGKILL)
        await processes[0].stop()
        fake_slack.accepted_then_held.clear()
        fake_slack.release()
        processes.append(await start_serve(env, tmp_path))  # the successor, once the post's lease ran out
        await fake_slack.wait_until(lambda: len(fake_slack.outcomes()) >= 2, timeout=60)
    finally:
        await kill_all(processes)
    in_channel = [m for m in fake_slack.messages() if m.body["channel"] == CHANNEL]
    assert len(in_channel) == 1, [m.body.get("text") for m in in_channel]  # one record, updated in place
    assert in_channel[0].method == "chat.update" and "stopped" in json.dumps(in_channel[0].body)
    # Killed right after the stop was answered, perhaps before its outcome was stored: the successor
    # may settle it with one more (repeat-safe) stop, never more.
    assert len(box["clevertap"].calls_to(STOP_PATH, "POST")) <= 2
