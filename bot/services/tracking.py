"""Follow in-flight operations: one list call per (server, kind) per cycle, not one per op."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.errors import NotFound, VpsApiError
from bot.domain.model import (
    COMPLETED,
    IN_PROGRESS,
    Action,
    Backup,
    Kind,
    OperationRequest,
    Server,
    Snapshot,
    Status,
)
from bot.services import Services, restores
from bot.services.operations import finish, iso, record_finish

log = logging.getLogger(__name__)
FAILED_SERVER_STATUSES = {"error", "failed"}
LEASE = timedelta(seconds=15)  # a crashed instance's claims lapse within this
CONCURRENT_CALLS = 10


@dataclass
class CycleReport:
    claimed: int = 0
    api_calls: int = 0
    finished: int = 0
    failed_calls: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status | None  # None: still running
    result: dict[str, object]


def judge_restore(
    request: OperationRequest, server: Server | None, now: datetime, interval: timedelta
) -> Verdict:
    """What the server's status says about a restore that VPS.org accepted."""
    if server is None:
        return Verdict(Status.FAILED, {"reason": "the server is no longer listed by VPS.org"})
    started = request.result.get("started_at")
    elapsed = now - (datetime.fromisoformat(started) if isinstance(started, str) else now)
    if server.status == "running":
        # Only after the restore was seen under way: a read right after the 200 may still show
        # the old status (spec, open question 5).
        if request.result.get("seen_restoring") or elapsed >= 2 * interval:
            took = int((now - request.updated_at).total_seconds())
            return Verdict(
                Status.SUCCEEDED,
                {"took_seconds": int(elapsed.total_seconds()) or took, "finished_at": iso(now)},
            )
        return Verdict(None, {})
    if server.status in FAILED_SERVER_STATUSES:
        return Verdict(Status.FAILED, {"reason": f"server status: {server.status}"})
    if request.expires_at is not None and now >= request.expires_at:
        return Verdict(
            Status.NEEDS_ATTENTION,
            {"reason": f"still {server.status} when the bot stopped following; outcome unknown"},
        )
    seen: dict[str, object] = {"seen_restoring": True} if server.status == "restoring" else {}
    return Verdict(None, seen)


def judge(request: OperationRequest, found: Snapshot | Backup | None, now: datetime) -> Verdict:
    """What a listed object (or its absence) says about a create that was in progress."""
    if found is None:
        return Verdict(Status.FAILED, {"reason": "no longer listed by VPS.org"})
    if found.status == COMPLETED:
        started = request.created_at
        return Verdict(
            Status.SUCCEEDED,
            {
                "size_mb": found.size_mb,
                "took_seconds": int((now - started).total_seconds()),
                "finished_at": iso(now),
            },
        )
    if found.status != IN_PROGRESS:
        return Verdict(Status.FAILED, {"reason": f"status: {found.status}"})
    if request.expires_at is not None and now >= request.expires_at:
        return Verdict(
            Status.NEEDS_ATTENTION,
            {"reason": "still in progress when the bot stopped following it; outcome unknown"},
        )
    return Verdict(None, {})


async def check_in_flight(services: Services, owner: str) -> CycleReport:
    """One tracker cycle: claim due operations, read the API by server, finish what is done."""
    report = CycleReport()
    now = services.clock()
    async with services.uow() as uow:
        claimed = await uow.requests.claim_due(
            statuses={Status.RUNNING}, now=now, owner=owner, lease=LEASE
        )
        await uow.commit()
    report.claimed = len(claimed)
    if not claimed:
        return report

    groups: dict[tuple[Kind | None, int], list[OperationRequest]] = defaultdict(list)
    for request in claimed:
        if request.server is None:
            continue
        # creates: one list per (kind, server); restores: one server read per server
        kind = request.kind if request.action is Action.CREATE else None
        groups[(kind, request.server.id)].append(request)

    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def read(
        kind: Kind | None, server_id: int
    ) -> dict[int, Snapshot | Backup] | Server | VpsApiError | None:
        async with gate:
            report.api_calls += 1
            try:
                if kind is None:
                    return await services.vps.get_server(server_id)
                if kind is Kind.SNAPSHOT:
                    items: tuple[Snapshot | Backup, ...] = (
                        await services.vps.list_snapshots(server_id)
                    ).items
                else:
                    items = (await services.vps.list_backups(server_id)).items
            except NotFound:
                return None
            except VpsApiError as error:
                return error
        return {item.id: item for item in items}

    keys = list(groups)
    listings = await asyncio.gather(*(read(kind, server_id) for kind, server_id in keys))
    now = services.clock()
    keep: list[tuple[OperationRequest, dict[str, object]]] = []
    backoff: list[OperationRequest] = []
    done: list[tuple[OperationRequest, Verdict]] = []
    for key, listing in zip(keys, listings, strict=True):
        if isinstance(listing, VpsApiError):
            report.failed_calls += 1
            report.errors.append(f"server {key[1]}: {listing.detail}")
            backoff.extend(groups[key])
            continue
        for request in groups[key]:
            if isinstance(listing, dict):
                verdict = judge(request, listing.get(request.target_id or -1), now)
            elif listing is None and key[0] is not None:
                verdict = judge(request, None, now)
            else:
                interval = services.policy.poll_interval
                verdict = judge_restore(request, listing, now, interval)
            if verdict.status is None:
                keep.append((request, verdict.result))
            else:
                done.append((request, verdict))

    async with services.uow() as uow:
        for request, verdict in done:
            assert verdict.status is not None
            if await record_finish(
                uow, request, Status.RUNNING, verdict.status, verdict.result, at=now
            ):
                report.finished += 1
        for request, seen in keep:
            await uow.requests.change(
                request.id,
                result=request.result | seen,
                next_check_at=services.policy.next_tick(now),
                lease_owner=None,
                lease_until=None,
            )
        for request in backoff:
            failures = int(str(request.result.get("poll_failures", 0))) + 1
            policy = services.policy
            wait = min(policy.poll_interval * (2**failures), policy.max_poll_backoff)
            await uow.requests.change(
                request.id,
                next_check_at=policy.next_tick(now + wait - policy.poll_interval),
                result=request.result | {"poll_failures": failures},
                lease_owner=None,
                lease_until=None,
            )
        await uow.commit()
    if report.finished:
        services.wake_outbox()
    if report.failed_calls:
        log.warning("tracker: %d of %d reads failed", report.failed_calls, report.api_calls)
    return report


async def reconcile_stale(services: Services, owner: str) -> int:
    """Requests left in `executing` by an instance that died (its lease lapsed): decide from
    what VPS.org shows, and never send the call again."""
    now = services.clock()
    async with services.uow() as uow:
        stale = await uow.requests.claim_due(
            statuses={Status.EXECUTING}, now=now, owner=owner, lease=LEASE
        )
        await uow.commit()
    cause = "the bot stopped while it was sending this request"
    for request in stale:
        if request.action is Action.RESTORE:
            await restores.reconcile(services, request, cause=cause)
        else:
            await finish(
                services,
                request,
                Status.EXECUTING,
                Status.NEEDS_ATTENTION,
                {"reason": f"{cause}; it may or may not have happened and was not sent again"},
            )
    return len(stale)


async def cycle(services: Services, owner: str) -> CycleReport:
    """Everything the tracker does at a tick: expire, reconcile, follow."""
    await restores.expire_due(services)
    await reconcile_stale(services, owner)
    return await check_in_flight(services, owner)
