"""Delivering what outcomes owe (their channel post, the incident channel post), with leases and backoff.

An outcome is stored together with its posts in one transaction; this module posts them one by
one, by whichever process gets to them first. Each post is leased before it is made, so several
processes never make the same one; a post Slack cannot take now is retried with backoff, and a
permanent refusal is recorded and not retried.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.core.metrics import OUTBOX_DEPTH
from bot.core.models import utcnow
from bot.core.ports import DeliveryError, Notifier, Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 30
"""Retries back off 2, 4, 8… up to 300 s: 30 attempts cover about two hours of Slack outage."""


class Outbox:
    """Posts owed outcomes through the notifier."""

    def __init__(self, store: Store, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier

    async def deliver(self, request_id: str | None = None) -> int:
        """Post what is owed (one request's, or every due one); returns how many got through."""
        sent = 0
        for delivery in await self.store.due_deliveries(request_id):
            if not await self.store.claim_delivery(delivery.id, LEASE_SECONDS):
                continue
            request = await self.store.get(delivery.request_id)
            if request is None or request.outcome is None:
                await self.store.delivery_failed(delivery, "the request or its outcome is gone", None)
                continue
            link_ts = None
            if delivery.target != "channel":
                link_ts = await self.store.sent_message_ts(delivery.request_id, "channel")
            try:
                ts = await self.notifier.post(request, request.outcome, delivery.target, delivery.channel, link_ts)
            except Exception as exc:
                reason = exc.reason if isinstance(exc, DeliveryError) else type(exc).__name__
                attempt = delivery.attempts + 1
                final = (isinstance(exc, DeliveryError) and exc.permanent) or attempt >= MAX_ATTEMPTS
                retry_at = None if final else utcnow() + timedelta(seconds=min(300, 2**attempt))
                log.warning(
                    "outcome post to %s failed: %s", delivery.target, reason, extra={"request_id": delivery.request_id}
                )
                await self.store.delivery_failed(delivery, reason, retry_at)
                continue
            await self.store.delivered(delivery, ts)
            sent += 1
        if request_id is None:
            OUTBOX_DEPTH.set(await self.store.outbox_depth())
        return sent
