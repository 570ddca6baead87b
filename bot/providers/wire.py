"""The HTTP wire as adapters see it: a call to make, the reply (read up to a cap), tolerant field readers.

Provider bodies are untrusted: a reply is read up to `MAX_BODY_BYTES` and every field reader
returns None for anything that is not what it expects (wrong JSON type, digits that are not
ASCII, absurd numbers) instead of raising.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.models import OutcomeStatus

Sending = Callable[[], Awaitable[None]]
"""Awaited right before a stop call leaves (after the limiter let it through): records the attempt."""

MAX_BODY_BYTES = 64 * 1024
"""How much of a provider's answer is read; the rest is dropped (and the answer marked truncated,
its JSON read as far as it goes: `leading_members`)."""


class NotSent(Exception):
    """The request never left this process (no connection, not even built): nothing can have arrived."""


class NoAnswer(Exception):
    """The request may have arrived, but no usable answer came back (timeout, dropped connection)."""


class AuthRefused(Exception):
    """No credentials could be obtained (a login was refused or failed), so nothing was sent.

    `status` is the outcome it amounts to (unauthorized, forbidden, rate limited, provider error).
    """

    def __init__(
        self, status: OutcomeStatus, reason: str, *, http_status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.http_status = http_status
        self.retryable = retryable

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Call:
    """One HTTP request an adapter wants made: method, path under the base URL, JSON body, headers."""

    method: str
    path: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_method(self, method: str) -> Call:
        """The same call with another HTTP method."""
        return Call(method, self.path, self.json, self.headers)

    def with_headers(self, headers: Mapping[str, str]) -> Call:
        """The same call with `headers` added."""
        return Call(self.method, self.path, self.json, {**self.headers, **headers})

    def with_json(self, extra: Mapping[str, Any]) -> Call:
        """The same call with `extra` merged into its JSON object body."""
        body = dict(self.json) if isinstance(self.json, dict) else {}
        return Call(self.method, self.path, {**body, **extra}, self.headers)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, its body read up to `MAX_BODY_BYTES` and parsed as JSON when it is JSON."""

    status: int
    text: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False

    @classmethod
    def of(cls, status: int, raw: bytes, headers: Mapping[str, str], *, truncated: bool = False) -> Reply:
        """Build a reply from a status and the (capped) raw body."""
        text = raw.decode("utf-8", errors="replace")
        parsed: Any = None
        if truncated:
            parsed = leading_members(text)
        elif text.strip():
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
                parsed = None
        return cls(status=status, text=text, json=parsed, headers=headers, truncated=truncated)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def is_json(self) -> bool:
        """True when the body parsed as JSON (any JSON type)."""
        return self.json is not None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or an empty dict when it is anything else."""
        return self.json if isinstance(self.json, dict) else {}

    def retry_after(self) -> float | None:
        """Seconds from a Retry-After header in seconds form, when present and sane."""
        raw = self.headers.get("retry-after")
        if raw is None or not raw.strip().isascii():
            return None
        try:
            value = float(raw)
        except ValueError:
            return None
        return value if 0 <= value <= 3600 else None

    def snippet(self, limit: int = 200) -> str:
        """The start of the body on one line, for details of answers that cannot be read."""
        return clip(" ".join(self.text[: limit * 4].split()), limit)


_DECODER = json.JSONDecoder()
_NESTING = 4
"""How deep `leading_members` follows objects cut off by the cap."""


def leading_members(text: str) -> dict[str, Any] | None:
    """What a JSON object cut off by the body cap still says: its members that arrived whole.

    Providers put the verdict first (``{"error": 401, "error_text": <5 MB>…``); an object cut
    inside a member keeps that member's own leading members. None when `text` is no object.
    """
    return _members(text, _skip(text, 0), _NESTING)


def _members(text: str, at: int, depth: int) -> dict[str, Any] | None:
    """The members of the object at `at` that are whole, up to where it ends or is cut."""
    if depth <= 0 or not text.startswith("{", at):
        return None
    members: dict[str, Any] = {}
    at += 1
    while not text.startswith("}", at := _skip(text, at)):
        try:
            key, at = _DECODER.raw_decode(text, at)
        except (ValueError, RecursionError):
            break
        at = _skip(text, at)
        if not isinstance(key, str) or not text.startswith(":", at):
            break
        at = _skip(text, at + 1)
        try:
            members[key], at = _DECODER.raw_decode(text, at)
        except (ValueError, RecursionError):
            nested = _members(text, at, depth - 1)
            if nested is not None:
                members[key] = nested
            break
        at = _skip(text, at)
        if not text.startswith(",", at):
            break
        at += 1
    return members


def _skip(text: str, at: int) -> int:
    """The first position at or after `at` that is not JSON whitespace."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def status_key(word: str) -> str:
    """A provider's status word as the declared tables spell it: lower case, '_' for '-' and ' '."""
    return word.strip().lower().replace("-", "_").replace(" ", "_")


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def text_field(data: Any, key: str, limit: int = 500) -> str | None:
    """A value of a JSON object as (clipped) text, or None; tolerates wrong JSON types."""
    if not isinstance(data, Mapping):
        return None
    value = data.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return clip(text, limit) if text else None


def int_field(data: Any, key: str) -> int | None:
    """A value of a JSON object as an int, or None when absent, not a number, or absurd.

    Strings count only when they are ASCII digits: ``"²"`` passes `str.isdigit` but not `int`,
    and full-width digits pass `int` but are not what any provider sends.
    """
    if not isinstance(data, Mapping):
        return None
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**18 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e18:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            return int(text)
    return None


def float_field(data: Any, key: str) -> float | None:
    """A value of a JSON object as a finite float, or None."""
    if not isinstance(data, Mapping):
        return None
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().isascii():
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def flag_field(data: Any, key: str) -> bool | None:
    """A JSON boolean, tolerating "true"/"false" strings and 0/1; None when absent or anything else."""
    if not isinstance(data, Mapping):
        return None
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
