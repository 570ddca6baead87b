"""The ASGI app: ``POST /slack/events`` (commands and buttons) and ``GET /healthz``."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import AppConfig, ConfigError
from bot.runtime import Runtime
from bot.slack.app import create_slack_app
from bot.slack.gate import Refused, check_signature, read_body
from bot.slack.guard import is_ssl_check

log = logging.getLogger(__name__)

def metrics_endpoint(token: SecretStr | None, *, public: bool) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: with `token`, only for ``Authorization: Bearer <token>``; without one,
    served only where `public` (a port of its own), else 404."""

    async def metrics(request: Request) -> Response:
        if token is None:
            if public:
                return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
            return JSONResponse({"error": "not found"}, status_code=404)
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
            return JSONResponse({"error": "a bearer token is required"}, status_code=401)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return metrics


async def healthz(request: Request) -> Response:
    """``GET /healthz``: whether this process can take stops, and what is degraded, no internals."""
    runtime: Runtime = request.app.state.runtime
    if not await runtime.store.ping():
        reason = "the database did not answer within 2 s: stops cannot be taken now"
        return JSONResponse({"status": "unavailable", "degraded": ["store"], "reasons": {"store": reason}},
                            status_code=503)
    problems: dict[str, str] = {}
    if not await runtime.limiters.ping():
        problems["rate_limits"] = "Redis is unreachable: each process keeps the providers' limits on its own"
    if runtime.slack is not None:
        problems |= {problem.name: problem.plain for problem in runtime.slack.health.problems()}
    # Stops still go out without Redis (under local limits) or with Slack refusing posts (they are
    # kept owed): degraded, not down.
    body: dict[str, object] = {"status": "degraded" if problems else "ok"}
    if problems:
        body["degraded"] = list(problems)
        body["reasons"] = problems
    return JSONResponse(body)


def create_status_app(runtime: Runtime, metrics_token: SecretStr | None) -> Starlette:
    """``/healthz`` and ``/metrics`` alone, over an open runtime (Socket Mode serves these on PORT)."""
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint(metrics_token, public=True), methods=["GET"]),
        ]
    )
    app.state.runtime = runtime
    return app


def create_web_app(config: AppConfig) -> Starlette:
    """Build the web app; the store and adapters open in its lifespan."""
    if config.settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required to verify requests from Slack")
    signing_secret = config.settings.slack_signing_secret.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for warning in config.warnings:
            log.warning(warning)
        runtime = await Runtime.open(config, announce_in_slack=True)
        slack_app = create_slack_app(config.settings, runtime.service, runtime.tasks, runtime.slack_health)
        app.state.runtime = runtime
        app.state.slack_app = slack_app
        runtime.start_background_loops()
        log.info(
            "stopcampaign ready; providers: %s",
            ", ".join(kind.name for kind in runtime.registry.configured()) or "none",
        )
        try:
            yield
        finally:
            await runtime.close()

    async def slack_events(request: Request) -> Response:
        # Read with a cap and verify the signature on the raw bytes before anything parses them.
        try:
            body = await read_body(request)
            if len(body) < 1024 and b"ssl_check" in body and is_ssl_check(parse_qs(body.decode("ascii", "replace"))):
                return Response(status_code=200)  # Slack's probe of the URL comes unsigned: nothing to act on
            check_signature(signing_secret, body, request)
        except Refused as refused:
            log.warning("refused a request to /slack/events: %s", refused.reason)
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        problem = None
        try:
            text = body.decode("utf-8")
            if not isinstance(parse_body(text, request.headers.get("content-type")), dict):
                problem = "the payload is not an object"
        except Exception as exc:  # signed, but not a payload anyone can read (bad UTF-8, bad JSON…)
            problem = f"unreadable ({type(exc).__name__})"
        if problem is not None:
            log.warning("refused a signed Slack payload: %s", problem)
            return JSONResponse({"error": f"malformed payload: {problem}"}, status_code=400)
        grouped: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            grouped.setdefault(name, []).append(value)
        headers: dict[str, str | Sequence[str]] = dict(grouped)
        try:
            bolt_request = AsyncBoltRequest(body=text, query=request.url.query, headers=headers)
            bolt_response = await request.app.state.slack_app.async_dispatch(bolt_request)
        except Exception as exc:  # a shape the checks above missed: answered, logged once
            log.error("could not handle a signed Slack payload (%s)", type(exc).__name__)
            log.debug("Slack payload failure", exc_info=exc)
            return JSONResponse({"error": "malformed payload"}, status_code=400)
        return to_starlette_response(bolt_response)

    metrics = metrics_endpoint(config.settings.metrics_token, public=False)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
