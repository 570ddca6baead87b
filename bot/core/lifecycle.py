"""A stop request's life: created → (cancelled | expired | confirmed → executing → done).

Every transition is one conditional update in the store, so only one caller wins it whatever
the number of clicks, Slack retries or processes; this module asks the policy first and
explains a lost transition to the person who clicked.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from bot.core.context import request_id_var
from bot.core.metrics import REFUSALS
from bot.core.models import Actor, RequestState, StopRequest, utcnow
from bot.core.outbox import CARD
from bot.core.parsing import StopCommand
from bot.core.policy import Policy, PolicyRefusal
from bot.core.ports import Notifier, ProviderCatalog, Store
from bot.core.results import ClickResult, ReplyLink

log = logging.getLogger(__name__)

REREAD_AFTER = 0.25
"""A click on another process's brand-new request may come before its row: read once more after this."""
NO_SUCH_REQUEST = "This stop request does not exist."
DECLINED = "declined"
"""The end reason of a two-person request an approver turned down (``declined: <comment>``)."""


REQUEST_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
"""Lower-case letters and digits without the look-alikes (l, o, 0, 1): safe in URLs and shells,
never a leading '-' that a command line would take for an option."""
REQUEST_ID_LENGTH = 12
"""60 bits: unguessable in the lifetime of a card, short enough to read out or paste."""


def card_update(request: StopRequest) -> list[tuple[str, str]]:
    """The outbox delivery of a card's own update, when it has a reply link to update it through."""
    return [(CARD, "")] if request.response_url else []


def new_request_id() -> str:
    """A short, unguessable request id that is safe to type, paste and pass as an argument."""
    return "".join(secrets.choice(REQUEST_ID_ALPHABET) for _ in range(REQUEST_ID_LENGTH))


class Lifecycle:
    """Creates, claims, cancels and expires stop requests."""

    def __init__(
        self,
        store: Store,
        catalog: ProviderCatalog,
        policy: Policy,
        notifier: Notifier,
        *,
        ttl: timedelta = timedelta(minutes=10),
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.policy = policy
        self.notifier = notifier
        self.ttl = ttl

    async def create(
        self,
        command: StopCommand,
        requester: Actor,
        *,
        team_id: str | None = None,
        channel_id: str | None = None,
        response_url: str | None = None,
        defer: bool = False,
    ) -> StopRequest:
        """A pending request with an unguessable id; no provider call happens here.

        With `defer` the store writes it in the background (a Slack ack need not wait for the
        database). Raises `PolicyRefusal` (after auditing it) when the policy refuses.
        """
        try:
            rule = await self.policy.check_request(requester, command.provider, command.account, channel_id)
        except PolicyRefusal as refusal:
            REFUSALS.labels(refusal.rule).inc()
            await self.store.record(
                None,
                "refused",
                requester,
                {
                    "action": "request",
                    "rule": refusal.rule,
                    "provider": command.provider,
                    "account": command.account,
                    "campaign_id": command.campaign_id,
                    "channel_id": channel_id,
                },
            )
            raise
        now = utcnow()
        request = StopRequest(
            id=new_request_id(),
            provider=command.provider,
            account=command.account,
            campaign_id=command.campaign_id,
            reason=command.reason,
            requester=requester,
            team_id=team_id,
            channel_id=channel_id,
            response_url=response_url,
            state=RequestState.PENDING,
            two_person=rule.two_person,
            created_at=now,
            expires_at=now + self.ttl,
        )
        request_id_var.set(request.id)
        # A two-person request is public from the start: its live record waits for the approval.
        owed = self.notifier.targets(request) if request.two_person else []
        await self.store.create(request, defer=defer, deliveries=owed)
        return request

    async def load(self, request_id: str) -> StopRequest | None:
        """The request a click names. Another process's insert may land a moment after its card was
        shown, so a miss is read again once, shortly after."""
        request = await self.store.get(request_id)
        if request is None:
            await asyncio.sleep(REREAD_AFTER)
            request = await self.store.get(request_id)
        return request

    async def claim(
        self, request_id: str, actor: Actor, reply: ReplyLink | None = None
    ) -> StopRequest | ClickResult:
        """pending → executing for `actor`, when the policy allows: the claimed request, or why not.

        `reply` is where the click came from: a reply link issued in the request's own
        conversation replaces the command's (it lasts 30 minutes from the click)."""
        request_id_var.set(request_id)
        request = await self.load(request_id)
        if request is None:
            return ClickResult(None, refusal=NO_SUCH_REQUEST)
        if request.state is RequestState.PENDING and not request.is_expired():
            try:
                await self.policy.check_confirm(actor, request)
            except PolicyRefusal as refusal:
                return await self._refuse(request, actor, "confirm", refusal)
        # The live record (one message per channel, updated with the outcome) is owed from the click.
        fresh = reply.url if reply is not None and reply.fits(request) else None
        if not await self.store.claim_for_execution(
            request_id, actor, deliveries=self.notifier.targets(request), response_url=fresh
        ):
            return await self.why_not(request_id, actor)
        update: dict[str, object] = {"state": RequestState.EXECUTING, "confirmed_by": actor}
        if fresh:
            update |= {"response_url": fresh, "response_url_at": utcnow()}
        return request.model_copy(update=update)

    async def cancel(self, request_id: str, actor: Actor) -> ClickResult:
        """End a pending request without any provider call."""
        request_id_var.set(request_id)
        request = await self.load(request_id)
        if request is None:
            return ClickResult(None, refusal=NO_SUCH_REQUEST)
        if request.state is RequestState.PENDING:
            try:
                self.policy.check_cancel(actor, request)
            except PolicyRefusal as refusal:
                return await self._refuse(request, actor, "cancel", refusal)
        if not await self.store.cancel(request_id, actor):
            return await self.why_not(request_id, actor)
        return ClickResult(await self.store.get(request_id))

    async def decline(self, request_id: str, actor: Actor, comment: str = "") -> ClickResult:
        """An approver turns down a two-person request (with an optional comment); nothing is sent."""
        request_id_var.set(request_id)
        request = await self.load(request_id)
        if request is None:
            return ClickResult(None, refusal=NO_SUCH_REQUEST)
        if request.state is RequestState.PENDING:
            try:
                if not request.two_person:
                    raise PolicyRefusal("decline", "Only two-person requests can be declined; the requester cancels.")
                self.policy.check_not_requester(actor, request)
                await self.policy.check_confirm(actor, request)
            except PolicyRefusal as refusal:
                return await self._refuse(request, actor, "decline", refusal)
        reason = f"{DECLINED}: {comment}" if comment else DECLINED
        if not await self.store.cancel(request_id, actor, reason=reason[:500]):
            return await self.why_not(request_id, actor)
        return ClickResult(await self.store.get(request_id))

    async def expire_due(self) -> list[StopRequest]:
        """Expire every pending request past its expiry; returns those this call expired."""
        expired: list[StopRequest] = []
        for request in await self.store.due_for_expiry():
            # The card's update is owed through the outbox, never made here: a slow Slack must not
            # hold the sweep (nor what comes after it).
            if not await self.store.expire(request.id, deliveries=card_update(request)):
                continue
            expired.append(request.model_copy(update={"state": RequestState.EXPIRED}))
        return expired

    async def why_not(self, request_id: str, actor: Actor | None = None) -> ClickResult:
        """Explain why a transition was lost (and expire a request found past its expiry), to
        `actor` only as far as the policy lets them see the request (as ``status`` would)."""
        request = await self.store.get(request_id)
        if request is None:
            return ClickResult(None, refusal=NO_SUCH_REQUEST)
        if actor is not None:
            try:
                await self.policy.check_view(actor, request)
            except PolicyRefusal as refusal:
                return ClickResult(None, refusal=f"Not allowed: {refusal.message}")
        if request.state is RequestState.PENDING and request.is_expired():
            await self.store.expire(request_id, deliveries=card_update(request))
            request = await self.store.get(request_id) or request
        if request.state is RequestState.EXPIRED:
            kind = self.catalog.kind(request.provider)
            name = kind.display_name if kind is not None else request.provider
            return ClickResult(
                request,
                refusal=f"This request expired before it was confirmed; nothing was sent to {name}. "
                "Run /stopcampaign again.",
            )
        if request.state is RequestState.CANCELLED:
            who = request.ended_by.display if request.ended_by else "someone"
            return ClickResult(request, refusal=f"This request was cancelled by {who}.")
        if request.state is RequestState.EXECUTING:
            who = request.confirmed_by.display if request.confirmed_by else "someone"
            return ClickResult(request, refusal=f"This stop is already running (confirmed by {who}).")
        status = request.outcome.status.label if request.outcome else "done"
        return ClickResult(request, refusal=f"This request has already ended: {status}.")

    async def _refuse(self, request: StopRequest, actor: Actor, action: str, refusal: PolicyRefusal) -> ClickResult:
        REFUSALS.labels(refusal.rule).inc()
        await self.store.record(request.id, "refused", actor, {"action": action, "rule": refusal.rule})
        return ClickResult(request, refusal=refusal.message)
