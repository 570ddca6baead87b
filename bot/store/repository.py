"""The store: stop requests, their state transitions and the audit log (the outbox's rows are in
`bot.store.outbox`, the attempt log and group members in `bot.store.memory`).

Every state change is one conditional UPDATE (``… WHERE id = ? AND state IN (…)``) in the same
transaction as its audit line, so only one caller can win a transition, whatever the number of
clicks, retries or processes. SQLite is the default; the URL picks the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.models import (
    Actor,
    AuditEntry,
    CampaignInfo,
    Outcome,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.store.database import StoreError, append_audit, async_database_url, aware, one_line
from bot.store.memory import AttemptRows, GroupRows
from bot.store.outbox import OutboxRows
from bot.store.schema import audit_log, outbox, stop_requests

__all__ = ["Store", "StoreError", "async_database_url", "one_line"]

log = logging.getLogger(__name__)

PENDING_INSERT_WAIT = 5.0
"""How long a read waits for this process's own deferred inserts before answering without them."""


def _actor_json(actor: Actor | None) -> str | None:
    return actor.model_dump_json() if actor else None


def _actor(raw: str | None) -> Actor | None:
    return Actor.model_validate_json(raw) if raw else None


class Store(OutboxRows, AttemptRows, GroupRows):
    """Async repository over SQLAlchemy Core (the core's `Store` port): requests here, the rest inherited."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._inserting: dict[str, asyncio.Task[None]] = {}

    # ----- reading ----------------------------------------------------------------------------

    async def get(self, request_id: str) -> StopRequest | None:
        """One request by id, or None (a deferred insert of this process is waited for first)."""
        await self.saved(request_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(stop_requests).where(stop_requests.c.id == request_id))).first()
        return _to_request(row) if row else None

    async def due_for_expiry(self, now: datetime | None = None, limit: int = 100) -> list[StopRequest]:
        """Pending requests whose expiry has passed."""
        query = (
            select(stop_requests)
            .where(stop_requests.c.state == RequestState.PENDING.value)
            .where(stop_requests.c.expires_at <= (now or utcnow()))
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_to_request(row) for row in rows]

    async def pending_requests(self, limit: int = 50) -> list[StopRequest]:
        """Requests waiting for a confirmation (not yet expired), newest first."""
        query = (
            select(stop_requests)
            .where(stop_requests.c.state == RequestState.PENDING.value)
            .where(stop_requests.c.expires_at > utcnow())
            .order_by(stop_requests.c.created_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_to_request(row) for row in rows]

    async def pending_for_campaign(self, provider: str, account: str, campaign_id: str) -> list[StopRequest]:
        """Requests still waiting for a confirmation on one campaign, oldest first."""
        if self._inserting:
            await asyncio.wait([asyncio.shield(t) for t in list(self._inserting.values())], timeout=PENDING_INSERT_WAIT)
        query = (
            select(stop_requests)
            .where(stop_requests.c.state == RequestState.PENDING.value)
            .where(stop_requests.c.provider == provider)
            .where(stop_requests.c.account == account)
            .where(stop_requests.c.campaign_id == campaign_id)
            .where(stop_requests.c.expires_at > utcnow())
            .order_by(stop_requests.c.created_at)
            .limit(20)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_to_request(row) for row in rows]

    async def audit(self, request_id: str) -> list[AuditEntry]:
        """The audit trail of one request, oldest first."""
        query = select(audit_log).where(audit_log.c.request_id == request_id).order_by(audit_log.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(
                request_id=row.request_id,
                at=aware(row.at) or utcnow(),
                event=row.event,
                from_state=row.from_state,
                to_state=row.to_state,
                actor=row.actor,
                detail=json.loads(row.detail_json or "{}"),
            )
            for row in rows
        ]

    # ----- writing ----------------------------------------------------------------------------

    async def create(
        self, request: StopRequest, *, defer: bool = False, deliveries: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Store a new pending request and its first audit line (and, for a two-person request,
        the live record's posts it owes from now on).

        With `defer` the write runs in the background and this returns at once (a Slack ack need
        not wait for the database); `saved` tells whether it succeeded, and reads of the request
        in this process wait for it.
        """
        if not defer:
            await self._insert(request, deliveries)
            return
        task = asyncio.create_task(self._insert(request, deliveries), name=f"insert-{request.id}")
        self._inserting[request.id] = task
        task.add_done_callback(lambda done: self._inserted(request.id, done))

    def _inserted(self, request_id: str, task: asyncio.Task[None]) -> None:
        self._inserting.pop(request_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not save a stop request", exc_info=task.exception(), extra={"request_id": request_id})

    async def saved(self, request_id: str) -> bool:
        """Wait for this process's deferred insert of a request; True when it is (now) stored."""
        task = self._inserting.get(request_id)
        if task is None:
            return True
        try:
            await asyncio.shield(task)
        except Exception:
            return False
        return True

    async def _insert(self, request: StopRequest, deliveries: Sequence[tuple[str, str]] = ()) -> None:
        async with self._writing() as conn:
            await conn.execute(
                insert(stop_requests).values(
                    id=request.id,
                    provider=request.provider,
                    account=request.account,
                    campaign_id=request.campaign_id,
                    reason=request.reason,
                    requester_json=request.requester.model_dump_json(),
                    team_id=request.team_id,
                    channel_id=request.channel_id,
                    response_url=request.response_url,
                    state=request.state.value,
                    two_person=request.two_person,
                    created_at=request.created_at,
                    expires_at=request.expires_at,
                    updated_at=request.created_at,
                )
            )
            await append_audit(
                conn,
                request.id,
                "created",
                None,
                request.state,
                request.requester,
                {
                    "provider": request.provider,
                    "account": request.account,
                    "campaign_id": request.campaign_id,
                    "reason": request.reason,
                    "channel_id": request.channel_id,
                    "expires_at": request.expires_at.isoformat(),
                    "two_person": request.two_person,
                },
            )
            now = request.created_at
            for target, channel in deliveries:
                await conn.execute(
                    insert(outbox).values(
                        request_id=request.id, target=target, channel=channel, state="pending", attempts=0,
                        next_attempt_at=now, created_at=now, updated_at=now,
                    )
                )

    async def transition(
        self,
        request_id: str,
        from_states: Iterable[RequestState],
        to_state: RequestState,
        *,
        event_name: str,
        actor: Actor | None,
        values: dict[str, Any] | None = None,
        unexpired_at: datetime | None = None,
        expired_at: datetime | None = None,
        silent_for: timedelta | None = None,
        detail: dict[str, Any] | None = None,
        deliveries: Sequence[tuple[str, str]] = (),
        stamp: str | None = None,
        wake_posts: bool = False,
    ) -> bool:
        """Move a request from one of `from_states` to `to_state`; True only for the one winner.

        `unexpired_at` adds ``expires_at > t`` to the condition, `expired_at` adds ``expires_at <= t``,
        `silent_for` adds "no sign of life for that long" on the database's clock; `stamp` names a
        column set to the database's now (``confirmed_at``).
        """
        sources = [s.value for s in from_states]
        async with self._writing() as conn:
            now = await self._now(conn)
            changes = {**(values or {}), **({stamp: now} if stamp else {})}
            query = (
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state.in_(sources))
                .values(state=to_state.value, updated_at=now, **changes)
            )
            if unexpired_at is not None:
                query = query.where(stop_requests.c.expires_at > unexpired_at)
            if expired_at is not None:
                query = query.where(stop_requests.c.expires_at <= expired_at)
            if silent_for is not None:
                query = query.where(stop_requests.c.updated_at < now - silent_for)
            result = await conn.execute(query)
            if result.rowcount != 1:
                return False
            from_state = sources[0] if len(sources) == 1 else None
            await append_audit(conn, request_id, event_name, from_state, to_state, actor, detail or {})
            existing = set()
            if deliveries or wake_posts:
                owed = select(outbox.c.target, outbox.c.channel).where(outbox.c.request_id == request_id)
                existing = {(row[0], row[1]) for row in (await conn.execute(owed)).all()}
                # A live record posted at the click is now owed its update.
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.request_id == request_id)
                    .where(outbox.c.state == "started")
                    .values(state="pending", next_attempt_at=now, updated_at=now)
                )
            for target, channel in deliveries:
                if (target, channel) in existing:
                    continue
                await conn.execute(
                    insert(outbox).values(
                        request_id=request_id,
                        target=target,
                        channel=channel,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
        return True

    async def claim_for_execution(
        self,
        request_id: str,
        actor: Actor,
        now: datetime | None = None,
        deliveries: Sequence[tuple[str, str]] = (),
        response_url: str | None = None,
    ) -> bool:
        """pending → executing, for the one caller whose click wins, before the request expires;
        `deliveries` are the live record's posts ("… is stopping …"), owed from now on;
        `response_url` a newer reply link for the request's conversation (the click's)."""
        values: dict[str, Any] = {"confirmed_by_json": _actor_json(actor)}
        if response_url:
            values |= {"response_url": response_url, "response_url_at": utcnow()}
        return await self.transition(
            request_id,
            [RequestState.PENDING],
            RequestState.EXECUTING,
            event_name="confirmed",
            actor=actor,
            values=values,
            unexpired_at=now or utcnow(),
            stamp="confirmed_at",
            deliveries=deliveries,
        )

    async def cancel(self, request_id: str, actor: Actor, reason: str = "cancelled by the requester") -> bool:
        """pending → cancelled."""
        return await self.transition(
            request_id,
            [RequestState.PENDING],
            RequestState.CANCELLED,
            event_name="cancelled",
            actor=actor,
            values={"ended_by_json": _actor_json(actor), "end_reason": reason},
            wake_posts=True,  # a two-person request's live record says it ended
        )

    async def expire(
        self, request_id: str, now: datetime | None = None, deliveries: Sequence[tuple[str, str]] = ()
    ) -> bool:
        """pending → expired, only once the expiry has passed (`deliveries`: the card's update, owed)."""
        return await self.transition(
            request_id,
            [RequestState.PENDING],
            RequestState.EXPIRED,
            event_name="expired",
            actor=None,
            values={"end_reason": "the confirmation expired before anyone pressed Stop"},
            expired_at=now or utcnow(),
            wake_posts=True,
            deliveries=deliveries,
        )

    async def finish(self, request_id: str, outcome: Outcome, deliveries: Sequence[tuple[str, str]] = ()) -> bool:
        """executing → done, with the outcome and the posts it owes (written before anything is posted)."""
        return await self.transition(
            request_id,
            [RequestState.EXECUTING],
            RequestState.DONE,
            event_name="outcome",
            actor=outcome.confirmed_by,
            values={"outcome_json": outcome.model_dump_json()},
            detail={
                "status": outcome.status.value,
                "detail": outcome.detail,
                "provider": outcome.provider_detail(),
                "attempts": outcome.attempts,
                "elapsed_ms": outcome.elapsed_ms,
            },
            deliveries=deliveries,
        )

    async def claim_check(self, request_id: str, actor: Actor, *, outcome: Outcome, lease_seconds: float) -> bool:
        """Take a done request's "Check again" for `lease_seconds`, if its outcome is still `outcome`
        and nobody holds a check of it (one winner among clicks, in one process or several)."""
        async with self._writing() as conn:
            now = await self._now(conn)
            result = await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state == RequestState.DONE.value)
                .where(stop_requests.c.outcome_json == outcome.model_dump_json())
                .where(or_(stop_requests.c.checking_until.is_(None), stop_requests.c.checking_until <= now))
                .values(checking_until=now + timedelta(seconds=lease_seconds))
            )
            if result.rowcount != 1:
                return False
            await append_audit(conn, request_id, "checking_again", None, None, actor,
                               {"status": outcome.status.value})
        return True

    async def revise_outcome(
        self, request_id: str, outcome: Outcome, actor: Actor, *, previous: Outcome, quiet_seconds: float = 0
    ) -> bool:
        """Replace a done request's outcome ("Check again") if it is still `previous`, and make its
        posts due again (those already made, and those under way: a post that completes with the old
        outcome is made again). The check is held `quiet_seconds` more, so a double click does not
        check twice."""
        async with self._writing() as conn:
            now = await self._now(conn)
            result = await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state == RequestState.DONE.value)
                .where(stop_requests.c.outcome_json == previous.model_dump_json())
                .values(outcome_json=outcome.model_dump_json(), updated_at=now,
                        checking_until=now + timedelta(seconds=quiet_seconds))
            )
            if result.rowcount != 1:
                return False
            await append_audit(conn, request_id, "checked_again", None, None, actor,
                               {"status": outcome.status.value, "detail": outcome.detail})
            await conn.execute(
                update(outbox)
                .where(outbox.c.request_id == request_id)
                .where(outbox.c.state == "sent")
                .values(state="pending", next_attempt_at=now, attempts=0, updated_at=now)
            )
        return True

    async def end_check(self, request_id: str) -> None:
        """Give a Check again up without a revision (it failed): anyone may check again."""
        async with self._writing() as conn:
            await conn.execute(
                update(stop_requests).where(stop_requests.c.id == request_id).values(checking_until=None)
            )

    async def history(
        self,
        provider: str | None = None,
        account: str | None = None,
        limit: int = 10,
        only: Sequence[tuple[str, str]] | None = None,
    ) -> list[StopRequest]:
        """The latest requests, newest first, optionally of one provider (and account).

        Requests this process is still writing are waited for (briefly), so they are included.
        """
        if self._inserting:
            await asyncio.wait([asyncio.shield(t) for t in list(self._inserting.values())], timeout=PENDING_INSERT_WAIT)
        query = select(stop_requests).order_by(stop_requests.c.created_at.desc(), stop_requests.c.id).limit(limit)
        if provider is not None:
            query = query.where(stop_requests.c.provider == provider)
        if account is not None:
            query = query.where(stop_requests.c.account == account)
        if only is not None:
            if not only:
                return []
            query = query.where(
                or_(*(and_(stop_requests.c.provider == p, stop_requests.c.account == a) for p, a in only))
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_to_request(row) for row in rows]

    async def stuck_executing(self, silent_for: timedelta) -> list[StopRequest]:
        """Requests `executing` with no sign of life for `silent_for` (database clock): their process died."""
        async with self.engine.connect() as conn:
            now = await self._now(conn)
            query = (
                select(stop_requests)
                .where(stop_requests.c.state == RequestState.EXECUTING.value)
                .where(stop_requests.c.updated_at < now - silent_for)
            )
            rows = (await conn.execute(query)).all()
        return [_to_request(row) for row in rows]

    async def touch(self, request_id: str) -> None:
        """Heartbeat of a request being executed: it is alive, not stuck (database clock)."""
        async with self._writing() as conn:
            now = await self._now(conn)
            await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state == RequestState.EXECUTING.value)
                .values(updated_at=now)
            )

    async def release(self, request_id: str) -> None:
        """This process gives an executing request up (shutting down): any process may resume it now."""
        async with self._writing() as conn:
            await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state == RequestState.EXECUTING.value)
                .values(updated_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
            await append_audit(conn, request_id, "released", None, None, None, {"why": "the process shut down"})

    async def take_for_recovery(self, request_id: str, silent_for: timedelta) -> bool:
        """Claim a stuck request for recovery: one process wins (the update refreshes updated_at)."""
        return await self.transition(
            request_id,
            [RequestState.EXECUTING],
            RequestState.EXECUTING,
            event_name="recovering",
            actor=None,
            silent_for=silent_for,
        )

    async def refresh_response_url(self, request_id: str, response_url: str) -> None:
        """Keep a newer reply link for the request's conversation (a click's, issued now)."""
        async with self._writing() as conn:
            now = await self._now(conn)
            await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .values(response_url=response_url, response_url_at=now)
            )

    async def set_preview(self, request_id: str, preview: CampaignInfo | None, note: str | None = None) -> None:
        """Keep what the provider said about the campaign before the stop."""
        # The preview may come back before this process's deferred insert of the request has
        # committed (a busy database): its audit line must not race the row it points to.
        if not await self.saved(request_id):
            return
        async with self._writing() as conn:
            await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .values(preview_json=preview.model_dump_json() if preview else None)
            )
            detail: dict[str, Any] = {"preview": preview.model_dump(exclude_none=True) if preview else None}
            if note:
                detail["note"] = note
            await append_audit(conn, request_id, "preview", None, None, None, detail)

def _to_request(row: Row[Any]) -> StopRequest:
    return StopRequest(
        id=row.id,
        provider=row.provider,
        account=row.account,
        campaign_id=row.campaign_id,
        reason=row.reason or "",
        requester=Actor.model_validate_json(row.requester_json),
        team_id=row.team_id,
        channel_id=row.channel_id,
        response_url=row.response_url,
        response_url_at=aware(row.response_url_at),
        state=RequestState(row.state),
        two_person=bool(row.two_person),
        created_at=aware(row.created_at) or utcnow(),
        expires_at=aware(row.expires_at) or utcnow(),
        confirmed_by=_actor(row.confirmed_by_json),
        confirmed_at=aware(row.confirmed_at),
        ended_by=_actor(row.ended_by_json),
        end_reason=row.end_reason,
        preview=CampaignInfo.model_validate_json(row.preview_json) if row.preview_json else None,
        outcome=Outcome.model_validate_json(row.outcome_json) if row.outcome_json else None,
    )
