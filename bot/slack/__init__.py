"""The Slack transport: the bolt app, its listeners and its HTTP endpoint."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.domain.model import Kind
from bot.services import Services, operations, restores
from bot.slack import ids
from bot.slack.actions import action_listener, on_unknown_action
from bot.slack.commands import acknowledge_then, command_listener
from bot.slack.errors import handle_error

log = logging.getLogger(__name__)


def web_client(token: str, base_url: str) -> AsyncWebClient:
    """Slack's Web API client with slack_sdk's own retry handlers (rate limits, connections)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


class SharedSession:
    """One aiohttp session for every Web API call and response_url post of the process, so
    connections to Slack are kept and reused (slack_sdk opens a new one per call without it)."""

    def __init__(self, *clients: AsyncWebClient) -> None:
        self._clients = clients
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Inside the running loop (aiohttp binds its session to it)."""
        self._session = aiohttp.ClientSession()
        for client in self._clients:
            client.session = self._session

    async def close(self) -> None:
        for client in self._clients:
            client.session = None
        if self._session is not None:
            await self._session.close()
            self._session = None


def register(app: AsyncApp, services: Services) -> None:
    """Every listener the bot has, in one screen. Each acks at once and starts its work as a
    task of its own (`acknowledge_then`), so an ack never waits behind other requests' work."""
    listeners: list[tuple[Callable[..., Any], str | re.Pattern[str], Any]] = [
        (app.command, "/snapshot", command_listener(Kind.SNAPSHOT, services)),
        (app.command, "/backup", command_listener(Kind.BACKUP, services)),
        (app.action, ids.DELETE_CONFIRM, action_listener(operations.confirm_delete, services)),
        (app.action, ids.DELETE_CANCEL, action_listener(operations.cancel, services)),
        (app.action, ids.RESTORE_APPROVE, action_listener(restores.approve, services)),
        (app.action, ids.RESTORE_DENY, action_listener(restores.deny, services)),
        (app.action, ids.RESTORE_CANCEL, action_listener(restores.cancel, services)),
        (app.action, re.compile(".*"), on_unknown_action),  # last: any other button
    ]
    for kind, matcher, work in listeners:
        kind(matcher)(acknowledge_then(work, services))
    app.error(handle_error)


def build_app(services: Services, *, bot_token: str, signing_secret: str, api_url: str) -> AsyncApp:
    app = AsyncApp(
        signing_secret=signing_secret,
        client=web_client(bot_token, api_url),
        name="vpsbot",
        # listeners only ack and start their work: the ack is answered as the listener returns
        process_before_response=True,
    )
    register(app, services)
    return app


def http_endpoint(app: AsyncApp) -> Callable[[Request], Awaitable[Response]]:
    """`POST /slack/events`: bolt verifies the signature before any listener runs.

    Slack sends slash commands and button clicks form-encoded; anything else is refused before
    bolt sees it, and a body bolt cannot parse is a 400, never a stack trace."""
    handler = AsyncSlackRequestHandler(app)

    async def slack_events(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return PlainTextResponse("expected a form-encoded Slack request", 415)
        try:
            return await handler.handle(request)
        except Exception as error:  # a malformed payload that bolt could not parse
            log.warning("refused an unparsable Slack request: %s", type(error).__name__)
            return PlainTextResponse("malformed Slack request", 400)

    return slack_events
