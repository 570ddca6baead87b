"""The core's Prometheus metrics (the front ends and adapters keep theirs in ``bot.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

STOPS = Counter("stopcampaign_stops_total", "Stops executed, by outcome", ["provider", "account", "outcome"])
OUTBOX_DEPTH = Gauge("stopcampaign_outbox_depth", "Outcome posts waiting for Slack to take them")
REFUSALS = Counter("stopcampaign_refusals_total", "Actions refused by the policy", ["rule"])
