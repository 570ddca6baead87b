"""The door of ``POST /slack/events``: nothing unbounded is buffered, nothing unsigned is parsed.

The body is read with a cap (chunked bodies included: reading stops as soon as the cap is
passed), then Slack's signature and timestamp are checked on the raw bytes. Only a request
that passed both is decoded and handed to Bolt.

The HMAC is computed here over the raw bytes, as Slack computes it (``v0:<timestamp>:<body>``):
slack_sdk's `SignatureVerifier` decodes the body as UTF-8 first, so bytes that are not UTF-8 made
it raise instead of answering "not valid".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from starlette.requests import Request

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000
"""Slack's payloads are far smaller (a command is under 4 KB, a view rarely over 100 KB)."""
MAX_SKEW_SECONDS = 300
"""Slack's own rule: a request signed more than five minutes ago (or ahead) may be a replay."""


class Refused(Exception):
    """A request refused at the door; `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, or `Refused(413)` as soon as more than `limit` bytes came."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise Refused(400, "a Content-Length that is not a number")
        if int(declared) > limit:
            raise Refused(413, f"a body of {declared} bytes, more than {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"a body of more than {limit} bytes")
    return bytes(body)


def check_signature(secret: str, body: bytes, request: Request, now: float | None = None) -> None:
    """Raise `Refused(401)` unless the request carries Slack's valid, fresh signature of `body`."""
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise Refused(401, "no Slack signature")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(401, "a signature timestamp that is not a number")
    clock = time.time() if now is None else now
    if abs(clock - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Refused(401, "a stale signature timestamp")
    if not hmac.compare_digest(expected_signature(secret, timestamp, body), signature.encode("latin-1")):
        raise Refused(401, "a bad signature")


def expected_signature(secret: str, timestamp: str, body: bytes) -> bytes:
    """Slack's ``v0=<hex HMAC-SHA256>`` of ``v0:<timestamp>:<body>`` over the raw bytes (never decoded)."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256)
    return b"v0=" + digest.hexdigest().encode("ascii")
