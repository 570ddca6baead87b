"""Command line: ``python -m bot serve | socket | shell | stop | sandbox`` (also ``stopcampaign …``)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click

from bot.config import AppConfig, ConfigError, load_config
from bot.core.models import OutcomeStatus
from bot.core.parsing import HelpCommand, UsageError
from bot.core.render import help_text
from bot.logs import setup_logging

EXIT_CODES: dict[OutcomeStatus, int] = {
    OutcomeStatus.STOPPED: 0,
    OutcomeStatus.ALREADY_STOPPED: 0,
    OutcomeStatus.ALREADY_COMPLETED: 0,
    OutcomeStatus.NOT_STOPPABLE: 3,
    OutcomeStatus.NOT_FOUND: 4,
    OutcomeStatus.INVALID_REQUEST: 5,
    OutcomeStatus.UNAUTHORIZED: 6,
    OutcomeStatus.FORBIDDEN: 6,
    OutcomeStatus.RATE_LIMITED: 7,
    OutcomeStatus.PROVIDER_ERROR: 8,
    OutcomeStatus.UNREACHABLE: 9,
    OutcomeStatus.UNKNOWN: 10,
}
EXIT_USAGE = 2
EXIT_NOT_CONFIRMED = 11


def _load() -> AppConfig:
    try:
        return load_config()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """stopcampaign: stop a marketing campaign from Slack, the console or a runbook."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default HOST or 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port (default PORT or 3000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve Slack over HTTP: POST /slack/events, GET /healthz."""
    import uvicorn

    from bot.httpserver import bind_socket
    from bot.web import create_web_app

    config = _load()
    settings = config.settings
    missing = [
        name
        for name, value in (
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
        )
        if value is None
    ]
    if missing:
        click.echo(f"Configuration problems:\n  - {', '.join(missing)}: required by `serve`", err=True)
        sys.exit(EXIT_USAGE)
    setup_logging(settings.log_level)
    bind_host, bind_port = host or settings.host, settings.port if port is None else port
    try:
        sock = bind_socket(bind_host, bind_port)
    except OSError as exc:
        click.echo(f"Cannot listen on {bind_host}:{bind_port}: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)
    server = uvicorn.Server(
        uvicorn.Config(
            create_web_app(config),
            log_level=settings.log_level.lower(),
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=15,
        )
    )
    click.echo(f"stopcampaign listening on http://{bind_host}:{bind_port}", err=True)
    server.run(sockets=[sock])


@cli.command()
def socket() -> None:
    """Serve Slack over Socket Mode (needs SLACK_APP_TOKEN, no public URL)."""
    config = _load()
    settings = config.settings
    missing = [
        name
        for name, value in (
            ("SLACK_APP_TOKEN", settings.slack_app_token),
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
        )
        if value is None
    ]
    if missing:
        click.echo(f"Configuration problems:\n  - {', '.join(missing)}: required by `socket`", err=True)
        sys.exit(EXIT_USAGE)
    setup_logging(settings.log_level)
    asyncio.run(_socket(config))


async def _socket(config: AppConfig) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.runtime import Runtime
    from bot.slack.app import create_slack_app

    runtime = await Runtime.open(config)
    try:
        app = create_slack_app(runtime, socket_mode=True)
        runtime.start_expiry_loop()
        assert config.settings.slack_app_token is not None
        handler = AsyncSocketModeHandler(app, config.settings.slack_app_token.get_secret_value())
        await handler.start_async()  # type: ignore[no-untyped-call]
    finally:
        await runtime.close()


@asynccontextmanager
async def _runtime(use_sandbox: bool) -> AsyncIterator[tuple[object, str]]:
    """A runtime for the console: real config, or every provider pointed at an in-process sandbox."""
    from bot.runtime import Runtime

    if not use_sandbox:
        config = _load()
        for warning in config.warnings:
            click.echo(f"warning: {warning}", err=True)
        runtime = await Runtime.open(config)
        try:
            yield runtime, ""
        finally:
            await runtime.close()
        return

    from bot.sandbox.demo import sandbox_config
    from bot.sandbox.server import start_sandbox

    sandbox, server = await start_sandbox()
    with tempfile.TemporaryDirectory(prefix="stopcampaign-") as workdir:
        try:
            config = sandbox_config(sandbox, server.url, Path(workdir))
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_USAGE)
        runtime = await Runtime.open(config)
        banner = _sandbox_banner(sandbox, server.url)
        try:
            yield runtime, banner
        finally:
            await runtime.close(drain_timeout=2)
            sandbox.release_held()
            await server.stop()


def _sandbox_banner(sandbox: object, url: str) -> str:
    from bot.sandbox.server import Sandbox

    assert isinstance(sandbox, Sandbox)
    lines = [f"Sandbox running at {url}: no real provider is contacted. Campaigns you can stop:"]
    for name, sim in sandbox.simulators.items():
        for campaign in sim.campaigns.values():
            lines.append(f"  {name} {campaign.id:<26} {campaign.state:<10} {campaign.name}")
    return "\n".join(lines)


@cli.command()
@click.option("--sandbox", "use_sandbox", is_flag=True, help="Run the provider simulators in-process (demo).")
def shell(use_sandbox: bool) -> None:
    """Console front end: type commands as in Slack and confirm them here."""
    from bot.runtime import Runtime
    from bot.shell import run_shell

    setup_logging("WARNING")

    async def main() -> None:
        async with _runtime(use_sandbox) as (runtime, banner):
            assert isinstance(runtime, Runtime)
            await run_shell(runtime.service, banner=banner)

    asyncio.run(main())


@cli.command()
@click.argument("target")
@click.argument("campaign_id")
@click.option("--reason", default="", help="Why the campaign is stopped (kept in the audit log).")
@click.option("--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--sandbox", "use_sandbox", is_flag=True, help="Stop a campaign of the built-in sandbox.")
def stop(target: str, campaign_id: str, reason: str, assume_yes: bool, use_sandbox: bool) -> None:
    """One-shot stop for runbooks: TARGET is provider[:account]. The exit code says the outcome."""
    from bot.runtime import Runtime
    from bot.shell import ask_stdin, confirm_and_stop, console_actor

    setup_logging("WARNING")
    if not assume_yes and not sys.stdin.isatty():
        click.echo("Not confirmed: standard input is not a terminal; pass --yes to stop without asking.", err=True)
        sys.exit(EXIT_NOT_CONFIRMED)

    async def main() -> int:
        async with _runtime(use_sandbox) as (runtime, _banner):
            assert isinstance(runtime, Runtime)
            service = runtime.service
            try:
                command = service.parse(" ".join(part for part in (target, campaign_id, reason) if part))
            except UsageError as exc:
                click.echo(f"Error: {exc}", err=True)
                return EXIT_USAGE
            if isinstance(command, HelpCommand):
                click.echo(help_text(service.registry))
                return EXIT_USAGE
            result = await confirm_and_stop(
                command, service, console_actor(), ask_stdin, click.echo, assume_yes=assume_yes
            )
            if result is None:
                return EXIT_NOT_CONFIRMED
            if result.outcome is None:
                return EXIT_NOT_CONFIRMED
            return EXIT_CODES[result.outcome.status]

    sys.exit(asyncio.run(main()))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8800, show_default=True)
def sandbox(host: str, port: int) -> None:
    """Serve the provider simulators (for manual tests and benchmarks)."""
    from bot.providers.registry import ADAPTER_CLASSES
    from bot.sandbox.server import Sandbox

    setup_logging("INFO")
    import uvicorn

    box = Sandbox()
    base = f"http://{host}:{port}"
    click.echo(f"Sandbox on {base} (control API: {base}/_sandbox). Point the app at it with:")
    for provider, named in box.accounts(base).items():
        for values in named.values():
            for key, value in values.items():
                prefix = next(c.env_prefix for c in ADAPTER_CLASSES if c.name == provider)
                click.echo(f"  export {prefix}{key.upper()}={value}")
    uvicorn.run(box.app, host=host, port=port, log_level="info", access_log=False)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stopcampaign")


if __name__ == "__main__":
    main()
