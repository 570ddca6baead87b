"""What the store remembers for a stop's safety: the attempt log, and policy user groups' members."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from bot.core.models import Attempt, AttemptState, utcnow
from bot.store.database import Database, aware
from bot.store.schema import group_members, stop_attempts


class AttemptRows(Database):
    """Every stop call a request made, recorded before it leaves and again with its answer."""

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


class GroupRows(Database):
    """The last known members of each policy user group, for when Slack cannot be asked."""

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
        return [str(m) for m in members], aware(row.read_at) or utcnow()
