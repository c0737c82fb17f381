"""Follow in-flight operations: one list call per (server, kind) per cycle, not one per op."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.errors import NotFound, VpsApiError
from bot.domain.lifecycle import Event, Status
from bot.domain.model import COMPLETED, IN_PROGRESS, Action, Kind, OperationRequest, Server
from bot.domain.outcomes import Failure, Outcome, Why
from bot.services import health, reminders, restores, safety, schedules
from bot.services.commands import CommandLog
from bot.services.kinds import KINDS, Item
from bot.services.lifecycle import Lifecycle, ListingSize, Policy, end, finish
from bot.services.operations import read_back_create
from bot.services.ports import VpsApi

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
TRY_WIDE_FROM = 3  # servers with creates in flight from which an unmeasured account is listed whole
REPROBE_EVERY = 40  # cycles (10 minutes at 15 s) an estimate is used before it is measured again


@dataclass
class CycleReport:
    claimed: int = 0
    api_calls: int = 0
    finished: int = 0
    failed_calls: int = 0
    first_failure: str = ""  # what the first failed read said, for the log
    wide: int = 0  # account-wide listings read (instead of one per server)


@dataclass(frozen=True, slots=True)
class Listed:
    """The items of one server (of one kind) a read found, by id; `partial` when VPS.org said
    it holds more than it returned (a missing item is then unread, not gone)."""

    items: dict[int, Item]
    partial: bool = False


Read = Listed | Server | VpsApiError | None


def account_wide(life: Lifecycle, kind: Kind, servers: set[int]) -> bool:
    """Whether one account-wide listing of `kind` (all its pages) costs fewer calls this cycle
    than one listing per server with work in flight. Its pages are estimated from the last
    account-wide listing; with none yet, or every REPROBE_EVERY cycles (the account changes,
    and a listing that failed may work again), it is tried once `TRY_WIDE_FROM` or more
    servers are to be read, and learnt from."""
    if not servers:
        return False
    size = life.listing_sizes.get(kind.value)
    if size is None or size.decided >= REPROBE_EVERY:
        return len(servers) >= TRY_WIDE_FROM
    size.decided += 1
    return not size.failed and size.pages < len(servers)


async def _read_all(
    vps: VpsApi, life: Lifecycle, kind: Kind, gate: asyncio.Semaphore, report: CycleReport
) -> tuple[dict[int, list[Item]], bool] | VpsApiError:
    """One account-wide listing of what creates of `kind` make, by server."""
    async with gate:
        try:
            listing = await KINDS[kind].made(vps, None)
        except VpsApiError as error:
            report.api_calls += 1
            # per server from the next cycle on (this one reads them now), until a re-probe
            life.listing_sizes[kind.value] = ListingSize(0, 0, failed=True)
            log.warning("tracker: the account-wide %s list failed (%s); reading per server",
                        kind.value, error.detail)  # fmt: skip
            return error
    report.api_calls += listing.pages
    report.wide += 1
    count = listing.count if listing.count is not None else len(listing.items)
    life.listing_sizes[kind.value] = ListingSize(count, listing.per_page)
    by_server: dict[int, list[Item]] = defaultdict(list)
    for item in listing.items:
        by_server[item.server.id].append(item)
    return by_server, listing.partial


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a read says: the event to apply (None: still running) and the outcome with it."""

    event: Event | None
    outcome: Outcome


def _since(moment: datetime | None, fallback: datetime) -> datetime:
    return moment if moment is not None else fallback


def judge_restore(
    request: OperationRequest, server: Server | None, now: datetime, policy: Policy
) -> Verdict:
    """What the server's status says about a restore that VPS.org accepted. Success needs
    evidence: the server seen `restoring` after the call, then `running`."""
    outcome = request.outcome
    if server is None:
        return Verdict(Event.FAIL, outcome.but(failure=Failure(Why.NOT_LISTED)))
    elapsed = now - _since(outcome.started_at, request.updated_at)
    seen = outcome.seen_restoring or server.status == "restoring"
    if server.status == "running" and seen:
        took = int(elapsed.total_seconds())
        return Verdict(Event.COMPLETE, outcome.but(took_seconds=took, finished_at=now))
    if server.status in FAILED_SERVER_STATUSES:
        failure = Failure(Why.SERVER_FAILED, status=server.status)
        return Verdict(Event.FAIL, outcome.but(failure=failure))
    if not seen and elapsed >= policy.restore_seen_within:
        failure = Failure(Why.NEVER_SEEN_RESTORING, status=server.status)
        return Verdict(Event.LOSE, outcome.but(failure=failure))
    if request.is_expired(now):
        failure = Failure(Why.STOPPED_FOLLOWING, status=server.status)
        return Verdict(Event.LOSE, outcome.but(failure=failure))
    return Verdict(None, outcome.but(seen_restoring=seen))


def judge_unread(request: OperationRequest, why: str, now: datetime, policy: Policy) -> Verdict:
    """A read that told nothing (an error, or a restore's server answering 404): keep following,
    unless it has gone on too long to hope."""
    outcome = request.outcome
    failures = outcome.poll_failures + 1
    since = _since(outcome.first_failure_at, now)
    if (
        request.action is Action.RESTORE
        and failures >= MISSED_READS
        and now - since >= policy.restore_seen_within
    ):
        failure = Failure(
            Why.UNREADABLE,
            detail=why,
            count=failures,
            seconds=int((now - since).total_seconds()),
        )
        return Verdict(Event.LOSE, outcome.but(failure=failure))
    if request.is_expired(now):
        return Verdict(Event.LOSE, outcome.but(failure=Failure(Why.STOPPED_FOLLOWING, detail=why)))
    return Verdict(None, outcome)


def judge(request: OperationRequest, found: Item | None, now: datetime) -> Verdict:
    """What a listed object (or its absence) says about a create that was in progress."""
    outcome = request.outcome
    if found is None:
        return Verdict(Event.FAIL, outcome.but(failure=Failure(Why.NOT_LISTED)))
    if found.status == COMPLETED:
        took = int((now - request.created_at).total_seconds())
        return Verdict(
            Event.COMPLETE, outcome.but(size_mb=found.size_mb, took_seconds=took, finished_at=now)
        )
    if found.status not in STILL_WORKING:
        failure = Failure(Why.OBJECT_FAILED, status=found.status)
        return Verdict(Event.FAIL, outcome.but(failure=failure))
    if request.is_expired(now):
        failure = Failure(Why.STOPPED_FOLLOWING, status=found.status)
        return Verdict(Event.LOSE, outcome.but(failure=failure))
    return Verdict(None, outcome)


async def check_in_flight(
    vps: VpsApi, life: Lifecycle, owner: str, *, wide: bool | None = None
) -> CycleReport:
    """One tracker cycle: claim due operations, read the API (per kind, account-wide or by
    server, whichever costs fewer calls; `wide` forces one or the other), finish what is done."""
    report = CycleReport()
    now = life.clock()
    async with life.uow() as uow:
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
    # per kind, one account-wide listing instead of one per server, when it costs fewer calls
    whole = {
        kind: asyncio.ensure_future(_read_all(vps, life, kind, gate, report))
        for kind in (Kind.SNAPSHOT, Kind.BACKUP)
        if (
            account_wide(life, kind, {sid for k, sid in groups if k is kind})
            if wide is None
            else wide and any(k is kind for k, _ in groups)
        )
    }

    async def read(kind: Kind | None, server_id: int) -> Read:
        if kind in whole:
            assert kind is not None
            found = await whole[kind]
            if not isinstance(found, VpsApiError):
                items, partial = found
                mine = {i.id: i for i in items.get(server_id, ())}
                wanted = {r.target_id for r in groups[(kind, server_id)]}
                if wanted <= mine.keys() or partial:
                    return Listed(mine, partial)
            # The account-wide list failed, or lacks one of this server's items: an item can
            # slip between two pages when another is deleted meanwhile, so the server's own
            # list decides (a missing item is never judged on the account-wide one alone).
        async with gate:
            try:
                if kind is None:
                    report.api_calls += 1
                    return await vps.get_server(server_id)
                listing = await KINDS[kind].made(vps, server_id)
            except NotFound:
                report.api_calls += 1
                return None
            except VpsApiError as error:
                report.api_calls += 1
                return error
        report.api_calls += listing.pages
        return Listed({item.id: item for item in listing.items}, listing.partial)

    keys = list(groups)
    listings = await asyncio.gather(*(read(kind, server_id) for kind, server_id in keys))
    now = life.clock()
    policy = life.policy
    keep: list[tuple[OperationRequest, Outcome]] = []
    backoff: list[OperationRequest] = []
    done: list[tuple[OperationRequest, Verdict]] = []
    for key, listing in zip(keys, listings, strict=True):
        unread = isinstance(listing, VpsApiError) or (listing is None and key[0] is None)
        if unread:  # a failed read, or a restore's server answering 404
            report.failed_calls += 1
            why = listing.detail if isinstance(listing, VpsApiError) else "the server was not found"
            report.first_failure = report.first_failure or why
            for request in groups[key]:
                verdict = judge_unread(request, why, now, policy)
                if verdict.event is None:
                    backoff.append(request)
                else:
                    done.append((request, verdict))
            continue
        assert not isinstance(listing, VpsApiError)
        for request in groups[key]:
            if isinstance(listing, Listed):
                found = listing.items.get(request.target_id or -1)
                if found is None and listing.partial:  # not read, rather than gone
                    verdict = judge_unread(request, "VPS.org's list was partial", now, policy)
                    if verdict.event is None:
                        backoff.append(request)
                    else:
                        done.append((request, verdict))
                    continue
                verdict = judge(request, found, now)
            elif listing is None:
                verdict = judge(request, None, now)
            else:
                verdict = judge_restore(request, listing, now, policy)
            if verdict.event is None:
                keep.append((request, verdict.outcome))
            else:
                done.append((request, verdict))

    async with life.uow() as uow:
        for request, verdict in done:
            assert verdict.event is not None
            if await end(uow, request, verdict.event, verdict.outcome, at=now):
                report.finished += 1
        # what was seen is written only while this instance still holds the claim: one that
        # stalled past its lease must not overwrite what another instance decided meanwhile
        for request, seen in keep:
            await uow.requests.step(
                request.id,
                owner,
                at=now,
                detail=None,
                status=Status.RUNNING,
                outcome=seen.but(poll_failures=0, first_failure_at=None),
                next_check_at=policy.next_tick(now),
                lease_owner=None,
                lease_until=None,
            )
        for request in backoff:
            failures = request.outcome.poll_failures + 1
            wait = min(policy.poll_interval * (2**failures), policy.max_poll_backoff)
            first = request.outcome.first_failure_at or now
            await uow.requests.step(
                request.id,
                owner,
                at=now,
                detail=None,
                status=Status.RUNNING,
                next_check_at=policy.next_tick(now + wait - policy.poll_interval),
                outcome=request.outcome.but(poll_failures=failures, first_failure_at=first),
                lease_owner=None,
                lease_until=None,
            )
        await uow.commit()
    if report.failed_calls:
        log.warning(
            "tracker: %d of %d reads of VPS.org failed (first: %s)",
            report.failed_calls,
            report.api_calls,
            report.first_failure,
        )
    return report


async def reconcile_stale(vps: VpsApi, life: Lifecycle, owner: str) -> int:
    """Requests in `executing` that no live instance holds: left by an instance that died (its
    lease lapsed), or a restore whose safety snapshot is being made (lease handed back, due
    at the next tick). A restore goes on from its recorded step (`restores.resume`); the rest
    are decided from what VPS.org shows. No call is ever sent a second time."""
    now = life.clock()
    async with life.uow() as uow:
        stale = await uow.requests.claim_due(
            statuses={Status.EXECUTING},
            now=now,
            owner=owner,
            lease=LEASE,
            # never this process's own live work, however late its lease renewals are
            exclude=frozenset(life.executing),
        )
        await uow.commit()
    cause = Failure(Why.BOT_STOPPED)
    for request in stale:
        if request.action is Action.RESTORE:
            await restores.resume(vps, life, request)
        elif request.action is Action.CREATE and await read_back_create(vps, life, request):
            continue  # VPS.org lists it: followed from here
        else:
            await finish(life, request, Event.LOSE, request.outcome.but(failure=cause))
    return len(stale)


async def cycle(vps: VpsApi, life: Lifecycle, commands: CommandLog, owner: str) -> CycleReport:
    """Everything the tracker does at a tick: expire, remind, reconcile, start the scheduled
    runs that are due, follow, prune what schedules keep beyond `keep`, forget old replays,
    delete the safety snapshots whose time has come, check health (when its turn has come)."""
    await restores.expire_due(life)
    await reminders.remind_due(life)  # after the sweeper: nothing expired is reminded
    await commands.forget_deliveries()
    await reconcile_stale(vps, life, owner)
    await schedules.run_due(vps, life, owner)
    report = await check_in_flight(vps, life, owner)
    await schedules.prune_due(vps, life, owner)  # after the runs completed at this tick
    await safety.clean_up(vps, life, owner)
    await health.alert_due(vps, life)
    return report


async def read_back_lost_creates(vps: VpsApi, life: Lifecycle) -> int:
    """At start: creates left needs_attention with no object id (the bot stopped, or took
    its own live call for a crashed one) within the follow window are looked up by name and,
    when VPS.org lists them, followed. Returns how many were found."""
    since = life.clock() - life.policy.follow_for
    async with life.uow() as uow:
        lost = [
            r
            for r in await uow.requests.in_status(Status.NEEDS_ATTENTION)
            if r.action is Action.CREATE and r.target_id is None and r.created_at >= since
        ]
    found = 0
    for request in lost:
        try:
            found += await read_back_create(vps, life, request)
        except Exception:  # one unreadable request must not stop the others, nor the start
            log.exception("could not read back request #%d", request.id)
    return found
