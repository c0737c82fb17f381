"""`/snapshot`, `/backup` and `/vpsbot`: ack at once, parse, call one service, respond."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.errors import Busy, Interrupted, NotEligible
from bot.domain.model import Kind
from bot.domain.operations import (
    AddSchedule,
    CreateBackup,
    CreateSnapshot,
    ExportAudit,
    Intent,
    ListBackups,
    ListSchedules,
    ListSnapshots,
    RemoveSchedule,
    RequestDelete,
    RequestRestore,
    ShowHelp,
    ShowPending,
    ShowRequest,
    ShowStatus,
    ShowVpsbotHelp,
    VpsbotIntent,
)
from bot.logs import new_request_id
from bot.services import (
    Services,
    health,
    listings,
    operations,
    reports,
    restores,
    schedules,
    views,
)
from bot.services.access import check_channel, check_operator
from bot.services.commands import REPLAY_MEMORY, Invocation
from bot.services.operations import Actor
from bot.slack import blocks
from bot.slack.errors import describe
from bot.slack.inflight import InFlight
from bot.slack.parsing import parse, parse_vpsbot, usage, vpsbot_usage
from bot.slack.replies import Reply

log = logging.getLogger(__name__)


async def run(intent: Intent, actor: Actor, services: Services) -> blocks.Message | None:
    """Carry out one intent and render its reply (None: the channel hears through the outbox)."""
    if not isinstance(intent, ShowHelp):
        check_channel(services.policy.channels, actor.channel_id)
    changes = CreateSnapshot | CreateBackup | RequestDelete | AddSchedule | RemoveSchedule
    if isinstance(intent, changes):
        await check_operator(services.directory, services.policy.operators, actor.user_id)
    tz = services.life.policy.timezone
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
        case AddSchedule():
            schedule = await schedules.add(services.vps, services.life, actor, intent)
            return blocks.schedule_added(schedule, schedule.next_run_at, tz)
        case ListSchedules(kind, server_id):
            listed = await schedules.listing(services.life, kind, server_id)
            return blocks.schedules_list(kind, listed, services.life.clock(), tz, server_id)
        case RemoveSchedule():
            schedule = await schedules.remove(services.life, actor, intent)
            kept = len(await schedules.made(services.life, schedule.id))
            return blocks.schedule_removed(schedule, actor.user_id, kept)
        case ShowStatus(server_id):
            report = await health.check(services.vps, services.life, server_id)
            return blocks.status_message(report, tz, server_id)


async def run_vpsbot(
    intent: VpsbotIntent, actor: Actor, services: Services, client: Any
) -> blocks.Message:
    """Carry out one `/vpsbot` intent; every answer is the caller's alone (the audit file goes
    to their DM)."""
    if not isinstance(intent, ShowVpsbotHelp):
        check_channel(services.policy.channels, actor.channel_id)
    now = services.life.clock()
    match intent:
        case ShowVpsbotHelp():
            return blocks.vpsbot_help(vpsbot_usage())
        case ShowPending():
            found = await reports.pending_restores(services.life, services.directory, actor.user_id)
            return blocks.pending_message(found, now, actor.user_id, actor.channel_id)
        case ShowRequest(request_id):
            history = await reports.request_history(services.life.uow, request_id)
            if history.request.channel_id != actor.channel_id:
                await _check_trusted(services, actor, "the history of another channel's request")
            return blocks.history_message(history, now)
        case ExportAudit(days):
            await _check_trusted(services, actor, "the audit export")
            since = now - timedelta(days=days)
            rows = await reports.audit_rows(services.life.uow, since=since)
            return await send_audit(client, actor.user_id, days, since, rows)


async def _check_trusted(services: Services, actor: Actor, what: str) -> None:
    """Every channel's requests are for the configured approvers and operators (anyone, when
    neither is configured: the team chose no roles)."""
    policy = services.life.policy
    if not policy.approvers and not policy.operators:
        return
    if not await views.trusted(services.life, services.directory, actor.user_id):
        raise NotEligible(
            f"Only the configured approvers and operators may see {what}; nothing was sent."
        )


async def send_audit(
    client: Any, user_id: str, days: int, since: datetime, rows: list[reports.AuditRow]
) -> blocks.Message:
    """The audit rows as a CSV file in the person's DM (slack_sdk's files_upload_v2: Slack's
    external upload); what they are told, whether it worked or not."""
    filename = f"vpsbot-audit-{since:%Y%m%d}-{days}d.csv"
    try:
        opened = await client.conversations_open(users=user_id)
        channel = opened["channel"]["id"]
        await client.files_upload_v2(
            channel=channel,
            content=reports.to_csv(rows).encode("utf-8"),
            filename=filename,
            title=f"vpsbot audit, last {days} days",
            initial_comment=blocks.audit_comment(days, len(rows), since),
        )
    except SlackApiError as error:
        code = str(error.response.get("error", "")) if error.response is not None else ""
        log.warning("could not upload the audit file: %s", code[:40] or "no answer")
        return blocks.audit_failed_message(code)
    except (SlackClientError, OSError, KeyError, TypeError) as error:
        log.warning("could not upload the audit file: %s", type(error).__name__)
        return blocks.audit_failed_message("")
    return blocks.audit_sent_message(days, len(rows), filename)


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
    return raw_identity(raw)


def raw_identity(raw: str) -> str:
    return "b:" + hashlib.sha256(raw.encode()).hexdigest()


Work = Callable[[dict[str, Any], Any, Arrival], Coroutine[Any, Any, None]]


class Handoff(Protocol):
    """Where acknowledged work goes when it does not run in the process that acked it: the
    listener's name, the request's payload and its arrival, to be run by `works[name]`."""

    @property
    def accepting(self) -> bool:
        """False when it cannot keep more (the work process down or far behind)."""
        ...

    def hand(self, name: str, body: dict[str, Any], arrival: Arrival) -> None: ...


def acknowledge_then(
    name: str, work: Work, services: Services, inflight: InFlight, handoff: Handoff | None = None
) -> Callable[..., Awaitable[None]]:
    """A listener that answers Slack at once, then starts `work(body, client, arrival)` as a
    task of its own, or hands it to the work process (`handoff`) so that the work never
    shares the ack's event loop. (Not bolt's lazy listeners: they deep-copy the whole request
    before the ack is sent, which cost a quarter of the CPU of a loaded instance and delayed
    every ack.)"""

    async def listener(ack: Any, body: dict[str, Any], client: Any, request: Any) -> None:
        arrival = Arrival(identity(request, body), services.life.clock())
        await ack()
        if handoff is None:
            inflight.start(work(body, client, arrival))
        else:
            handoff.hand(name, body, arrival)

    listener.__name__ = f"ack_then_{getattr(work, '__name__', 'work')}"
    return listener


Again = Callable[[Work, dict[str, Any], Any, Arrival], Coroutine[Any, Any, None]]


def handed_again(services: Services) -> Again:
    """The work of a request handed to a new work process because the one before stopped
    before it said the request had ended. New there (no first delivery recorded): done as
    usual. Ended (its end recorded, `CommandLog.finished`, only the "done" was lost): nothing
    more. Begun and not ended, or older than the replay memory: not done a second time; the
    person is told so (through the response_url, which every command and button click
    carries), and a slash command gets its one `command` audit row, outcome `interrupted`."""

    async def again(work: Work, body: dict[str, Any], client: Any, arrival: Arrival) -> None:
        user, channel = body.get("user"), body.get("channel")
        user_id = str(body.get("user_id") or (user.get("id") if isinstance(user, dict) else ""))
        channel_id = str(
            body.get("channel_id") or (channel.get("id") if isinstance(channel, dict) else "")
        )
        reply = Reply(body.get("response_url"), client, channel_id, user_id)
        try:
            stale = services.life.clock() - arrival.at > REPLAY_MEMORY
            progress = "begun" if stale else await services.commands.progress(arrival.key)
            if progress == "new":
                await work(body, client, arrival)
                return
            if progress == "ended":
                return
            log.warning("a request begun by a work process that stopped was not done again")
            error = Interrupted("stopped part-way; not done again")
            if "command" not in body:
                await reply.send(describe(error))
                return
            text = str(body.get("text", ""))
            invocation = Invocation(user_id, channel_id, str(body["command"]), text)
            try:
                async with services.commands.recording(invocation):
                    raise error
            except Interrupted:
                await reply.send(describe(error))
        except Exception as error:  # the database, say: the person hears something went wrong
            await reply.fail(error, services)

    return again


# The work of one command: (text, actor, Web API client) -> its reply, or None.
Execute = Callable[[str, Actor, Any], Awaitable[blocks.Message | None]]


def command_listener(kind: Kind, services: Services, inflight: InFlight) -> Any:
    """The work of `/snapshot` or `/backup`, started after the ack (`acknowledge_then`)."""

    async def execute(text: str, actor: Actor, client: Any) -> blocks.Message | None:
        return await run(parse(kind, text), actor, services)

    return _listener(kind.value, execute, services, inflight)


def vpsbot_listener(services: Services, inflight: InFlight) -> Any:
    """The work of `/vpsbot`, started after the ack (`acknowledge_then`)."""

    async def execute(text: str, actor: Actor, client: Any) -> blocks.Message | None:
        return await run_vpsbot(parse_vpsbot(text), actor, services, client)

    return _listener("vpsbot", execute, services, inflight)


def _listener(name: str, execute: Execute, services: Services, inflight: InFlight) -> Any:
    async def on_command(command: dict[str, Any], client: Any, arrival: Arrival) -> None:
        new_request_id()
        invocation = Invocation(
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            command=str(command.get("command", f"/{name}")),
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
                if not await services.commands.first_delivery(  # a "busy" answer is one too
                    arrival.key, invocation.user_id, invocation.channel_id, invocation.command
                ):
                    return  # a retry or a replay: the first delivery is answered, not this one
                async with services.commands.recording(invocation):
                    if not admitted:
                        raise Busy("vpsbot is handling many requests right now.")
                    message = await execute(invocation.text, actor, client)
            except Exception as error:
                await reply.fail(error, services)
                return
            if message is not None:
                await reply.send(message)

    on_command.__name__ = f"on_{name}_command"
    return on_command
