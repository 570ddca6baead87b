"""Waiting on something that may hang for good (a frozen database) without hanging with it.

``asyncio.timeout`` only returns once the work it cancels has finished cancelling, and a query on
a frozen connection can take its cleanup down with it (the driver's own cancel request goes to the
same frozen server). `within` returns at the deadline whatever the work does: the work is
cancelled and left to end on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_abandoned: set[asyncio.Task[Any]] = set()
"""Work given up at its deadline, kept referenced until it has ended."""


async def within(seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, or `TimeoutError` after `seconds` even if `work` will not stop."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"no answer within {seconds:g} s")


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned failure is not reported as never retrieved
