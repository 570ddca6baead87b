"""Socket Mode as Slack runs it: the app connects through ``apps.connections.open`` to a fake
Socket Mode server (hello, envelopes, acks, ``disconnect``), and every corpus payload arrives in
the envelope Slack puts it in. Every envelope is acknowledged, a refused one too."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config
from bot.core.models import RequestState
from bot.httpserver import RunningServer
from bot.runtime import Runtime
from bot.sandbox.server import Sandbox
from bot.slack.blocks import STOP_ACTION
from bot.slack.socket_mode import AcknowledgingSocketModeHandler, socket_mode_handler
from tests import slack_corpus, slack_requests
from tests.e2e.conftest import BOT_TOKEN, CHANNEL, INCIDENT, buttons, message_text, provider_env
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import EnvelopeType

CLEVERTAP = "1457432766"
APP_TOKEN = "xapp-1-A0STOPCAMP-e2e-not-real"
ENVELOPES: dict[str, EnvelopeType] = {"form": "slash_commands", "interactive": "interactive", "json": "events_api"}


@dataclass
class SocketApp:
    """The app connected over Socket Mode, and the fakes it talks to."""

    runtime: Runtime
    handler: AcknowledgingSocketModeHandler
    slack: FakeSlack
    sandbox: Sandbox

    async def send(self, payload: dict[str, Any], envelope: EnvelopeType) -> dict[str, Any]:
        """Send one envelope as Slack does and return the app's ack."""
        accepts = envelope in ("slash_commands", "interactive") and payload.get("type") != "block_actions"
        envelope_id = await self.slack.socket_mode.send(envelope, payload, accepts_response_payload=accepts)
        return await self.slack.socket_mode.wait_for_ack(envelope_id)

    async def fixture(self, surface: str, kind: str = "standard", **values: str) -> dict[str, Any]:
        """Send a corpus payload in the envelope Slack uses for it."""
        fixture = slack_corpus.load(surface, kind)
        return await self.send(slack_corpus.fill(fixture, **values), ENVELOPES[fixture.transport])


StartSocketApp = Callable[..., Awaitable[SocketApp]]


@pytest.fixture
async def start_socket_app(
    tmp_path: Path, fake_slack: FakeSlack, sandbox: tuple[Sandbox, RunningServer]
) -> AsyncIterator[StartSocketApp]:
    box, box_server = sandbox
    started: list[SocketApp] = []

    async def start(**overrides: str) -> SocketApp:
        env = provider_env(box, box_server.url, ("clevertap",)) | {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": f"{fake_slack.url}/api/",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'socket.db'}",
            "INCIDENT_CHANNEL": INCIDENT,
            **overrides,
        }
        config = load_config(env)
        runtime = await Runtime.open(config, announce_in_slack=True)
        handler = socket_mode_handler(config.settings, runtime.service, runtime.tasks, runtime.slack_health,
                                      ping_interval=2)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        runtime.start_background_loops()
        await fake_slack.socket_mode.wait_for_connections(1)
        await runtime.tasks.wait_idle()
        app = SocketApp(runtime, handler, fake_slack, box)
        started.append(app)
        return app

    yield start
    box.release_held()
    for app in started:
        await app.handler.close_async()  # type: ignore[no-untyped-call]
        await app.runtime.close(drain_timeout=5)


@pytest.fixture
async def socket_app(start_socket_app: StartSocketApp) -> SocketApp:
    return await start_socket_app()


def command_values(app: SocketApp, kind: str, text: str = f"clevertap {CLEVERTAP} wrong segment") -> dict[str, str]:
    return {"text": text, "user_id": slack_corpus.default_user(kind), "channel_id": CHANNEL,
            "response_url": app.slack.response_url()}


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_a_stop_over_socket_mode(socket_app: SocketApp, kind: str) -> None:
    ack = await socket_app.fixture("command", kind, **command_values(socket_app, kind))
    card = ack["payload"]  # the card rides in the ack, as over HTTP
    request_id = buttons(card)[STOP_ACTION]["value"]
    click = slack_requests.block_actions_payload(request_id, socket_app.slack.response_url(),
                                                 user=slack_corpus.default_user(kind), channel=CHANNEL, kind=kind)
    click_ack = await socket_app.send(click, "interactive")
    assert "payload" not in click_ack
    posts = await socket_app.slack.wait_for_outcomes(2)
    assert {p.body["channel"] for p in posts} == {CHANNEL, INCIDENT}
    await socket_app.runtime.tasks.wait_idle()
    stored = await socket_app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert len(socket_app.sandbox["clevertap"].calls_to("/1/targets/stop.json", "POST")) == 1


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_the_form_over_socket_mode(socket_app: SocketApp, kind: str) -> None:
    user = slack_corpus.default_user(kind)
    await socket_app.fixture("shortcut.open_form", kind, user_id=user)
    opened = await socket_app.slack.wait_for("views.open", 1)
    view = opened[-1].body["view"]
    assert (json.loads(view) if isinstance(view, str) else view)["callback_id"] == "stopcampaign_form"
    submission = slack_requests.form_submission(
        user=user, channel=CHANNEL, response_url=socket_app.slack.response_url(), target="clevertap:default",
        campaign_id=CLEVERTAP, reason="socket form", kind=kind,
    )
    ack = await socket_app.send(submission, "interactive")
    assert ack["payload"] == {"response_action": "clear"}
    cards = await socket_app.slack.wait_for("response_url", 1)
    assert "socket form" in message_text(cards[-1].body)
    invalid = slack_requests.form_submission(
        user=user, channel=CHANNEL, response_url=socket_app.slack.response_url(), target="clevertap:default",
        campaign_id="not-an-id", kind=kind,
    )
    refused = await socket_app.send(invalid, "interactive")
    assert refused["payload"]["response_action"] == "errors" and "campaign" in refused["payload"]["errors"]


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
async def test_the_home_tab_over_socket_mode(socket_app: SocketApp, kind: str) -> None:
    user = slack_corpus.default_user(kind)
    ack = await socket_app.fixture("event.app_home_opened.home", kind, user_id=user, event_id=f"Ev{kind}",
                                   channel_id="D0HOME", request_id="")
    assert "payload" not in ack
    published = await socket_app.slack.wait_for("views.publish", 1)
    assert published[-1].body["user_id"] == user


async def test_every_corpus_payload_is_acknowledged_over_socket_mode(socket_app: SocketApp) -> None:
    surfaces = [f for f in slack_corpus.all_fixtures() if f.surface not in ("ssl_check", "url_verification")]
    for fixture in surfaces:  # (url_verification and ssl_check exist only over HTTP)
        values = command_values(socket_app, fixture.kind) | {
            "request_id": "unknownrequest", "event_id": f"Ev{fixture.surface}{fixture.kind}", "message_text": "x",
            "private_metadata": "{}", "target": "clevertap:default", "campaign_id": CLEVERTAP, "reason": "",
            "selected_conversation": CHANNEL, "comment": "",
        }
        ack = await socket_app.fixture(fixture.surface, fixture.kind, **values)
        assert ack["envelope_id"], fixture.surface
    await socket_app.runtime.tasks.wait_idle()
    assert socket_app.slack.socket_mode.unacked() == []


async def test_a_refused_payload_is_acknowledged_with_one_log_line(
    socket_app: SocketApp, caplog: pytest.LogCaptureFixture
) -> None:
    payload = slack_requests.block_actions_payload("abcdefghijkm", socket_app.slack.response_url(), user="U0ALICE",
                                                   channel=CHANNEL)
    del payload["user"]
    ack = await socket_app.send(payload, "interactive")
    assert "payload" not in ack  # acked, so Slack does not deliver it again
    assert [r.getMessage() for r in caplog.records if "refused a Slack" in r.getMessage()] == [
        "refused a Slack Stop click payload: user is missing"
    ]
    not_an_object = await socket_app.send({"type": "block_actions", "actions": None, "user": 5}, "interactive")
    assert not_an_object["envelope_id"]


async def test_a_refresh_requested_disconnect_reconnects_and_stops_go_on(socket_app: SocketApp) -> None:
    fake = socket_app.slack.socket_mode
    await fake.disconnect("refresh_requested")
    await fake.wait_for_connections(2)
    assert len(fake.opens) == 2 and fake.opens[0].ticket != fake.opens[1].ticket
    ack = await socket_app.fixture("command", "standard", **command_values(socket_app, "standard"))
    assert fake.ack_connection(ack["envelope_id"]) is fake.connections[1]
    request_id = buttons(ack["payload"])[STOP_ACTION]["value"]
    await socket_app.send(slack_requests.block_actions_payload(request_id, socket_app.slack.response_url(),
                                                               user="U0ALICE", channel=CHANNEL), "interactive")
    await socket_app.slack.wait_for_outcomes(2)
    await fake.drop(close_code=1011)  # a link lost without a disconnect message
    await fake.wait_for_connections(3)
    help_ack = await socket_app.fixture("command", "standard", **command_values(socket_app, "standard", "help"))
    assert "Usage" in message_text(help_ack["payload"])


def junk_envelopes(event: dict[str, Any], click: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Envelopes Slack never sends, built around corpus payloads: each must be acked with one log line."""
    return [
        ("payload null", {"type": "events_api", "payload": None}),
        ("event null", {"type": "events_api", "payload": {**event, "event": None}}),
        ("event a list", {"type": "events_api", "payload": {**event, "event": [event["event"]]}}),
        ("payload a list", {"type": "interactive", "payload": [click]}),
        ("payload a string", {"type": "slash_commands", "payload": "command=%2Fstopcampaign&text=help"}),
        ("payload a number", {"type": "interactive", "payload": 5}),
        ("payload missing", {"type": "interactive"}),
        ("type missing", {"payload": click}),
        ("type null", {"type": None, "payload": click}),
        ("type a number", {"type": 7, "payload": event}),
        ("type a list", {"type": ["interactive"], "payload": click}),
        ("payload empty", {"type": "events_api", "payload": {}}),
    ]


REACH_BOLT = {"event null", "event a list", "payload empty"}
"""Envelopes of the right shape around a payload no listener can read: Bolt's error handler (or the
handler's own catch) logs the one line."""


def warnings_and_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_junk_envelopes_are_acked_with_one_log_line_each_and_nothing_else(
    socket_app: SocketApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18: these gave 7 tracebacks and no ack (slack_sdk drops or chokes on them before Bolt)."""
    fake = socket_app.slack.socket_mode
    event = slack_corpus.fill(slack_corpus.load("event.app_home_opened.home", "standard"), user_id="U0ALICE",
                              event_id="EvJunk", channel_id="D0HOME", request_id="")
    click = slack_requests.block_actions_payload("abcdefghijkm", socket_app.slack.response_url(), user="U0ALICE",
                                                 channel=CHANNEL)
    calls_before = len(socket_app.slack.calls)
    caplog.clear()
    for number, (name, envelope) in enumerate(junk_envelopes(event, click), start=1):
        envelope_id = f"junk-{number}"
        await fake.send_raw(json.dumps({"envelope_id": envelope_id, **envelope}))
        ack = await fake.wait_for_ack(envelope_id)
        assert ack == {"envelope_id": envelope_id}, name  # acked, nothing in it
        refusals = warnings_and_errors(caplog)
        assert len(refusals) == number, (name, [r.getMessage() for r in refusals])
        if name not in REACH_BOLT:  # refused before slack_sdk reads it, naming the envelope and the problem
            assert f"refused a Socket Mode envelope '{envelope_id}' (acknowledged): " in refusals[-1].getMessage()
    # Not JSON (or nested past any parser), JSON that is not an object, no envelope_id: nothing to ack, one line each.
    not_objects = ["{not json", "[1, 2]", "null", "[" * 100_000 + "]" * 100_000, '{"type": "mystery"}']
    for number, raw in enumerate(not_objects, start=len(junk_envelopes(event, click)) + 1):
        await fake.send_raw(raw)
        help_ack = await socket_app.fixture("command", "standard", **command_values(socket_app, "standard", "help"))
        assert "Usage" in message_text(help_ack["payload"])  # the link still works, in order
        assert len(warnings_and_errors(caplog)) == number, (raw, [r.getMessage() for r in caplog.records])
    await socket_app.runtime.tasks.wait_idle()
    assert fake.unacked() == []
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records), [r.getMessage() for r in caplog.records if r.exc_info]
    assert socket_app.slack.calls[calls_before:] == []  # nothing else happened: no post, no view
