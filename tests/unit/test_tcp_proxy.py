"""The TCP proxy of the store fault tests (`tests.fakes.tcp_proxy`), in front of a tiny echo server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.fakes.tcp_proxy import Mode, TcpProxy

WAIT = 5.0


@dataclass
class EchoServer:
    """Sends back whatever it reads; counts its connections and the bytes it received."""

    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                self.received += data
                writer.write(data)
                await writer.drain()
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", echo.port) as running:
        yield running


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(WAIT):
        return await reader.readexactly(len(data))


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True when the connection ends (EOF or reset) instead of delivering bytes."""
    try:
        async with asyncio.timeout(WAIT):
            return await reader.read(1024) == b""
    except ConnectionError:
        return True


async def test_up_forwards_both_ways(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"hello") == b"hello"
    assert await round_trip(reader, writer, b"x" * 200_000) == b"x" * 200_000
    assert echo.connections == 1
    assert [a.mode for a in proxy.attempts] == [Mode.UP]
    writer.close()


async def test_frozen_holds_every_byte_until_up_again(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"before") == b"before"

    proxy.freeze()
    writer.write(b"held")
    await writer.drain()
    await proxy.wait_until(lambda: proxy.held_bytes == 4, timeout=WAIT)
    assert bytes(echo.received) == b"before", "a frozen proxy forwarded bytes to the server"

    # A connection accepted while frozen is kept open, but the server does not hear of it.
    late_reader, late_writer = await connect(proxy)
    await proxy.wait_until(lambda: len(proxy.attempts) == 2, timeout=WAIT)
    late_writer.write(b"late")
    await late_writer.drain()
    assert echo.connections == 1, "a frozen proxy connected a new client to the server"

    proxy.up()
    async with asyncio.timeout(WAIT):
        assert await reader.readexactly(4) == b"held"
        assert await late_reader.readexactly(4) == b"late"
    assert echo.connections == 2
    assert proxy.held_bytes == 0
    assert [a.mode for a in proxy.attempts] == [Mode.UP, Mode.FROZEN]
    writer.close()
    late_writer.close()


async def test_down_closes_every_connection_and_refuses_new_ones_until_up(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"ping") == b"ping"

    proxy.down()
    assert await closed_by_peer(reader), "an open connection survived the proxy going down"
    refused_reader, refused_writer = await connect(proxy)
    assert await closed_by_peer(refused_reader), "a new connection was kept while down"
    assert proxy.attempts[-1].mode is Mode.DOWN
    assert echo.connections == 1

    proxy.up()
    again_reader, again_writer = await connect(proxy)
    assert await round_trip(again_reader, again_writer, b"back") == b"back"
    assert echo.connections == 2
    for w in (writer, refused_writer, again_writer):
        w.close()


async def test_down_while_frozen_drops_what_was_held(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    assert await round_trip(reader, writer, b"one") == b"one"
    proxy.freeze()
    writer.write(b"lost")
    await writer.drain()
    await proxy.wait_until(lambda: proxy.held_bytes == 4, timeout=WAIT)

    proxy.down()
    assert await closed_by_peer(reader)
    await proxy.wait_until(lambda: proxy.held_bytes == 0, timeout=WAIT)
    proxy.up()
    assert bytes(echo.received) == b"one", "bytes held before going down reached the server"
    writer.close()


async def test_close_ends_every_connection_quietly(echo: EchoServer) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        proxy = TcpProxy("127.0.0.1", echo.port)
        await proxy.start()
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, b"up") == b"up"
        proxy.freeze()
        writer.write(b"held")
        await writer.drain()
        frozen_reader, frozen_writer = await connect(proxy)
        await proxy.wait_until(lambda: proxy.held_bytes == 4 and len(proxy.attempts) == 2, timeout=WAIT)

        await proxy.close()
        assert await closed_by_peer(reader)
        assert await closed_by_peer(frozen_reader)
        assert errors == [], "closing the proxy made its connection handlers fail"
        for w in (writer, frozen_writer):
            w.close()
    finally:
        loop.set_exception_handler(None)
