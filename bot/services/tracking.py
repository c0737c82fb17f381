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
from bot.services import Policy, Services, restores
from bot.services.operations import finish, iso, read_back_create, record_finish

log = logging.getLogger(__name__)
FAILED_SERVER_STATUSES = {"error", "failed"}
# What VPS.org may say of an object it is still making (`in_progress` is documented; the others
# are seen in the wild): keep following. Any other value but `completed` is a failure.
STILL_WORKING = frozenset({IN_PROGRESS, "pending", "queued", "creating"})
# A restore's server that cannot be read (a 404, an error) this many times in a row, over at
# least policy.restore_seen_within, needs a person; one bad read proves nothing.
MISSED_READS = 3
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
    request: OperationRequest, server: Server | None, now: datetime, policy: Policy
) -> Verdict:
    """What the server's status says about a restore that VPS.org accepted. Success needs
    evidence: the server seen `restoring` after the call, then `running`."""
    if server is None:
        return Verdict(Status.FAILED, {"reason": "the server is no longer listed by VPS.org"})
    started = request.result.get("started_at")
    since = datetime.fromisoformat(started) if isinstance(started, str) else request.updated_at
    elapsed = now - since
    seen = bool(request.result.get("seen_restoring")) or server.status == "restoring"
    if server.status == "running" and seen:
        return Verdict(
            Status.SUCCEEDED,
            {"took_seconds": int(elapsed.total_seconds()), "finished_at": iso(now)},
        )
    if server.status in FAILED_SERVER_STATUSES:
        return Verdict(Status.FAILED, {"reason": f"server status: {server.status}"})
    if not seen and elapsed >= policy.restore_seen_within:
        return Verdict(
            Status.NEEDS_ATTENTION,
            {
                "reason": "VPS.org accepted the restore, but the server was never seen "
                f"restoring (it is {server.status}). It may not have happened: check the "
                "server before asking again"
            },
        )
    if request.expires_at is not None and now >= request.expires_at:
        return Verdict(
            Status.NEEDS_ATTENTION,
            {"reason": f"still {server.status} when the bot stopped following; outcome unknown"},
        )
    return Verdict(None, {"seen_restoring": True} if seen else {})


def _failures(request: OperationRequest) -> int:
    found = request.result.get("poll_failures")
    return found if isinstance(found, int) else 0


def judge_unread(request: OperationRequest, why: str, now: datetime, policy: Policy) -> Verdict:
    """A read that told nothing (an error, or a restore's server answering 404): keep following,
    unless it has gone on too long to hope."""
    failures = _failures(request) + 1
    first = request.result.get("first_failure_at")
    since = datetime.fromisoformat(first) if isinstance(first, str) else now
    if (
        request.action is Action.RESTORE
        and failures >= MISSED_READS
        and now - since >= policy.restore_seen_within
    ):
        return Verdict(
            Status.NEEDS_ATTENTION,
            {
                "reason": f"the server could not be read {failures} times in a row over "
                f"{int((now - since).total_seconds())} s ({why}); the restore may still be "
                "running: check the server"
            },
        )
    if request.expires_at is not None and now >= request.expires_at:
        return Verdict(
            Status.NEEDS_ATTENTION,
            {"reason": f"could not be read when the bot stopped following ({why}); outcome "
             "unknown"},
        )  # fmt: skip
    return Verdict(None, {})


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
    if found.status not in STILL_WORKING:
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
        unread = isinstance(listing, VpsApiError) or (listing is None and key[0] is None)
        if unread:  # a failed read, or a restore's server answering 404
            report.failed_calls += 1
            why = listing.detail if isinstance(listing, VpsApiError) else "the server was not found"
            report.errors.append(f"server {key[1]}: {why}")
            for request in groups[key]:
                verdict = judge_unread(request, why, now, services.policy)
                if verdict.status is None:
                    backoff.append(request)
                else:
                    done.append((request, verdict))
            continue
        assert not isinstance(listing, VpsApiError)
        for request in groups[key]:
            if isinstance(listing, dict):
                verdict = judge(request, listing.get(request.target_id or -1), now)
            elif listing is None:
                verdict = judge(request, None, now)
            else:
                verdict = judge_restore(request, listing, now, services.policy)
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
            read_ok = {"poll_failures": 0, "first_failure_at": None}
            await uow.requests.change(
                request.id,
                result=request.result | seen | read_ok,
                next_check_at=services.policy.next_tick(now),
                lease_owner=None,
                lease_until=None,
            )
        for request in backoff:
            failures = _failures(request) + 1
            policy = services.policy
            wait = min(policy.poll_interval * (2**failures), policy.max_poll_backoff)
            first = request.result.get("first_failure_at") or iso(now)
            await uow.requests.change(
                request.id,
                next_check_at=policy.next_tick(now + wait - policy.poll_interval),
                result=request.result | {"poll_failures": failures, "first_failure_at": first},
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
            statuses={Status.EXECUTING},
            now=now,
            owner=owner,
            lease=LEASE,
            # never this process's own live work, however late its lease renewals are
            exclude=frozenset(services.inflight.executing),
        )
        await uow.commit()
    cause = "the bot stopped while it was sending this request"
    for request in stale:
        if request.action is Action.RESTORE:
            await restores.reconcile(services, request, cause=cause)
        elif request.action is Action.CREATE and await read_back_create(services, request):
            continue  # VPS.org lists it: followed from here
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
    """Everything the tracker does at a tick: expire, reconcile, follow, forget old replays."""
    await restores.expire_due(services)
    await services.commands.forget_deliveries()
    await reconcile_stale(services, owner)
    return await check_in_flight(services, owner)


async def read_back_lost_creates(services: Services) -> int:
    """At start: creates left needs_attention with no object id (the bot stopped, or took
    its own live call for a crashed one) within the follow window are looked up by name and,
    when VPS.org lists them, followed. Returns how many were found."""
    since = services.clock() - services.policy.follow_for
    async with services.uow() as uow:
        lost = [
            r
            for r in await uow.requests.in_status(Status.NEEDS_ATTENTION)
            if r.action is Action.CREATE and r.target_id is None and r.created_at >= since
        ]
    found = 0
    for request in lost:
        try:
            found += await read_back_create(services, request)
        except Exception:  # one unreadable request must not stop the others, nor the start
            log.exception("could not read back request #%d", request.id)
    return found
