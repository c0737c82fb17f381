"""Safety snapshots: the server as it was before a restore, so the restore can be undone.

A restore whose card promised one (`Asked.safety` is PLANNED) is not sent without it. After
the quorum, in `executing`, the steps are recorded in `Outcome.safety_step`, each committed
before what it allows, and each only by the holder of the request's lease
(`requests.step`, a compare-and-set on the lease owner):

    (none) --POSTING committed--> one POST /snapshots/ named pre-restore-<id>
    POSTING --VPS.org took it--> FOLLOWING (lease released; the tracker follows it)
    FOLLOWING --listed `completed`--> READY --> the restore call (restores._restore)

After a crash the step says what may have been sent: none, nothing (go on); POSTING, perhaps
the POST (read back by name, never POST again); READY, perhaps the restore (restores.reconcile,
never call again). Whatever stops the snapshot ends the request `failed`, nothing restored.

The bot deletes the safety snapshots it made after `Policy.safety_keep`, and only those: the
snapshot must still be listed under its id with its `pre-restore-<id>` name on that server.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.domain.errors import LimitReached, NotFound, VpsApiError
from bot.domain.lifecycle import FINAL, Event, Status
from bot.domain.model import COMPLETED, Kind, OperationRequest, Snapshot, safety_name
from bot.domain.operations import MAX_SNAPSHOTS_PER_SERVER
from bot.domain.outcomes import Failure, Outcome, SafetyPlan, SafetyRemoval, SafetyStep, Why
from bot.services.lifecycle import (
    Lifecycle,
    Policy,
    audit_call,
    finish,
    holding_lease,
    persist,
    record_call,
)
from bot.services.ports import UnitOfWork, VpsApi

log = logging.getLogger(__name__)

# What VPS.org may say of a snapshot it is still making; any other status but `completed`
# ends the request (the same reading as the tracker's for creates).
STILL_WORKING = frozenset({"in_progress", "pending", "queued", "creating"})
CLEANUP_LEASE = timedelta(minutes=1)
CLEANUP_RETRY = timedelta(hours=1)  # a delete that failed (or a listing) is tried again then


async def plan(vps: VpsApi, policy: Policy, server_id: int) -> tuple[SafetyPlan, int | None]:
    """What the approval card will promise, from one listing of the server's snapshots."""
    if not policy.safety_snapshot:
        return SafetyPlan.OFF, None
    count = len((await vps.list_snapshots(server_id)).items)
    return (SafetyPlan.AT_LIMIT if count >= MAX_SNAPSHOTS_PER_SERVER else SafetyPlan.PLANNED), count


def needed(request: OperationRequest) -> bool:
    """The card promised a safety snapshot and none has been asked for yet."""
    return request.asked.safety is SafetyPlan.PLANNED and request.outcome.safety_step is None


def description(request: OperationRequest) -> str:
    server = request.server.name if request.server and request.server.name else "the server"
    return (
        f"Safety snapshot taken by vpsbot before restore request #{request.id} "
        f"({server} from {request.kind.value} {request.target_id}); deleted by vpsbot later."
    )


def _ours(request: OperationRequest, item: Snapshot) -> bool:
    return item.name == safety_name(request.id) and (
        request.server is None or item.server.id == request.server.id
    )


async def _server_snapshots(vps: VpsApi, request: OperationRequest) -> tuple[Snapshot, ...]:
    assert request.server is not None
    return (await vps.list_snapshots(request.server.id)).items


async def _step(
    life: Lifecycle,
    request: OperationRequest,
    outcome: Outcome,
    detail: dict[str, Any] | None,
    *,
    notify: bool = True,
    **changes: Any,
) -> bool:
    """Record a step (only while this instance holds the request's lease), with an update of
    the card (`notify`); retried while the database stalls."""
    now = life.clock()

    async def write(uow: UnitOfWork) -> bool:
        won = await uow.requests.step(
            request.id, life.owner, at=now, detail=detail, outcome=outcome, **changes
        )
        if won and notify:
            uow.outbox.add("update", {"event": "safety"}, at=now, request_id=request.id)
        return won

    return await persist(life, write, f"the safety snapshot of request #{request.id}")


async def _fail(
    life: Lifecycle, request: OperationRequest, failure: Failure, event: Event = Event.FAIL
) -> None:
    """End the request, told everywhere; only while this instance holds its lease (one that
    was overtaken while it worked writes nothing: the new holder decides)."""
    await finish(life, request, event, request.outcome.but(failure=failure), holding=True)


def late(life: Lifecycle, since: datetime | None, now: datetime) -> Failure | None:
    """The bot was not working on this approved restore for longer than `resume_within` (it
    was stopped): going on now would lose what was written on the server meanwhile, unasked."""
    if since is None or now - since <= life.policy.resume_within:
        return None
    return Failure(Why.RESUMED_LATE, seconds=int((now - since).total_seconds()))


def _following(
    life: Lifecycle,
    request: OperationRequest,
    snapshot_id: int,
    now: datetime,
    looked_at: datetime | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    """The outcome and the columns of a safety snapshot VPS.org has taken: followed by the
    tracker from the next tick (lease released), for at most `follow_for`; deleted after
    `safety_keep`. `looked_at`: when the bot last worked on it (default: now)."""
    keep_until = now + life.policy.safety_keep
    outcome = request.outcome.but(
        safety_step=SafetyStep.FOLLOWING,
        safety_id=snapshot_id,
        safety_taken_at=now,
        safety_looked_at=looked_at or now,
        safety_keep_until=keep_until,
    )
    columns: dict[str, Any] = {
        "safety_delete_at": keep_until,
        "next_check_at": life.policy.next_tick(now),
        "expires_at": now + life.policy.follow_for,
        "lease_owner": None,
        "lease_until": None,
    }
    return outcome, columns


async def take(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """Ask VPS.org for the safety snapshot, once. Called while holding the request's lease,
    after the restore's pre-check. Ends with the snapshot followed (FOLLOWING), or the
    request ended (`failed`, or `needs_attention` when the POST's outcome is unknown)."""
    assert request.server is not None
    server_id = request.server.id
    try:
        listed = await _server_snapshots(vps, request)
    except VpsApiError as error:
        await _fail(life, request, Failure(Why.CHECK_FAILED, detail=error.detail))
        return
    if any(_ours(request, s) for s in listed):
        # not this request's: `posting` commits before the POST, so none was sent for it (one
        # of another installation's, or from before the database was recreated)
        await _fail(life, request, Failure(Why.SAFETY_NAME_TAKEN))
        return
    if len(listed) >= MAX_SNAPSHOTS_PER_SERVER:  # reached since the card was posted
        await _fail(life, request, Failure(Why.SAFETY_LIMIT, count=len(listed)))
        return
    posting = request.outcome.but(safety_step=SafetyStep.POSTING, safety_asked_at=life.clock())
    if not await _step(life, request, posting, {"step": "posting"}):
        return  # another instance took the request over: it reads back what happened
    request = replace(request, outcome=posting)
    try:
        started = await vps.create_snapshot(
            server_id, safety_name(request.id), description(request)
        )
    except VpsApiError as error:
        await record_call(life, request, error)
        if error.outcome_unknown:
            await read_back(vps, life, request, cause=error.detail)
        elif isinstance(error, LimitReached):
            await _fail(life, request, Failure(Why.SAFETY_LIMIT, detail=error.detail))
        else:
            failure = Failure(Why.SAFETY_REFUSED, detail=error.detail, http_status=error.status)
            await _fail(life, request, failure)
        return
    now = life.clock()
    outcome, columns = _following(life, request, started.item.id, now)

    async def record(uow: UnitOfWork) -> bool:
        audit_call(uow, now, request, started.call)
        won = await uow.requests.step(
            request.id,
            life.owner,
            at=now,
            detail={"step": "following", "snapshot_id": started.item.id},
            outcome=outcome,
            **columns,
        )
        if won:
            uow.outbox.add("update", {"event": "safety"}, at=now, request_id=request.id)
        return won

    await persist(life, record, f"the safety snapshot of request #{request.id}")


# VPS.org's clock and the bot's may differ: a snapshot made up to this long before its POST
# was about to be sent is still taken for the one it made; one older is not.
CLOCK_SKEW = timedelta(minutes=10)


async def read_back(vps: VpsApi, life: Lifecycle, request: OperationRequest, cause: str) -> None:
    """The POST may have been sent (no usable answer, or the bot stopped while sending it):
    look for the snapshot by its name, never POST again. Found (made after the POST was
    asked for): follow it, judged late or not from then. Not listed, or the listing fails: a
    person has to look, and nothing was restored."""
    try:
        listed = await _server_snapshots(vps, request)
    except VpsApiError as error:
        failure = Failure(Why.SAFETY_UNCONFIRMED, detail=cause, read_detail=error.detail)
        await _fail(life, request, failure, Event.LOSE)
        return
    asked = request.outcome.safety_asked_at
    mine = next(
        (
            s
            for s in listed
            if _ours(request, s) and (asked is None or s.created_at >= asked - CLOCK_SKEW)
        ),
        None,
    )
    if mine is None:
        await _fail(life, request, Failure(Why.SAFETY_UNCONFIRMED, detail=cause), Event.LOSE)
        return
    outcome, columns = _following(life, request, mine.id, life.clock(), looked_at=asked)
    detail = {"step": "following", "snapshot_id": mine.id, "how": "read_back"}
    await _step(life, request, outcome, detail, **columns)


async def follow(
    vps: VpsApi, life: Lifecycle, request: OperationRequest
) -> OperationRequest | None:
    """One look at a safety snapshot being made (the tracker's, holding the lease). Returns
    the request moved to READY when it is `completed`: the restore is to be sent now, by the
    caller. None when it goes on later, or the request ended (nothing restored). Every write
    is made only while this instance still holds the lease."""
    now = life.clock()
    outcome = request.outcome
    stopped = late(life, outcome.safety_looked_at or outcome.safety_taken_at, now)
    if stopped is not None:
        await _fail(life, request, stopped)
        return None
    try:
        listed = await _server_snapshots(vps, request)
    except VpsApiError as error:
        if request.is_expired(now):
            await _fail(life, request, _timeout(request, now, detail=error.detail))
            return None
        failures = outcome.poll_failures + 1
        wait = min(life.policy.poll_interval * (2**failures), life.policy.max_poll_backoff)
        first = outcome.first_failure_at or now
        unread = outcome.but(poll_failures=failures, first_failure_at=first, safety_looked_at=now)
        later = life.policy.next_tick(now + wait - life.policy.poll_interval)
        await _hand_back(life, request, unread, later)
        return None
    mine = next((s for s in listed if s.id == outcome.safety_id), None)
    if mine is None or not _ours(request, mine):
        await _fail(life, request, Failure(Why.SAFETY_GONE))
        return None
    if mine.status == COMPLETED:
        ready = outcome.but(
            safety_step=SafetyStep.READY,
            safety_ready_at=now,
            safety_looked_at=now,
            poll_failures=0,
            first_failure_at=None,
        )
        reached = {"step": "ready", "snapshot_id": mine.id}
        if not await _step(life, request, ready, reached, next_check_at=None):
            return None
        return replace(request, outcome=ready)
    if mine.status not in STILL_WORKING:
        await _fail(life, request, Failure(Why.SAFETY_FAILED, status=mine.status))
        return None
    if request.is_expired(now):
        await _fail(life, request, _timeout(request, now, status=mine.status))
        return None
    looked = outcome.but(poll_failures=0, first_failure_at=None, safety_looked_at=now)
    await _hand_back(life, request, looked, life.policy.next_tick(now))
    return None


async def _hand_back(
    life: Lifecycle,
    request: OperationRequest,
    outcome: Outcome,
    next_check_at: datetime,
) -> None:
    """Still being made: look again at `next_check_at`, the lease handed back, the card as it
    is (no audit row for each look); nothing at all if another instance took the request over
    meanwhile."""
    await _step(
        life,
        request,
        outcome,
        None,
        notify=False,
        next_check_at=next_check_at,
        lease_owner=None,
        lease_until=None,
    )


def _timeout(
    request: OperationRequest, now: datetime, status: str = "", detail: str = ""
) -> Failure:
    since = request.outcome.safety_taken_at or request.updated_at
    seconds = int((now - since).total_seconds())
    return Failure(Why.SAFETY_TIMEOUT, status=status, detail=detail, seconds=seconds)


# -- clean-up ----------------------------------------------------------------------------------


async def clean_up(vps: VpsApi, life: Lifecycle, owner: str) -> int:
    """Delete the safety snapshots whose keep period is over (the tracker, every tick).
    Only the bot's own: listed under the recorded id, named `pre-restore-<id>`, on the
    restored server. One that an open restore request targets (an Undo waiting for approval,
    or under way) waits until that request ends. Returns how many were let go of."""
    now = life.clock()
    async with life.uow() as uow:
        due = await uow.requests.claim_due(
            statuses=FINAL | {Status.NEEDS_ATTENTION},
            now=now,
            owner=owner,
            lease=CLEANUP_LEASE,
            limit=50,
            safety_due=True,
        )
        await uow.commit()
    done = 0
    for request in due:
        try:
            async with holding_lease(life, request.id):
                done += await _clean_one(vps, life, request)
        except Exception:  # one request must not stop the others, nor the tracker
            log.exception("could not clean up the safety snapshot of request #%d", request.id)
    return done


async def _clean_one(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> int:
    snapshot_id = request.outcome.safety_id
    if snapshot_id is None or request.server is None:
        return await _let_go(life, request, None)
    async with life.uow() as uow:
        waiting = await uow.requests.restores_of(Kind.SNAPSHOT, snapshot_id)
    if waiting:  # an Undo from it is open: keep it until that one ends
        await _later(life, request, life.policy.poll_interval * 4)
        return 0
    try:
        listed = await _server_snapshots(vps, request)
    except VpsApiError:
        await _later(life, request, CLEANUP_RETRY)
        return 0
    mine = next((s for s in listed if s.id == snapshot_id), None)
    if mine is None:
        return await _let_go(life, request, SafetyRemoval.GONE)
    if not _ours(request, mine):
        return await _let_go(life, request, SafetyRemoval.NOT_OURS)
    try:
        call = await vps.delete_snapshot(snapshot_id)
    except NotFound:
        return await _let_go(life, request, SafetyRemoval.GONE)
    except VpsApiError as error:
        await record_call(life, request, error)
        if error.outcome_unknown and await _gone(vps, request, snapshot_id):
            return await _let_go(life, request, SafetyRemoval.DELETED)  # it did, after all
        await _later(life, request, CLEANUP_RETRY)
        return 0
    await record_call(life, request, call)
    return await _let_go(life, request, SafetyRemoval.DELETED)


async def _gone(vps: VpsApi, request: OperationRequest, snapshot_id: int) -> bool:
    """After a DELETE with no usable answer: no longer listed (False when unreadable)."""
    try:
        return all(s.id != snapshot_id for s in await _server_snapshots(vps, request))
    except VpsApiError:
        return False


async def _later(life: Lifecycle, request: OperationRequest, wait: timedelta) -> None:
    now = life.clock()

    async def write(uow: UnitOfWork) -> None:
        await uow.requests.change(
            request.id, next_check_at=now + wait, lease_owner=None, lease_until=None
        )

    await persist(life, write, f"the clean-up of request #{request.id}")


NOTES = {
    SafetyRemoval.DELETED: "safety_deleted",
    SafetyRemoval.GONE: "safety_gone",
    SafetyRemoval.NOT_OURS: "safety_not_ours",
}


async def _let_go(life: Lifecycle, request: OperationRequest, how: SafetyRemoval | None) -> int:
    """The bot is done with the snapshot: recorded (audited), the card updated (no more
    Undo) and a note in the thread."""
    now = life.clock()

    async def write(uow: UnitOfWork) -> None:
        changes: dict[str, object] = {
            "safety_delete_at": None,
            "lease_owner": None,
            "lease_until": None,
        }
        if how is not None:
            outcome = request.outcome.but(safety_removed=how, safety_removed_at=now)
            changes["outcome"] = outcome
            uow.outbox.add("update", {"event": "safety"}, at=now, request_id=request.id)
            uow.outbox.add("note", {"note": NOTES[how]}, at=now, request_id=request.id)
        await uow.requests.change(request.id, **changes)
        uow.audit.record(
            "safety_snapshot",
            at=now,
            request_id=request.id,
            detail={"step": how.value if how else "none", "snapshot_id": request.outcome.safety_id},
        )

    await persist(life, write, f"the clean-up of request #{request.id}")
    return 1 if how is not None else 0


__all__ = ["clean_up", "follow", "needed", "plan", "read_back", "take"]
