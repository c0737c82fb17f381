"""Two-person restores: request, vote, execute exactly once, and reconcile after a crash.

A restore overwrites a whole server. The rules here: no restore call without a quorum of votes
from eligible people other than the requester; the move to `executing` commits before the call,
and only the transaction that made it calls; the bot never sends a restore a second time on its
own, not after a timeout, not after a crash.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import replace
from datetime import datetime

from bot import metrics
from bot.domain import approvals as rules
from bot.domain.errors import (
    AlreadyHandled,
    ConflictingRestore,
    NotAllowed,
    NotEligible,
    NotFound,
    NothingToUndo,
    NotRequester,
    RestoreUnderWay,
    SafetySnapshotGone,
    UnknownRequest,
    UsageError,
    VpsApiError,
)
from bot.domain.lifecycle import UNDER_WAY, Event, Status
from bot.domain.model import (
    COMPLETED,
    FINISHED_RESTORE,
    Action,
    Backup,
    Kind,
    OperationRequest,
    Snapshot,
    safety_name,
)
from bot.domain.operations import MAX_DESCRIPTION, RequestRestore
from bot.domain.outcomes import Asked, Failure, Outcome, SafetyPlan, SafetyRemoval, SafetyStep, Why
from bot.services import reminders, safety
from bot.services.access import is_member
from bot.services.kinds import KINDS, find_target, target_name
from bot.services.lifecycle import (
    EXECUTION_LEASE,
    UPDATE,
    Lifecycle,
    apply,
    audit_call,
    end,
    finish,
    holding_lease,
    persist,
    record_call,
    stored,
)
from bot.services.operations import Actor, failure_of
from bot.services.ports import Directory, UnitOfWork, VpsApi

log = logging.getLogger(__name__)


# -- asking ------------------------------------------------------------------------------------

# A restore of a server that has one of these is refused when asked. Not `needs_attention`: that
# restore is over as far as the bot can tell (its outcome is unknown, and no move leaves it but
# late evidence), and the person who checked the server must be able to ask again; the new
# request still needs a second person's approval, and its pre-check refuses a server that is
# `restoring` at VPS.org.
CONFLICTING = frozenset({Status.PENDING_APPROVAL} | UNDER_WAY)


async def _clear_the_way(uow: UnitOfWork, server_id: int, now: datetime) -> None:
    """In the transaction that inserts a restore request, holding the server's restores: refuse
    if another is waiting for approval or under way. One whose approval time has passed but
    that the sweeper has not reached yet does not count: it is expired here, as the sweeper
    would (its card says so)."""
    conflicting = []
    for other in await uow.requests.lock_restores(server_id):
        if other.status is Status.PENDING_APPROVAL and other.is_expired(now):
            if await _expire(uow, other, now):
                continue
            raise ConflictingRestore(other)  # cannot happen while its row is held: refuse
        if other.status in CONFLICTING:
            conflicting.append(other)
    if conflicting:  # one at most, unless rows from before this check; the one under way first
        raise ConflictingRestore(min(conflicting, key=lambda r: (r.status not in UNDER_WAY, r.id)))


async def request_restore(
    vps: VpsApi,
    life: Lifecycle,
    actor: Actor,
    intent: RequestRestore,
    usage: str = "",
    undo_of: OperationRequest | None = None,
) -> OperationRequest:
    """Look the target up, then post a request for approval. Nothing is called yet. Refused
    (ConflictingRestore, nothing created) while the server has another restore waiting for
    approval or under way; the check and the insert are one transaction holding the server.
    The card says whether a safety snapshot will be taken first (`safety.plan`): the plan
    the approvers approve. `undo_of`: the restore this one undoes (its safety snapshot is
    the target, and must still be the bot's)."""
    if life.policy.require_reason and not intent.reason:
        raise UsageError("A restore needs a reason here: say why after the id.", usage)
    target = await find_target(vps, intent.kind, intent.target_id)
    if undo_of is not None and not _still_ours(undo_of, target):
        raise SafetySnapshotGone(
            f"Snapshot {target.id} is no longer the safety snapshot of request #{undo_of.id}, "
            "so this restore cannot be undone from it. Nothing was asked."
        )
    server = await vps.get_server(target.server.id)
    plan, snapshots = await safety.plan(vps, life.policy, server.id)
    now = life.clock()
    async with life.uow() as uow:
        await _clear_the_way(uow, server.id, now)
        request = await uow.requests.add(
            kind=intent.kind,
            action=Action.RESTORE,
            status=Status.PENDING_APPROVAL,
            requester_id=actor.user_id,
            channel_id=actor.channel_id,
            at=now,
            server=server.ref,
            target_id=target.id,
            target_name=target_name(target),
            reason=intent.reason,
            asked=Asked(
                target_created_at=target.created_at,
                target_size_mb=target.size_mb,
                target_status=target.status,
                target_expires_at=target.expires_at if isinstance(target, Backup) else None,
                safety=plan,
                server_snapshots=snapshots,
                undo_of=undo_of.id if undo_of is not None else None,
            ),
            expires_at=now + life.policy.approval_ttl,
            required_approvals=life.policy.required_approvals,
        )
        # due for its one reminder then (never after its expiry: the sweeper uses it too)
        remind = reminders.first_check(life.policy, now, request.expires_at)
        if remind is not None:
            await uow.requests.change(request.id, next_check_at=remind)
        uow.audit.record(
            "request",
            at=now,
            actor_id=actor.user_id,
            channel_id=actor.channel_id,
            request_id=request.id,
            detail={
                "kind": intent.kind.value,
                "action": "restore",
                "target_id": target.id,
                "server_id": server.id,
                "reason": intent.reason,
                "safety_snapshot": plan.value,
                "undo_of": undo_of.id if undo_of is not None else None,
            },
        )
        uow.outbox.add("post", {"event": "approval_requested"}, at=now, request_id=request.id)
        await uow.commit()
    return request


# -- voting ------------------------------------------------------------------------------------


async def eligible(life: Lifecycle, directory: Directory, voter_id: str, requester_id: str) -> bool:
    configured = life.policy.approvers
    listed = bool(configured) and await is_member(
        directory, voter_id, configured, "who may approve"
    )
    return rules.is_eligible(voter_id, requester_id, listed, anyone=not configured)


async def _locked_restore(uow: UnitOfWork, request_id: int, channel_id: str) -> OperationRequest:
    request = await uow.requests.lock(request_id)
    if request is None or request.channel_id != channel_id or request.action is not Action.RESTORE:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    return request


async def _expire_if_due(
    life: Lifecycle, request_id: int, channel_id: str, clicked_at: datetime
) -> None:
    """Judged at the moment the click arrived (not when its turn came), and not only by the
    sweeper."""
    now = life.clock()
    async with life.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        if request.status is not Status.PENDING_APPROVAL or not request.is_expired(clicked_at):
            return
        await _expire(uow, request, now)
        await uow.commit()


async def _expire(uow: UnitOfWork, request: OperationRequest, now: datetime) -> bool:
    """Expire a waiting request in the caller's transaction: its card says so and, for a
    restore, its requester gets a DM (nothing was restored). False when another transaction
    decided it first."""
    if not await end(uow, request, Event.EXPIRE, request.outcome, at=now, notify=UPDATE):
        return False
    if request.action is Action.RESTORE:
        uow.outbox.add(
            "dm",
            {"event": Status.EXPIRED.value, "user": request.requester_id},
            at=now,
            request_id=request.id,
        )
    return True


async def approve(
    vps: VpsApi,
    life: Lifecycle,
    directory: Directory,
    voter_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """Record an approval; the vote that reaches quorum executes the restore, exactly once.
    Expiry is judged at `clicked_at`, the moment the click arrived (default: now)."""
    clicked_at = clicked_at or life.clock()
    await _expire_if_due(life, request_id, channel_id, clicked_at)
    async with life.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is None:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    may_vote = await eligible(life, directory, voter_id, request.requester_id)
    now = life.clock()
    async with life.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        votes = await uow.approvals.votes(request.id)
        rules.check_vote(request, voter_id, eligible=may_vote, votes=votes, now=clicked_at)
        await uow.approvals.add(request.id, voter_id, "approve", at=now)
        uow.audit.record(
            "vote",
            at=now,
            actor_id=voter_id,
            channel_id=channel_id,
            request_id=request.id,
            detail={"decision": "approve"},
        )
        votes.append(rules.Vote(voter_id, "approve", now))
        approvers = rules.approvals(votes)
        outcome = request.outcome.but(approvers=tuple(approvers))
        reached = rules.quorum_reached(request, votes)
        if reached:
            await _claim(uow, life, request, outcome, voter_id, approvers, now)
        else:
            await uow.requests.change(request.id, outcome=outcome)
        uow.outbox.add("update", {"event": "vote"}, at=now, request_id=request.id)
        await uow.commit()
    metrics.VOTES.labels("approve").inc()
    if reached:
        executing = await stored(life, request.id)
        assert executing.status is Status.EXECUTING
        await execute(vps, life, executing)


async def _claim(
    uow: UnitOfWork,
    life: Lifecycle,
    request: OperationRequest,
    outcome: Outcome,
    voter_id: str,
    approvers: list[str],
    now: datetime,
) -> None:
    """The quorum is reached: approved, then claimed for execution by this transaction (two
    moves, each audited). A second restore of the server under way violates the database's
    one-restore-per-server index: refused, and the vote rolls back with it."""
    current = request
    for event in (Event.APPROVE, Event.CLAIM):
        transition = current.move(event, at=now, actor_id=voter_id, approvers=approvers)
        try:
            won = await apply(
                uow,
                current,
                transition,
                outcome,
                lease_owner=life.owner,
                lease_until=now + EXECUTION_LEASE,
                # no longer waiting for its reminder: due for the tracker at once should this
                # instance die (reconcile_stale claims through the same due filter)
                next_check_at=None,
            )
        except RestoreUnderWay:  # the vote is not recorded: the transaction rolls back
            raise RestoreUnderWay(
                f"{_server_label(request)} is already being restored by another request, "
                "so this restore was not started and your approval was not recorded. "
                "Approve again once that restore has finished."
            ) from None
        if not won:  # cannot happen while we hold the row lock; refuse rather than guess
            raise AlreadyHandled(current.status)
        current = replace(current, status=transition.target)


async def deny(
    life: Lifecycle,
    directory: Directory,
    voter_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
    reason: str = "",
) -> None:
    """An eligible approver ends the request, with an optional `reason` (recorded, shown on
    the card and in the requester's DM); the requester's own Deny counts as Cancel."""
    reason = _deny_reason(reason)
    clicked_at = clicked_at or life.clock()
    await _expire_if_due(life, request_id, channel_id, clicked_at)
    async with life.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is not None and request.requester_id == voter_id:
        await cancel(life, voter_id, request_id, channel_id, clicked_at)
        return
    if request is None:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    if not await eligible(life, directory, voter_id, request.requester_id):
        raise NotEligible("You are not one of the approvers configured for restores.")
    now = life.clock()
    async with life.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        votes = await uow.approvals.votes(request.id)
        rules.check_vote(request, voter_id, eligible=True, votes=votes, now=clicked_at)
        await uow.approvals.add(request.id, voter_id, "deny", at=now)
        uow.audit.record(
            "vote",
            at=now,
            actor_id=voter_id,
            channel_id=channel_id,
            request_id=request.id,
            detail={"decision": "deny", "reason": reason or None},
        )
        await end(
            uow,
            request,
            Event.DENY,
            request.outcome.but(decided_by=voter_id, deny_reason=reason),
            at=now,
            notify=("update", "dm"),
            actor_id=voter_id,
        )
        await uow.commit()
    metrics.VOTES.labels("deny").inc()


async def asks_reason(life: Lifecycle, request_id: int, voter_id: str) -> bool:
    """Whether `voter_id`'s Deny should ask for a reason first: a restore still waiting for
    approval that is not their own (the requester's Deny is a Cancel, done at once; one
    already decided is refused at once). Reads only."""
    async with life.uow() as uow:
        request = await uow.requests.get(request_id)
    return (
        request is not None
        and request.action is Action.RESTORE
        and request.status is Status.PENDING_APPROVAL
        and request.requester_id != voter_id
        and not request.is_expired(life.clock())
    )


async def cancel(
    life: Lifecycle,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """The requester withdraws a restore that is still waiting for approval."""
    now = life.clock()
    await _expire_if_due(life, request_id, channel_id, clicked_at or now)
    async with life.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        if user_id != request.requester_id:
            raise NotRequester(request.requester_id)
        rules.check_pending(request, clicked_at or now)
        await end(
            uow,
            request,
            Event.CANCEL,
            request.outcome.but(decided_by=user_id),
            at=now,
            notify=UPDATE,
            actor_id=user_id,
        )
        await uow.commit()


# Format characters that emoji sequences are made with (👨‍💻): kept. Other format characters
# (bidirectional overrides, invisible separators) could disguise the words: refused.
JOINERS = frozenset("\u200c\u200d")


def _deny_reason(text: str) -> str:
    """A denial's reason as typed, spaces and line breaks collapsed: at most MAX_DESCRIPTION
    characters of plain text (Slack's modal allows no more; a forged submission is refused,
    and nothing is denied)."""
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION or any(
        unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") and ch not in JOINERS for ch in text
    ):
        raise UsageError(
            f"A reason is at most {MAX_DESCRIPTION} characters of plain text; nothing was denied.",
            "",
        )
    return text


def _server_label(request: OperationRequest) -> str:
    if request.server is None:
        return "The server"
    name = f"{request.server.name} " if request.server.name else "server "
    return f"{name}({request.server.id})"


# -- executing ---------------------------------------------------------------------------------


async def _precheck(vps: VpsApi, request: OperationRequest) -> Failure | None:
    """Why the restore must not be sent now, or None. Reads only."""
    assert request.target_id is not None
    assert request.server is not None
    try:
        target = await find_target(vps, request.kind, request.target_id, request.server.id)
        server = await vps.get_server(request.server.id)
    except VpsApiError as error:
        return Failure(Why.CHECK_FAILED, detail=error.detail, http_status=error.status)
    if target.server.id != request.server.id:
        return Failure(Why.TARGET_MOVED)
    if target.status != COMPLETED:
        return Failure(Why.TARGET_INCOMPLETE, status=target.status)
    if isinstance(target, Snapshot) and target.name != request.target_name:
        return Failure(Why.TARGET_CHANGED)
    if server.status == "restoring":
        return Failure(Why.SERVER_BUSY, status=server.status)
    return None


async def execute(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """Called only by the holder of the request's lease in `executing`: the transaction that
    claimed it at quorum, or the tracker going on after a crash before anything was sent.
    With a safety snapshot promised, its POST (the tracker sends the restore once the
    snapshot is complete); without, the one restore call."""
    async with holding_lease(life, request.id):
        refused = await _precheck(vps, request)
        if refused is not None:
            await finish(life, request, Event.FAIL, request.outcome.but(failure=refused))
            return
        if safety.needed(request):
            await safety.take(vps, life, request)
            return
        await _call(vps, life, request)


async def resume(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """An `executing` restore the tracker took (its lease lapsed or was handed back): go on
    from its recorded step. Nothing sent yet: go on. Its safety snapshot's POST perhaps sent:
    read it back by name. Following it: one look, and the restore once it is complete. The
    restore call perhaps sent: read the server, never call again."""
    step = request.outcome.safety_step
    if safety.needed(request):  # POSTING commits before the POST: nothing was sent
        stopped = safety.late(life, request.updated_at, life.clock())  # since it was claimed
        if stopped is not None:
            await finish(life, request, Event.FAIL, request.outcome.but(failure=stopped))
            return
        await execute(vps, life, request)
    elif step is SafetyStep.POSTING:
        async with holding_lease(life, request.id):
            await safety.read_back(vps, life, request, cause="")
    elif step is SafetyStep.FOLLOWING:
        async with holding_lease(life, request.id):
            ready = await safety.follow(vps, life, request)
            if ready is not None:
                await _restore(vps, life, ready)
    else:  # READY, or no safety snapshot: the restore call may have been sent
        await reconcile(vps, life, request, cause=Failure(Why.BOT_STOPPED))


async def _restore(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """The safety snapshot is complete: check again (minutes have passed), then restore."""
    refused = await _precheck(vps, request)
    if refused is not None:
        outcome = request.outcome.but(failure=refused)
        await finish(life, request, Event.FAIL, outcome, holding=True)
        return
    await _call(vps, life, request)


async def _call(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """The one restore call, and what VPS.org answered to it, recorded whatever happens."""
    assert request.server is not None
    try:
        started = await KINDS[request.kind].restore(vps, request)
    except VpsApiError as error:
        await record_call(life, request, error)
        if error.outcome_unknown:
            await reconcile(vps, life, request, cause=failure_of(error))
        else:
            outcome = request.outcome.but(failure=failure_of(error))
            await finish(life, request, Event.FAIL, outcome)
        return
    # Evidence, not the 200: the server itself has to be seen `restoring` (now, or by the
    # tracker within policy.restore_seen_within) before the restore can be called done.
    seen_restoring = await _server_restoring(vps, request.server.id)
    now = life.clock()

    async def record(uow: UnitOfWork) -> bool:
        audit_call(uow, now, request, started.call)
        return await _mark_running(life, uow, request, seen_restoring, started.message)

    # retried while the database stalls: VPS.org is restoring, and that must be known
    await persist(life, record, f"the answer to the restore of request #{request.id}")


async def _server_restoring(vps: VpsApi, server_id: int) -> bool:
    """One read of the server right after the restore call; a failed read proves nothing."""
    try:
        return (await vps.get_server(server_id)).status == "restoring"
    except VpsApiError:
        return False


async def _mark_running(
    life: Lifecycle,
    uow: UnitOfWork,
    request: OperationRequest,
    seen_restoring: bool,
    api_message: str,
) -> bool:
    """Move an executing restore to `running`. A request that another instance meanwhile
    marked needs_attention (it took this live call for a crashed one) is moved too: VPS.org's
    answer is better evidence than that guess."""
    now = life.clock()
    current = await uow.requests.lock(request.id)
    if current is None or current.action is not Action.RESTORE:
        return False
    if current.status not in (Status.EXECUTING, Status.NEEDS_ATTENTION):
        return False
    outcome = current.outcome.but(
        seen_restoring=seen_restoring, api_message=api_message, started_at=now, failure=None
    )
    transition = current.move(
        Event.ACCEPT,
        at=now,
        requester=request.requester_id,
        approvers=list(current.outcome.approvers),
        kind=request.kind.value,
        target_id=request.target_id,
        server_id=request.server.id if request.server else None,
    )
    return await apply(
        uow,
        current,
        transition,
        outcome,
        notify=UPDATE,
        next_check_at=life.policy.next_tick(now),
        expires_at=now + life.policy.restore_for,
    )


async def reconcile(
    vps: VpsApi, life: Lifecycle, request: OperationRequest, cause: Failure
) -> None:
    """The restore may or may not have been sent. Read the server, never resend: `restoring`
    means it started (follow it); anything else needs a person."""
    assert request.server is not None
    try:
        server = await vps.get_server(request.server.id)
    except VpsApiError as error:
        failure = replace(cause, read_detail=error.detail)
    else:
        if server.status == "restoring":

            async def follow(uow: UnitOfWork) -> bool:
                return await _mark_running(life, uow, request, True, "")

            await persist(life, follow, f"the restore of request #{request.id}")
            return
        failure = replace(cause, status=server.status)
    await finish(life, request, Event.LOSE, request.outcome.but(failure=failure))


# -- undo ----------------------------------------------------------------------------------------


def _still_ours(original: OperationRequest, target: Snapshot | Backup) -> bool:
    """The snapshot is the one the bot took before `original`, on its server."""
    return (
        isinstance(target, Snapshot)
        and target.name == safety_name(original.id)
        and (original.server is None or target.server.id == original.server.id)
    )


REMOVED = {
    SafetyRemoval.DELETED: "the bot deleted it{when} after keeping it for the configured time",
    SafetyRemoval.GONE: "it was deleted at VPS.org{when}",
    SafetyRemoval.NOT_OURS: "its id now names another snapshot",
}


NO_SAFETY: dict[SafetyPlan | None, str] = {
    SafetyPlan.AT_LIMIT: "the server already had as many snapshots as VPS.org allows",
    SafetyPlan.OFF: "safety snapshots were turned off",
}


def _nothing_to_undo(original: OperationRequest) -> NotAllowed:
    label = f"Request #{original.id}"
    outcome = original.outcome
    if outcome.safety_removed is not None:
        moment = outcome.safety_removed_at
        when = f" on {moment:%Y-%m-%d}" if moment is not None else ""
        gone = REMOVED[outcome.safety_removed].format(when=when)
        return SafetySnapshotGone(
            f"The safety snapshot of request #{original.id} ({safety_name(original.id)}) is "
            f"gone: {gone}. This restore can no longer be undone."
        )
    plan = original.asked.safety
    if plan is not SafetyPlan.PLANNED:
        why = NO_SAFETY.get(plan, "it was asked before vpsbot took safety snapshots")
        return NothingToUndo(
            f"{label} took no safety snapshot ({why}), so there is nothing to go back to."
        )
    if original.status not in FINISHED_RESTORE:
        return NothingToUndo(f"{label} has not finished restoring: Undo is offered once it has.")
    return NothingToUndo(f"{label} was not restored at VPS.org, so there is nothing to undo.")


async def undo(vps: VpsApi, life: Lifecycle, actor: Actor, request_id: int) -> OperationRequest:
    """The Undo restore button: a new restore request, from the safety snapshot taken before
    request #`request_id`, which needs approval like any restore."""
    async with life.uow() as uow:
        original = await uow.requests.get(request_id)
    if (
        original is None
        or original.action is not Action.RESTORE
        or original.channel_id != actor.channel_id
    ):
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    if not original.undoable:
        raise _nothing_to_undo(original)
    assert original.outcome.safety_id is not None
    intent = RequestRestore(
        Kind.SNAPSHOT, original.outcome.safety_id, reason=f"undo of request #{original.id}"
    )
    try:
        return await request_restore(vps, life, actor, intent, undo_of=original)
    except NotFound:
        raise SafetySnapshotGone(
            f"The safety snapshot of request #{original.id} ({safety_name(original.id)}) is no "
            "longer listed by VPS.org: someone deleted it. This restore can no longer be undone."
        ) from None


async def expire_due(life: Lifecycle) -> int:
    """The sweeper: pending requests past their time become `expired`, and their messages say so."""
    now = life.clock()
    expired = 0
    async with life.uow() as uow:
        waiting = await uow.requests.claim_due(
            statuses={Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION},
            now=now,
            owner=life.owner,
            lease=EXECUTION_LEASE,
            expired_before=now,
        )
        for request in waiting:
            if await _expire(uow, request, now):
                expired += 1
        await uow.commit()
    return expired


__all__ = [
    "NotAllowed",
    "approve",
    "asks_reason",
    "cancel",
    "deny",
    "execute",
    "expire_due",
    "reconcile",
    "resume",
    "undo",
]
