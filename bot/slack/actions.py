"""Buttons: ack at once, name the request, call one service; refusals are ephemeral."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.domain.errors import NotAllowed, UnknownRequest
from bot.domain.operations import parse_id
from bot.logs import new_request_id
from bot.services import Services
from bot.slack.replies import Reply

# A decision: (services, user_id, request_id, channel_id) -> anything.
Decision = Callable[[Services, str, int, str], Awaitable[object]]


def _channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    return str(channel.get("id") or container.get("channel_id") or "")


def action_listener(decide: Decision, services: Services) -> Any:
    async def on_action(body: dict[str, Any], client: Any) -> None:
        new_request_id()
        user_id = str((body.get("user") or {}).get("id", ""))
        channel_id = _channel(body)
        reply = Reply(body.get("response_url"), client, channel_id, user_id)
        actions = body.get("actions") or [{}]
        action_id = str(actions[0].get("action_id", ""))
        async with services.inflight.hold():
            try:
                request_id = parse_id(str(actions[0].get("value", "")))
                if request_id is None or not user_id:
                    raise UnknownRequest("That button does not name a request.")
                await decide(services, user_id, request_id, channel_id)
            except Exception as error:
                if isinstance(error, NotAllowed):
                    await services.commands.refused(user_id, channel_id, action_id, error)
                await reply.fail(error, services)

    on_action.__name__ = f"on_{getattr(decide, '__name__', 'action')}"
    return on_action


async def on_unknown_action(body: dict[str, Any], client: Any) -> None:
    """A button vpsbot does not know (an old message, a forged payload): refuse, change nothing."""
    user_id = str((body.get("user") or {}).get("id", ""))
    reply = Reply(body.get("response_url"), client, _channel(body), user_id)
    await reply.fail(UnknownRequest("That button is not one vpsbot knows; nothing was done."))
