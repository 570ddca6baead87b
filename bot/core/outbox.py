"""Delivering what outcomes owe (their channel post, the incident channel post), with leases and backoff.

An outcome is stored together with its posts in one transaction; this module posts them one by
one, by whichever process gets to them first. Each post is leased before it is made, so several
processes never make the same one: the lease (`LEASE_SECONDS`) outlives the longest a post may
take (`POST_CAP_SECONDS`, which bounds the Slack client's own rate-limit sleeps and retries), and
marking a post delivered succeeds only for the holder of its lease. A post Slack cannot take now
is retried with backoff (or after Slack's Retry-After); a permanent refusal is recorded and not
retried.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from bot.core.metrics import OUTBOX_DEPTH
from bot.core.models import RequestState, StopRequest, utcnow
from bot.core.ports import DeliveryError, Notifier, OutboxPost, Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
POST_CAP_SECONDS = 45.0
"""No post may take longer than this (well inside its lease); a slower one is tried again later."""
MAX_ATTEMPTS = 30
"""Retries back off 2, 4, 8… up to 300 s: 30 attempts cover about two hours of Slack outage."""
CARD = "card"
"""The outbox target of a card's own update (through its reply link), as opposed to channel posts."""
CARD_CONCURRENCY = 8
"""Card updates made at once in one pass (each may wait on Slack up to its own timeout)."""
HOLD_RETRY_SECONDS = 60
"""How often a post held by a refused token is tried again (it is never given up)."""


class Outbox:
    """Posts owed outcomes through the notifier."""

    def __init__(self, store: Store, notifier: Notifier, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.notifier = notifier
        self.lease_seconds = lease_seconds

    async def deliver(self, request_id: str | None = None) -> int:
        """Post what is owed (one request's, or every due one); returns how many got through.

        Channel posts go one by one, in order; card updates (housekeeping, each through its own
        reply link) go after them, a few at a time, so a slow Slack holds neither."""
        sent = 0
        due = await self.store.due_deliveries(request_id)
        for delivery in (d for d in due if d.target != CARD):
            lease = await self.store.claim_delivery(delivery.id, self.lease_seconds)
            if lease is not None and await self._post(delivery, lease):
                sent += 1
        cards = [d for d in due if d.target == CARD]
        if cards:
            gate = asyncio.Semaphore(CARD_CONCURRENCY)

            async def one(delivery: OutboxPost) -> bool:
                async with gate:
                    lease = await self.store.claim_delivery(delivery.id, self.lease_seconds)
                    return lease is not None and await self._post(delivery, lease)

            sent += sum(await asyncio.gather(*(one(d) for d in cards)))
        if request_id is not None and sent:
            # The outcome may have come while the live record was being posted: update it now.
            for delivery in await self.store.due_deliveries(request_id):
                lease = await self.store.claim_delivery(delivery.id, self.lease_seconds)
                if lease is not None and await self._post(delivery, lease):
                    sent += 1
        if request_id is None:
            OUTBOX_DEPTH.set(await self.store.outbox_depth())
        return sent

    async def _post(self, delivery: OutboxPost, lease: str) -> bool:
        request = await self.store.get(delivery.request_id)
        if request is None:
            await self.store.delivery_failed(delivery, "the request is gone", None, lease)
            return False
        if delivery.target == CARD:
            return await self._update_card(request, delivery, lease)
        if request.outcome is None and request.state in (RequestState.CANCELLED, RequestState.EXPIRED):
            if delivery.message_ts is None:  # never shown: nothing to end
                await self.store.delivered(delivery, None, lease)
                return True
        elif request.outcome is None and request.state not in (RequestState.PENDING, RequestState.EXECUTING):
            await self.store.delivery_failed(delivery, "the request has no outcome to post", None, lease)
            return False
        link_ts = None
        if delivery.target != "channel":
            link_ts = await self.store.sent_message_ts(delivery.request_id, "channel")
        # One live record per channel: "… is stopping …" while the stop runs, then the outcome in
        # place of it (or a new message when the outcome came before the record could be posted).
        started = request.outcome is None and request.state in (RequestState.PENDING, RequestState.EXECUTING)
        try:
            async with asyncio.timeout(min(POST_CAP_SECONDS, self.lease_seconds * 0.75)):
                ts, note = await self._send(request, delivery, link_ts)
        except Exception as exc:
            await self._failed(delivery, lease, exc)
            return False
        posted = request.outcome.model_dump_json() if request.outcome is not None else None
        if not await self.store.delivered(delivery, ts, lease, started=started, note=note, posted_outcome=posted):
            log.error(
                "outcome post to %s outlived its lease; another process may have posted it too",
                delivery.target,
                extra={"request_id": delivery.request_id},
            )
            return False
        return True

    async def _send(
        self, request: StopRequest, delivery: OutboxPost, link_ts: str | None
    ) -> tuple[str | None, str | None]:
        """Make one post: its ts, and the refusal when it had to go another way (the reply link)."""
        if delivery.message_ts is None and delivery.attempts > 0:
            # An earlier attempt may have been accepted with its answer lost (its process died while
            # the chat service answered): update that message in place rather than post a second one.
            found = await self.notifier.find_post(request, delivery.target, delivery.channel)
            if found is not None:
                delivery = replace(delivery, message_ts=found)
        try:
            if request.outcome is None:
                # Waiting for approval, being stopped, or ended without a stop (cancelled, declined, expired).
                ts = await self.notifier.post_record(
                    request, delivery.target, delivery.channel, link_ts, delivery.message_ts
                )
            elif delivery.message_ts:
                trail = await self.store.audit(request.id)
                ts = await self.notifier.update(
                    request, request.outcome, delivery.target, delivery.channel, delivery.message_ts, link_ts, trail
                )
            else:
                ts = await self.notifier.post(request, request.outcome, delivery.target, delivery.channel, link_ts)
        except DeliveryError as exc:
            if not (exc.conversation_refused and delivery.target == "channel"):
                raise
            # The requester's conversation does not take the app's posts (a private channel or a DM
            # the app is not in): the outcome goes through the reply link Slack gave with the
            # command or the click; a passing record ("… is stopping …") is not worth one of its uses.
            if request.outcome is None:
                return None, exc.reason
            if await self.notifier.reply(request, request.outcome, exc.reason):
                return None, exc.reason
            raise DeliveryError(f"{exc.reason}, and no reply link is left", permanent=True) from None
        return ts, None

    async def _update_card(self, request: StopRequest, delivery: OutboxPost, lease: str) -> bool:
        """The requester's card shows how the request ended (its reply link lasts 30 minutes)."""
        try:
            async with asyncio.timeout(min(POST_CAP_SECONDS, self.lease_seconds * 0.75)):
                updated = await self.notifier.card_ended(request)
        except Exception as exc:
            await self._failed(delivery, lease, exc)
            return False
        if not updated:  # the link expired, is used up or was refused: nothing can make it work
            await self.store.delivery_failed(delivery, "the card's reply link did not take the update", None, lease)
            return False
        return await self.store.delivered(delivery, None, lease)

    async def _failed(self, delivery: OutboxPost, lease: str, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            exc = DeliveryError("the post took too long", permanent=False)
        reason = exc.reason if isinstance(exc, DeliveryError) else type(exc).__name__
        attempt = delivery.attempts + 1
        held = isinstance(exc, DeliveryError) and exc.hold
        final = (isinstance(exc, DeliveryError) and exc.permanent) or (attempt >= MAX_ATTEMPTS and not held)
        wait = float(min(HOLD_RETRY_SECONDS if held else 300, 2**attempt))
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, 3600.0))
        retry_at = None if final else utcnow() + timedelta(seconds=wait)
        # A held post (Slack refuses the token) was logged once where the trouble was seen.
        log.log(logging.DEBUG if held else logging.WARNING, "outcome post to %s failed: %s", delivery.target, reason,
                extra={"request_id": delivery.request_id})
        await self.store.delivery_failed(delivery, reason, retry_at, lease)
