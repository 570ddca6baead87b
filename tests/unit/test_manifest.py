"""manifest.yml declares every surface the app serves and validates against Slack's own schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bot.slack import views
from bot.slack.listeners.commands import COMMAND

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return loaded


def test_the_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(manifest(), schema)


def test_a_broken_manifest_fails_the_schema() -> None:
    broken = manifest()
    broken["features"]["shortcuts"][0]["type"] = "everywhere"
    schema = json.loads(SCHEMA.read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert errors


def test_the_manifest_declares_every_surface() -> None:
    features, settings = manifest()["features"], manifest()["settings"]
    assert [c["command"] for c in features["slash_commands"]] == [COMMAND]
    shortcuts = {s["callback_id"]: s["type"] for s in features["shortcuts"]}
    assert shortcuts == {views.FORM_SHORTCUT: "global", views.MESSAGE_SHORTCUT: "message"}
    assert features["app_home"]["home_tab_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    urls = {settings["interactivity"]["request_url"], settings["event_subscriptions"]["request_url"]}
    urls |= {c["url"] for c in features["slash_commands"]}
    assert urls == {"https://YOUR-APP-HOST/slack/events"}
