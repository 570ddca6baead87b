"""A fake Slack Web API (and response_url target) on 127.0.0.1, recording every call.

It answers ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
``conversations.info`` (Slack's documented example, per channel), ``usergroups.users.list``
(from `groups`) and any ``/response/<token>`` URL, and can be told to fail the next calls of a
method with a 429 and Retry-After, an ``ok: false`` error, or an HTTP status; to refuse every
post to a conversation (`refuse_channel`, as Slack does for a private channel or a DM the app is
not in); or to refuse the token on every method (`token_error`). Tests wait on its records with
`wait_for` (a condition variable), never with sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.socket_mode import FakeSocketMode

WEB_API_ANSWERS = Path(__file__).parent.parent / "fixtures" / "slack_web_api"
CONVERSATION_INFO: dict[str, Any] = json.loads((WEB_API_ANSWERS / "conversations.info.json").read_text())
"""Slack's documented ``conversations.info`` answer (the file names its source)."""
CONVERSATION_OPEN: dict[str, Any] = json.loads((WEB_API_ANSWERS / "conversations.open.json").read_text())
"""Slack's documented ``conversations.open`` answer."""
CONVERSATION_HISTORY: dict[str, Any] = json.loads((WEB_API_ANSWERS / "conversations.history.json").read_text())
"""Slack's documented ``conversations.history`` answer (its messages are replaced by the channel's)."""


def dm_of(user_id: str) -> str:
    """The id of the app's DM with `user_id` in this fake (Slack gives each pair its own D… id)."""
    return "D" + user_id[1:]


@dataclass
class SlackCall:
    """One request the fake received."""

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""
    ts: str | None = None
    """The ts the fake gave a chat.postMessage."""
    at: float = field(default_factory=time.monotonic)
    """When it arrived (monotonic clock)."""


@dataclass
class Failure:
    """How to fail the next call of a method."""

    kind: str  # "ratelimit" | "error" | "http" | "hang" (until `release()`)
    retry_after: int = 1
    error: str = "channel_not_found"
    status: int = 500


@dataclass
class FakeSlack:
    """The fake's state: calls, armed failures, and a condition to wait on."""

    calls: list[SlackCall] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    down: bool = False
    url: str = ""
    groups: dict[str, list[str]] = field(default_factory=dict)
    refused_channels: dict[str, str] = field(default_factory=dict)
    """Conversations that refuse the app's posts, with Slack's error (``not_in_channel``…)."""
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``conversations.info`` overrides per channel (``is_private``, ``is_member``, ``is_archived``)."""
    socket_mode: FakeSocketMode = field(default_factory=FakeSocketMode)
    """Socket Mode: ``apps.connections.open`` hands out its WebSocket URLs."""
    token_error: str | None = None
    """When set, every Web API method answers ``ok: false`` with this error (``invalid_auth``…)."""
    held: set[tuple[str, str]] = field(default_factory=set)
    """(method, channel) pairs whose calls Slack holds until `release()`, then answers normally."""
    accepted_then_held: set[tuple[str, str]] = field(default_factory=set)
    """(method, channel) pairs Slack carries out at once but answers only after `release()` (a post
    that is in the channel although its sender never hears so, if it dies meanwhile)."""
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["POST", "GET"]),
                Route("/response/{token}", self._response_url, methods=["POST"]),
                *self.socket_mode.routes(),
            ]
        )

    # ----- test API -------------------------------------------------------------------------

    def response_url(self) -> str:
        """A fresh response_url pointing at this fake."""
        return f"{self.url}/response/{secrets.token_hex(8)}"

    def fail(self, method: str, failure: Failure, times: int = 1) -> None:
        """Fail the next `times` calls of `method` (``response_url`` for response URLs)."""
        self.failures.setdefault(method, []).extend([failure] * times)

    def refuse_channel(self, channel: str, error: str = "not_in_channel") -> None:
        """Refuse every chat.* post or update in `channel` with `error` (until `accept_channel`)."""
        self.refused_channels[channel] = error

    def accept_channel(self, channel: str) -> None:
        """Take posts in `channel` again."""
        self.refused_channels.pop(channel, None)

    def hold(self, method: str, channel: str) -> None:
        """Hold every call of `method` to `channel` (Slack slow there) until `release()`; then it succeeds."""
        self.held.add((method, channel))

    def accept_then_hold(self, method: str, channel: str) -> None:
        """Carry out `method` in `channel` at once (the message is there), but answer only after `release()`."""
        self.accepted_then_held.add((method, channel))

    def release(self) -> None:
        """Let every call held by a "hang" failure finish (with an error)."""
        self._released.set()

    def of(self, method: str) -> list[SlackCall]:
        """Calls of one method (``response_url`` for posts to response URLs)."""
        return [c for c in self.calls if c.method == method]

    def messages(self) -> list[SlackCall]:
        """Every message posted with chat.postMessage, in order, as it reads now: the call that last
        wrote it (its chat.postMessage, or the latest chat.update of that channel and ts)."""
        latest: dict[tuple[str, str], SlackCall] = {}
        order: list[tuple[str, str]] = []
        for call in self.calls:
            if call.method == "chat.postMessage" and call.ts is not None and not call.body.get("thread_ts"):
                key = (str(call.body.get("channel")), call.ts)
                latest[key] = call
                order.append(key)
            elif call.method == "chat.update" and call.ts is not None:  # an update Slack carried out
                key = (str(call.body.get("channel")), str(call.body.get("ts")))
                if key in latest:
                    latest[key] = call
        return [latest[k] for k in order]

    def thread_replies(self, channel: str, ts: str) -> list[SlackCall]:
        """Replies posted in one message's thread."""
        return [c for c in self.of("chat.postMessage") if c.body.get("channel") == channel
                and c.body.get("thread_ts") == ts and c.ts is not None]

    def outcomes(self) -> list[SlackCall]:
        """Messages that read as an outcome now (not a live record still saying "is stopping" or
        waiting for approval)."""
        records = (" is stopping ", "Waiting for approval (two-person rule) until")
        return [m for m in self.messages() if not any(r in json.dumps(m.body, ensure_ascii=False) for r in records)]

    async def wait_for_outcomes(self, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Wait until `count` messages read as outcomes (posted, or live records updated in place)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.outcomes()) >= count)
        return self.outcomes()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate` holds of what the fake recorded."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_until_message(self, channel: str, timeout: float = 10.0) -> None:
        """Wait until a top-level message is in `channel` (whether or not its sender was answered)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: any(m.body.get("channel") == channel for m in self.messages()))

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Wait until `count` calls of `method` arrived."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.of(method)) >= count)
        return self.of(method)

    # ----- handlers -------------------------------------------------------------------------

    async def _record(self, method: str, request: Request) -> SlackCall:
        raw = await request.body()
        body: dict[str, Any]
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
        else:
            body = dict(parse_qsl(raw.decode()))
        body.update(request.query_params)  # slack_sdk sends some methods (usergroups.*) as GET
        call = SlackCall(method=method, body=body, headers=dict(request.headers), path=request.url.path)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        return call

    async def _failure(self, method: str) -> Response | None:
        if self.down:
            return PlainTextResponse("upstream down", status_code=503)
        queue = self.failures.get(method)
        if not queue:
            return None
        failure = queue.pop(0)
        if failure.kind == "ratelimit":
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(failure.retry_after)},
            )
        if failure.kind == "error":
            return JSONResponse({"ok": False, "error": failure.error})
        if failure.kind == "hang":
            await self._released.wait()
        return PlainTextResponse("error", status_code=failure.status)

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        call = await self._record(method, request)
        failed = await self._failure(method)
        if failed is not None:
            return failed
        if (method, str(call.body.get("channel", ""))) in self.held:
            await self._released.wait()
        if self.token_error is not None:
            return JSONResponse({"ok": False, "error": self.token_error})
        channel_refusal = self.refused_channels.get(str(call.body.get("channel", "")))
        if channel_refusal is not None and method.startswith("chat.") and method != "chat.getPermalink":
            return JSONResponse({"ok": False, "error": channel_refusal})
        if method == "conversations.info":
            return self._conversation_info(str(call.body.get("channel", "")))
        if method == "conversations.history":
            return JSONResponse(self._history(str(call.body.get("channel", ""))))
        if method == "conversations.open":
            answer = json.loads(json.dumps(CONVERSATION_OPEN["answer"]))
            answer["channel"]["id"] = dm_of(str(call.body.get("users", "")))
            return JSONResponse(answer)
        if method == "auth.test":
            return JSONResponse(
                {
                    "ok": True,
                    "url": "https://fake-workspace.slack.com/",
                    "team": "Fake",
                    "user": "stopcampaign",
                    "team_id": "T0FAKE",
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                }
            )
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            ts = f"1700000000.{next(self._ts):06d}"
            if method == "chat.update":
                ts = str(call.body.get("ts", ts))
            async with self._changed:
                call.ts = ts
                self._changed.notify_all()
            channel = call.body.get("channel", "C0UNKNOWN")
            if (method, str(channel)) in self.accepted_then_held:
                await self._released.wait()
            return JSONResponse(
                {
                    "ok": True,
                    "channel": channel,
                    "ts": ts,
                    "message_ts": ts,
                    "message": {"text": call.body.get("text", ""), "ts": ts},
                }
            )
        if method == "chat.getPermalink":
            channel, ts = call.body.get("channel", "C0"), str(call.body.get("message_ts", "0"))
            link = f"https://fake-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            return JSONResponse({"ok": True, "channel": channel, "permalink": link})
        if method == "apps.connections.open":
            return JSONResponse(
                self.socket_mode.connections_open(self.url, authorization=request.headers.get("authorization"))
            )
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            return JSONResponse({"ok": True, "view": {"id": f"V{next(self._ts):08d}"}})
        if method == "usergroups.users.list":
            group = call.body.get("usergroup", "")
            if group not in self.groups:
                return JSONResponse({"ok": False, "error": "no_such_subteam"})
            return JSONResponse({"ok": True, "users": self.groups[group]})
        return JSONResponse({"ok": False, "error": "unknown_method"})

    def _history(self, channel: str) -> dict[str, Any]:
        """The channel's top-level messages as they read now, newest first, in Slack's shape."""
        answer: dict[str, Any] = json.loads(json.dumps(CONVERSATION_HISTORY["answer"]))
        answer["messages"] = []
        for call in reversed(self.messages()):
            if call.body.get("channel") != channel:
                continue
            first = next(c for c in self.of("chat.postMessage") if c.ts == (call.body.get("ts") or call.ts))
            message: dict[str, Any] = {"type": "message", "user": "U0BOT", "text": call.body.get("text", ""),
                                       "ts": first.ts, "bot_id": "B0BOT", "app_id": "A0STOPCAMP"}
            metadata = first.body.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            if isinstance(metadata, dict):
                message["metadata"] = metadata
            answer["messages"].append(message)
        answer["has_more"] = False
        answer["response_metadata"] = {"next_cursor": ""}
        return answer

    def _conversation_info(self, channel: str) -> Response:
        if self.refused_channels.get(channel) == "channel_not_found":
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        answer = json.loads(json.dumps(CONVERSATION_INFO["answer"]))
        answer["channel"] |= {"id": channel, "name": channel.lower(), "name_normalized": channel.lower()}
        answer["channel"] |= self.channels.get(channel, {})
        return JSONResponse(answer)

    async def _response_url(self, request: Request) -> Response:
        await self._record("response_url", request)
        failed = await self._failure("response_url")
        if failed is not None:
            return failed
        return PlainTextResponse("ok")
