"""Registers every listener group in one visible place."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import SlackDeps
from bot.slack.listeners import actions, commands, decline, fallback, forms, home


def register_listeners(app: AsyncApp, deps: SlackDeps) -> None:
    """Wire the slash command, the buttons, the forms (stop, decline), the Home tab, and last the
    catch-all that acknowledges what no listener takes."""
    commands.register(app, deps)
    actions.register(app, deps)
    forms.register(app, deps)
    decline.register(app, deps)
    home.register(app, deps)
    fallback.register(app)
