"""SlackNotifier: delivers outbox entries through the Web API (slack_sdk's retry handlers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest
from bot.services.ports import Clock, Delivery, DeliveryError
from bot.slack import blocks
from bot.slack.blocks.requests import reminder_message

log = logging.getLogger(__name__)
PERMALINK_SECONDS = 3.0  # at most this long asking for a card's link before a DM goes without

# Web API errors worth trying again later; any other error is final for that message.
RETRYABLE = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


def slack_error_code(error: SlackApiError) -> str:
    """Slack's error code (`not_in_channel`…), "" when the answer carried none."""
    return str(error.response.get("error", "") or "") if error.response is not None else ""


def is_retryable(error: SlackApiError) -> bool:
    status = error.response.status_code if error.response is not None else 0
    return slack_error_code(error) in RETRYABLE or status == 429 or status >= 500


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
            if kind == "alert":
                return await self._alert(payload)
            if request is None:
                raise DeliveryError("the request behind this message is gone", retryable=False)
            return await self._send(kind, payload, request)
        except SlackApiError as error:
            code = slack_error_code(error)
            status = error.response.status_code if error.response is not None else 0
            raise DeliveryError(
                f"Slack said {code or status}", retryable=is_retryable(error), code=code
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise DeliveryError(
                f"Slack unreachable: {type(error).__name__}", retryable=True
            ) from None

    async def _notice(self, payload: dict[str, Any]) -> Delivery:
        channel = str(payload.get("channel", ""))
        message = blocks.notice_message(str(payload.get("event", "")))
        posted = await self._client.chat_postMessage(channel=channel, **message.as_kwargs())
        return Delivery(channel, posted.get("ts"))

    async def _alert(self, payload: dict[str, Any]) -> Delivery:
        """A server's health changed: told in VPSBOT_ALERT_CHANNEL."""
        channel = str(payload.get("channel", ""))
        message = blocks.alert_message(payload, self._clock())
        posted = await self._client.chat_postMessage(channel=channel, **message.as_kwargs())
        return Delivery(channel, posted.get("ts"))

    async def _send(
        self, kind: str, payload: dict[str, Any], request: OperationRequest
    ) -> Delivery:
        now = self._clock()
        channel = request.channel_id
        if kind == "tell_requester":
            return await self._tell_requester(payload, request)
        if kind == "dm":
            permalink = await self._permalink(request)
            message = blocks.outcome_message(request, now, direct=True, permalink=permalink)
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
        if kind == "note":
            return await self._note(payload, request)
        if kind == "remind":
            return await self._remind(payload, request)
        message = blocks.request_message(request, now)
        if kind == "update" and request.message_ts:
            await self._client.chat_update(
                channel=channel, ts=request.message_ts, **message.as_kwargs()
            )
            return Delivery(channel, request.message_ts)
        # "post", or an update whose original message never made it: post it now.
        posted = await self._client.chat_postMessage(channel=channel, **message.as_kwargs())
        return Delivery(channel, posted.get("ts"))

    async def _note(self, payload: dict[str, Any], request: OperationRequest) -> Delivery:
        """A note in the card's thread (in the channel when the card has no ts)."""
        message = blocks.note_message(request, str(payload.get("note", "")), self._clock())
        posted = await self._client.chat_postMessage(  # thread_ts None: not sent
            channel=request.channel_id, thread_ts=request.message_ts or None, **message.as_kwargs()
        )
        return Delivery(request.channel_id, posted.get("ts"))

    async def _remind(self, payload: dict[str, Any], request: OperationRequest) -> Delivery:
        """A restore's one reminder, in its card's thread (in the channel when the card has no
        ts). Not sent when the request was decided after the reminder was queued."""
        if request.status is not Status.PENDING_APPROVAL:
            log.info("request %d: no reminder, it is %s", request.id, request.status.value)
            return Delivery(request.channel_id, None)
        approvers = payload.get("approvers")
        listed = [str(a) for a in approvers] if isinstance(approvers, list) else []
        message = reminder_message(request, listed, self._clock())
        posted = await self._client.chat_postMessage(  # thread_ts None: not sent
            channel=request.channel_id, thread_ts=request.message_ts or None, **message.as_kwargs()
        )
        return Delivery(request.channel_id, posted.get("ts"))

    async def _permalink(self, request: OperationRequest) -> str:
        """A link to the request's card, for a DM; "" when there is no card or Slack would not
        say (the DM then names the channel): a DM is never lost for want of its link."""
        if not request.message_ts:
            return ""
        try:
            # bounded: the outbox row is leased while this runs, and the link is only a nicety
            async with asyncio.timeout(PERMALINK_SECONDS):
                answer = await self._client.chat_getPermalink(
                    channel=request.channel_id, message_ts=request.message_ts
                )
        except SlackApiError as error:
            reason = slack_error_code(error) or "no error code"
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = type(error).__name__
        else:
            return str(answer.get("permalink") or "")
        log.info("request %d: no link to its card for the DM (%s)", request.id, reason)
        return ""

    async def _tell_requester(self, payload: dict[str, Any], request: OperationRequest) -> Delivery:
        """The request's card could not be posted: tell the requester why and what to do.
        Ephemeral in the channel when `ephemeral` (Slack refuses that too when the bot is not
        in the channel), else, or then, in a DM."""
        person = str(payload.get("user") or request.requester_id)
        code = str(payload.get("slack_error", ""))
        cancelled = bool(payload.get("cancelled"))
        if payload.get("ephemeral"):
            message = blocks.card_not_posted_message(
                request, code, cancelled=cancelled, direct=False
            )
            try:
                posted = await self._client.chat_postEphemeral(
                    channel=request.channel_id, user=person, **message.as_kwargs()
                )
                return Delivery(request.channel_id, posted.get("message_ts"))
            except SlackApiError as error:
                if is_retryable(error):
                    raise
                log.info(
                    "request %d: ephemeral refused (%s); telling the requester by DM",
                    request.id,
                    slack_error_code(error) or "no error code",
                )
        message = blocks.card_not_posted_message(request, code, cancelled=cancelled, direct=True)
        opened = await self._client.conversations_open(users=person)
        dm = opened["channel"]["id"]
        posted = await self._client.chat_postMessage(channel=dm, **message.as_kwargs())
        return Delivery(dm, posted.get("ts"))
