"""Prometheus metrics of the front ends and the adapters, served at ``/metrics`` (per process).

The core's own metrics (stops, refusals, outbox depth) are in `bot.core.metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

COMMANDS = Counter("stopcampaign_commands_total", "Slash commands answered, by kind", ["kind"])
PROVIDER_LATENCY = Histogram(
    "stopcampaign_provider_request_seconds",
    "Time of one HTTP exchange with a provider (limiter wait excluded)",
    ["provider", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SLACK_ERRORS = Counter("stopcampaign_slack_api_errors_total", "Slack API calls that failed", ["method", "error"])
LIMITER_FALLBACKS = Counter(
    "stopcampaign_limiter_fallbacks_total",
    "Provider calls sent under this process's own limits because the shared limiter (Redis) failed",
)
