"""Buttons: ack at once, name the request, call one service; refusals are ephemeral."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.domain.errors import NotAllowed, UnknownRequest
from bot.domain.operations import parse_id
from bot.logs import new_request_id
from bot.services import Services, operations, restores
from bot.services.access import check_channel
from bot.services.operations import Actor
from bot.slack.blocks import Message, error_message
from bot.slack.blocks import requests as cards
from bot.slack.blocks.requests import DENY_REASON_BLOCK, DENY_REASON_INPUT, deny_modal
from bot.slack.commands import Arrival, Work
from bot.slack.inflight import InFlight
from bot.slack.replies import Reply

log = logging.getLogger(__name__)
DENY_VIEW = cards.DENY_VIEW  # the Deny modal's callback_id (its listener is registered by it)
# How long a Deny click waits to learn whether it is the requester's own (a Cancel, at once)
# before opening the reason modal anyway: Slack's trigger_id is good for 3 s from the click.
QUICK_LOOK = 0.5

# A decision: (services, user_id, request_id, channel_id, clicked_at) -> anything.
Decision = Callable[[Services, str, int, str, datetime], Awaitable[object]]


# -- the decisions each button makes, each calling one use case with what it needs ------------


async def confirm_delete(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    await operations.confirm_delete(s.vps, s.life, user, request, channel, at)


async def cancel_delete(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    await operations.cancel(s.life, user, request, channel, at)


async def approve(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    await restores.approve(s.vps, s.life, s.directory, user, request, channel, at)


async def deny(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    await restores.deny(s.life, s.directory, user, request, channel, at)


async def cancel_restore(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    await restores.cancel(s.life, user, request, channel, at)


async def undo(s: Services, user: str, request: int, channel: str, at: datetime) -> None:
    """*Undo restore*: ask for a restore back to the safety snapshot (a new request, approved
    like any; its card goes out through the outbox). Only where commands are taken."""
    check_channel(s.policy.channels, channel)
    await restores.undo(s.vps, s.life, Actor(user, channel), request)


def _object(value: object) -> dict[str, Any]:
    """A payload field Slack sends as an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _channel(body: dict[str, Any]) -> str:
    channel = _object(body.get("channel"))
    container = _object(body.get("container"))
    return str(channel.get("id") or container.get("channel_id") or "")


def _user(body: dict[str, Any]) -> str:
    return str(_object(body.get("user")).get("id") or "")


def _response_url(body: dict[str, Any]) -> str | None:
    url = body.get("response_url")
    return url if isinstance(url, str) else None


def _first_action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    return _object(actions[0]) if isinstance(actions, list) and actions else {}


def action_listener(decide: Decision, services: Services, inflight: InFlight) -> Any:
    if decide is deny:  # Deny asks for a reason first (deny_listener)
        return deny_listener(services, inflight)
    return _decision_listener(decide, services, inflight)


def _decision_listener(decide: Decision, services: Services, inflight: InFlight) -> Any:
    async def on_action(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        user_id = _user(body)
        channel_id = _channel(body)
        reply = Reply(_response_url(body), client, channel_id, user_id)
        action = _first_action(body)
        action_id = str(action.get("action_id", ""))
        # clicks have turns of their own: an Approve never waits behind slow lists
        async with inflight.hold(lane="click"):
            try:
                request_id = parse_id(str(action.get("value", "")))
                if request_id is None or not user_id:
                    raise UnknownRequest("That button does not name a request.")
                if not await services.commands.first_delivery(
                    arrival.key, user_id, channel_id, action_id
                ):
                    return  # a retry or a replay of this very click
                await decide(services, user_id, request_id, channel_id, arrival.at)
            except Exception as error:
                if isinstance(error, NotAllowed):
                    await services.commands.refused(user_id, channel_id, action_id, error)
                await reply.fail(error, services)

    on_action.__name__ = f"on_{getattr(decide, '__name__', 'action')}"
    return on_action


async def on_unknown_action(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
    """A button vpsbot does not know (an old message, a forged payload): refuse, change nothing."""
    reply = Reply(_response_url(body), client, _channel(body), _user(body))
    await reply.fail(UnknownRequest("That button is not one vpsbot knows; nothing was done."))


# -- Deny: a modal asks for a reason, its submission denies --------------------------------------


class _SubmissionReply(Reply):
    """The answer to a modal's submission (which has no response_url, and whose modal has
    closed): ephemeral in the card's channel, or a DM when Slack will not show it there (the
    person is not in that channel, or none is known)."""

    async def send(self, message: Message) -> None:
        if self.client is None or not self.user_id:
            log.error("no way left to answer the person")
            return
        if self.channel_id:
            try:
                await self.client.chat_postEphemeral(
                    channel=self.channel_id, user=self.user_id, **message.as_kwargs()
                )
                return
            except Exception as error:
                log.info("ephemeral refused (%s); answering by DM", type(error).__name__)
        try:
            opened = await self.client.conversations_open(users=self.user_id)
            await self.client.chat_postMessage(
                channel=opened["channel"]["id"], **message.as_kwargs()
            )
        except Exception as error:
            log.error("could not answer the person: %s", type(error).__name__)


async def _quick(look: Awaitable[bool], seconds: float) -> tuple[bool | None, asyncio.Future[bool]]:
    """`look`'s answer if it comes within `seconds` (None otherwise, or if it failed); the
    look goes on, never cancelled mid-transaction, and is returned to be awaited later."""
    task = asyncio.ensure_future(look)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done or task.exception() is not None:
        return None, task
    return task.result(), task


def deny_listener(services: Services, inflight: InFlight) -> Work:
    """The Deny button (on the card, and anywhere else it is shown with the request's id).
    An approver gets a modal asking for an optional reason, opened with the click's
    trigger_id before anything slow (Slack allows 3 s from the click); its submission
    (`deny_submission`) denies. The requester's own Deny is a Cancel, and a request already
    decided is refused, both at once and without a modal, when a quick look says so."""
    decided = _decision_listener(deny, services, inflight)

    async def on_deny(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        user_id, channel_id = _user(body), _channel(body)
        action = _first_action(body)
        request_id = parse_id(str(action.get("value", "")))
        trigger = body.get("trigger_id")
        if request_id is None or not user_id or not isinstance(trigger, str) or not trigger:
            await decided(body, client, arrival)  # refused as any malformed click
            return
        ask, look = await _quick(
            restores.asks_reason(services.life, request_id, user_id), QUICK_LOOK
        )
        if ask is False:  # the requester's own (a Cancel), or not waiting any more
            await decided(body, client, arrival)
            return
        opened = True
        try:
            await client.views_open(trigger_id=trigger, view=deny_modal(request_id, channel_id))
        except Exception as error:
            opened = False
            log.warning("could not open the Deny modal: %s", type(error).__name__)
        with contextlib.suppress(Exception):
            await look  # a slow look: its answer is not needed any more
        async with inflight.hold(lane="click"):
            try:
                first = await services.commands.first_delivery(
                    arrival.key, user_id, channel_id, str(action.get("action_id", ""))
                )
            except Exception as error:
                log.warning("could not record the Deny click: %s", type(error).__name__)
                first = True
            if not opened and first:  # a replay's trigger is spent: that one says nothing
                reply = Reply(_response_url(body), client, channel_id, user_id)
                await reply.send(
                    error_message(
                        ":warning: Slack did not open the form to deny this restore in time; "
                        "nothing was denied. Click *Deny* again."
                    )
                )

    on_deny.__name__ = "on_deny"
    return on_deny


def _submitted(body: dict[str, Any]) -> tuple[int | None, str, str]:
    """The request id and channel the modal carries, and the reason typed ("" when none)."""
    view = _object(body.get("view"))
    try:
        meta = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        meta = {}
    meta = _object(meta)
    request_id = parse_id(str(meta.get("request", "")))
    channel = meta.get("channel")
    values = _object(_object(view.get("state")).get("values"))
    typed = _object(_object(values.get(DENY_REASON_BLOCK)).get(DENY_REASON_INPUT)).get("value")
    return request_id, channel if isinstance(channel, str) else "", typed or ""


def deny_submission(services: Services, inflight: InFlight) -> Work:
    """The Deny modal was submitted (acknowledged at once: the modal closes): deny with the
    reason typed. Refusals (not an approver, already decided, expired…) are audited and told
    ephemerally in the card's channel, or by DM when that is not possible."""

    async def on_deny_reason(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        user_id = _user(body)
        request_id, channel_id, reason = _submitted(body)
        reply = _SubmissionReply(None, client, channel_id, user_id)
        async with inflight.hold(lane="click"):
            try:
                if request_id is None or not user_id:
                    raise UnknownRequest("That form does not name a request; nothing was done.")
                if not await services.commands.first_delivery(
                    arrival.key, user_id, channel_id, DENY_VIEW
                ):
                    return  # a retry or a replay of this very submission
                await restores.deny(
                    services.life,
                    services.directory,
                    user_id,
                    request_id,
                    channel_id,
                    arrival.at,
                    reason=str(reason),
                )
            except Exception as error:
                if isinstance(error, NotAllowed):
                    await services.commands.refused(user_id, channel_id, DENY_VIEW, error)
                await reply.fail(error, services)

    on_deny_reason.__name__ = "on_deny_reason"
    return on_deny_reason
