"""Logging: JSON lines in `serve` and `socket`, readable lines in the console; every line of a
stop carries its request id (a context variable the core sets), and no line carries a secret."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from bot.core.context import request_id_var


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Log to stderr at `level`, as JSON lines or readable text; quiet the chattiest libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Their DEBUG output includes request headers and bodies; keep them at INFO whatever LOG_LEVEL says.
    for noisy in ("httpx", "slack_sdk", "slack_bolt", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # These log every statement or connection event even at INFO.
    for chatty in ("httpcore", "aiosqlite", "sqlalchemy.engine", "alembic", "uvicorn.access"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
