"""Socket Mode: the same bolt app over a WebSocket that the bot opens to Slack (no public URL)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.config import ConfigError, Unreachable

log = logging.getLogger(__name__)
PING_INTERVAL = 10.0  # seconds; slack_sdk reconnects after four missed pongs
CONNECT_TIMEOUT = 25.0  # seconds to open the WebSocket Slack offered (slack_sdk retries within)


class _NoTraceback(logging.Filter):
    """slack_sdk logs each failed connection attempt with its traceback; one line is enough
    unless the operator asked for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
            record.exc_info = None
            record.exc_text = None
        return True


# the Socket Mode client's own log (slack_sdk's), one line per event
client_log = logging.getLogger(f"{__name__}.client")
client_log.addFilter(_NoTraceback())


class SocketModeLink:
    """bolt's async Socket Mode handler (slack_sdk's aiohttp client) for one app-level token.

    slack_sdk keeps the connection up on its own: it answers Slack's `disconnect` requests and
    dropped connections by opening a new one. Opening checks the token first, so a wrong
    `SLACK_APP_TOKEN` stops the bot with one clear line instead of retrying for ever."""

    def __init__(self, app: AsyncApp, app_token: str) -> None:
        self._app = app
        self._token = app_token
        self._handler: AsyncSocketModeHandler | None = None

    async def open(self) -> None:
        try:
            answer = await self._app.client.apps_connections_open(app_token=self._token)
        except SlackApiError as error:
            reason = error.response.get("error", "refused") if error.response else "refused"
            raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({reason})") from None
        except (aiohttp.ClientError, OSError) as error:  # after slack_sdk's connection retries
            raise Unreachable(
                f"cannot reach Slack at SLACK_API_URL to open Socket Mode ({type(error).__name__})"
            ) from None
        # built here: slack_sdk's client starts its message processor on the running loop
        self._handler = AsyncSocketModeHandler(
            self._app, self._token, logger=client_log, ping_interval=PING_INTERVAL
        )
        self._handler.client.wss_uri = str(answer["url"])  # the ticket just issued, used once
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):  # slack_sdk would retry for ever
                await self._handler.connect_async()  # type: ignore[no-untyped-call]
        except TimeoutError:
            await self.close()
            raise Unreachable(
                "could not open the Socket Mode connection Slack offered within "
                f"{CONNECT_TIMEOUT:.0f} s: check that this machine may open WebSocket (wss://) "
                "connections to Slack"
            ) from None
        log.info("connected to Slack over Socket Mode")

    async def close(self) -> None:
        """Stop taking envelopes; work already acked goes on (the caller drains it)."""
        if self._handler is not None:
            await self._handler.close_async()  # type: ignore[no-untyped-call]
            self._handler = None
