"""The outbox's rows: posts owed to Slack, leased to one process at a time, until Slack takes them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, select, update

from bot.core.models import RequestState, utcnow
from bot.core.ports import AnnounceProblem, OutboxPost
from bot.store.database import Database, append_audit
from bot.store.schema import outbox, stop_requests

ENDED_STATES = (RequestState.DONE.value, RequestState.CANCELLED.value, RequestState.EXPIRED.value)
"""A live record of a request in one of these states is owed its last update."""


class OutboxRows(Database):
    """Posts owed to Slack (the core's outbox port)."""

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
                .order_by(case((outbox.c.target == "card", 1), else_=0), outbox.c.id)  # channel posts first
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
        self,
        delivery: OutboxPost,
        message_ts: str | None,
        lease: str | None = None,
        *,
        started: bool = False,
        note: str | None = None,
        posted_outcome: str | None = None,
    ) -> bool:
        """The post was accepted (`note`: how it had to go, kept as the row's last error): recorded
        only for the holder of `lease` (False: it had lost it). `posted_outcome` is the outcome (JSON)
        the post showed: when the request's outcome is another one by now (a Check again revised it
        while the post was under way), the post is due again at once instead of done.

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
        elif posted_outcome is not None:
            current = select(stop_requests.c.outcome_json).where(stop_requests.c.id == delivery.request_id)
            state = case((current.scalar_subquery() == posted_outcome, "sent"), else_="pending")
        else:
            state = "sent"
        now = utcnow()
        async with self._writing() as conn:
            result = await conn.execute(
                query.values(
                    state=state,
                    message_ts=message_ts or delivery.message_ts,
                    last_error=note,
                    updated_at=now,
                    next_attempt_at=now,
                    lease_token=None if started else outbox.c.lease_token,
                    attempts=0 if started else outbox.c.attempts,
                )
            )
            if result.rowcount != 1:
                return False
            event_name = "record_started" if started else "announced"
            detail: dict[str, Any] = {"target": delivery.target, "channel": delivery.channel,
                                      "attempt": delivery.attempts + 1}
            if note:
                detail["note"] = note
            await append_audit(conn, delivery.request_id, event_name, None, None, None, detail)
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
            detail = {"target": delivery.target, "error": error, "will_retry": retry_at is not None,
                      "attempt": delivery.attempts + 1}
            await append_audit(conn, delivery.request_id, "announce_failed", None, None, None, detail)

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

    async def add_deliveries(self, request_id: str, deliveries: Sequence[tuple[str, str]]) -> None:
        """Owe these posts from now on (a post already owed to the same target and channel is kept)."""
        async with self._writing() as conn:
            now = await self._now(conn)
            owed = select(outbox.c.target, outbox.c.channel).where(outbox.c.request_id == request_id)
            existing = {(row[0], row[1]) for row in (await conn.execute(owed)).all()}
            for target, channel in deliveries:
                if (target, channel) in existing:
                    continue
                await conn.execute(insert(outbox).values(
                    request_id=request_id, target=target, channel=channel, state="pending", attempts=0,
                    next_attempt_at=now, created_at=now, updated_at=now,
                ))

    async def announce_problems(self, request_id: str) -> list[AnnounceProblem]:
        """The request's posts that met trouble: rerouted (sent with a note), given up, or waiting."""
        query = (
            select(outbox.c.target, outbox.c.channel, outbox.c.state, outbox.c.last_error)
            .where(outbox.c.request_id == request_id)
            .where(outbox.c.target.in_(("channel", "incident")))
            .where(outbox.c.last_error.is_not(None))
            .order_by(outbox.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        states = {"sent": "rerouted", "started": "rerouted", "failed": "failed"}
        return [AnnounceProblem(r.target, r.channel, r.last_error, states.get(r.state, "waiting")) for r in rows]

    async def outbox_depth(self) -> int:
        """Posts still owed (pending)."""
        async with self.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state == "pending")))
            return int(count.scalar_one())
