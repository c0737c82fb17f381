"""Buttons: ack at once, name the request, call one service; refusals are ephemeral."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.domain.errors import NotAllowed, UnknownRequest
from bot.domain.operations import parse_id
from bot.logs import new_request_id
from bot.services import Services, operations, restores
from bot.services.access import check_channel
from bot.services.operations import Actor
from bot.slack.commands import Arrival
from bot.slack.inflight import InFlight
from bot.slack.replies import Reply

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
