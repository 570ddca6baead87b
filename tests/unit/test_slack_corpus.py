"""The corpus of Slack payloads copied from Slack's own material: complete, sourced, fillable, shaped per kind of
workspace, and covering every action id, shortcut callback id and view callback id the app defines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml

from bot.slack import blocks, views
from bot.slack.listeners import decline
from tests.slack_corpus import (
    KINDS,
    Fixture,
    all_fixtures,
    body,
    default_user,
    fill,
    load,
    other_user,
    placeholders,
    surfaces,
)

ROOT = Path(__file__).resolve().parents[2]

SURFACES = (
    "command",
    "command_no_text",
    "block_actions.stop.ephemeral",
    "block_actions.cancel.ephemeral",
    "block_actions.approve.message",
    "block_actions.decline.message",
    "block_actions.check_again.message",
    "block_actions.approve.dm",
    "block_actions.open_form.home",
    "block_actions.stop.home",
    "block_actions.select.modal",
    "view_submission.form",
    "view_submission.form_empty_urls",
    "view_submission.form_no_urls",
    "view_submission.decline",
    "view_closed.form",
    "shortcut.open_form",
    "message_action.user_message",
    "message_action.bot_message",
    "event.app_home_opened.home",
    "event.app_home_opened.messages",
    "url_verification",
    "ssl_check",
)
SAME_FOR_EVERY_KIND = ("url_verification", "ssl_check")
ENTERPRISE = {"grid": "E0GRID", "org": "E0ORG"}

FIXTURES = all_fixtures()


def fixture_id(fixture: Fixture) -> str:
    return f"{fixture.surface}[{fixture.kind}]"


def values_for(fixture: Fixture) -> dict[str, str]:
    """A value for every placeholder of `fixture` (ids shaped for its kind)."""
    known = {
        "user_id": default_user(fixture.kind),
        "channel_id": "D0APPDM" if fixture.surface.endswith((".dm", "app_home_opened.home", ".messages")) else "C0CHAN",
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "request_id": "req_0123456789abcdefghijklmn",
        "text": "clevertap 1457432766 wrong segment",
        "event_id": "Ev0TEST",
        "challenge": "challenge-value",
        "private_metadata": json.dumps({"channel": "C0CHAN"}),
        "target": "clevertap:default",
        "campaign_id": "1457432766",
        "reason": "wrong segment",
        "selected_conversation": "C0CHAN",
        "comment": "not now",
        "message_text": "Campaign 1457432766 sends to the wrong segment",
    }
    return {name: known.get(name, f"value-of-{name}") for name in placeholders(fixture)}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every value in a JSON tree."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from walk(value, f"{path}[{n}]")


# ------------------------------------------------------------------ completeness and sources


def test_every_surface_exists_with_all_three_kinds() -> None:
    assert set(SURFACES) <= set(surfaces())
    for surface in surfaces():
        for kind in KINDS:
            fixture = load(surface, kind)
            assert fixture.surface == surface and fixture.kind == kind


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_every_kind_names_its_source_and_what_changed(fixture: Fixture) -> None:
    assert fixture.source.startswith("https://") and " " not in fixture.source
    assert fixture.source.startswith(("https://github.com/slackapi/", "https://docs.slack.dev/", "https://api.slack.com/"))
    assert fixture.changed.strip() and "\n" not in fixture.changed


def test_load_gives_a_fresh_copy_and_refuses_what_does_not_exist() -> None:
    first = load("command", "standard")
    first.payload["text"] = "changed"
    assert load("command", "standard").payload["text"] == "{{text}}"
    with pytest.raises(KeyError, match="no-such-surface"):
        load("no-such-surface", "standard")
    with pytest.raises(KeyError, match="enterprise"):
        load("command", "enterprise")


# ------------------------------------------------------------------ placeholders


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_every_placeholder_can_be_filled_and_none_is_left(fixture: Fixture) -> None:
    filled = fill(fixture, **values_for(fixture))
    assert "{{" not in json.dumps(filled)


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_placeholders_are_whole_strings_only(fixture: Fixture) -> None:
    for path, value in walk(fixture.payload):
        if isinstance(value, str) and "{{" in value:
            assert value.startswith("{{") and value.endswith("}}") and value.count("{{") == 1, path


def test_fill_names_a_missing_placeholder_and_ignores_extra_values() -> None:
    fixture = load("command", "standard")
    values = values_for(fixture)
    del values["response_url"]
    with pytest.raises(KeyError, match="response_url"):
        fill(fixture, **values)
    filled = fill(fixture, **values_for(fixture), unused="ignored")
    assert filled["text"] == "clevertap 1457432766 wrong segment"
    assert "unused" not in json.dumps(filled)


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_the_acting_user_and_the_clicked_value_are_placeholders(fixture: Fixture) -> None:
    payload = fixture.payload
    if fixture.transport == "interactive":
        assert payload["user"]["id"] == "{{user_id}}"
    if fixture.transport == "form" and "user_id" in payload:
        assert payload["user_id"] == "{{user_id}}"
    if fixture.surface.startswith("event."):
        assert payload["event"]["user"] == "{{user_id}}"
        assert payload["event_id"] == "{{event_id}}"
    for path, value in walk(payload):
        if path.endswith("response_url"):
            assert value == "{{response_url}}", path
    action = (payload.get("actions") or [{}])[0]
    if action.get("type") == "button" and action["action_id"] != views.FORM_SHORTCUT:
        assert action["value"] == "{{request_id}}"


# ------------------------------------------------------------------ bodies as Slack posts them


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_body_is_what_slack_posts(fixture: Fixture) -> None:
    raw, content_type = body(fixture, **values_for(fixture))
    filled = fill(fixture, **values_for(fixture))
    if fixture.transport == "form":
        assert content_type == "application/x-www-form-urlencoded"
        parsed = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        assert parsed == filled
    elif fixture.transport == "interactive":
        assert content_type == "application/x-www-form-urlencoded"
        form = parse_qs(raw.decode())
        assert list(form) == ["payload"]
        assert json.loads(form["payload"][0]) == filled
    else:
        assert content_type == "application/json"
        assert json.loads(raw) == filled


@pytest.mark.parametrize("fixture", FIXTURES, ids=fixture_id)
def test_each_transport_has_its_shape(fixture: Fixture) -> None:
    payload, surface = fixture.payload, fixture.surface
    if fixture.transport == "form":
        assert all(isinstance(v, str) for v in payload.values())
    elif fixture.transport == "interactive":
        assert payload["type"] == surface.split(".")[0]
    else:
        assert payload["type"] == ("url_verification" if surface == "url_verification" else "event_callback")


def test_ssl_check_and_url_verification_are_the_same_for_every_kind() -> None:
    for surface in SAME_FOR_EVERY_KIND:
        payloads = [load(surface, kind).payload for kind in KINDS]
        assert payloads[0] == payloads[1] == payloads[2]
    assert load("ssl_check", "standard").payload["ssl_check"] == "1"
    assert load("url_verification", "standard").payload["challenge"] == "{{challenge}}"


# ------------------------------------------------------------------ kinds of workspace


def kind_fixtures(kind: str) -> list[Fixture]:
    return [f for f in FIXTURES if f.kind == kind and f.surface not in SAME_FOR_EVERY_KIND]


@pytest.mark.parametrize("fixture", kind_fixtures("standard"), ids=fixture_id)
def test_standard_payloads_carry_no_enterprise(fixture: Fixture) -> None:
    payload = fixture.payload
    if "enterprise" in payload:
        assert payload["enterprise"] is None
    if fixture.transport == "interactive" and "is_enterprise_install" in payload:
        assert payload["is_enterprise_install"] is False
    if fixture.transport == "form":
        assert "enterprise_id" not in payload
        assert payload.get("is_enterprise_install", "false") == "false"
    for authorization in payload.get("authorizations", []):
        assert authorization["enterprise_id"] is None and authorization["is_enterprise_install"] is False
    if fixture.transport == "interactive" and isinstance(payload.get("team"), dict):
        assert "enterprise_id" not in payload["team"]
    assert default_user("standard").startswith("U") and other_user("standard").startswith("U")


@pytest.mark.parametrize("fixture", [f for f in kind_fixtures("standard") if f.transport == "interactive"],
                         ids=fixture_id)
def test_standard_interactive_payloads_carry_the_enterprise_nulls(fixture: Fixture) -> None:
    """Slack sends `"enterprise": null` and `"is_enterprise_install": false` in every interactive payload of a
    standard workspace; the app once refused every click over that null, so every such fixture must carry both."""
    payload = fixture.payload
    assert "enterprise" in payload and payload["enterprise"] is None
    assert "is_enterprise_install" in payload and payload["is_enterprise_install"] is False


def assert_w_user_ids(fixture: Fixture) -> None:
    filled = fill(fixture, **values_for(fixture))
    for path, value in walk(filled):
        last = path.rsplit(".", 1)[-1]
        if last in ("user", "user_id") and isinstance(value, str):
            assert value.startswith("W"), (path, value)
        if last == "user" and isinstance(value, dict):
            assert value["id"].startswith("W"), path


@pytest.mark.parametrize("fixture", kind_fixtures("grid"), ids=fixture_id)
def test_grid_payloads_carry_the_enterprise_and_w_user_ids(fixture: Fixture) -> None:
    payload = fixture.payload
    if fixture.transport == "interactive":
        assert isinstance(payload["enterprise"], dict) and payload["enterprise"]["id"] == "E0GRID"
        assert payload["enterprise"]["name"]
        assert payload.get("is_enterprise_install", False) is False
        assert payload["team"]["id"] == "T0GRIDWS"
        if "enterprise_id" in payload["team"]:
            assert payload["team"]["enterprise_id"] == "E0GRID"
    elif fixture.transport == "form":
        assert payload["enterprise_id"] == "E0GRID" and payload["enterprise_name"]
        assert payload["is_enterprise_install"] == "false"
    else:
        assert payload["enterprise_id"] == "E0GRID" and payload["team_id"] == "T0GRIDWS"
        assert all(a["is_enterprise_install"] is False for a in payload["authorizations"])
    assert_w_user_ids(fixture)


@pytest.mark.parametrize("fixture", kind_fixtures("org"), ids=fixture_id)
def test_org_payloads_are_enterprise_installs(fixture: Fixture) -> None:
    payload = fixture.payload
    if fixture.transport == "interactive":
        assert payload["is_enterprise_install"] is True
        assert payload["enterprise"]["id"] == "E0ORG"
        assert payload["team"] is None
    elif fixture.transport == "form":
        assert payload["is_enterprise_install"] == "true" and payload["enterprise_id"] == "E0ORG"
    else:
        assert payload["enterprise_id"] == "E0ORG"
        for authorization in payload["authorizations"]:
            assert authorization["is_enterprise_install"] is True and authorization["team_id"] is None
    assert_w_user_ids(fixture)


# ------------------------------------------------------------------ the shapes of the surfaces


@pytest.mark.parametrize("kind", KINDS)
def test_surface_shapes(kind: str) -> None:
    for surface in ("block_actions.stop.ephemeral", "block_actions.cancel.ephemeral"):
        payload = load(surface, kind).payload
        assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    for surface in ("block_actions.approve.message", "block_actions.decline.message",
                    "block_actions.check_again.message", "block_actions.approve.dm"):
        payload = load(surface, kind).payload
        assert payload["container"] == {"type": "message", "message_ts": payload["message"]["ts"],
                                        "channel_id": "{{channel_id}}", "is_ephemeral": False}
        assert payload["message"]["bot_id"] == "B0STOPBOT" and payload["message"]["blocks"]
    assert load("block_actions.approve.dm", kind).payload["channel"]["name"] == "directmessage"
    for surface in ("block_actions.open_form.home", "block_actions.stop.home"):
        payload = load(surface, kind).payload
        assert payload["container"] == {"type": "view", "view_id": payload["view"]["id"]}
        assert payload["view"]["type"] == "home" and "response_url" not in payload
    select = load("block_actions.select.modal", kind).payload
    assert select["container"]["type"] == "view" and select["view"]["callback_id"] == views.FORM_CALLBACK
    assert select["view"]["previous_view_id"] is None and select["view"]["root_view_id"]
    assert select["actions"][0]["type"] == "static_select" and select["actions"][0]["block_id"] == "target"

    form = load("view_submission.form", kind).payload
    assert form["response_urls"] == [{"block_id": "announce", "action_id": "channel",
                                      "channel_id": "{{channel_id}}", "response_url": "{{response_url}}"}]
    assert load("view_submission.form_empty_urls", kind).payload["response_urls"] == []
    assert "response_urls" not in load("view_submission.form_no_urls", kind).payload
    assert load("command_no_text", kind).payload["text"] == ""
    assert load("command", kind).payload["command"] == "/stopcampaign"
    assert "view" not in load("event.app_home_opened.messages", kind).payload["event"]
    home = load("event.app_home_opened.home", kind).payload["event"]
    assert home["tab"] == "home" and home["view"]["type"] == "home"


@pytest.mark.parametrize("kind", KINDS)
def test_the_filled_form_carries_every_input_in_its_state(kind: str) -> None:
    for surface in ("view_submission.form", "view_submission.form_empty_urls", "view_submission.form_no_urls"):
        fixture = load(surface, kind)
        view = fill(fixture, **values_for(fixture))["view"]
        assert view["callback_id"] == views.FORM_CALLBACK
        assert view["private_metadata"] == json.dumps({"channel": "C0CHAN"})
        values = view["state"]["values"]
        assert values["target"]["target"]["selected_option"]["value"] == "clevertap:default"
        assert values["campaign"]["campaign_id"]["value"] == "1457432766"
        assert values["reason"]["reason"]["value"] == "wrong segment"
        assert values["announce"]["channel"]["selected_conversation"] == "C0CHAN"
    fixture = load("view_submission.decline", kind)
    view = fill(fixture, **values_for(fixture))["view"]
    assert view["callback_id"] == decline.CALLBACK
    assert view["state"]["values"]["comment"]["comment"]["value"] == "not now"


# ------------------------------------------------------------------ every id the app defines has a fixture


def app_ids() -> dict[str, set[str]]:
    """The app's action ids, shortcut callback ids and view callback ids (from its modules and manifest.yml)."""
    def named(module: object, suffix: str) -> set[str]:
        return {value for name, value in vars(module).items() if name.endswith(suffix) and isinstance(value, str)}

    actions = named(blocks, "_ACTION")
    actions |= {blocks.STOP_ACTION, blocks.CANCEL_ACTION, blocks.CHECK_AGAIN_ACTION, blocks.DECLINE_ACTION,
                views.FORM_SHORTCUT}
    shortcuts = named(views, "_SHORTCUT")
    shortcuts |= {views.FORM_SHORTCUT, views.MESSAGE_SHORTCUT}
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    shortcuts |= {s["callback_id"] for s in manifest["features"].get("shortcuts", [])}
    view_callbacks = named(views, "_CALLBACK")
    view_callbacks |= {views.FORM_CALLBACK, decline.CALLBACK}
    return {"action_id": actions, "callback_id": shortcuts, "view.callback_id": view_callbacks}


def corpus_ids(kind: str, fixtures: list[Fixture]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"action_id": set(), "callback_id": set(), "view.callback_id": set()}
    for fixture in fixtures:
        if fixture.kind != kind or fixture.transport != "interactive":
            continue
        payload = fixture.payload
        if payload.get("actions"):
            found["action_id"].add(payload["actions"][0]["action_id"])
        if isinstance(payload.get("callback_id"), str):
            found["callback_id"].add(payload["callback_id"])
        if isinstance(payload.get("view"), dict) and payload["view"].get("callback_id"):
            found["view.callback_id"].add(payload["view"]["callback_id"])
    return found


def missing_ids(wanted: dict[str, set[str]], fixtures: list[Fixture]) -> list[str]:
    missing = []
    for kind in KINDS:
        found = corpus_ids(kind, fixtures)
        missing += [f"{where} {value!r} [{kind}]" for where, values in wanted.items()
                    for value in sorted(values - found[where])]
    return missing


def test_every_id_the_app_defines_has_a_fixture_of_every_kind() -> None:
    wanted = app_ids()
    assert blocks.STOP_ACTION in wanted["action_id"] and views.FORM_SHORTCUT in wanted["callback_id"]
    assert decline.CALLBACK in wanted["view.callback_id"]
    assert missing_ids(wanted, FIXTURES) == []


def test_an_id_without_a_fixture_is_reported() -> None:
    wanted = app_ids()
    wanted["action_id"].add("stopcampaign_brand_new_button")
    assert missing_ids(wanted, FIXTURES) == [f"action_id 'stopcampaign_brand_new_button' [{kind}]" for kind in KINDS]
    without_decline = [f for f in FIXTURES if f.surface != "block_actions.decline.message"]
    assert f"action_id {blocks.DECLINE_ACTION!r} [standard]" in missing_ids(app_ids(), without_decline)
