"""Backup health: what each server's newest backups and snapshots are, and whether a server is
stale or failed; alerts in VPSBOT_ALERT_CHANNEL when that changes.

One check reads VPS.org account-wide: one listing of snapshots and one of backups (all their
pages), whatever the number of servers. The servers are those seen in them, those with a
schedule, and those checked before. A server is

- `failed` when a backup or snapshot of it shows a failed status within the last 7 days and no
  backup completed after it;
- else `stale` when its newest completed backup (automatic or manual) is older than
  VPSBOT_STALE_AFTER, or it has none;
- else `ok`.

Alerts: the `health` job (every VPSBOT_HEALTH_INTERVAL) is taken by one instance
(`jobs.take_turn`); each server's state is a compare-and-set in `server_health`, and the alert
is queued in the same transaction, so a change is told once: not every cycle, not again after a
restart, not by a second instance. A server first seen `ok` is not announced.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from bot.domain.errors import NotFound, VpsApiError
from bot.domain.lifecycle import Status
from bot.domain.model import (
    COMPLETED,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    Schedule,
    ServerRef,
    Snapshot,
)
from bot.domain.operations import MAX_MANUAL_BACKUPS_PER_SERVER, MAX_SNAPSHOTS_PER_SERVER
from bot.services.kinds import Item
from bot.services.lifecycle import Lifecycle
from bot.services.operations import existing_server
from bot.services.ports import VpsApi

log = logging.getLogger(__name__)
T = TypeVar("T", Snapshot, Backup)
FAILURES_WITHIN = timedelta(days=7)
JOB = "health"
# What VPS.org may say of an object it is still making (as the tracker reads it): not a failure.
STILL_WORKING = frozenset({"in_progress", "pending", "queued", "creating"})


class State(StrEnum):
    OK = "ok"
    STALE = "stale"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One server's backups and snapshots as one check saw them."""

    server: ServerRef
    state: State
    newest_backup: Backup | None  # newest completed backup of any type
    newest_automatic: Backup | None  # newest completed automatic backup
    newest_manual: Backup | None  # newest completed manual backup
    newest_snapshot: Snapshot | None  # newest completed snapshot
    failures: tuple[Item, ...]  # failed within FAILURES_WITHIN, newest first
    snapshots: int  # of MAX_SNAPSHOTS_PER_SERVER
    manual_backups: int  # of MAX_MANUAL_BACKUPS_PER_SERVER
    schedules: tuple[Schedule, ...]
    last_runs: tuple[OperationRequest, ...]  # the latest run of each schedule that ran

    @property
    def failed_runs(self) -> tuple[OperationRequest, ...]:
        """Schedules whose latest run did not succeed (failed, skipped, or needs a person)."""
        return tuple(r for r in self.last_runs if r.status in RUN_FAILED)


@dataclass(frozen=True, slots=True)
class Report:
    servers: tuple[ServerHealth, ...]  # failed, then stale, then ok; by name within each
    checked_at: datetime
    stale_after: timedelta
    partial: bool  # VPS.org said it holds more than it returned

    @property
    def snapshot_limit(self) -> int:
        return MAX_SNAPSHOTS_PER_SERVER

    @property
    def manual_limit(self) -> int:
        return MAX_MANUAL_BACKUPS_PER_SERVER


RUN_FAILED = frozenset({Status.FAILED, Status.NEEDS_ATTENTION})
ORDER = {State.FAILED: 0, State.STALE: 1, State.OK: 2}


def _newest(items: Iterable[T]) -> T | None:
    return max(items, key=lambda i: (i.created_at, i.id), default=None)


def _failed(item: Item) -> bool:
    return item.status != COMPLETED and item.status not in STILL_WORKING


def judge(
    server: ServerRef,
    snapshots: list[Snapshot],
    backups: list[Backup],
    now: datetime,
    stale_after: timedelta,
    schedules: tuple[Schedule, ...] = (),
    last_runs: tuple[OperationRequest, ...] = (),
) -> ServerHealth:
    """One server's health from its listed snapshots and backups."""
    done = [b for b in backups if b.status == COMPLETED]
    newest_backup = _newest(done)
    recent = now - FAILURES_WITHIN
    listed: list[Item] = [*snapshots, *backups]
    failures = sorted(
        (i for i in listed if _failed(i) and i.created_at >= recent),
        key=lambda i: (i.created_at, i.id),
        reverse=True,
    )
    if failures and (newest_backup is None or failures[0].created_at > newest_backup.created_at):
        state = State.FAILED
    elif newest_backup is None or now - newest_backup.created_at > stale_after:
        state = State.STALE
    else:
        state = State.OK
    return ServerHealth(
        server=server,
        state=state,
        newest_backup=newest_backup,
        newest_automatic=_newest(b for b in done if b.backup_type == BackupType.AUTOMATIC),
        newest_manual=_newest(b for b in done if b.backup_type == BackupType.MANUAL),
        newest_snapshot=_newest(s for s in snapshots if s.status == COMPLETED),
        failures=tuple(failures),
        snapshots=len(snapshots),
        manual_backups=sum(1 for b in backups if b.backup_type == BackupType.MANUAL),
        schedules=schedules,
        last_runs=last_runs,
    )


async def check(vps: VpsApi, life: Lifecycle, server_id: int | None = None) -> Report:
    """Every known server's health (or one's): two VPS.org listings, then the database."""
    snapshots, backups = await asyncio.gather(
        vps.list_snapshots(server_id), vps.list_backups(server_id)
    )
    now = life.clock()
    async with life.uow() as uow:
        schedules = await uow.schedules.active(server_id)
        runs = await uow.requests.runs([s.id for s in schedules])
        seen = await uow.health.states() if server_id is None else {}
    names: dict[int, str] = {sid: name for sid, (name, _) in seen.items()}
    by_server_snapshots: dict[int, list[Snapshot]] = defaultdict(list)
    by_server_backups: dict[int, list[Backup]] = defaultdict(list)
    for snapshot in snapshots.items:
        by_server_snapshots[snapshot.server.id].append(snapshot)
        names[snapshot.server.id] = snapshot.server.name or names.get(snapshot.server.id, "")
    for backup in backups.items:
        by_server_backups[backup.server.id].append(backup)
        names[backup.server.id] = backup.server.name or names.get(backup.server.id, "")
    by_server_schedules: dict[int, list[Schedule]] = defaultdict(list)
    for schedule in schedules:
        by_server_schedules[schedule.server.id].append(schedule)
        names.setdefault(schedule.server.id, schedule.server.name)
    latest = {r.asked.schedule_id: r for r in runs}
    listed = set(by_server_snapshots) | set(by_server_backups) | set(by_server_schedules)
    for sid in [sid for sid in names if sid not in listed]:
        if not await _still_there(vps, life, sid):  # VPS.org no longer has it: forgotten
            del names[sid]
    if server_id is not None:
        if server_id not in names:  # nothing listed of it: it must exist to be reported on
            names[server_id] = (await existing_server(vps, server_id)).name
        names = {server_id: names[server_id]}
    servers = []
    for sid, name in names.items():
        mine = tuple(by_server_schedules.get(sid, ()))
        servers.append(
            judge(
                ServerRef(sid, name),
                by_server_snapshots.get(sid, []),
                by_server_backups.get(sid, []),
                now,
                life.policy.stale_after,
                mine,
                tuple(latest[s.id] for s in mine if s.id in latest),
            )
        )
    servers.sort(key=lambda h: (ORDER[h.state], h.server.name.lower(), h.server.id))
    return Report(
        servers=tuple(servers),
        checked_at=now,
        stale_after=life.policy.stale_after,
        partial=snapshots.partial or backups.partial,
    )


async def _still_there(vps: VpsApi, life: Lifecycle, server_id: int) -> bool:
    """A server checked before that nothing lists any more: does VPS.org still have it? One
    that answers 404 is forgotten (no stale report or alert for a server that was deleted);
    when VPS.org cannot say, it is kept."""
    try:
        await vps.get_server(server_id)
    except NotFound:
        async with life.uow() as uow:
            await uow.health.forget(server_id)
            await uow.commit()
        return False
    except VpsApiError:
        return True
    return True


def alert_payload(channel: str, health: ServerHealth, previous: str | None) -> dict[str, Any]:
    """What an alert says, as facts (the notifier renders them)."""
    newest = health.newest_backup
    failure = health.failures[0] if health.failures else None
    return {
        "channel": channel,
        "server_id": health.server.id,
        "server_name": health.server.name,
        "state": health.state.value,
        "previous": previous,
        "newest_backup": None
        if newest is None
        else {
            "id": newest.id,
            "type": str(getattr(newest.backup_type, "value", newest.backup_type)),
            "created_at": newest.created_at.isoformat(),
        },
        "failure": None
        if failure is None
        else {
            "id": failure.id,
            "kind": (Kind.SNAPSHOT if isinstance(failure, Snapshot) else Kind.BACKUP).value,
            "status": failure.status,
            "created_at": failure.created_at.isoformat(),
        },
    }


async def alert_due(vps: VpsApi, life: Lifecycle) -> int:
    """With VPSBOT_ALERT_CHANNEL set, once per VPSBOT_HEALTH_INTERVAL across the instances:
    check health and post one alert per server whose state changed. Returns how many."""
    policy = life.policy
    if not policy.alert_channel:
        return 0
    now = life.clock()
    async with life.uow() as uow:
        mine = await uow.jobs.take_turn(JOB, now=now, next_run_at=now + policy.health_interval)
        await uow.commit()
    if not mine:
        return 0
    try:
        report = await check(vps, life)
    except VpsApiError as error:
        log.warning("health check: VPS.org could not be read: %s", error)
        return 0
    if report.partial:  # a server missing from a cut list would read as stale: say nothing
        log.warning("health check: VPS.org's lists were partial; no alert changes this time")
        return 0
    told = 0
    at = life.clock()
    async with life.uow() as uow:
        states = await uow.health.states()
        for health in report.servers:
            sid = health.server.id
            previous = states[sid][1] if sid in states else None
            if previous == health.state.value:
                continue
            won = await uow.health.change(
                health.server.id, health.server.name, old=previous, new=health.state, at=at
            )
            if won and not (previous is None and health.state is State.OK):
                payload = alert_payload(policy.alert_channel, health, previous)
                uow.outbox.add("alert", payload, at=at)
                uow.audit.record(
                    "health_alert",
                    at=at,
                    channel_id=policy.alert_channel,
                    detail={
                        "server_id": health.server.id,
                        "server_name": health.server.name,
                        "from": previous,
                        "to": health.state.value,
                    },
                )
                told += 1
        await uow.commit()
    return told
