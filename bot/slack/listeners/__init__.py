"""Registers every listener group in one visible place."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import SlackDeps
from bot.slack.listeners import actions, commands


def register_listeners(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the slash command and the button actions."""
    commands.register(app, deps)
    actions.register(app, deps)
