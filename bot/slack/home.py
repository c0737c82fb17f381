"""The App Home tab: published (`views.publish`) when a person opens it, and again after each
click in it.

A click in a Home tab comes from a view, not a message: its payload names no channel and
carries no response_url. Its buttons have action ids of their own (`ids.HOME_*`); the request
is looked up by the id the button carries, and the card's use cases are called with the
request's own channel, so the card in that channel is updated by the outbox as for a click on
it. A refusal cannot be ephemeral without a channel the person is looking at: it is sent to
them as a DM (the app's Messages tab) and shown on top of the republished Home tab.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.domain.errors import NotAllowed, NotEligible, UnknownRequest
from bot.domain.lifecycle import Status
from bot.domain.model import Action, OperationRequest
from bot.domain.operations import parse_id
from bot.logs import new_request_id
from bot.services import Services, operations, restores, views
from bot.slack import blocks
from bot.slack.blocks.requests import deny_modal
from bot.slack.commands import Arrival
from bot.slack.errors import describe, log_error
from bot.slack.inflight import InFlight

log = logging.getLogger(__name__)

# Slack's event ids (`Ev0123ABCD`): a retried event carries its first delivery's id.
EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# A decision from a Home tab: (services, user_id, the request, clicked_at) -> anything.
HomeDecision = Callable[[Services, str, OperationRequest, datetime], Awaitable[object]]


# -- the decisions, each calling the card's use case with the request's own channel ------------


async def _may_vote_here(s: Services, user: str) -> None:
    """The Home tab is in no channel: only configured approvers vote there. With none
    configured, a vote belongs to the people of the request's channel, on its card."""
    if not s.life.policy.approvers:
        raise NotEligible(
            "No approvers are configured, so votes are taken on the request's card, by the "
            "people of its channel: vote there. Nothing was done."
        )


async def approve(s: Services, user: str, request: OperationRequest, at: datetime) -> None:
    await _may_vote_here(s, user)
    await restores.approve(s.vps, s.life, s.directory, user, request.id, request.channel_id, at)


async def deny(s: Services, user: str, request: OperationRequest, at: datetime) -> None:
    await _may_vote_here(s, user)
    await restores.deny(s.life, s.directory, user, request.id, request.channel_id, at)


async def cancel(s: Services, user: str, request: OperationRequest, at: datetime) -> None:
    """Cancel: a restore waiting for approval, or a delete waiting for confirmation."""
    if request.action is Action.DELETE:
        await operations.cancel(s.life, user, request.id, request.channel_id, at)
    else:
        await restores.cancel(s.life, user, request.id, request.channel_id, at)


# -- publishing and telling -------------------------------------------------------------------


async def publish(services: Services, client: Any, user_id: str, notice: str | None = None) -> None:
    """Read `user_id`'s Home tab and publish it; a failure is logged (the next opening of the
    tab publishes it again)."""
    try:
        home = await views.home(services.life, services.directory, user_id)
        await client.views_publish(user_id=user_id, view=blocks.home_view(home, notice))
    except Exception as error:
        log.warning(
            "could not publish a Home tab: %s",
            type(error).__name__,
            exc_info=not isinstance(error, SlackApiError),
        )


async def tell(client: Any, user_id: str, message: blocks.Message) -> None:
    """A DM to the person (a click in a Home tab has no channel to answer in)."""
    try:
        opened = await client.conversations_open(users=user_id)
        await client.chat_postMessage(channel=opened["channel"]["id"], **message.as_kwargs())
    except Exception as error:
        log.warning("could not answer a Home tab click by DM: %s", type(error).__name__)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_key(body: dict[str, Any]) -> str | None:
    """The identity of an Events API delivery: its `event_id` (the same in Slack's retries)."""
    event_id = body.get("event_id")
    if isinstance(event_id, str) and EVENT_ID.match(event_id):
        return f"e:{event_id}"
    return None


# -- listeners (started after the ack by `acknowledge_then`) ------------------------------------


def opened_listener(services: Services, inflight: InFlight) -> Any:
    """`app_home_opened` on the Home tab: publish it for that person, once per event."""

    async def on_home_opened(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        event = _object(body.get("event"))
        user_id, key = event.get("user"), event_key(body)
        if event.get("tab") != "home" or not isinstance(user_id, str) or not user_id:
            return  # the Messages tab, or no one to publish for
        if key is None:
            log.warning("ignored an app_home_opened event without a usable event_id")
            return
        async with inflight.hold(lane="home"):
            try:
                if not await services.commands.first_delivery(key, user_id, "", "app_home_opened"):
                    return  # Slack's retry of an event already handled
            except Exception as error:
                log_error(error)
                return
            await publish(services, client, user_id)

    return on_home_opened


async def _refuse(
    services: Services, client: Any, user_id: str, channel_id: str, action_id: str, error: Exception
) -> str:
    """Log, audit and alarm as a click on the card would; tell the person by DM; return the
    notice for the top of their Home tab."""
    log_error(error)
    try:
        if isinstance(error, NotAllowed):
            await services.commands.refused(user_id, channel_id, action_id, error)
        await services.alarms.noticed(services.life, error, channel_id)
    except Exception as failure:  # the refusal stands; its audit row or alarm is what is lost
        log.error("could not record a refused Home tab click: %s", type(failure).__name__)
    message = describe(error)
    if user_id:
        await tell(client, user_id, message)
    return message.text


def click_listener(decide: HomeDecision, services: Services, inflight: InFlight) -> Any:
    """A button in a Home tab: the card's use case once (replays are not acted on), a refusal
    told by DM, then the Home tab published again."""

    async def on_home_click(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        user_id = str(_object(body.get("user")).get("id") or "")
        actions = body.get("actions")
        action = _object(actions[0]) if isinstance(actions, list) and actions else {}
        action_id = str(action.get("action_id", ""))
        channel_id, notice = "", None
        async with inflight.hold(lane="click"):
            try:
                request_id = parse_id(str(action.get("value", "")))
                if request_id is None or not user_id:
                    raise UnknownRequest("That button does not name a request.")
                if not await services.commands.first_delivery(arrival.key, user_id, "", action_id):
                    return  # a retry or a replay of this very click
                request = await views.find(services.life, request_id)
                if request is None:
                    raise UnknownRequest("That button belongs to a request this bot does not know.")
                channel_id = request.channel_id
                await decide(services, user_id, request, arrival.at)
            except Exception as error:
                notice = await _refuse(services, client, user_id, channel_id, action_id, error)
        if user_id:
            await publish(services, client, user_id, notice)

    on_home_click.__name__ = f"on_home_{getattr(decide, '__name__', 'click')}"
    return on_home_click


QUICK_LOOK = 0.5  # seconds the Home tab's Deny may read the request before its form opens


def deny_listener(services: Services, inflight: InFlight) -> Any:
    """Deny in a Home tab: as on the card, an approver is asked for a reason first (the modal
    opened with the click's trigger_id, carrying the card's channel; its submission denies
    and tells the card). The requester's own Deny (a Cancel), a request no longer waiting,
    or a form Slack would not open take the ordinary path: acted on or refused, then the
    Home tab published again."""
    ordinary = click_listener(deny, services, inflight)

    async def on_home_deny(body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        user_id = str(_object(body.get("user")).get("id") or "")
        actions = body.get("actions")
        action = _object(actions[0]) if isinstance(actions, list) and actions else {}
        request_id = parse_id(str(action.get("value", "")))
        trigger = body.get("trigger_id")
        request = None
        if request_id is not None:  # a quick look: Slack's trigger lasts 3 s from the click
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(QUICK_LOOK):
                    request = await views.find(services.life, request_id)
        if (
            request is None
            or not isinstance(trigger, str)
            or not trigger
            or request.requester_id == user_id
            or request.status is not Status.PENDING_APPROVAL
            or not services.life.policy.approvers  # refused on the ordinary path
        ):
            await ordinary(body, client, arrival)
            return
        try:
            await client.views_open(
                trigger_id=trigger, view=deny_modal(request.id, request.channel_id)
            )
        except Exception as error:  # the trigger expired: nothing denied, say so
            log.warning("could not open the Deny modal: %s", type(error).__name__)
            await publish(
                services,
                client,
                user_id,
                ":warning: Slack did not open the form to deny this restore in time; nothing "
                "was denied. Click *Deny* again.",
            )

    on_home_deny.__name__ = "on_home_deny"
    return on_home_deny
