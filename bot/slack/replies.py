"""Answering the person: ephemeral through response_url, falling back to the Web API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.services import Services
from bot.slack.blocks import Message
from bot.slack.errors import describe, log_error

log = logging.getLogger(__name__)
ANSWER_TIMEOUT = 10  # seconds for a response_url post before falling back to the Web API


@dataclass
class Reply:
    """Where the answer to one command or click goes."""

    response_url: str | None
    client: AsyncWebClient | None
    channel_id: str
    user_id: str

    async def send(self, message: Message) -> None:
        """Ephemeral to the person (a `public` message: to the channel). A response_url that
        has expired or been used up (Slack allows five answers in 30 minutes) falls back to
        chat.postEphemeral (chat.postMessage for a public one). The post goes through the Web
        API client's session when it has one (connections to Slack reused)."""
        if self.response_url:
            hook = AsyncWebhookClient(
                self.response_url,
                timeout=ANSWER_TIMEOUT,
                session=getattr(self.client, "session", None),
            )
            try:
                answer = await hook.send(
                    response_type="in_channel" if message.public else "ephemeral",
                    replace_original=False,
                    **message.as_kwargs(),
                )
                if answer.status_code == 200:
                    return
                log.warning("response_url answered %s", answer.status_code)
            except Exception as error:
                log.warning("response_url failed: %s", type(error).__name__)
        if self.client is None or not self.channel_id or not self.user_id:
            log.error("no way left to answer the person")
            return
        try:
            if message.public:
                await self.client.chat_postMessage(channel=self.channel_id, **message.as_kwargs())
                return
            await self.client.chat_postEphemeral(
                channel=self.channel_id, user=self.user_id, **message.as_kwargs()
            )
        except Exception as error:
            log.error("could not answer the person: %s", type(error).__name__)

    async def fail(self, error: Exception, services: Services | None = None) -> None:
        """Log `error` as it deserves, raise any alarm it calls for, and explain it."""
        log_error(error)
        if services is not None:
            try:
                await services.alarms.noticed(services.life, error, self.channel_id)
            except Exception:
                log.exception("could not raise the configuration alarm")
        await self.send(describe(error))
