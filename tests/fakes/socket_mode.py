"""A fake Slack Socket Mode server on loopback: hands out ws:// URLs, sends envelopes, keeps acks.

Slack's side of the protocol as its documentation describes it: `apps.connections.open` (called
with the app-level token) returns a one-time WebSocket URL; on connecting, the app receives
`{"type": "hello"}`, then envelopes (`slash_commands`, `interactive`, …) that it must acknowledge
by sending back `{"envelope_id": …}` (with an optional `payload`) within 3 seconds. A `disconnect`
message asks the app to open a new connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Envelope:
    """One envelope sent to the app, and the ack it got back (None until it arrives)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    sent_at: float
    ack: dict[str, Any] | None = None
    acked_at: float | None = None


@dataclass
class SocketModeServer:
    """Serves `GET /link/{ticket}` WebSockets; `url()` issues a one-time ticket URL."""

    app_token: str
    base_url: str = ""
    envelopes: list[Envelope] = field(default_factory=list)
    connections: int = 0  # connections opened so far
    tickets: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/link/{ticket}", self._link)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"ws://127.0.0.1:{port}"

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def open_connection(self, token: str) -> dict[str, Any]:
        """The answer to `apps.connections.open`: a fresh ticket URL, for the app token only."""
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        ticket = f"ticket{next(self._ids)}"
        self.tickets.add(ticket)
        return {"ok": True, "url": f"{self.base_url}/link/{ticket}"}

    @property
    def connected(self) -> bool:
        return any(not s.closed for s in self._sockets)

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        if ticket not in self.tickets:  # each URL is good for one connection
            return web.Response(status=401, text="unknown or used ticket")
        self.tickets.discard(ticket)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.connections += 1
        self._sockets.append(socket)
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0000TEST"}}
        )
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            for envelope in self.envelopes:
                if envelope.envelope_id == ack.get("envelope_id") and envelope.ack is None:
                    envelope.ack, envelope.acked_at = ack, time.monotonic()
        self._sockets.remove(socket)
        return socket

    async def send(self, kind: str, payload: dict[str, Any], *, wait: float = 10.0) -> Envelope:
        """Send one envelope over the newest open connection (waiting for one to be open)."""
        deadline = time.monotonic() + wait
        while not self.connected:
            if time.monotonic() > deadline:
                raise AssertionError("the app never connected over Socket Mode")
            await asyncio.sleep(0.01)
        socket = next(s for s in reversed(self._sockets) if not s.closed)
        envelope = Envelope(f"env-{next(self._ids)}", kind, payload, time.monotonic())
        self.envelopes.append(envelope)
        await socket.send_json(
            {
                "envelope_id": envelope.envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind == "slash_commands",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope

    async def acked(self, envelope: Envelope, wait: float = 5.0) -> dict[str, Any]:
        """The ack the app sent for `envelope`; fail if none arrives within `wait` seconds."""
        deadline = time.monotonic() + wait
        while envelope.ack is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no ack for {envelope.envelope_id} within {wait} s")
            await asyncio.sleep(0.01)
        return envelope.ack

    async def ask_to_reconnect(self) -> None:
        """Slack's periodic `disconnect` (refresh_requested): the app must open a new connection."""
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.send_json({"type": "disconnect", "reason": "refresh_requested"})
