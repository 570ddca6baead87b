"""A TCP proxy on 127.0.0.1 that can break what is behind it (the tests put it in front of PostgreSQL).

Three modes, switched at any moment from the test (`TcpProxy.up`, `freeze`, `down`):

``up``      bytes flow both ways, as if the client were connected to the server itself.
``frozen``  connections are accepted and kept, but nothing is forwarded in either direction:
            bytes read from either side are held, and a connection accepted now is not
            connected to the server yet. To the client the server hangs: a query never answers,
            a new connection never finishes its handshake. Nothing is closed.
``down``    every open connection is closed at once (both sides), and every new one is
            accepted and closed at once: the client learns immediately that the server is gone.

Back to ``up``, held bytes are forwarded in order and connections accepted while frozen are
connected to the server (a frozen database resumes where it stopped); after ``down``, clients
reconnect. Every connection the proxy accepts is recorded (`attempts`: when, in which mode), and
tests wait on the proxy's records with `wait_until` (woken by every change), never with sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Self

CHUNK = 65536


class Mode(StrEnum):
    """What the proxy does with connections; see the module docstring."""

    UP = "up"
    FROZEN = "frozen"
    DOWN = "down"


@dataclass(frozen=True)
class Attempt:
    """One connection the proxy accepted."""

    at: float
    """When (`time.monotonic`)."""
    mode: Mode
    """The proxy's mode when it arrived (``down``: it was closed at once)."""


@dataclass(eq=False)
class _Link:
    """One client connection and, once connected, its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        """Close both sides now, without flushing (what a crashed or unplugged server looks like)."""
        self.closed.set()
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()


class TcpProxy:
    """An asyncio TCP proxy from 127.0.0.1:<port> to `upstream_host`:`upstream_port`.

    Use as ``async with TcpProxy(host, port) as proxy:``; `port` is known once it has started.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = host
        self.attempts: list[Attempt] = []
        """Every connection accepted, in order."""
        self.held_bytes = 0
        """Bytes read while frozen and not forwarded yet (both directions)."""
        self.forwarded_bytes = 0
        """Bytes forwarded so far (both directions)."""
        self.mode_since = time.monotonic()
        """When the current mode began (`time.monotonic`)."""
        self._mode = Mode.UP
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._changed = asyncio.Event()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._port = 0

    # ----- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of `host`."""
        self._server = await asyncio.start_server(self._accepted, self.host, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every connection (each connection's handler then ends by itself)."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        self._links.clear()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=5)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port it listens on (after `start`)."""
        assert self._port, "the proxy has not started"
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    # ----- switching ------------------------------------------------------------------------------

    def up(self) -> None:
        """Forward both ways again (held bytes first, in order)."""
        self._switch(Mode.UP)

    def freeze(self) -> None:
        """Keep every connection, forward nothing: the server hangs."""
        self._switch(Mode.FROZEN)

    def down(self) -> None:
        """Close every connection now, and each new one as soon as it arrives."""
        self._switch(Mode.DOWN)

    def _switch(self, mode: Mode) -> None:
        self._mode = mode
        self.mode_since = time.monotonic()
        if mode is Mode.DOWN:
            for link in list(self._links):
                link.close()
            self._links.clear()
        if mode is Mode.UP:
            self._flowing.set()
        else:
            self._flowing.clear()
        self._notify()

    # ----- waiting --------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds; it is checked whenever a connection arrives, bytes are
        held or forwarded, or the mode changes. Raises TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ----- forwarding -----------------------------------------------------------------------------

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Only `close` cancels a handler (one that did not end by itself); asyncio's server
            # would report a cancelled handler as an error.
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts.append(Attempt(time.monotonic(), self._mode))
        self._notify()
        link = _Link(writer)
        if self._mode is Mode.DOWN:
            link.close()
            return
        self._links.add(link)
        try:
            # Accepted while frozen: the server hears of this connection only once it is up again.
            if not await self._until_flowing(link):
                return
            try:
                server_reader, link.server = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                return
            if link.closed.is_set():  # went down while connecting
                return
            pumps = [
                asyncio.create_task(self._pump(link, reader, link.server)),
                asyncio.create_task(self._pump(link, server_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.wait(pumps)
        finally:
            link.close()
            self._links.discard(link)
            self._notify()

    async def _pump(self, link: _Link, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        """Copy one direction until either side closes; while frozen, hold what was read."""
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await source.read(CHUNK)
                if not data:
                    return
                if not self._flowing.is_set():
                    self.held_bytes += len(data)
                    self._notify()
                    try:
                        if not await self._until_flowing(link):
                            return  # went down: what was held is lost, like the connection
                    finally:
                        self.held_bytes -= len(data)
                target.write(data)
                await target.drain()
                self.forwarded_bytes += len(data)
                self._notify()

    async def _until_flowing(self, link: _Link) -> bool:
        """Wait until the proxy is up (True) or this connection was closed (False)."""
        if not self._flowing.is_set():
            waits = {asyncio.create_task(self._flowing.wait()), asyncio.create_task(link.closed.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        return not link.closed.is_set()
