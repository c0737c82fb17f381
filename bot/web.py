"""The HTTP surface: `POST /slack/events` (bolt) and `GET /healthz` (database reachable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY = 1024 * 1024  # Slack's payloads are far smaller; anything bigger is refused unread


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await PlainTextResponse("request body too large", 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except TooLarge:
            await PlainTextResponse("request body too large", 413)(scope, receive, send)


class TooLarge(Exception):
    pass


def web_app(
    slack_events: Endpoint | None,
    database_ok: Callable[[], Awaitable[bool]],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """`GET /healthz`, and `POST /slack/events` unless Slack reaches the bot by Socket Mode."""

    async def healthz(request: Request) -> Response:
        if await database_ok():
            return JSONResponse({"status": "ok", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if slack_events is not None:
        routes.append(Route("/slack/events", slack_events, methods=["POST"]))
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit)],
        lifespan=lifespan,
    )


__all__ = ["web_app"]
