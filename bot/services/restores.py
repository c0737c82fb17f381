"""Two-person restores: request, vote, execute exactly once, and reconcile after a crash.

A restore overwrites a whole server. The rules here: no restore call without a quorum of votes
from eligible people other than the requester; the move to `executing` commits before the call,
and only the transaction that made it calls; the bot never sends a restore a second time on its
own, not after a timeout, not after a crash.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.domain import approvals as rules
from bot.domain.errors import (
    AlreadyHandled,
    NotAllowed,
    NotEligible,
    NotRequester,
    RestoreUnderWay,
    UnknownRequest,
    UsageError,
    VpsApiError,
)
from bot.domain.model import COMPLETED, Action, Kind, OperationRequest, Snapshot, Status
from bot.domain.operations import RequestRestore
from bot.services import Services
from bot.services.access import is_member
from bot.services.operations import (
    EXECUTION_LEASE,
    Actor,
    audit_api_call,
    find_target,
    finish,
    holding_lease,
    iso,
    persist,
    record_finish,
    target_name,
)
from bot.services.ports import UnitOfWork

log = logging.getLogger(__name__)


# -- asking ------------------------------------------------------------------------------------


async def request_restore(
    services: Services, actor: Actor, intent: RequestRestore, usage: str = ""
) -> OperationRequest:
    """Look the target up, then post a request for approval. Nothing is called yet."""
    if services.policy.require_reason and not intent.reason:
        raise UsageError("A restore needs a reason here: say why after the id.", usage)
    target = await find_target(services.vps, intent.kind, intent.target_id)
    server = await services.vps.get_server(target.server.id)
    now = services.clock()
    params: dict[str, object] = {
        "target_created_at": iso(target.created_at),
        "target_size_mb": target.size_mb,
        "target_status": target.status,
    }
    async with services.uow() as uow:
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
            params=params,
            expires_at=now + services.policy.approval_ttl,
            required_approvals=services.policy.required_approvals,
        )
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
            },
        )
        uow.outbox.add("post", {"event": "approval_requested"}, at=now, request_id=request.id)
        await uow.commit()
    services.wake_outbox()
    return request


# -- voting ------------------------------------------------------------------------------------


async def eligible(services: Services, voter_id: str, requester_id: str) -> bool:
    configured = services.policy.approvers
    listed = bool(configured) and await is_member(
        services.directory, voter_id, configured, "who may approve"
    )
    return rules.is_eligible(voter_id, requester_id, listed, anyone=not configured)


async def _locked_restore(uow: UnitOfWork, request_id: int, channel_id: str) -> OperationRequest:
    request = await uow.requests.lock(request_id)
    if request is None or request.channel_id != channel_id or request.action is not Action.RESTORE:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    return request


async def _expire_if_due(
    services: Services, request_id: int, channel_id: str, clicked_at: datetime
) -> None:
    """Judged at the moment the click arrived (not when its turn came), and not only by the
    sweeper."""
    now = services.clock()
    async with services.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        if request.status is not Status.PENDING_APPROVAL:
            return
        if not rules.is_expired(request, clicked_at):
            return
        await record_finish(
            uow, request, Status.PENDING_APPROVAL, Status.EXPIRED, {}, at=now, notify=("update",)
        )
        await uow.commit()
    services.wake_outbox()


async def approve(
    services: Services,
    voter_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """Record an approval; the vote that reaches quorum executes the restore, exactly once.
    Expiry is judged at `clicked_at`, the moment the click arrived (default: now)."""
    clicked_at = clicked_at or services.clock()
    await _expire_if_due(services, request_id, channel_id, clicked_at)
    async with services.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is None:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    may_vote = await eligible(services, voter_id, request.requester_id)
    now = services.clock()
    async with services.uow() as uow:
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
        reached = rules.quorum_reached(request, votes)
        result = request.result | {"approvers": approvers}
        if reached:
            for old, new in (
                (Status.PENDING_APPROVAL, Status.APPROVED),
                (Status.APPROVED, Status.EXECUTING),
            ):
                try:
                    won = await uow.requests.transition(
                        request.id,
                        old,
                        new,
                        at=now,
                        result=result,
                        lease_owner=services.owner,
                        lease_until=now + EXECUTION_LEASE,
                    )
                except RestoreUnderWay:  # the vote is not recorded: the transaction rolls back
                    raise RestoreUnderWay(
                        f"{_server_label(request)} is already being restored by another request, "
                        "so this restore was not started and your approval was not recorded. "
                        "Approve again once that restore has finished."
                    ) from None
                if not won:  # cannot happen while we hold the row lock; refuse rather than guess
                    raise AlreadyHandled("This request was decided at the same moment.")
                uow.audit.record(
                    "transition",
                    at=now,
                    actor_id=voter_id,
                    request_id=request.id,
                    detail={"from": old.value, "to": new.value, "approvers": approvers},
                )
        else:
            await uow.requests.change(request.id, result=result)
        uow.outbox.add("update", {"event": "vote"}, at=now, request_id=request.id)
        await uow.commit()
    services.wake_outbox()
    if reached:
        async with services.uow() as uow:
            executing = await uow.requests.get(request.id)
        assert executing is not None
        assert executing.status is Status.EXECUTING
        await execute(services, executing)


async def deny(
    services: Services,
    voter_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """An eligible approver ends the request; the requester's own Deny counts as Cancel."""
    clicked_at = clicked_at or services.clock()
    await _expire_if_due(services, request_id, channel_id, clicked_at)
    async with services.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is not None and request.requester_id == voter_id:
        await cancel(services, voter_id, request_id, channel_id, clicked_at)
        return
    if request is None:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    if not await eligible(services, voter_id, request.requester_id):
        raise NotEligible("You are not one of the approvers configured for restores.")
    now = services.clock()
    async with services.uow() as uow:
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
            detail={"decision": "deny"},
        )
        await record_finish(
            uow,
            request,
            Status.PENDING_APPROVAL,
            Status.DENIED,
            {"denied_by": voter_id},
            at=now,
            notify=("update", "dm"),
            actor_id=voter_id,
        )
        await uow.commit()
    services.wake_outbox()


async def cancel(
    services: Services,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """The requester withdraws a restore that is still waiting for approval."""
    now = services.clock()
    async with services.uow() as uow:
        request = await _locked_restore(uow, request_id, channel_id)
        if user_id != request.requester_id:
            raise NotRequester(request.requester_id)
        rules.check_pending(request, clicked_at or now)
        await record_finish(
            uow,
            request,
            Status.PENDING_APPROVAL,
            Status.CANCELLED,
            {"cancelled_by": user_id},
            at=now,
            notify=("update",),
            actor_id=user_id,
        )
        await uow.commit()
    services.wake_outbox()


def _server_label(request: OperationRequest) -> str:
    if request.server is None:
        return "The server"
    name = f"{request.server.name} " if request.server.name else "server "
    return f"{name}({request.server.id})"


# -- executing ---------------------------------------------------------------------------------


def _restore_path(request: OperationRequest) -> str:
    if request.kind is Kind.SNAPSHOT:
        return f"/snapshots/{request.target_id}/restore/"
    return f"/servers/{request.server.id if request.server else 0}/restore/"


async def _precheck(services: Services, request: OperationRequest) -> str | None:
    """Why the restore must not be sent now, or None. Reads only."""
    assert request.target_id is not None
    assert request.server is not None
    try:
        target = await find_target(services.vps, request.kind, request.target_id, request.server.id)
        server = await services.vps.get_server(request.server.id)
    except VpsApiError as error:
        return f"could not check the {request.kind.value} before restoring ({error.detail})"
    if target.server.id != request.server.id:
        return f"the {request.kind.value} now belongs to another server"
    if target.status != COMPLETED:
        return f"the {request.kind.value} is not complete (status: {target.status})"
    if isinstance(target, Snapshot) and target.name != request.target_name:
        return "the snapshot changed since the request"
    if server.status == "restoring":
        return "the server is already being restored"
    return None


async def execute(services: Services, request: OperationRequest) -> None:
    """Called only by the transaction that moved the request to `executing`. One restore call."""
    async with holding_lease(services, request.id):
        refused = await _precheck(services, request)
        if refused is not None:
            await finish(
                services,
                request,
                Status.EXECUTING,
                Status.FAILED,
                {"reason": f"{refused}; nothing was restored"},
            )
            return
        path = _restore_path(request)
        assert request.target_id is not None
        assert request.server is not None
        try:
            if request.kind is Kind.SNAPSHOT:
                started = await services.vps.restore_snapshot(request.target_id)
            else:
                started = await services.vps.restore_backup(request.server.id, request.target_id)
        except VpsApiError as error:
            at, status = services.clock(), error.status

            async def audit_failure(uow: UnitOfWork) -> None:
                audit_api_call(uow, at, request, "POST", path, status)

            await persist(services, audit_failure, f"the restore call of request #{request.id}")
            if error.outcome_unknown:
                await reconcile(services, request, cause=error.detail)
            else:
                await finish(
                    services,
                    request,
                    Status.EXECUTING,
                    Status.FAILED,
                    {"reason": f"VPS.org refused: {error.detail}; nothing was restored",
                     "api_status": error.status},
                )  # fmt: skip
            return
        # Evidence, not the 200: the server itself has to be seen `restoring` (now, or by the
        # tracker within policy.restore_seen_within) before the restore can be called done.
        seen_restoring = await _server_restoring(services, request.server.id)
        now = services.clock()

        async def record(uow: UnitOfWork) -> bool:
            audit_api_call(uow, now, request, "POST", path, 200)
            return await _mark_running(services, uow, request, seen_restoring, started.message)

        # retried while the database stalls: VPS.org is restoring, and that must be known
        await persist(services, record, f"the answer to the restore of request #{request.id}")
        services.wake_outbox()


async def _server_restoring(services: Services, server_id: int) -> bool:
    """One read of the server right after the restore call; a failed read proves nothing."""
    try:
        return (await services.vps.get_server(server_id)).status == "restoring"
    except VpsApiError:
        return False


async def _mark_running(
    services: Services,
    uow: UnitOfWork,
    request: OperationRequest,
    seen_restoring: bool,
    api_message: str,
) -> bool:
    """Move an executing restore to `running`. A request that another instance meanwhile
    marked needs_attention (it took this live call for a crashed one) is moved too: VPS.org's
    answer is better evidence than that guess."""
    now = services.clock()
    current = await uow.requests.lock(request.id)
    if current is None or current.status not in (Status.EXECUTING, Status.NEEDS_ATTENTION):
        return False
    if current.status is Status.NEEDS_ATTENTION and current.action is not Action.RESTORE:
        return False
    won = await uow.requests.transition(
        request.id,
        current.status,
        Status.RUNNING,
        at=now,
        result=current.result
        | {"seen_restoring": seen_restoring, "api_message": api_message, "started_at": iso(now)},
        next_check_at=services.policy.next_tick(now),
        expires_at=now + services.policy.restore_for,
        lease_owner=None,
        lease_until=None,
    )
    if won:
        uow.audit.record(
            "transition",
            at=now,
            request_id=request.id,
            detail={
                "from": current.status.value,
                "to": "running",
                "requester": request.requester_id,
                "approvers": list(_approvers(request)),
                "kind": request.kind.value,
                "target_id": request.target_id,
                "server_id": request.server.id if request.server else None,
            },
        )
        uow.outbox.add("update", {"event": "running"}, at=now, request_id=request.id)
    return won


def _approvers(request: OperationRequest) -> list[str]:
    found = request.result.get("approvers")
    return [str(a) for a in found] if isinstance(found, list) else []


async def reconcile(services: Services, request: OperationRequest, cause: str) -> None:
    """The restore may or may not have been sent. Read the server, never resend: `restoring`
    means it started (follow it); anything else needs a person."""
    assert request.server is not None
    try:
        server = await services.vps.get_server(request.server.id)
    except VpsApiError as error:
        status_text = f"could not read the server either ({error.detail})"
        server_status = None
    else:
        server_status = server.status
        status_text = f"VPS.org shows the server {server.status}"
    if server_status == "restoring":

        async def follow(uow: UnitOfWork) -> bool:
            return await _mark_running(services, uow, request, True, "")

        await persist(services, follow, f"the restore of request #{request.id}")
        services.wake_outbox()
        return
    await finish(
        services,
        request,
        Status.EXECUTING,
        Status.NEEDS_ATTENTION,
        {
            "reason": f"{cause}; {status_text}. The bot did not send the restore again: "
            "check the server, and ask again if it is still needed"
        },
        notify=("update", "reply", "dm"),
    )


async def expire_due(services: Services) -> int:
    """The sweeper: pending requests past their time become `expired`, and their messages say so."""
    now = services.clock()
    expired = 0
    async with services.uow() as uow:
        waiting = await uow.requests.claim_due(
            statuses={Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION},
            now=now,
            owner=services.owner,
            lease=EXECUTION_LEASE,
            expired_before=now,
        )
        for request in waiting:
            if await record_finish(
                uow, request, request.status, Status.EXPIRED, {}, at=now, notify=("update",)
            ):
                expired += 1
        await uow.commit()
    if expired:
        services.wake_outbox()
    return expired


__all__ = ["NotAllowed", "approve", "cancel", "deny", "execute", "expire_due", "reconcile"]
