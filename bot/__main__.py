"""Command line: ``python -m bot serve | socket | shell | stop | sandbox`` (also ``stopcampaign …``)."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.config import AppConfig, ConfigError, load_config
from bot.core.models import OutcomeStatus
from bot.core.parsing import HistoryCommand, StatusCommand, StopCommand, UsageError
from bot.logs import setup_logging

if TYPE_CHECKING:
    import uvicorn

    from bot.runtime import Runtime
    from bot.sandbox.server import Sandbox

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
EXPORT_EXCLUDES = {"response_url", "response_url_at"}
"""Never exported: a response_url lets whoever holds it post as the app for 30 minutes."""
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
        click.echo(f"configuration problem: {', '.join(missing)}: required by `serve`", err=True)
        sys.exit(EXIT_USAGE)
    setup_logging(settings.log_level, json_lines=settings.log_format == "json")
    bind_host, bind_port = host or settings.host, settings.port if port is None else port
    _check_database(config)
    try:
        sock = bind_socket(bind_host, bind_port)
    except OSError as exc:
        click.echo(f"Cannot listen on {bind_host}:{bind_port}: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)
    _serve_metrics(settings.metrics_port, bind_host)
    server = uvicorn.Server(
        uvicorn.Config(
            create_web_app(config),
            log_config=None,  # uvicorn logs through our handler: JSON lines like everything else
            log_level=settings.log_level.lower(),
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    logging.getLogger("bot").info("stopcampaign listening on http://%s:%s", bind_host, bind_port)
    server.run(sockets=[sock])


def _check_database(config: AppConfig) -> None:
    """Open the store once before serving: an unreachable or unusable database is one line, exit 2."""
    from bot.store.repository import Store, StoreError

    async def check() -> None:
        store = Store.from_url(config.settings.database_url)
        try:
            await store.initialize(migrate=config.settings.migrate_on_start)
        finally:
            await store.close()

    try:
        asyncio.run(check())
    except StoreError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


def _serve_metrics(port: int | None, host: str) -> None:
    """With METRICS_PORT, /metrics on a port of its own (Prometheus' own server, in a thread)."""
    if port is None:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        click.echo(f"METRICS_PORT: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)


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
        click.echo(f"configuration problem: {', '.join(missing)}: required by `socket`", err=True)
        sys.exit(EXIT_USAGE)
    setup_logging(settings.log_level, json_lines=settings.log_format == "json")
    _check_database(config)
    _serve_metrics(settings.metrics_port, settings.host)
    asyncio.run(_socket(config))


async def _socket(config: AppConfig) -> None:
    from bot.runtime import Runtime
    from bot.slack.socket_mode import socket_mode_handler

    runtime = await Runtime.open(config, announce_in_slack=True)
    try:
        handler = socket_mode_handler(config.settings, runtime.service, runtime.tasks, runtime.slack_health)
        runtime.start_background_loops()
        status = await _serve_status(runtime, config)
        try:
            await handler.start_async()  # type: ignore[no-untyped-call]
        finally:
            status.should_exit = True
    finally:
        await runtime.close()


async def _serve_status(runtime: Runtime, config: AppConfig) -> uvicorn.Server:
    """Socket Mode is observable too: ``/healthz`` and ``/metrics`` on PORT (HOST)."""
    import uvicorn

    from bot.httpserver import bind_socket
    from bot.web import create_status_app

    settings = config.settings
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        click.echo(f"PORT: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", err=True)
        sys.exit(EXIT_USAGE)
    server = uvicorn.Server(
        uvicorn.Config(create_status_app(runtime, settings.metrics_token), log_config=None, access_log=False,
                       lifespan="off", log_level=settings.log_level.lower())
    )
    asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    logging.getLogger("bot").info("socket mode: /healthz and /metrics on http://%s:%s", settings.host, settings.port)
    return server


async def _open(config: AppConfig, *, announce_in_slack: bool = False) -> Runtime:
    """Open the runtime for a CLI command; a database that cannot be used is one line, exit 2."""
    from bot.runtime import Runtime
    from bot.store.repository import StoreError

    try:
        return await Runtime.open(config, announce_in_slack=announce_in_slack)
    except StoreError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


@asynccontextmanager
async def _runtime(use_sandbox: bool) -> AsyncIterator[tuple[Runtime, str]]:
    """A runtime for the console: real config, or every provider pointed at an in-process sandbox."""

    if not use_sandbox:
        config = _load()
        for warning in config.warnings:
            click.echo(f"warning: {warning}", err=True)
        # With Slack configured, console and CLI outcomes are announced like Slack's own: in the
        # request's channel (when it has one) and the incident channel, through the same outbox.
        runtime = await _open(config, announce_in_slack=config.settings.slack_bot_token is not None)
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
        runtime = await _open(config)
        banner = _sandbox_banner(sandbox, server.url, config.settings.database_url)
        try:
            yield runtime, banner
        finally:
            await runtime.close(drain_timeout=2)
            sandbox.release_held()
            await server.stop()


def _sandbox_banner(sandbox: Sandbox, url: str, database: str) -> str:
    lines = [
        f"Sandbox running at {url}: no real provider is contacted, nothing is posted to Slack, and",
        f"requests go to a throwaway store ({database.removeprefix('sqlite:///')}, deleted on exit).",
        "Campaigns you can stop:",
    ]
    for name, sim in sandbox.simulators.items():
        for campaign in sim.campaigns.values():
            lines.append(f"  {name} {campaign.id:<26} {campaign.state:<10} {campaign.name}")
    return "\n".join(lines)


@cli.command()
@click.option("--sandbox", "use_sandbox", is_flag=True, help="Run the provider simulators in-process (demo).")
def shell(use_sandbox: bool) -> None:
    """Console front end: type commands as in Slack and confirm them here."""
    from bot.shell import console_actor, run_shell

    setup_logging("WARNING")

    async def main() -> None:
        async with _runtime(use_sandbox) as (runtime, banner):
            await run_shell(runtime.service, banner=banner, actor=console_actor())

    asyncio.run(main())


@cli.command()
@click.argument("target")
@click.argument("campaign_id")
@click.option("--reason", default="", help="Why the campaign is stopped (kept in the audit log).")
@click.option("--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--sandbox", "use_sandbox", is_flag=True, help="Stop a campaign of the built-in sandbox.")
def stop(target: str, campaign_id: str, reason: str, assume_yes: bool, use_sandbox: bool) -> None:
    """One-shot stop for runbooks: TARGET is provider[:account]. The exit code says the outcome."""
    from bot.shell import ask_stdin, confirm_and_stop, console_actor

    setup_logging("WARNING")
    if not assume_yes and not sys.stdin.isatty():
        click.echo("Not confirmed: standard input is not a terminal; pass --yes to stop without asking.", err=True)
        sys.exit(EXIT_NOT_CONFIRMED)

    async def main() -> int:
        async with _runtime(use_sandbox) as (runtime, banner):
            if banner:
                click.echo("\n".join(banner.splitlines()[:2]), err=True)  # what a demo touches
            service = runtime.service
            try:
                command = service.parse(" ".join(part for part in (target, campaign_id, reason) if part))
            except UsageError as exc:
                click.echo(f"Error: {exc}", err=True)
                return EXIT_USAGE
            if not isinstance(command, StopCommand):
                click.echo(service.help(), err=True)
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
@click.argument("request_id")
@click.option("--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
def approve(request_id: str, assume_yes: bool) -> None:
    """Confirm (or, under the two-person rule, approve) a pending request by its id."""
    from bot.core.render import outcome_text
    from bot.shell import ask_stdin, console_actor

    setup_logging("WARNING")

    async def main() -> int:
        async with _runtime(False) as (runtime, _banner):
            if not assume_yes:
                if not sys.stdin.isatty():
                    click.echo("Not confirmed: pass --yes to approve without asking.", err=True)
                    return EXIT_NOT_CONFIRMED
                answer = await ask_stdin(f"Approve and stop request {request_id}? [yes/N]: ")
                if answer.strip().lower() not in ("y", "yes"):
                    return EXIT_NOT_CONFIRMED
            service = runtime.service
            result = await service.confirm(request_id, console_actor(), replace_card=True)
            if result.outcome is None or result.request is None:
                click.echo(f"Not stopped: {result.refusal}", err=True)
                return EXIT_NOT_CONFIRMED
            facts = service.facts(result.request.provider, result.request.account)
            click.echo(outcome_text(result.request, result.outcome, facts))
            return EXIT_CODES[result.outcome.status]

    sys.exit(asyncio.run(main()))


@cli.command()
@click.argument("target", required=False)
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for export.")
def history(target: str | None, limit: int, as_json: bool) -> None:
    """The latest stop requests you may see, optionally of one provider[:account]."""
    from bot.shell import console_actor, show_lookup

    setup_logging("WARNING")

    async def main() -> int:
        async with _runtime(False) as (runtime, _banner):
            service = runtime.service
            try:
                command = service.parse(f"history {target or ''}".strip())
            except UsageError as exc:
                click.echo(f"Error: {exc.problem}", err=True)
                return EXIT_USAGE
            assert isinstance(command, HistoryCommand)
            viewer = console_actor()
            if as_json:
                for request in await service.history(viewer, command.provider, command.account, limit):
                    click.echo(request.model_dump_json(exclude=EXPORT_EXCLUDES))
                return 0
            await show_lookup(HistoryCommand(command.provider, command.account, limit), service, viewer, click.echo)
            return 0

    sys.exit(asyncio.run(main()))


@cli.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="The request and its audit trail as JSON.")
def status(request_id: str, as_json: bool) -> None:
    """One request's whole audit trail (if the policy lets you see it)."""
    import json

    from bot.core.policy import PolicyRefusal
    from bot.shell import console_actor, show_lookup

    setup_logging("WARNING")

    async def main() -> int:
        async with _runtime(False) as (runtime, _banner):
            viewer = console_actor()
            if as_json:
                try:
                    request, trail = await runtime.service.trail(viewer, request_id)
                except PolicyRefusal as refusal:
                    click.echo(f"Not allowed: {refusal.message}", err=True)
                    return 6
                if request is None:
                    click.echo(f"No request {request_id}.", err=True)
                    return 4
                document = {
                    "request": request.model_dump(mode="json", exclude=EXPORT_EXCLUDES),
                    "audit": [entry.model_dump(mode="json") for entry in trail],
                }
                click.echo(json.dumps(document, indent=2))
                return 0
            return 0 if await show_lookup(StatusCommand(request_id), runtime.service, viewer, click.echo) else 4

    sys.exit(asyncio.run(main()))


@cli.command()
def migrate() -> None:
    """Bring the database schema to the newest revision (the Procfile's release phase runs this)."""
    from bot.store.migrate import upgrade
    from bot.store.repository import Store, StoreError, one_line

    config = _load()

    async def main() -> str:
        store = Store.from_url(config.settings.database_url)
        try:
            return await upgrade(store.engine)
        except Exception as exc:
            raise StoreError(f"DATABASE_URL: cannot migrate the database ({one_line(exc)})") from None
        finally:
            await store.close()

    try:
        revision = asyncio.run(main())
    except StoreError as exc:
        click.echo(f"Migration failed: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"Database schema at revision {revision}.")


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
