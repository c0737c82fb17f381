"""SlackNotifier: delivers outbox entries through the Web API (slack_sdk's retry handlers)."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.model import OperationRequest
from bot.services.ports import Clock, Delivery, DeliveryError
from bot.slack import blocks

# Web API errors worth trying again later; any other error is final for that message.
RETRYABLE = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


class SlackNotifier:
    def __init__(self, client: AsyncWebClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock

    async def deliver(
        self, kind: str, payload: dict[str, Any], request: OperationRequest | None
    ) -> Delivery:
        try:
            if kind == "notice":
                return await self._notice(payload)
            if request is None:
                raise DeliveryError("the request behind this message is gone", retryable=False)
            return await self._send(kind, payload, request)
        except SlackApiError as error:
            code = str(error.response.get("error", "")) if error.response else ""
            status = error.response.status_code if error.response is not None else 0
            retryable = code in RETRYABLE or status == 429 or status >= 500
            raise DeliveryError(f"Slack said {code or status}", retryable=retryable) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise DeliveryError(
                f"Slack unreachable: {type(error).__name__}", retryable=True
            ) from None

    async def _notice(self, payload: dict[str, Any]) -> Delivery:
        channel = str(payload.get("channel", ""))
        message = blocks.notice_message(str(payload.get("event", "")))
        posted = await self._client.chat_postMessage(channel=channel, **message.as_kwargs())
        return Delivery(channel, posted.get("ts"))

    async def _send(
        self, kind: str, payload: dict[str, Any], request: OperationRequest
    ) -> Delivery:
        now = self._clock()
        channel = request.channel_id
        if kind == "dm":
            message = blocks.outcome_message(request, now, direct=True)
            opened = await self._client.conversations_open(users=str(payload["user"]))
            dm = opened["channel"]["id"]
            posted = await self._client.chat_postMessage(channel=dm, **message.as_kwargs())
            return Delivery(dm, posted.get("ts"))
        if kind == "reply":
            message = blocks.outcome_message(request, now)
            posted = await self._client.chat_postMessage(
                channel=channel, thread_ts=request.message_ts, **message.as_kwargs()
            )
            return Delivery(channel, posted.get("ts"))
        message = blocks.request_message(request, now)
        if kind == "update" and request.message_ts:
            await self._client.chat_update(
                channel=channel, ts=request.message_ts, **message.as_kwargs()
            )
            return Delivery(channel, request.message_ts)
        # "post", or an update whose original message never made it: post it now.
        posted = await self._client.chat_postMessage(channel=channel, **message.as_kwargs())
        return Delivery(channel, posted.get("ts"))
