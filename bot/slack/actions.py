"""Buttons: ack at once, name the request, call one service; refusals are ephemeral."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.domain.errors import UnknownRequest
from bot.domain.operations import parse_id
from bot.services import Services
from bot.slack.errors import report

# A decision: (services, user_id, request_id, channel_id) -> anything.
Decision = Callable[[Services, str, int, str], Awaitable[object]]


def _channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    return str(channel.get("id") or container.get("channel_id") or "")


def action_listener(decide: Decision, services: Services) -> Any:
    async def on_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        try:
            user_id = str((body.get("user") or {}).get("id", ""))
            actions = body.get("actions") or [{}]
            request_id = parse_id(str(actions[0].get("value", "")))
            if request_id is None or not user_id:
                raise UnknownRequest("That button does not name a request.")
            await decide(services, user_id, request_id, _channel(body))
        except Exception as error:  # after ack() bolt would drop it; reply here instead
            await report(error, respond)

    on_action.__name__ = f"on_{getattr(decide, '__name__', 'action')}"
    return on_action
