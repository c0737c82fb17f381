"""Serve an ASGI app with uvicorn inside the running event loop (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn's server, told to stop by `stop()` at once rather than at its next 0.1 s poll of
    `should_exit` (a test suite stops a few servers per test)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):  # uvicorn's own housekeeping, every 0.1 s
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)


@asynccontextmanager
async def serving(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: Literal["auto", "on", "off"] = "auto",
    sock: socket.socket | None = None,
) -> AsyncIterator[str]:
    """Yield the base URL (`http://127.0.0.1:PORT`) while `app` is served; stop it on exit.

    The default port 0 lets the system pick a free one: read it from the URL. `sock`, a TCP
    socket already bound (and not yet listening), is served instead of binding `host:port`;
    it is closed on exit like the socket `serving` makes."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()  # the address is taken: no socket left for the garbage collector
            raise
    host, port = sock.getsockname()[:2]
    # log_config=None: uvicorn's lines go through the process's own logging set-up (the demo
    # sends them to its log file), not handlers of its own on stderr
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="warning", access_log=False, log_config=None
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the start-up error
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        await task
        sock.close()
