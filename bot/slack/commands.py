"""`/snapshot` and `/backup`: ack at once, parse, call one service, respond."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.errors import Busy
from bot.domain.model import Kind
from bot.domain.operations import (
    CreateBackup,
    CreateSnapshot,
    Intent,
    ListBackups,
    ListSnapshots,
    RequestDelete,
    RequestRestore,
    ShowHelp,
)
from bot.logs import new_request_id
from bot.services import Services, listings, operations, restores
from bot.services.access import check_channel, check_operator
from bot.services.commands import Invocation
from bot.services.operations import Actor
from bot.slack import blocks
from bot.slack.inflight import InFlight
from bot.slack.parsing import parse, usage
from bot.slack.replies import Reply


async def run(intent: Intent, actor: Actor, services: Services) -> blocks.Message | None:
    """Carry out one intent and render its reply (None: the channel hears through the outbox)."""
    if not isinstance(intent, ShowHelp):
        check_channel(services.policy.channels, actor.channel_id)
    if isinstance(intent, CreateSnapshot | CreateBackup | RequestDelete):
        await check_operator(services.directory, services.policy.operators, actor.user_id)
    match intent:
        case ShowHelp():
            return blocks.help_message(intent.kind, usage(intent.kind))
        case ListSnapshots(server_id):
            result = await listings.list_snapshots(services.vps, server_id)
            return blocks.snapshot_list(result, services.life.clock())
        case ListBackups(server_id, backup_type):
            found = await listings.list_backups(services.vps, server_id, backup_type)
            return blocks.backup_list(found, services.life.clock())
        case CreateSnapshot() | CreateBackup():
            await operations.create(services.vps, services.life, actor, intent)
            return None
        case RequestDelete():
            await operations.request_delete(services.vps, services.life, actor, intent)
            return None
        case RequestRestore():
            how = usage(intent.kind, "restore")
            await restores.request_restore(services.vps, services.life, actor, intent, how)
            return None


@dataclass(frozen=True, slots=True)
class Arrival:
    """A Slack request as it arrived: its identity (for replays) and the moment of the ack."""

    key: str
    at: datetime


def identity(request: Any, body: dict[str, Any]) -> str:
    """A hash of the signed body: a retry or replay of one request (by Slack, a load balancer,
    anyone holding a copy) carries the very same body; two real requests never do (each has
    its own trigger_id and response_url). Socket Mode has no raw body: its payload, sorted."""
    raw = getattr(request, "raw_body", "") or json.dumps(body, sort_keys=True, default=str)
    return "b:" + hashlib.sha256(raw.encode()).hexdigest()


Work = Callable[[dict[str, Any], Any, Arrival], Coroutine[Any, Any, None]]


def acknowledge_then(
    work: Work, services: Services, inflight: InFlight
) -> Callable[..., Awaitable[None]]:
    """A listener that answers Slack at once and starts `work(body, client, arrival)` as a
    task of its own. (Not bolt's lazy listeners: they deep-copy the whole request before the
    ack is sent, which cost a quarter of the CPU of a loaded instance and delayed every ack.)"""

    async def listener(ack: Any, body: dict[str, Any], client: Any, request: Any) -> None:
        arrival = Arrival(identity(request, body), services.life.clock())
        await ack()
        inflight.start(work(body, client, arrival))

    listener.__name__ = f"ack_then_{getattr(work, '__name__', 'work')}"
    return listener


def command_listener(kind: Kind, services: Services, inflight: InFlight) -> Any:
    """The work of a slash command, started after the ack (`acknowledge_then`)."""

    async def on_command(command: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        invocation = Invocation(
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            command=str(command.get("command", f"/{kind.value}")),
            text=str(command.get("text", "")),
        )
        reply = Reply(
            command.get("response_url"), client, invocation.channel_id, invocation.user_id
        )
        actor = Actor(invocation.user_id, invocation.channel_id)
        admitted = not inflight.full  # decided at arrival, before waiting for a turn
        # a "busy" answer must not queue behind the work it was refused for
        async with inflight.hold(lane="work" if admitted else "busy"):
            try:
                if admitted and not await services.commands.first_delivery(
                    arrival.key, invocation.user_id, invocation.channel_id, invocation.command
                ):
                    return  # a retry or a replay: the first delivery is answered, not this one
                async with services.commands.recording(invocation):
                    if not admitted:
                        raise Busy("vpsbot is handling many requests right now.")
                    message = await run(parse(kind, invocation.text), actor, services)
            except Exception as error:
                await reply.fail(error, services)
                return
            if message is not None:
                await reply.send(message)

    on_command.__name__ = f"on_{kind.value}_command"
    return on_command
