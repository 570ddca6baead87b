"""The stop request the current task works on, for log lines (asyncio tasks inherit it)."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the stop request being worked on, or ``-``."""
