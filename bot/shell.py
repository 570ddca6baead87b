"""The console front end: type the same command text as in Slack, read the card, answer, see the outcome.

It drives the same core as Slack (parse → pending request → confirm → one provider call →
stored outcome), so a console stop is as safe and as audited as a Slack one.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable

from bot.core.models import Actor
from bot.core.parsing import HelpCommand, HistoryCommand, StatusCommand, StopCommand, UsageError
from bot.core.policy import PolicyRefusal
from bot.core.render import card_text, history_lines, others_pending_text, outcome_text, trail_lines
from bot.core.results import ClickResult
from bot.core.service import StopService

Ask = Callable[[str], Awaitable[str]]
Say = Callable[[str], None]

YES = frozenset({"y", "yes", "stop"})
QUIT = frozenset({"quit", "exit", "q", ":q"})
PROMPT = "stopcampaign> "


async def ask_stdin(prompt: str) -> str:
    """Read one line from the terminal without blocking the event loop; EOFError at the end."""
    return await asyncio.to_thread(input, prompt)


def console_actor() -> Actor:
    """Who is typing: the OS user, as ``console:<name>``. A shell is not a Slack identity: what
    this actor may do is what the policy grants ``console:<name>`` (or ``*``)."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "unknown"
    return Actor(id=f"console:{name}", name=name, source="console")


async def handle_line(line: str, service: StopService, actor: Actor, ask: Ask, say: Say) -> ClickResult | None:
    """Handle one typed command; returns the click result when a stop was confirmed or refused."""
    text = line.strip().removeprefix("/stopcampaign").strip()
    try:
        command = service.parse(text)
    except UsageError as exc:
        say(f"Error: {exc}")
        return None
    if isinstance(command, HelpCommand):
        say(service.help())
        return None
    if isinstance(command, HistoryCommand | StatusCommand):
        await show_lookup(command, service, actor, say)
        return None
    return await confirm_and_stop(command, service, actor, ask, say, assume_yes=False)


async def show_lookup(
    command: HistoryCommand | StatusCommand, service: StopService, viewer: Actor, say: Say
) -> bool:
    """Print history or one request's audit trail (as far as the policy lets `viewer` see); False
    when the request does not exist or may not be seen."""
    if isinstance(command, HistoryCommand):
        lines = history_lines(await service.history(viewer, command.provider, command.account, command.limit))
        say("\n".join(lines) if lines else "No stop requests yet.")
        return True
    try:
        request, trail = await service.trail(viewer, command.request_id)
    except PolicyRefusal as refusal:
        say(f"Not allowed: {refusal.message}")
        return False
    if request is None:
        say(f"No request {command.request_id}.")
        return False
    say("\n".join(trail_lines(request, trail, service.facts(request.provider, request.account))))
    return True


async def confirm_and_stop(
    command: StopCommand, service: StopService, actor: Actor, ask: Ask, say: Say, *, assume_yes: bool
) -> ClickResult | None:
    """Create the request, show the card, ask, and stop when the answer is yes."""
    try:
        request = await service.create_request(command, actor)
    except PolicyRefusal as refusal:
        say(f"Not allowed: {refusal.message}")
        return None
    if request.two_person:
        await service.announce_request(request)
        say(
            "This account needs a second person to approve (two-person rule): approve it in Slack, "
            f"or have an approver the policy names as console:<their OS user> run `python -m bot approve {request.id}`."
        )
        return None
    others = await service.others_pending(request)
    if others:
        say(f"Note: {others_pending_text(others)}")
    preview = await service.load_preview(request)
    facts = service.facts(request.provider, request.account)
    say(card_text(request, facts, preview.info, preview.unavailable or ""))
    if not assume_yes:
        try:
            answer = await ask("Stop this campaign? Type 'yes' to stop, anything else cancels [yes/N]: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in YES:
            await service.cancel(request.id, actor)
            say("Cancelled. Nothing was sent to the provider.")
            return None
    say(f"Stopping {facts.display_name} campaign {request.campaign_id}…")
    result = await service.confirm(request.id, actor, replace_card=True)
    if result.refused or result.outcome is None or result.request is None:
        say(f"Not stopped: {result.refusal}")
        return result
    say(outcome_text(result.request, result.outcome, facts))
    return result


async def run_shell(
    service: StopService, *, ask: Ask = ask_stdin, say: Say = print, banner: str = "", actor: Actor | None = None
) -> None:
    """The read-eval loop; ends on quit, exit or end of input."""
    actor = actor or console_actor()
    if banner:
        say(banner)
    say("Type a command as in Slack (e.g. clevertap 1457432766 wrong segment), 'help' or 'quit'.")
    while True:
        try:
            line = await ask(PROMPT)
        except (EOFError, KeyboardInterrupt):
            say("")
            return
        if line.strip().lower() in QUIT:
            return
        if not line.strip():
            continue
        try:
            await handle_line(line, service, actor, ask, say)
        except Exception as exc:  # a console user must never lose the session to a bug
            say(f"Error: {type(exc).__name__}: {exc}")
