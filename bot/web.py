"""The HTTP surface: `POST /slack/events` (bolt), `GET /healthz` (database reachable) and
`GET /metrics` (Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import metrics

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY = 1024 * 1024  # Slack's payloads are far smaller; anything bigger is refused unread
# An oversized streamed body is read on (and dropped) up to this much more before the 413 goes
# out, so that a client still sending it gets the answer rather than a reset connection.
MAX_DRAINED = 8 * MAX_BODY


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, declared or streamed (a
    chunked body has no Content-Length). The body is read here, up to the limit, before the
    app runs: the app never sees part of an oversized body, so nothing it does can stand in
    for the 413 (bolt reading a body cut short answered 400)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                if message.get("more_body", False) and not await _drained(receive):
                    return  # the client went away
                await _too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body: Message | None = {
            "type": "http.request",
            "body": b"".join(chunks),
            "more_body": False,
        }

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: a disconnect, when it comes
            message, body = body, None
            return message

        await self.app(scope, replay, send)


async def _drained(receive: Receive, most: int = MAX_DRAINED) -> bool:
    """Read the rest of a body and drop it, up to `most` bytes; False if the client left."""
    while most > 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        most -= len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return True


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    # the connection is not reused: what is left of the body is never read
    response = PlainTextResponse("request body too large", 413, headers={"Connection": "close"})
    await response(scope, receive, send)


def web_app(
    slack_events: Endpoint | None,
    database_ok: Callable[[], Awaitable[bool]],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    refresh: metrics.Refresh | None = None,
    working: Callable[[], bool] | None = None,
) -> Starlette:
    """`GET /healthz` (`working`: whether the work process is up, when there is one),
    `GET /metrics` (Prometheus; `refresh` sets the database gauges first),
    and `POST /slack/events` unless Slack reaches the bot by Socket Mode."""

    async def scrape(request: Request) -> Response:
        body, content_type = await metrics.render(refresh)
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> Response:
        """200 while the database answers and, with a work process (`working`), it is up: a
        front whose work process cannot be started again would ack and do nothing."""
        database = await database_ok()
        answer: dict[str, str] = {"database": "ok" if database else "unreachable"}
        up = working is None or working()
        if working is not None:
            answer["work_process"] = "ok" if up else "down"
        if database and up:
            return JSONResponse({"status": "ok"} | answer)
        return JSONResponse({"status": "unavailable"} | answer, status_code=503)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]
    if slack_events is not None:
        routes.append(Route("/slack/events", slack_events, methods=["POST"]))
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit)],
        lifespan=lifespan,
    )


__all__ = ["web_app"]
