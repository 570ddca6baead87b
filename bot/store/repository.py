"""The store: stop requests, their state transitions and the audit log.

Every state change is one conditional UPDATE (``… WHERE id = ? AND state IN (…)``) in the same
transaction as its audit line, so only one caller can win a transition, whatever the number of
clicks, retries or processes. SQLite is the default; the URL picks the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from bot.core.models import (
    Actor,
    Attempt,
    AttemptState,
    AuditEntry,
    CampaignInfo,
    Outcome,
    RequestState,
    StopRequest,
    utcnow,
)
from bot.core.ports import OutboxPost
from bot.store.migrate import current_revision, head_revision, upgrade
from bot.store.schema import audit_log, group_members, outbox, stop_attempts, stop_requests

log = logging.getLogger(__name__)

ENDED_STATES = (RequestState.DONE.value, RequestState.CANCELLED.value, RequestState.EXPIRED.value)
"""A live record of a request in one of these states is owed its last update."""
PENDING_INSERT_WAIT = 5.0
"""How long a read waits for this process's own deferred inserts before answering without them."""


class StoreError(Exception):
    """The database could not be used; the message says what to check."""


def async_database_url(url: str) -> str:
    """Map a plain database URL to its async driver (``sqlite://`` → ``sqlite+aiosqlite://``)."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def one_line(exc: BaseException) -> str:
    """An error as one short line: its type and the first line of its message (SQLAlchemy adds a
    background link on later lines), without a password that a driver may echo."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", first)
    return f"{type(exc).__name__}: {first}"[:240] if first else type(exc).__name__


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _actor_json(actor: Actor | None) -> str | None:
    return actor.model_dump_json() if actor else None


def _actor(raw: str | None) -> Actor | None:
    return Actor.model_validate_json(raw) if raw else None


class Store:
    """Async repository over SQLAlchemy Core (the core's `Store` port)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite takes one writer at a time; writers queued in its busy handler wait in steps of up
        # to 100 ms and unfairly, so this process hands the write lock out itself, in order.
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._inserting: dict[str, asyncio.Task[None]] = {}

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (one at a time per process on SQLite)."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @classmethod
    def from_url(cls, url: str) -> Store:
        """Build a store for a database URL (not yet connected)."""
        async_url = async_database_url(url)
        try:
            engine = create_async_engine(async_url, pool_pre_ping=not async_url.startswith("sqlite"))
        except Exception as exc:  # SQLAlchemy raises several types for bad URLs
            raise StoreError(f"DATABASE_URL is not usable: {type(exc).__name__}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    async def initialize(self, migrate: bool = True) -> None:
        """Bring the schema to the newest revision, or with `migrate` off, check that it is there."""
        try:
            if migrate:
                await upgrade(self.engine)
                return
            current = await current_revision(self.engine)
        except Exception as exc:
            raise StoreError(f"DATABASE_URL: cannot open the database ({one_line(exc)})") from None
        if current != head_revision():
            raise StoreError(
                f"the database schema is at revision {current or 'none'}, this code needs {head_revision()}: "
                "run `python -m bot migrate` (the Procfile's release phase does it)"
            )

    async def _now(self, conn: AsyncConnection) -> datetime:
        """The database's clock (UTC), so that leases and heartbeats written by processes on
        different hosts compare on one clock. SQLite is a file on this host: its clock is ours."""
        if self.engine.dialect.name == "sqlite":
            return utcnow()
        value = (await conn.execute(select(func.now()))).scalar_one()
        return _aware(value) or utcnow()

    async def db_now(self) -> datetime:
        """The database's current time (UTC)."""
        async with self.engine.connect() as conn:
            return await self._now(conn)

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Release the connection pool."""
        await self.engine.dispose()

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
                at=_aware(row.at) or utcnow(),
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
            await _append(
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
            await _append(conn, request_id, event_name, from_state, to_state, actor, detail or {})
            existing = set()
            if deliveries or wake_posts:
                owed = select(outbox.c.target).where(outbox.c.request_id == request_id)
                existing = {row[0] for row in (await conn.execute(owed)).all()}
                # A live record posted at the click is now owed its update.
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.request_id == request_id)
                    .where(outbox.c.state == "started")
                    .values(state="pending", next_attempt_at=now, updated_at=now)
                )
            for target, channel in deliveries:
                if target in existing:
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
        self, request_id: str, actor: Actor, now: datetime | None = None, deliveries: Sequence[tuple[str, str]] = ()
    ) -> bool:
        """pending → executing, for the one caller whose click wins, before the request expires;
        `deliveries` are the live record's posts ("… is stopping …"), owed from now on."""
        return await self.transition(
            request_id,
            [RequestState.PENDING],
            RequestState.EXECUTING,
            event_name="confirmed",
            actor=actor,
            values={"confirmed_by_json": _actor_json(actor)},
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

    async def expire(self, request_id: str, now: datetime | None = None) -> bool:
        """pending → expired, only once the expiry has passed."""
        return await self.transition(
            request_id,
            [RequestState.PENDING],
            RequestState.EXPIRED,
            event_name="expired",
            actor=None,
            values={"end_reason": "the confirmation expired before anyone pressed Stop"},
            expired_at=now or utcnow(),
            wake_posts=True,
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

    async def revise_outcome(
        self, request_id: str, outcome: Outcome, actor: Actor, *, previous: Outcome, announce: bool = True
    ) -> bool:
        """Replace a done request's outcome ("Check again") if it is still `previous` (one winner
        among concurrent clicks); with `announce`, its posts are due again so the live records
        are updated in place with it."""
        async with self._writing() as conn:
            now = await self._now(conn)
            result = await conn.execute(
                update(stop_requests)
                .where(stop_requests.c.id == request_id)
                .where(stop_requests.c.state == RequestState.DONE.value)
                .where(stop_requests.c.outcome_json == previous.model_dump_json())
                .values(outcome_json=outcome.model_dump_json(), updated_at=now)
            )
            if result.rowcount != 1:
                return False
            await _append(conn, request_id, "checked_again" if announce else "checking_again", None, None, actor,
                          {"status": outcome.status.value, "detail": outcome.detail})
            if not announce:
                return True
            await conn.execute(
                update(outbox)
                .where(outbox.c.request_id == request_id)
                .where(outbox.c.state == "sent")
                .values(state="pending", next_attempt_at=now, attempts=0, updated_at=now)
            )
        return True

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
            await _append(conn, request_id, "released", None, None, None, {"why": "the process shut down"})

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

    # ----- the attempt log ----------------------------------------------------------------------

    async def attempt_sending(self, request_id: str, number: int) -> None:
        """Attempt `number` may leave now: recorded before the call."""
        await self._put_attempt(request_id, Attempt(number=number, state=AttemptState.SENDING))

    async def attempt_finished(self, request_id: str, attempt: Attempt) -> None:
        """What became of an attempt."""
        await self._put_attempt(request_id, attempt)

    async def _put_attempt(self, request_id: str, attempt: Attempt) -> None:
        async with self._writing() as conn:
            now = await self._now(conn)
            values = {
                "state": attempt.state.value,
                "may_have_applied": attempt.may_have_applied,
                "summary": attempt.summary[:500],
                "at": now,
            }
            key = (stop_attempts.c.request_id == request_id) & (stop_attempts.c.number == attempt.number)
            result = await conn.execute(update(stop_attempts).where(key).values(**values))
            if result.rowcount == 0:
                await conn.execute(insert(stop_attempts).values(request_id=request_id, number=attempt.number, **values))

    async def attempts(self, request_id: str) -> list[Attempt]:
        """Every recorded attempt of a request, in order."""
        query = select(stop_attempts).where(stop_attempts.c.request_id == request_id).order_by(stop_attempts.c.number)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Attempt(number=r.number, state=AttemptState(r.state), may_have_applied=bool(r.may_have_applied),
                    summary=r.summary or "")
            for r in rows
        ]

    # ----- user groups --------------------------------------------------------------------------

    async def save_group_members(self, group_id: str, members: Sequence[str]) -> None:
        """Keep the members of a user group as just read from Slack."""
        async with self._writing() as conn:
            now = await self._now(conn)
            await conn.execute(delete(group_members).where(group_members.c.group_id == group_id))
            await conn.execute(
                insert(group_members).values(group_id=group_id, members_json=json.dumps(list(members)), read_at=now)
            )

    async def group_members(self, group_id: str) -> tuple[list[str], datetime] | None:
        """The last known members of a user group and when they were read, or None."""
        query = select(group_members).where(group_members.c.group_id == group_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        members = json.loads(row.members_json)
        return [str(m) for m in members], _aware(row.read_at) or utcnow()

    # ----- the outbox ---------------------------------------------------------------------------

    async def due_deliveries(self, request_id: str | None = None, limit: int = 50) -> list[OutboxPost]:
        """Pending posts whose time has come (a channel's before its incident post), oldest first.

        A live record left ``started`` although its request is done (its outcome was stored
        while its first message was being posted) is made due here, so it is never stuck."""
        if request_id is None:  # the periodic pass heals; a request's own pass is on the stop's path
            ended = select(stop_requests.c.id).where(stop_requests.c.state.in_(ENDED_STATES))
            stuck_query = select(outbox.c.id).where(outbox.c.state == "started").where(outbox.c.request_id.in_(ended))
            async with self.engine.connect() as conn:
                stuck = [row[0] for row in (await conn.execute(stuck_query)).all()]
            if stuck:  # rare: a write only when there is something to heal
                async with self._writing() as conn:
                    await conn.execute(
                        update(outbox)
                        .where(outbox.c.id.in_(stuck))
                        .where(outbox.c.state == "started")
                        .values(state="pending", next_attempt_at=await self._now(conn))
                    )
        async with self.engine.connect() as conn:
            now = await self._now(conn)
            query = (
                select(outbox)
                .where(outbox.c.state == "pending")
                .where(outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.id)
                .limit(limit)
            )
            if request_id is not None:
                query = query.where(outbox.c.request_id == request_id)
            rows = (await conn.execute(query)).all()
        return [OutboxPost(r.id, r.request_id, r.target, r.channel, r.attempts, r.message_ts) for r in rows]

    async def claim_delivery(self, delivery_id: int, lease_seconds: float) -> str | None:
        """Lease a due post for `lease_seconds` (one process posts it); counts the attempt.

        Returns the lease token that `delivered` and `delivery_failed` must show, or None when
        another process holds the post or it is not due.
        """
        token = secrets.token_hex(8)
        async with self._writing() as conn:
            now = await self._now(conn)
            result = await conn.execute(
                update(outbox)
                .where(outbox.c.id == delivery_id)
                .where(outbox.c.state == "pending")
                .where(outbox.c.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=lease_seconds), attempts=outbox.c.attempts + 1,
                        updated_at=now, lease_token=token)
            )
        return token if result.rowcount == 1 else None

    async def delivered(
        self, delivery: OutboxPost, message_ts: str | None, lease: str | None = None, *, started: bool = False
    ) -> bool:
        """The post was accepted: recorded only for the holder of `lease` (False: it had lost it).

        With `started` it was the live record's first message: the post stays owed its update
        (``started``, or due again at once when the outcome came meanwhile)."""
        query = update(outbox).where(outbox.c.id == delivery.id).where(outbox.c.state == "pending")
        if lease is not None:
            query = query.where(outbox.c.lease_token == lease)
        if started:
            done = (
                select(stop_requests.c.state).where(stop_requests.c.id == delivery.request_id).scalar_subquery()
            ).in_(ENDED_STATES)
            state: Any = case((done, "pending"), else_="started")
        else:
            state = "sent"
        now = utcnow()
        async with self._writing() as conn:
            result = await conn.execute(
                query.values(
                    state=state,
                    message_ts=message_ts or delivery.message_ts,
                    last_error=None,
                    updated_at=now,
                    next_attempt_at=now,
                    lease_token=None if started else outbox.c.lease_token,
                    attempts=0 if started else outbox.c.attempts,
                )
            )
            if result.rowcount != 1:
                return False
            await _append(conn, delivery.request_id, "record_started" if started else "announced", None, None, None,
                          {"target": delivery.target, "channel": delivery.channel, "attempt": delivery.attempts + 1})
        return True

    async def delivery_failed(
        self, delivery: OutboxPost, error: str, retry_at: datetime | None, lease: str | None = None
    ) -> None:
        """The post failed: retry at `retry_at`, or never (None: the failure is permanent).

        With `lease`, only while this caller still holds the post."""
        values: dict[str, Any] = {"last_error": error, "updated_at": utcnow()}
        if retry_at is None:
            values["state"] = "failed"
        else:
            values["next_attempt_at"] = retry_at
        query = update(outbox).where(outbox.c.id == delivery.id).where(outbox.c.state == "pending")
        if lease is not None:
            query = query.where(outbox.c.lease_token == lease)
        async with self._writing() as conn:
            result = await conn.execute(query.values(**values))
            if result.rowcount != 1:
                return
            await _append(conn, delivery.request_id, "announce_failed", None, None, None,
                          {"target": delivery.target, "error": error, "will_retry": retry_at is not None,
                           "attempt": delivery.attempts + 1})

    async def sent_message_ts(self, request_id: str, target: str) -> str | None:
        """The ts of a post already accepted (for links to it), or None."""
        query = (
            select(outbox.c.message_ts)
            .where(outbox.c.request_id == request_id)
            .where(outbox.c.target == target)
            .where(outbox.c.message_ts.is_not(None))
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return row[0] if row else None

    async def outbox_depth(self) -> int:
        """Posts still owed (pending)."""
        async with self.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state == "pending")))
            return int(count.scalar_one())

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
            await _append(conn, request_id, "preview", None, None, None, detail)

    async def record(
        self, request_id: str | None, event_name: str, actor: Actor | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit line that changes no state (refusals, delivery failures…)."""
        async with self._writing() as conn:
            await _append(conn, request_id, event_name, None, None, actor, detail or {})


async def _append(
    conn: AsyncConnection,
    request_id: str | None,
    event_name: str,
    from_state: str | None,
    to_state: RequestState | None,
    actor: Actor | None,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        insert(audit_log).values(
            request_id=request_id,
            at=utcnow(),
            event=event_name,
            from_state=from_state,
            to_state=to_state.value if to_state else None,
            actor=actor.id if actor else None,
            detail_json=json.dumps(detail, default=str),
        )
    )


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
        state=RequestState(row.state),
        two_person=bool(row.two_person),
        created_at=_aware(row.created_at) or utcnow(),
        expires_at=_aware(row.expires_at) or utcnow(),
        confirmed_by=_actor(row.confirmed_by_json),
        confirmed_at=_aware(row.confirmed_at),
        ended_by=_actor(row.ended_by_json),
        end_reason=row.end_reason,
        preview=CampaignInfo.model_validate_json(row.preview_json) if row.preview_json else None,
        outcome=Outcome.model_validate_json(row.outcome_json) if row.outcome_json else None,
    )


def _sqlite_pragmas(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, safe against corruption
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
