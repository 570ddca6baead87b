"""Each listener's payload model reads every shape Slack sends for its surface (the corpus, in
all three workspace kinds), reads null as absent, ignores fields it does not use, and refuses
only what lacks a field it needs, in one line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.slack.payloads import (
    BlockActions,
    ButtonClick,
    DeclineClick,
    HomeOpened,
    Lenient,
    MessageShortcut,
    PayloadRefused,
    Shortcut,
    SlashCommand,
    ViewSubmission,
    read,
)
from tests import slack_corpus

MODELS: dict[str, type[Lenient]] = {
    "command": SlashCommand,
    "command_no_text": SlashCommand,
    "block_actions.stop.ephemeral": ButtonClick,
    "block_actions.cancel.ephemeral": ButtonClick,
    "block_actions.approve.message": ButtonClick,
    "block_actions.approve.dm": ButtonClick,
    "block_actions.check_again.message": ButtonClick,
    "block_actions.decline.message": DeclineClick,
    "block_actions.stop.home": ButtonClick,
    "block_actions.open_form.home": Shortcut,
    "block_actions.select.modal": BlockActions,
    "view_submission.form": ViewSubmission,
    "view_submission.form_empty_urls": ViewSubmission,
    "view_submission.form_no_urls": ViewSubmission,
    "view_submission.decline": ViewSubmission,
    "shortcut.open_form": Shortcut,
    "message_action.user_message": MessageShortcut,
    "message_action.bot_message": MessageShortcut,
}
"""The model each listener reads its surface with (view_closed, url_verification and ssl_check
reach no model: Bolt and the door answer them)."""

VALUES = {
    "user_id": "U0ALICE", "channel_id": "C0CHANNEL", "response_url": "https://hooks.slack.com/actions/T/1/x",
    "request_id": "abcdefghijkm", "text": "clevertap 1457432766 x", "event_id": "Ev1", "challenge": "c",
    "message_text": "alert", "private_metadata": json.dumps({"channel": "C0CHANNEL", "request": "abcdefghijkm"}),
    "target": "clevertap:default", "campaign_id": "1457432766", "reason": "r", "selected_conversation": "C0CHANNEL",
    "comment": "no",
}


def filled(surface: str, kind: str) -> dict[str, Any]:
    return slack_corpus.fill(slack_corpus.load(surface, kind), **VALUES)


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
@pytest.mark.parametrize("surface", sorted(MODELS))
def test_every_corpus_shape_reads_through_its_listeners_model(surface: str, kind: str) -> None:
    payload = read(MODELS[surface], filled(surface, kind))
    assert payload is not None


@pytest.mark.parametrize("kind", slack_corpus.KINDS)
def test_the_app_home_event_reads_in_every_kind(kind: str) -> None:
    body = filled("event.app_home_opened.home", kind)
    assert read(HomeOpened, body["event"]) == HomeOpened(user="U0ALICE", tab="home")


def test_the_fields_the_listeners_use_come_through() -> None:
    click = read(ButtonClick, filled("block_actions.stop.ephemeral", "org"))
    assert (click.request_id, click.user.id, click.channel_id) == ("abcdefghijkm", "U0ALICE", "C0CHANNEL")
    assert click.response_url == VALUES["response_url"]
    home = read(ButtonClick, filled("block_actions.stop.home", "standard"))
    assert home.response_url is None and home.channel_id is None  # the Home tab gives neither
    form = read(ViewSubmission, filled("view_submission.form", "grid"))
    assert form.view.value("target", "target", "selected_option") == "clevertap:default"
    assert form.view.value("announce", "channel", "selected_conversation") == "C0CHANNEL"
    assert form.response_url_for("C0CHANNEL") == VALUES["response_url"]
    for surface in ("view_submission.form_empty_urls", "view_submission.form_no_urls"):
        assert read(ViewSubmission, filled(surface, "org")).response_url_for("C0CHANNEL") is None
    command = read(SlashCommand, filled("command_no_text", "org"))
    assert command.text == "" and command.user_id == "U0ALICE"


def test_null_reads_as_absent_at_every_level_and_unknown_fields_are_ignored() -> None:
    payload = filled("block_actions.stop.ephemeral", "standard")
    payload |= {"enterprise": None, "team": None, "channel": None, "response_url": None, "brand_new": {"x": [1]}}
    payload["container"] = {"type": "message", "channel_id": None, "is_ephemeral": None}
    payload["user"]["username"] = None
    click = read(ButtonClick, payload)
    assert click.channel_id is None and click.response_url is None and click.user.display_name == "alice"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.pop("user"), "user is missing"),
        (lambda p: p.update(user=None), "user is missing"),
        (lambda p: p.update(user="U0ALICE"), "user is not what Slack sends (model_type)"),
        (lambda p: p["user"].update(id=7), "user.id is not what Slack sends (string_type)"),
        (lambda p: p.update(actions=[]), "actions is not what Slack sends (too_short)"),
        (lambda p: p["actions"][0].pop("value"), "the button carries no usable request id"),
        (lambda p: p["actions"][0].update(value="x" * 65), "the button carries no usable request id"),
    ],
)
def test_only_what_a_listener_needs_can_refuse_a_payload(change: Any, problem: str) -> None:
    payload = filled("block_actions.stop.ephemeral", "grid")
    change(payload)
    with pytest.raises(PayloadRefused) as refused:
        read(ButtonClick, payload)
    assert str(refused.value) == problem


def test_a_payload_that_is_not_an_object_is_refused_in_one_line() -> None:
    with pytest.raises(PayloadRefused, match=r"^the payload is not what Slack sends"):
        read(SlashCommand, ["not", "an", "object"])
    with pytest.raises(PayloadRefused, match=r"^trigger_id is missing$"):
        read(DeclineClick, filled("block_actions.decline.message", "org") | {"trigger_id": None})
