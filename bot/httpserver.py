"""Run an ASGI app with uvicorn inside the current event loop, on a socket bound up front.

Binding the socket before uvicorn starts means the port is known at once and clients can
connect immediately (the kernel queues them until uvicorn accepts). Used by the console demo
(the in-process sandbox) and by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class RunningServer:
    """A uvicorn server running as a task of the current loop."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Ask uvicorn to shut down and wait for it."""
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket with TCP_NODELAY.

    The protocol is given explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    ``proto`` is IPPROTO_TCP, and a socket made with proto 0 would let Nagle's algorithm and
    delayed ACKs hold small answers (a Slack ack) for ~40 ms.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: str = "auto",
    log_level: str = "warning",
    graceful_timeout: float = 2.0,
) -> RunningServer:
    """Serve `app` on host:port (0 picks a free port) and return once the socket listens."""
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan=lifespan,  # type: ignore[arg-type]
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=int(graceful_timeout) or 1,
    )
    server = uvicorn.Server(config)
    # The embedding program owns the signals (Ctrl-C in the console must reach the console).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    return RunningServer(server=server, task=task, host=host, port=bound_port)
