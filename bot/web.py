"""The ASGI app: ``POST /slack/events`` (commands and buttons) and ``GET /healthz``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import AppConfig
from bot.runtime import Runtime
from bot.slack.app import create_slack_app

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000  # Slack payloads are far smaller; refuse anything absurd before parsing


def create_web_app(config: AppConfig) -> Starlette:
    """Build the web app; the store and adapters open in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for warning in config.warnings:
            log.warning(warning)
        runtime = await Runtime.open(config, announce_in_slack=True)
        slack_app = create_slack_app(config.settings, runtime.service, runtime.tasks)
        app.state.runtime = runtime
        app.state.handler = AsyncSlackRequestHandler(slack_app)
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
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            response: Response = await request.app.state.handler.handle(request)
        except Exception:
            # Bolt verifies the signature first, so only signed but malformed payloads get here.
            log.exception("could not handle a Slack request")
            return JSONResponse({"error": "malformed Slack request"}, status_code=400)
        return response

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        store_ok = await runtime.store.ping()
        degraded: dict[str, str] = {}
        if not store_ok:
            degraded["store"] = "the database does not answer"
        if not await runtime.limiters.ping():
            degraded["rate_limits"] = "the shared limiter (Redis) does not answer; limits are kept per process"
        body: dict[str, object] = {
            "status": "degraded" if degraded else "ok",
            "store": "ok" if store_ok else "unreachable",
            "providers": [kind.name for kind in runtime.registry.configured()],
        }
        if degraded:
            body["degraded"] = degraded
        # Only a store that cannot be reached makes the process unfit to serve; stops still go out
        # without Redis.
        return JSONResponse(body, status_code=200 if store_ok else 503)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
