"""A fake Slack Socket Mode server: ``apps.connections.open`` answers and the WebSocket behind them.

Mount `FakeSocketMode.routes()` into a Starlette app served with uvicorn and answer
``apps.connections.open`` with `FakeSocketMode.connections_open`. A client (slack_sdk's
``SocketModeClient``, Bolt's ``AsyncSocketModeHandler``) then connects as it would to Slack: it
gets a ``hello``, receives envelopes the test sends with `send`, acks them, and reconnects after a
``disconnect`` message (`disconnect`) or a lost connection (`drop`).

Message shapes, as Slack documents them (the fields, not anyone's code):

* ``apps.connections.open`` answer ``{"ok": true, "url": "wss://…/link/?ticket=…&app_id=…"}``:
  https://docs.slack.dev/reference/methods/apps.connections.open
* ``hello``, ``disconnect`` (``warning``, ``refresh_requested``, ``link_disabled``), envelopes and
  acks: https://docs.slack.dev/apis/events-api/using-socket-mode
* which envelope types carry ``retry_attempt``/``retry_reason`` (``events_api`` only) and a
  ``hello`` with ``build_number``: the fixtures of slackapi/python-slack-sdk,
  https://github.com/slackapi/python-slack-sdk/blob/main/tests/slack_sdk/socket_mode/mock_socket_mode_server.py
  and slackapi/bolt-python,
  https://github.com/slackapi/bolt-python/blob/main/tests/adapter_tests/socket_mode/mock_socket_mode_server.py

WebSocket pings are answered by uvicorn's WebSocket protocol itself (``websockets-sansio`` when
the ``websockets`` package is installed), below the ASGI app, so the fake never sees them.

Tests wait on the fake's records with the ``wait_for_*`` methods (an asyncio Event that is set
and replaced on every change), never with sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

EnvelopeType = Literal["events_api", "interactive", "slash_commands"]
"""The envelope types Slack sends over Socket Mode."""

DisconnectReason = Literal["warning", "refresh_requested", "link_disabled", "too_many_websockets"]
"""``disconnect`` reasons: the first three are documented on the Socket Mode page; slack_sdk's own
mock server sends ``too_many_websockets``. slack_sdk reconnects on any of them."""

REFUSED_CLOSE_CODE = 1008
"""Sent as the ASGI close before accepting: uvicorn turns it into an HTTP 403 handshake refusal."""

DEBUG_RECONNECTS_CONNECTION_TIME = 360
"""``&debug_reconnects=true`` on the WebSocket URL shortens the connection to ~360 s (Socket Mode
page, "Connect to the WebSocket")."""


@dataclass
class ConnectionsOpen:
    """One ``apps.connections.open`` answer the fake gave (a ticket it issued, or an error)."""

    url: str | None
    """The WebSocket URL, or None when the call was refused."""
    ticket: str | None
    token: str | None
    """The bearer token the call carried, when the caller passed the Authorization header."""
    error: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Refusal:
    """A WebSocket handshake the fake refused (HTTP 403)."""

    ticket: str
    reason: str
    """``unknown_ticket`` or ``ticket_already_used``."""
    at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class SocketConnection:
    """One accepted WebSocket connection and everything that crossed it (compared by identity)."""

    number: int
    """1 for the first connection the fake accepted, 2 for the next, …"""
    ticket: str
    query: dict[str, str]
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Frames the fake sent, in order (the first is the ``hello``; `send_raw` text as ``{"_raw": text}``)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    """Frames the client sent, in order (acks and anything else; non-JSON as ``{"_raw": text}``)."""
    draining: bool = False
    """A ``disconnect`` was sent on it: the fake sends no more envelopes there."""
    dropped: bool = False
    """`FakeSocketMode.drop` ended it."""
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    close_code: int | None = None
    """The close code of the WebSocket ``disconnect`` uvicorn reported (1005/1006 when none)."""
    _websocket: WebSocket | None = field(default=None, repr=False, compare=False)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    _drop: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def open(self) -> bool:
        """Whether the connection is still up (as far as the server knows)."""
        return self.closed_at is None

    @property
    def hello(self) -> dict[str, Any]:
        """The ``hello`` the fake sent on this connection."""
        return self.sent[0]

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until the connection is closed (by either side); TimeoutError otherwise."""
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise TimeoutError(f"connection {self.number} still open after {timeout} s") from None


@dataclass
class SentEnvelope:
    """An envelope the fake delivered."""

    envelope_id: str
    message: dict[str, Any]
    connection: int
    """The `SocketConnection.number` it went out on."""
    at: float = field(default_factory=time.monotonic)


class FakeSocketMode:
    """Slack's Socket Mode server side, for tests.

    Tickets are single use by default: a WebSocket handshake with a ticket that was used already
    (or never issued) is refused with HTTP 403, so a client that reconnects to an old URL instead of
    calling ``apps.connections.open`` again is caught. Pass ``single_use_tickets=False`` to allow it.
    """

    def __init__(
        self,
        *,
        app_id: str = "A0FAKEAPP",
        path: str = "/socket-mode/link",
        host: str = "applink-fake-1",
        build_number: int = 1,
        approximate_connection_time: int = 3600,
        single_use_tickets: bool = True,
    ) -> None:
        self.app_id = app_id
        self.path = path
        self.host = host
        self.build_number = build_number
        self.approximate_connection_time = approximate_connection_time
        self.single_use_tickets = single_use_tickets
        self.opens: list[ConnectionsOpen] = []
        """Every ``apps.connections.open`` answered, in order."""
        self.connections: list[SocketConnection] = []
        """Every WebSocket connection accepted, in order (open or closed; ``number`` is the index + 1)."""
        self.refused: list[Refusal] = []
        self.envelopes: list[SentEnvelope] = []
        self.acks: list[dict[str, Any]] = []
        """Every frame with an ``envelope_id`` the client sent, in order (``payload`` when it had one)."""
        self._tickets: dict[str, bool] = {}  # ticket -> used
        self._ack_connection: dict[str, int] = {}
        self._change = asyncio.Event()

    # ----- mounting -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The WebSocket route to mount into the fake Web API's Starlette app."""
        return [WebSocketRoute(self.path, self._link)]

    def connections_open(self, base_ws_url: str, *, authorization: str | None = None) -> dict[str, Any]:
        """The JSON answer of ``apps.connections.open``, issuing a fresh single-use ticket.

        `base_ws_url` is where the app is served: ``ws://127.0.0.1:<port>`` (``http://`` and
        ``https://`` are turned into ``ws://`` and ``wss://``). When `authorization` (the request's
        Authorization header) is given, it must carry an app-level token (``xapp-…``), as Slack
        requires; otherwise the answer is ``not_authed`` or ``not_allowed_token_type``.
        """
        token: str | None = None
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            error = None
            if scheme.lower() != "bearer" or not token:
                error, token = "not_authed", None
            elif not token.startswith("xapp-"):
                error = "not_allowed_token_type"
            if error is not None:
                self.opens.append(ConnectionsOpen(url=None, ticket=None, token=token, error=error))
                self._changed()
                return {"ok": False, "error": error}
        base = base_ws_url.rstrip("/")
        if base.startswith("http://") or base.startswith("https://"):
            base = "ws" + base.removeprefix("http")
        ticket = str(uuid.uuid4())
        url = f"{base}{self.path}?ticket={ticket}&app_id={self.app_id}"
        self._tickets[ticket] = False
        self.opens.append(ConnectionsOpen(url=url, ticket=ticket, token=token))
        self._changed()
        return {"ok": True, "url": url}

    # ----- reading the records --------------------------------------------------------------

    def live(self) -> list[SocketConnection]:
        """Open connections that take envelopes (not draining after a ``disconnect``)."""
        return [c for c in self.connections if c.open and c.sent and not c.draining]

    @property
    def current(self) -> SocketConnection | None:
        """The newest live connection: where `send` delivers."""
        live = self.live()
        return live[-1] if live else None

    def ack_of(self, envelope_id: str) -> dict[str, Any] | None:
        """The client's ack of an envelope, if it came."""
        return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    def ack_connection(self, envelope_id: str) -> SocketConnection | None:
        """The connection the ack of an envelope arrived on."""
        number = self._ack_connection.get(envelope_id)
        return None if number is None else self.connections[number - 1]

    def unacked(self) -> list[dict[str, Any]]:
        """Envelopes sent and not (yet) acked, in order."""
        return [e.message for e in self.envelopes if e.envelope_id not in self._ack_connection]

    # ----- waiting --------------------------------------------------------------------------

    async def wait_for_opens(self, count: int = 1, timeout: float = 10.0) -> list[ConnectionsOpen]:
        """Wait until ``apps.connections.open`` was answered `count` times in total."""
        await self._wait_until(lambda: len(self.opens) >= count, timeout, f"{count} apps.connections.open calls")
        return self.opens

    async def wait_for_connections(self, count: int = 1, timeout: float = 10.0) -> list[SocketConnection]:
        """Wait until `count` WebSocket connections were accepted in total (each got its ``hello``)."""
        await self._wait_until(
            lambda: sum(1 for c in self.connections if c.sent) >= count, timeout, f"{count} connections"
        )
        return self.connections

    async def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The client's ack of an envelope (``{"envelope_id": …, "payload"?: …}``); TimeoutError if none came."""
        await self._wait_until(lambda: self.ack_of(envelope_id) is not None, timeout, f"an ack of {envelope_id}")
        ack = self.ack_of(envelope_id)
        assert ack is not None
        return ack

    # ----- acting like Slack ----------------------------------------------------------------

    async def send(
        self,
        envelope_type: EnvelopeType,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Deliver an envelope on the current live connection and return its ``envelope_id``.

        Waits (up to `timeout`) for a live connection if there is none, e.g. while the client
        reconnects. ``retry_attempt`` and ``retry_reason`` are fields of ``events_api`` envelopes only.
        """
        if envelope_type != "events_api" and (retry_attempt or retry_reason):
            raise ValueError("retry_attempt and retry_reason are fields of events_api envelopes only")
        envelope_id = envelope_id or str(uuid.uuid4())
        # https://docs.slack.dev/apis/events-api/using-socket-mode ("Receive events", "Using
        # interactive features"); retry fields: python-slack-sdk's mock_socket_mode_server.py.
        message: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            message["retry_attempt"] = retry_attempt
            message["retry_reason"] = retry_reason
        connection = await self._write_live(message, timeout, f"a live connection to send {envelope_type}")
        self.envelopes.append(SentEnvelope(envelope_id=envelope_id, message=message, connection=connection.number))
        self._changed()
        return envelope_id

    async def send_raw(self, text: str, *, timeout: float = 10.0) -> SocketConnection:
        """Write `text` as it is on the current live connection: a message Slack never sends (an
        envelope with ``"payload": null``, without ``type``, not JSON at all…), to see what the client
        makes of it. A JSON object with a string ``envelope_id`` is recorded as an envelope, so
        `unacked` and `wait_for_ack` cover it."""
        connection = await self._write_live(text, timeout, "a live connection to send a raw message")
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            message = None
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            envelope_id = message["envelope_id"]
            self.envelopes.append(SentEnvelope(envelope_id=envelope_id, message=message, connection=connection.number))
        self._changed()
        return connection

    async def disconnect(
        self, reason: DisconnectReason = "refresh_requested", *, timeout: float = 10.0
    ) -> SocketConnection:
        """Send ``disconnect`` on the current live connection and stop using it for envelopes.

        The connection stays open, as on Slack, until the client closes it. slack_sdk (for any
        reason) calls ``apps.connections.open`` at once, closes the old connection (close code
        1000) and then opens the new one, so for a moment no connection is live; `send` waits.
        """
        # https://docs.slack.dev/apis/events-api/using-socket-mode ("Handle disconnects gracefully")
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": self.host}}
        connection = await self._write_live(message, timeout, "a live connection to disconnect")
        connection.draining = True
        self._changed()
        return connection

    async def drop(self, *, close_code: int | None = None, timeout: float = 10.0) -> SocketConnection:
        """End the current live connection without any ``disconnect`` message.

        With no `close_code` the TCP connection is closed with no WebSocket closing handshake (a
        crashed server or a cut network: the client sees an abnormal closure, 1006). With a
        `close_code` the fake sends a WebSocket close frame with that code first.
        """
        await self._wait_until(lambda: self.current is not None, timeout, "a live connection to drop")
        connection = self.current
        assert connection is not None
        connection.dropped = True
        if close_code is None:
            connection._drop.set()
        else:
            websocket = connection._websocket
            assert websocket is not None
            async with connection._send_lock:
                with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # already gone
                    await websocket.close(code=close_code)
        await connection.wait_closed(timeout)
        return connection

    # ----- internals ------------------------------------------------------------------------

    def _changed(self) -> None:
        """Wake every waiter (they re-check their condition and wait on the next Event)."""
        self._change.set()
        self._change = asyncio.Event()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._change.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}") from None

    async def _write(self, connection: SocketConnection, message: dict[str, Any] | str) -> None:
        """Send a message (a dict as JSON, a str as it is: recorded as ``{"_raw": text}``)."""
        websocket = connection._websocket
        assert websocket is not None
        async with connection._send_lock:
            await websocket.send_text(message if isinstance(message, str) else json.dumps(message))
        connection.sent.append({"_raw": message} if isinstance(message, str) else message)

    async def _write_live(self, message: dict[str, Any] | str, timeout: float, what: str) -> SocketConnection:
        """Write to the current live connection, moving on to the next if it dies under the write."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while self.current is None:
                        await self._change.wait()
                    connection = self.current
                    try:
                        await self._write(connection, message)
                    except (RuntimeError, OSError, WebSocketDisconnect):
                        await connection._closed.wait()  # the reader records the close
                        continue
                    return connection
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}") from None

    def _refusal(self, ticket: str) -> str | None:
        used = self._tickets.get(ticket)
        if used is None:
            return "unknown_ticket"
        if used and self.single_use_tickets:
            return "ticket_already_used"
        return None

    async def _link(self, websocket: WebSocket) -> None:
        """The WebSocket endpoint: check the ticket, say hello, record frames until the end."""
        ticket = websocket.query_params.get("ticket", "")
        reason = self._refusal(ticket)
        if reason is not None:
            self.refused.append(Refusal(ticket=ticket, reason=reason))
            self._changed()
            await websocket.close(code=REFUSED_CLOSE_CODE)  # before accept: HTTP 403
            return
        self._tickets[ticket] = True
        await websocket.accept()
        query = dict(websocket.query_params)
        debug_time = query.get("debug_reconnects") == "true"
        # https://docs.slack.dev/apis/events-api/using-socket-mode ("Connect to the WebSocket")
        hello = {
            "type": "hello",
            "num_connections": len([c for c in self.connections if c.open]) + 1,
            "debug_info": {
                "host": self.host,
                "build_number": self.build_number,
                "approximate_connection_time": (
                    DEBUG_RECONNECTS_CONNECTION_TIME if debug_time else self.approximate_connection_time
                ),
            },
            "connection_info": {"app_id": self.app_id},
        }
        # Numbered and recorded with no await in between, so concurrent handshakes get distinct numbers.
        connection = SocketConnection(
            number=len(self.connections) + 1, ticket=ticket, query=query, _websocket=websocket
        )
        self.connections.append(connection)
        try:
            await self._write(connection, hello)
        except (RuntimeError, OSError, WebSocketDisconnect):
            connection.closed_at = time.monotonic()  # the client left before its hello
            connection._closed.set()
            self._changed()
            return
        self._changed()
        reader = asyncio.create_task(self._read(connection, websocket))
        dropper = asyncio.create_task(connection._drop.wait())
        try:
            await asyncio.wait({reader, dropper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, dropper):
                task.cancel()
            await asyncio.gather(reader, dropper, return_exceptions=True)
            connection.closed_at = time.monotonic()
            connection._closed.set()
            self._changed()
        # Returning without a websocket.close makes uvicorn close the TCP connection with no
        # closing handshake: that is what `drop()` wants, and after a close it changes nothing.

    async def _read(self, connection: SocketConnection, websocket: WebSocket) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                connection.close_code = message.get("code")
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                frame = json.loads(text)
            except ValueError:
                frame = {"_raw": text}
            if not isinstance(frame, dict):
                frame = {"_raw": text}
            connection.received.append(frame)
            envelope_id = frame.get("envelope_id")
            if isinstance(envelope_id, str):
                self.acks.append(frame)
                self._ack_connection.setdefault(envelope_id, connection.number)
            self._changed()
