"""Follow in-flight operations: one list call per (server, kind) per cycle, not one per op."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.errors import VpsApiError
from bot.domain.model import (
    COMPLETED,
    IN_PROGRESS,
    Action,
    Backup,
    Kind,
    OperationRequest,
    Snapshot,
    Status,
)
from bot.services import Services
from bot.services.operations import iso, record_finish

log = logging.getLogger(__name__)
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

    groups: dict[tuple[Kind, int], list[OperationRequest]] = defaultdict(list)
    for request in claimed:
        if request.action is Action.CREATE and request.server is not None:
            groups[(request.kind, request.server.id)].append(request)

    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def read(kind: Kind, server_id: int) -> dict[int, Snapshot | Backup] | VpsApiError:
        async with gate:
            report.api_calls += 1
            try:
                if kind is Kind.SNAPSHOT:
                    items: tuple[Snapshot | Backup, ...] = (
                        await services.vps.list_snapshots(server_id)
                    ).items
                else:
                    items = (await services.vps.list_backups(server_id)).items
            except VpsApiError as error:
                return error
        return {item.id: item for item in items}

    keys = list(groups)
    listings = await asyncio.gather(*(read(kind, server_id) for kind, server_id in keys))
    now = services.clock()
    keep: list[OperationRequest] = []
    backoff: list[OperationRequest] = []
    done: list[tuple[OperationRequest, Verdict]] = []
    for key, listing in zip(keys, listings, strict=True):
        if isinstance(listing, VpsApiError):
            report.failed_calls += 1
            report.errors.append(f"{key[0].value}s of server {key[1]}: {listing.detail}")
            backoff.extend(groups[key])
            continue
        for request in groups[key]:
            verdict = judge(request, listing.get(request.target_id or -1), now)
            if verdict.status is None:
                keep.append(request)
            else:
                done.append((request, verdict))

    async with services.uow() as uow:
        for request, verdict in done:
            assert verdict.status is not None
            if await record_finish(
                uow, request, Status.RUNNING, verdict.status, verdict.result, at=now
            ):
                report.finished += 1
        for request in keep:
            await uow.requests.change(
                request.id,
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
