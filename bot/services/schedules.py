"""Scheduled snapshots and manual backups, with retention.

A schedule is run by the instance that leases it (`schedules.claim`, a compare-and-set), and a
run is an ordinary create request (`requests.schedule_id`, `Asked.schedule_id`): recorded
`executing` in the same transaction that moves the schedule to its next run and hands its lease
back, then POSTed once (`operations.send_create`), followed by the tracker, read back by name
after a crash, never sent twice. Its card is its one message in the schedule's channel,
updated in place (`lifecycle.apply` turns every message of a scheduled run into an update).

Retention deletes only what the schedule made (its succeeded runs, `requests.kept_by`), and only
once it is still listed under the recorded id, on that server, with the recorded name (a
snapshot's) or description (a backup's): anything else is let go of, never deleted. It runs
when a schedule keeps more than `keep` (after a run completes: `prune_due`, every tick) and at
the start of a run, which also frees a slot when the server is at VPS.org's limit and the
schedule owns the oldest item there; when it does not, the run is skipped and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain.errors import NotAllowed, NotFound, VpsApiError
from bot.domain.lifecycle import Event, Status
from bot.domain.model import (
    COMPLETED,
    Action,
    Kind,
    Listing,
    OperationRequest,
    Schedule,
    run_description,
    run_name,
)
from bot.domain.operations import AddSchedule, RemoveSchedule
from bot.domain.outcomes import Asked, Failure, Why
from bot.domain.schedules import MAX_KEEP, When, from_text
from bot.services.kinds import KINDS, Item
from bot.services.lifecycle import (
    EXECUTION_LEASE,
    Lifecycle,
    Policy,
    audit_call,
    end,
    persist,
    stored,
)
from bot.services.operations import Actor, existing_server, send_create
from bot.services.ports import UnitOfWork, VpsApi

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)  # a run's checks and deletes take seconds; a crashed one's lapses
MIN_GAP = timedelta(minutes=1)  # runs are named to the minute
PRUNE_RETRY = timedelta(hours=1)  # retention VPS.org refused is tried again then (or at a run)
MAX_SLOTS = 100_000  # missed runs walked to find the latest one (a catch-up names it)
CATCH_UP_WINDOW = timedelta(hours=6)  # where that walk starts, before now, at first
MAX_WHEN = 200  # characters of a `when` (a long cron expression) the schedule keeps


class TooFrequent(NotAllowed):
    """The schedule would run more often than VPSBOT_SCHEDULE_MIN_INTERVAL allows."""


class TooLong(NotAllowed):
    """A `when` longer than the schedule keeps (a very long cron expression)."""


class UnknownSchedule(NotAllowed):
    """No active schedule of this kind has that id."""


class TooManyKept(NotAllowed):
    """The server's schedules of this kind would keep more than VPS.org's limit leaves free."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A schedule and its latest run (None before its first)."""

    schedule: Schedule
    last_run: OperationRequest | None


@dataclass
class Pruned:
    """What one retention pass did."""

    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    failed: str = ""  # what VPS.org said to a delete it refused, or why none was tried
    kept_back: int = 0  # items left for now (a restore from them is open)


def when_of(schedule: Schedule) -> When:
    return from_text(schedule.when)


def next_run(when: When, after: datetime, policy: Policy, anchor: datetime) -> datetime:
    return when.next_after(after, policy.timezone, anchor)


def stamp(moment: datetime) -> str:
    """YYYYMMDD-HHMM of a run, in UTC: unique per run (runs are a minute apart at least),
    where a local time repeats when the clocks go back."""
    return moment.astimezone(UTC).strftime("%Y%m%d-%H%M")


# -- the commands ------------------------------------------------------------------------------


async def add(vps: VpsApi, life: Lifecycle, actor: Actor, intent: AddSchedule) -> Schedule:
    """Check the interval, the server and what its schedules keep; record the schedule."""
    policy = life.policy
    now = life.clock()
    limit = max(policy.schedule_min_interval, MIN_GAP)
    gap = intent.when.shortest_gap(policy.timezone, now)
    if gap < limit:
        raise TooFrequent(
            f"“{intent.when.text}” runs every {_duration(gap)} at its most frequent; schedules "
            f"may run at most every {_duration(limit)} (VPSBOT_SCHEDULE_MIN_INTERVAL)."
        )
    if len(intent.when.text) > MAX_WHEN:
        raise TooLong(
            f"That schedule is {len(intent.when.text)} characters long; at most {MAX_WHEN}."
        )
    server = await existing_server(vps, intent.server_id)
    async with life.uow() as uow:
        await uow.schedules.lock_server(server.id)  # two adds at once: one after the other
        same = [s for s in await uow.schedules.active(server.id) if s.kind is intent.kind]
        kept = sum(s.keep for s in same)
        room = MAX_KEEP[intent.kind]
        if kept + intent.keep > room:
            noun = KINDS[intent.kind].counted_noun
            raise TooManyKept(
                f"{server.name} ({server.id}) already has {len(same)} {intent.kind.value} "
                f"schedule(s) keeping {kept} {noun}; with this one they would keep "
                f"{kept + intent.keep}, more than the {room} VPS.org's limit of "
                f"{KINDS[intent.kind].limit} leaves free. Keep fewer, or unschedule one."
            )
        schedule = await uow.schedules.add(
            kind=intent.kind,
            server=server.ref,
            channel_id=actor.channel_id,
            created_by=actor.user_id,
            when=intent.when.text,
            keep=intent.keep,
            at=now,
            next_run_at=next_run(intent.when, now, policy, now),
        )
        _audit(uow, "add", schedule, actor, now, when=schedule.when, keep=schedule.keep)
        await uow.commit()
    return schedule


def _audit(
    uow: UnitOfWork, action: str, schedule: Schedule, actor: Actor, at: datetime, **more: object
) -> None:
    """The `schedule` audit row of a person adding or removing one."""
    uow.audit.record(
        "schedule",
        at=at,
        actor_id=actor.user_id,
        channel_id=actor.channel_id,
        detail={
            "action": action,
            "schedule_id": schedule.id,
            "kind": schedule.kind.value,
            "server_id": schedule.server.id,
            **more,
        },
    )


async def remove(life: Lifecycle, actor: Actor, intent: RemoveSchedule) -> Schedule:
    """Unschedule: no more runs or retention; what it made stays."""
    now = life.clock()
    async with life.uow() as uow:
        schedule = await uow.schedules.get(intent.schedule_id)
        if (
            schedule is None
            or schedule.kind is not intent.kind
            or schedule.removed_at is not None
            or not await uow.schedules.remove(schedule.id, by=actor.user_id, at=now)
        ):
            raise UnknownSchedule(
                f"There is no {intent.kind.value} schedule #{intent.schedule_id}: "
                f"`/{intent.kind.value} schedules` lists them."
            )
        _audit(uow, "remove", schedule, actor, now)
        await uow.commit()
    return schedule


async def listing(life: Lifecycle, kind: Kind | None, server_id: int | None) -> list[Listed]:
    """The active schedules (of one kind, of one server) with their latest runs."""
    async with life.uow() as uow:
        found = [s for s in await uow.schedules.active(server_id) if kind is None or s.kind is kind]
        runs = await uow.requests.runs([s.id for s in found])
    latest = {r.asked.schedule_id: r for r in runs}
    return [Listed(s, latest.get(s.id)) for s in found]


async def made(life: Lifecycle, schedule_id: int) -> list[OperationRequest]:
    async with life.uow() as uow:
        return await uow.requests.kept_by(schedule_id)


# -- runs --------------------------------------------------------------------------------------


async def run_due(vps: VpsApi, life: Lifecycle, owner: str) -> int:
    """Start the runs that are due (the tracker, every tick). A schedule whose runs were missed
    (the bot was down) runs once now, named after the latest missed run. Returns how many
    runs were taken."""
    taken = 0
    while True:  # one at a time: each is leased just before its run, not all at the start
        async with life.uow() as uow:
            due = await uow.schedules.claim(now=life.clock(), owner=owner, lease=LEASE, limit=1)
            await uow.commit()
        if not due:
            return taken
        taken += 1
        try:
            await _run(vps, life, owner, due[0])
        except Exception:  # one schedule must not stop the others, nor the tracker
            log.exception("schedule #%d: the run failed", due[0].id)
            await _release(life, due[0], owner)


def _slot(schedule: Schedule, when: When, now: datetime, policy: Policy) -> datetime:
    """The latest run time that has come (the one this run is for). After a long stop the
    walk starts near `now` (a window widened until it holds a run), not at the first run
    missed: a minutely schedule down for a week walks a few hundred runs, not ten thousand."""
    slot = schedule.next_run_at
    window = CATCH_UP_WINDOW
    while now - window > slot:
        first = next_run(when, now - window, policy, schedule.created_at)
        if first <= now:
            slot = first
            break
        window *= 4
    for _ in range(MAX_SLOTS):
        following = next_run(when, slot, policy, schedule.created_at)
        if following > now:
            break
        slot = following
    return slot


async def _run(vps: VpsApi, life: Lifecycle, owner: str, schedule: Schedule) -> None:
    policy = life.policy
    now = life.clock()
    when = when_of(schedule)
    slot = _slot(schedule, when, now, policy)
    following = next_run(when, now, policy, schedule.created_at)
    calls = KINDS[schedule.kind]
    name = run_name(schedule.id, stamp(slot)) if schedule.kind is Kind.SNAPSHOT else ""
    description = run_description(schedule.kind, schedule.id, stamp(slot))
    try:
        listed = await _listing(vps, schedule)
    except VpsApiError as error:
        await _open(life, owner, schedule, following, name, description, (), refused=error)
        return
    items = listed.items
    pruned = Pruned()
    kept = await made(life, schedule.id)
    # Beyond `keep` already (a retention pass that did not happen): pruned first; then, at the
    # limit, the oldest item on the server if it is this schedule's.
    excess = kept[: max(len(kept) - schedule.keep, 0)]
    if excess:
        pruned = await prune(vps, life, owner, schedule, excess, listed)
    remaining = [i for i in items if i.id not in pruned.ids]
    skip: Failure | None = None
    if len(remaining) >= calls.limit:
        oldest = min(remaining, key=lambda item: (item.created_at, item.id))
        ours = next((r for r in kept if r.target_id == oldest.id), None)
        if ours is not None and ours.target_id not in pruned.ids:
            more = await prune(vps, life, owner, schedule, [ours], listed)
            pruned.ids += more.ids
            pruned.names += more.names
            pruned.failed = pruned.failed or more.failed
            remaining = [i for i in remaining if i.id not in more.ids]
        if len(remaining) >= calls.limit:
            skip = Failure(
                Why.SCHEDULE_SKIPPED,
                detail=calls.name(oldest) or str(oldest.id),
                count=len(remaining),
                status="ours" if ours is not None else "",
            )
    known = tuple(sorted(i.id for i in remaining))
    request = await _open(
        life, owner, schedule, following, name, description, known, skip=skip, pruned=pruned
    )
    if request is None or skip is not None:
        return
    try:
        await send_create(vps, life, request)
    except VpsApiError as error:  # recorded on the run's card by send_create
        log.warning("schedule #%d: VPS.org refused run #%d: %s", schedule.id, request.id, error)


async def _listing(vps: VpsApi, schedule: Schedule) -> Listing[Item]:
    """What the limit counts on the schedule's server: its snapshots, or its manual backups."""
    return await KINDS[schedule.kind].counted(vps, schedule.server.id)


async def _open(
    life: Lifecycle,
    owner: str,
    schedule: Schedule,
    following: datetime,
    name: str,
    description: str,
    known: tuple[int, ...],
    *,
    skip: Failure | None = None,
    refused: VpsApiError | None = None,
    pruned: Pruned | None = None,
) -> OperationRequest | None:
    """Record the run, its card and the schedule's next run in one transaction, while this
    instance still holds the schedule (None when it lost it: another instance runs it). A run
    that is skipped, or whose checks VPS.org would not answer, ends `failed` at once."""
    now = life.clock()
    async with life.uow() as uow:
        request = await uow.requests.add(
            kind=schedule.kind,
            action=Action.CREATE,
            status=Status.EXECUTING,
            requester_id=schedule.created_by,
            channel_id=schedule.channel_id,
            at=now,
            server=schedule.server,
            target_name=name or description,
            asked=Asked(
                name=name,
                description=description,
                known_ids=known,
                schedule_id=schedule.id,
                schedule_when=schedule.when,
                schedule_keep=schedule.keep,
            ),
            schedule_id=schedule.id,
        )
        uow.audit.record(
            "request",
            at=now,
            actor_id=schedule.created_by,
            channel_id=schedule.channel_id,
            request_id=request.id,
            detail={
                "kind": schedule.kind.value,
                "action": "create",
                "server_id": schedule.server.id,
                "name": name,
                "schedule_id": schedule.id,
            },
        )
        outcome = request.outcome
        if pruned is not None and (pruned.ids or pruned.failed):
            outcome = outcome.but(
                pruned_ids=tuple(pruned.ids),
                pruned_names=tuple(pruned.names),
                prune_failed=pruned.failed,
            )
        failure = skip
        if refused is not None:
            failure = Failure(Why.CHECK_FAILED, detail=refused.detail, http_status=refused.status)
        if failure is not None:
            await end(uow, request, Event.FAIL, outcome.but(failure=failure), at=now)
        else:
            await uow.requests.change(
                request.id,
                outcome=outcome,
                lease_owner=life.owner,
                lease_until=now + EXECUTION_LEASE,
            )
            uow.outbox.add("update", {"event": "scheduled"}, at=now, request_id=request.id)
        if not await uow.schedules.hand_back(
            schedule.id, owner, active=True, next_run_at=following
        ):
            log.warning("schedule #%d: lost its lease, or was removed; not run", schedule.id)
            return None  # rolled back: the instance that holds it runs it (or none does)
        await uow.commit()
    return await stored(life, request.id)


async def _release(life: Lifecycle, schedule: Schedule, owner: str) -> None:
    try:
        async with life.uow() as uow:
            await uow.schedules.hand_back(schedule.id, owner)
            await uow.commit()
    except Exception:
        log.exception("schedule #%d: could not hand its lease back; it lapses", schedule.id)


# -- retention ---------------------------------------------------------------------------------


async def prune_due(vps: VpsApi, life: Lifecycle, owner: str) -> int:
    """Retention for the schedules keeping more than `keep` (a run completed since the last
    pass): the oldest of their own go, never the newest. The pass is told on the card of the
    schedule's newest run. Returns how many items were let go of."""
    now = life.clock()
    async with life.uow() as uow:
        over = await uow.requests.over_keep(now)
    done = 0
    for schedule_id in over:
        async with life.uow() as uow:
            claimed = await uow.schedules.claim(
                now=now, owner=owner, lease=LEASE, due=False, schedule_id=schedule_id
            )
            await uow.commit()
        if not claimed:
            continue  # another instance is running or pruning it
        schedule = claimed[0]
        retry: datetime | None = None
        try:
            kept = await made(life, schedule.id)
            excess = kept[: max(len(kept) - schedule.keep, 0)]
            newest = kept[-1]
            listed = await _listing(vps, schedule)
            pruned = await prune(vps, life, owner, schedule, excess, listed)
            done += len(pruned.ids)
            left = len(await made(life, schedule.id))
            if left > schedule.keep:  # refused, kept for an open restore, or listed partially
                retry = life.clock() + PRUNE_RETRY
            await _tell(life, newest, pruned, left)
        except VpsApiError as error:
            log.warning("schedule #%d: retention could not list: %s", schedule.id, error)
            retry = life.clock() + PRUNE_RETRY
        except Exception:
            log.exception("schedule #%d: retention failed", schedule.id)
            retry = life.clock() + PRUNE_RETRY
        async with life.uow() as uow:
            await uow.schedules.hand_back(schedule.id, owner, prune_after=retry)
            await uow.commit()
    return done


async def _tell(life: Lifecycle, run: OperationRequest, pruned: Pruned, kept: int) -> None:
    """Retention's result on the card of the run it followed."""
    now = life.clock()

    async def write(uow: UnitOfWork) -> None:
        current = await uow.requests.lock(run.id)
        if current is None:
            return
        outcome = current.outcome.but(
            pruned_ids=current.outcome.pruned_ids + tuple(pruned.ids),
            pruned_names=current.outcome.pruned_names + tuple(pruned.names),
            prune_failed=pruned.failed,
            kept=kept,
        )
        await uow.requests.change(run.id, outcome=outcome)
        uow.outbox.add("update", {"event": "pruned"}, at=now, request_id=run.id)

    await persist(life, write, f"the retention told on request #{run.id}")


def _made_it(schedule: Schedule, run: OperationRequest, item: Item) -> bool:
    """The listed item is the one the run made: same server, the name (snapshot) or the
    description (backup) the run gave it."""
    calls = KINDS[schedule.kind]
    return item.server.id == schedule.server.id and calls.matches(
        item, run.asked.name, run.asked.description
    )


async def prune(
    vps: VpsApi,
    life: Lifecycle,
    owner: str,
    schedule: Schedule,
    runs: Sequence[OperationRequest],
    listed: Listing[Item],
) -> Pruned:
    """Delete what these runs of the schedule made, when it is still theirs to delete, and
    only while `owner` still holds the schedule (each DELETE is preceded by a renewal of its
    lease: a pass that lost it, or whose schedule was removed, stops)."""
    pruned = Pruned()
    by_id = {item.id: item for item in listed.items}
    calls = KINDS[schedule.kind]
    for run in runs:
        assert run.target_id is not None
        item = by_id.get(run.target_id)
        if item is None:
            if not listed.partial:  # gone (deleted by a person): let go, nothing to do
                await _let_go(life, schedule, run, "gone", None)
            continue
        if not _made_it(schedule, run, item):
            # its id names something else now: never deleted; a person decides
            await _let_go(life, schedule, run, "not_ours", None)
            continue
        now = life.clock()
        async with life.uow() as uow:
            open_restores = await uow.requests.restores_of(schedule.kind, item.id)
            mine = await uow.schedules.renew(schedule.id, owner, now=now, until=now + LEASE)
            await uow.commit()
        if not mine:
            log.warning("schedule #%d: lost its lease or was removed; no deletes", schedule.id)
            pruned.kept_back += 1
            break
        if open_restores or item.status != COMPLETED:
            pruned.kept_back += 1  # someone asked to restore from it, or VPS.org is busy with it
            continue
        try:
            call = await calls.delete(vps, item.id)
        except NotFound:
            await _let_go(life, schedule, run, "gone", None)
            continue
        except VpsApiError as error:
            if error.outcome_unknown and await _gone(vps, schedule, item.id):
                await _let_go(life, schedule, run, "deleted", error)
                pruned.ids.append(item.id)
                pruned.names.append(calls.name(item) or str(item.id))
                continue
            await _record(life, run, error)
            pruned.failed = pruned.failed or error.detail or type(error).__name__
            continue
        await _let_go(life, schedule, run, "deleted", call)
        pruned.ids.append(item.id)
        pruned.names.append(calls.name(item) or str(item.id))
    return pruned


async def _gone(vps: VpsApi, schedule: Schedule, item_id: int) -> bool:
    """After a DELETE with no usable answer: no longer listed (False when unreadable)."""
    try:
        listed = await _listing(vps, schedule)
    except VpsApiError:
        return False
    return not listed.partial and all(item.id != item_id for item in listed.items)


async def _record(life: Lifecycle, run: OperationRequest, error: VpsApiError) -> None:
    at = life.clock()

    async def write(uow: UnitOfWork) -> None:
        audit_call(uow, at, run, error)

    await persist(life, write, f"the retention DELETE of request #{run.id}")


async def _let_go(
    life: Lifecycle,
    schedule: Schedule,
    run: OperationRequest,
    how: str,
    call: object,
) -> None:
    """The schedule no longer keeps what `run` made: `deleted` by retention, found `gone`, or
    `not_ours` any more (its id names something else). Audited with the DELETE, if one went."""
    at = life.clock()

    async def write(uow: UnitOfWork) -> None:
        if call is not None:
            audit_call(uow, at, run, call)  # type: ignore[arg-type]
        await uow.requests.change(run.id, pruned_at=at)
        uow.audit.record(
            "pruned",
            at=at,
            actor_id=schedule.created_by,
            channel_id=schedule.channel_id,
            request_id=run.id,
            detail={
                "schedule_id": schedule.id,
                "kind": schedule.kind.value,
                "server_id": schedule.server.id,
                "target_id": run.target_id,
                "name": run.target_name,
                "how": how,
            },
        )

    await persist(life, write, f"the retention of request #{run.id}")


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"
