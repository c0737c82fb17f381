"""Create and delete: check, record, call VPS.org once, and queue what the channel should hear."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from bot.domain.errors import (
    AlreadyHandled,
    AtLimit,
    DomainError,
    NotFound,
    NotRequester,
    OutcomeUnrecorded,
    RequestExpired,
    UnknownRequest,
    VpsApiError,
)
from bot.domain.model import (
    Action,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    Server,
    Snapshot,
    Status,
)
from bot.domain.operations import (
    MAX_MANUAL_BACKUPS_PER_SERVER,
    MAX_SNAPSHOTS_PER_SERVER,
    CreateBackup,
    CreateSnapshot,
    RequestDelete,
)
from bot.services import Services
from bot.services.ports import UnitOfWork, VpsApi

EXECUTION_LEASE = timedelta(seconds=10)
LEASE_RENEWAL = 3.0  # seconds
RENEWAL_GRACE = 5.0  # seconds a renewal in progress may take to end once the work is done
RECORD_FOR = 600.0  # seconds an outcome is retried against a stalled database before giving up
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked, and where."""

    user_id: str
    channel_id: str


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def existing_server(vps: VpsApi, server_id: int) -> Server:
    try:
        return await vps.get_server(server_id)
    except NotFound as exc:
        raise NotFound(
            f"Server {server_id} does not exist on VPS.org.", status=404, path=exc.path
        ) from None


async def find_target(
    vps: VpsApi, kind: Kind, target_id: int, server_id: int | None = None
) -> Snapshot | Backup:
    """Find a snapshot or backup by id (the API has no single-object GET: list and pick),
    listing only `server_id`'s when the server is known."""
    found: Snapshot | Backup | None
    if kind is Kind.SNAPSHOT:
        snapshots = (await vps.list_snapshots(server_id)).items
        found = next((s for s in snapshots if s.id == target_id), None)
    else:
        backups = (await vps.list_backups(server_id)).items
        found = next((b for b in backups if b.id == target_id), None)
    if found is None:
        raise NotFound(
            f"{kind.value.capitalize()} {target_id} does not exist on VPS.org.", status=404
        )
    return found


def target_name(target: Snapshot | Backup) -> str:
    return target.name if isinstance(target, Snapshot) else target.description


def audit_api_call(
    uow: UnitOfWork,
    at: datetime,
    request: OperationRequest,
    method: str,
    path: str,
    status: int | None,
) -> None:
    uow.audit.record(
        "api_call",
        at=at,
        request_id=request.id,
        detail={"method": method, "path": path, "status": status},
    )


async def _check_limit(vps: VpsApi, kind: Kind, server: Server) -> set[int]:
    """Refuse at the limit; return the ids that exist now (to recognise a new one later)."""
    if kind is Kind.SNAPSHOT:
        existing: tuple[Snapshot | Backup, ...] = (await vps.list_snapshots(server.id)).items
        limit, noun = MAX_SNAPSHOTS_PER_SERVER, "snapshots"
    else:
        existing = (await vps.list_backups(server.id, BackupType.MANUAL)).items
        limit, noun = MAX_MANUAL_BACKUPS_PER_SERVER, "manual backups"
    if len(existing) >= limit:
        names = ", ".join(
            f"{target_name(item) or item.id} ({item.id})" for item in existing[:limit]
        )
        raise AtLimit(
            f"{server.name} ({server.id}) already has {len(existing)} {noun}; VPS.org allows at "
            f"most {limit} per server. Delete one first. Existing: {names}."
        )
    return {item.id for item in existing}


async def create(
    services: Services, actor: Actor, intent: CreateSnapshot | CreateBackup
) -> OperationRequest:
    """Validate, check the limit, record the request, POST exactly once, queue the channel post."""
    vps = services.vps
    kind = Kind.SNAPSHOT if isinstance(intent, CreateSnapshot) else Kind.BACKUP
    server = await existing_server(vps, intent.server_id)
    known = await _check_limit(vps, kind, server)
    name = intent.name if isinstance(intent, CreateSnapshot) else ""
    now = services.clock()
    async with services.uow() as uow:
        request = await uow.requests.add(
            kind=kind,
            action=Action.CREATE,
            status=Status.EXECUTING,
            requester_id=actor.user_id,
            channel_id=actor.channel_id,
            at=now,
            server=server.ref,
            target_name=name or intent.description,
            # what existed before the POST: a create whose answer is lost is recognised by it
            params={"name": name, "description": intent.description, "known_ids": sorted(known)},
        )
        await uow.requests.change(
            request.id, lease_owner=services.owner, lease_until=now + EXECUTION_LEASE
        )
        uow.audit.record(
            "request",
            at=now,
            actor_id=actor.user_id,
            channel_id=actor.channel_id,
            request_id=request.id,
            detail={"kind": kind.value, "action": "create", "server_id": server.id, "name": name},
        )
        await uow.commit()

    path = "/snapshots/" if kind is Kind.SNAPSHOT else "/backups/"
    # The lease is held until the answer is recorded, however long the database takes.
    async with holding_lease(services, request.id):
        try:
            started_item, message = await _post_create(vps, server.id, intent)
        except VpsApiError as error:
            if not error.outcome_unknown:
                await _record_failure(services, request, error, "POST", path)
                raise
            # VPS.org may or may not have created it: read, never send it again.
            found = await _find_created(vps, server.id, intent, known)
            if found is None:
                await _record_failure(services, request, error, "POST", path)
                raise
            await _mark_created(services, request, found, "", path, error.status, recovered=True)
        else:
            await _mark_created(
                services, request, started_item, message, path, 201, recovered=False
            )
    return await _stored(services, request.id)


async def _mark_created(
    services: Services,
    request: OperationRequest,
    item: Snapshot | Backup,
    message: str,
    path: str,
    api_status: int | None,
    *,
    recovered: bool,
) -> None:
    """Record what VPS.org answered to the POST (retried while the database stalls). The request
    may meanwhile have been marked needs_attention by an instance that took it for a crashed
    one: the answer is better evidence, and the create is followed after all."""
    now = services.clock()
    result: dict[str, object] = {"api_message": message, "started_at": iso(now)}
    if recovered:
        result["recovered"] = "VPS.org did not confirm the create, but lists it: following it"

    async def write(uow: UnitOfWork) -> bool:
        audit_api_call(uow, now, request, "POST", path, api_status)
        return await _follow_created(services, uow, request, item, result, now)

    await persist(services, write, f"the answer to the create of request #{request.id}")
    services.wake_outbox()


async def _follow_created(
    services: Services,
    uow: UnitOfWork,
    request: OperationRequest,
    item: Snapshot | Backup,
    result: dict[str, object],
    now: datetime,
) -> bool:
    """Move a create whose object is known to `running`, with its id, and queue the post."""
    current = await uow.requests.lock(request.id)
    if current is None or current.target_id is not None:
        return False
    if current.status not in (Status.EXECUTING, Status.NEEDS_ATTENTION):
        return False
    won = await uow.requests.transition(
        request.id,
        current.status,
        Status.RUNNING,
        at=now,
        target_id=item.id,
        next_check_at=services.policy.next_tick(now),
        expires_at=now + services.policy.follow_for,
        result=current.result | result,
        lease_owner=None,
        lease_until=None,
    )
    if won:
        uow.audit.record(
            "transition",
            at=now,
            request_id=request.id,
            detail={"from": current.status.value, "to": "running", "target_id": item.id},
        )
        event = "started" if current.status is Status.EXECUTING else "running"
        uow.outbox.add("post" if event == "started" else "update", {"event": event},
                       at=now, request_id=request.id)  # fmt: skip
    return won


async def _find_created(
    vps: VpsApi,
    server_id: int,
    intent: CreateSnapshot | CreateBackup,
    known: set[int],
    since: datetime | None = None,
) -> Snapshot | Backup | None:
    """After a create whose answer was lost: the new object, if VPS.org lists it (not among
    the ids that existed before the POST, with the name asked for, and not older than `since`
    when given)."""

    def fresh(item: Snapshot | Backup) -> bool:
        return item.id not in known and (since is None or item.created_at >= since)

    try:
        if isinstance(intent, CreateSnapshot):
            snapshots = (await vps.list_snapshots(server_id)).items
            found: list[Snapshot | Backup] = [
                s for s in snapshots if fresh(s) and s.name == intent.name
            ]
        else:
            backups = (await vps.list_backups(server_id, BackupType.MANUAL)).items
            found = [b for b in backups if fresh(b) and b.description == intent.description]
    except VpsApiError:
        return None
    return max(found, key=lambda item: item.id) if found else None


READ_BACK_SKEW = timedelta(minutes=1)  # VPS.org's clock against ours, for `created_at`


async def read_back_create(services: Services, request: OperationRequest) -> bool:
    """A create whose POST may have been sent but whose answer was never recorded (the bot
    stopped mid-call, or recorded it as needs_attention without an id): look for the object by
    name, and follow it if VPS.org lists it. Never sends the POST again. True when found."""
    if request.action is not Action.CREATE or request.server is None:
        return False
    name = str(request.params.get("name") or "")
    description = str(request.params.get("description") or "")
    intent: CreateSnapshot | CreateBackup = (
        CreateSnapshot(request.server.id, name, description)
        if request.kind is Kind.SNAPSHOT
        else CreateBackup(request.server.id, description)
    )
    raw_known = request.params.get("known_ids")
    known = (
        {int(i) for i in raw_known if isinstance(i, int)} if isinstance(raw_known, list) else set()
    )
    found = await _find_created(
        services.vps, request.server.id, intent, known, request.created_at - READ_BACK_SKEW
    )
    if found is None:
        return False
    now = services.clock()
    result: dict[str, object] = {
        "started_at": iso(now),
        "recovered": "the bot stopped before VPS.org's answer was recorded, but lists the "
        "new object: following it",
    }

    async def write(uow: UnitOfWork) -> bool:
        return await _follow_created(services, uow, request, found, result, now)

    won = await persist(services, write, f"the read-back of request #{request.id}")
    if won:
        services.wake_outbox()
    return won


async def _post_create(
    vps: VpsApi, server_id: int, intent: CreateSnapshot | CreateBackup
) -> tuple[Snapshot | Backup, str]:
    """The one POST of a create: never retried (it is not idempotent)."""
    if isinstance(intent, CreateSnapshot):
        snapshot = await vps.create_snapshot(server_id, intent.name, intent.description)
        return snapshot.item, snapshot.message
    backup = await vps.create_backup(server_id, intent.description)
    return backup.item, backup.message


async def _record_failure(
    services: Services, request: OperationRequest, error: VpsApiError, method: str, path: str
) -> None:
    """The API said no (failed), or did not say (needs attention: it may have happened)."""
    now = services.clock()
    status = Status.NEEDS_ATTENTION if error.outcome_unknown else Status.FAILED

    async def write(uow: UnitOfWork) -> None:
        await uow.requests.transition(
            request.id,
            Status.EXECUTING,
            status,
            at=now,
            result={
                "error": error.detail,
                "api_status": error.status,
                "outcome_unknown": error.outcome_unknown,
            },
            lease_owner=None,
            lease_until=None,
        )
        audit_api_call(uow, now, request, method, path, error.status)
        uow.audit.record(
            "transition",
            at=now,
            request_id=request.id,
            detail={"from": "executing", "to": status.value, "error": type(error).__name__},
        )

    await persist(services, write, f"the failure of request #{request.id}")


# -- delete --------------------------------------------------------------------------------------


async def request_delete(
    services: Services, actor: Actor, intent: RequestDelete
) -> OperationRequest:
    """Look the target up, then post a confirmation only the requester can press."""
    target = await find_target(services.vps, intent.kind, intent.target_id)
    now = services.clock()
    async with services.uow() as uow:
        request = await uow.requests.add(
            kind=intent.kind,
            action=Action.DELETE,
            status=Status.PENDING_CONFIRMATION,
            requester_id=actor.user_id,
            channel_id=actor.channel_id,
            at=now,
            server=target.server,
            target_id=target.id,
            target_name=target_name(target),
            expires_at=now + services.policy.confirm_ttl,
            params={"created_at": iso(target.created_at), "size_mb": target.size_mb},
        )
        uow.audit.record(
            "request",
            at=now,
            actor_id=actor.user_id,
            channel_id=actor.channel_id,
            request_id=request.id,
            detail={"kind": intent.kind.value, "action": "delete", "target_id": target.id},
        )
        uow.outbox.add("post", {"event": "confirm_delete"}, at=now, request_id=request.id)
        await uow.commit()
    services.wake_outbox()
    return request


async def _decidable(
    services: Services,
    request_id: int,
    user_id: str,
    channel_id: str,
    expected: Status,
    clicked_at: datetime | None,
) -> OperationRequest:
    """The request a click names, if this person may still decide it here and now."""
    async with services.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is None or request.channel_id != channel_id:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    if user_id != request.requester_id:
        raise NotRequester(request.requester_id)
    if request.status is not expected:
        raise AlreadyHandled(f"This request is already {request.status.value.replace('_', ' ')}.")
    now = clicked_at or services.clock()  # judged when the click arrived, not when its turn came
    if request.expires_at is not None and now >= request.expires_at:
        await finish(
            services,
            request,
            expected,
            Status.EXPIRED,
            {"expired_at": iso(now)},
            notify=("update",),
        )
        raise RequestExpired("This request has expired; ask again if it is still needed.")
    return request


async def record_finish(
    uow: UnitOfWork,
    request: OperationRequest,
    expected: Status | frozenset[Status],
    new: Status,
    result: dict[str, object],
    *,
    at: datetime,
    notify: tuple[str, ...] = ("update", "reply", "dm"),
    actor_id: str | None = None,
) -> bool:
    """Compare-and-set to `new`, with its audit row and its messages, in the caller's
    transaction (not committed here). False when another transaction got there first."""
    won = await uow.requests.transition(
        request.id,
        expected,
        new,
        at=at,
        result=request.result | result,
        lease_owner=None,
        lease_until=None,
    )
    if not won:
        return False
    plain = {k: v for k, v in result.items() if isinstance(v, str | int | None)}
    uow.audit.record(
        "transition",
        at=at,
        actor_id=actor_id,
        request_id=request.id,
        detail={"to": new.value} | plain,
    )
    for kind in notify:
        if kind != "dm":
            uow.outbox.add(kind, {"event": new.value}, at=at, request_id=request.id)
            continue
        for person in dm_recipients(request):
            uow.outbox.add(kind, {"event": new.value, "user": person}, at=at, request_id=request.id)
    return True


def dm_recipients(request: OperationRequest) -> list[str]:
    """The requester, and for a restore the people who approved it."""
    people = [request.requester_id]
    approvers = request.result.get("approvers")
    if isinstance(approvers, list):
        people += [str(a) for a in approvers if str(a) not in people]
    return people


@contextlib.asynccontextmanager
async def holding_lease(services: Services, request_id: int) -> AsyncIterator[None]:
    """Renew this instance's lease on an executing request while it works on it, so no other
    instance takes it for a crashed one (a crashed owner's lease lapses within EXECUTION_LEASE).
    While held, this process's own tracker never reconciles the request (`inflight.executing`),
    however late the renewals: a live process never takes its own work for a crashed one. A
    renewal that fails (the database stalls) is logged and tried again; it never masks the
    outcome of the call it covers."""

    stop = asyncio.Event()

    async def renew() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE_RENEWAL)
            if stop.is_set():
                return
            try:
                async with services.uow() as uow:
                    await uow.requests.change(
                        request_id, lease_until=services.clock() + EXECUTION_LEASE
                    )
                    await uow.commit()
            except Exception as error:  # the database stalls: the call goes on regardless
                log.warning(
                    "could not renew the lease on #%d: %s", request_id, type(error).__name__
                )

    services.inflight.executing.add(request_id)
    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        # Let a renewal in progress end its transaction: cancelling it mid-way left its
        # connection to the garbage collector. Cancel only one that hangs.
        stop.set()
        _, pending = await asyncio.wait({task}, timeout=RENEWAL_GRACE)
        for hanging in pending:
            hanging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hanging
        services.inflight.executing.discard(request_id)


async def persist(services: Services, write: Callable[[UnitOfWork], Awaitable[T]], what: str) -> T:
    """Run `write` in a transaction of its own and commit, retrying while the database does not
    answer (up to RECORD_FOR): what VPS.org answered to a mutation that was sent must not be
    lost to a database that stalls for a while. A domain error is not retried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECORD_FOR
    delay = 0.2
    while True:
        try:
            async with services.uow() as uow:
                value = await write(uow)
                await uow.commit()
            return value
        except DomainError:
            raise
        except Exception as error:
            if loop.time() + delay > deadline:
                log.error("gave up recording %s: %s", what, type(error).__name__)
                raise OutcomeUnrecorded(what) from error
            log.warning("could not record %s (%s); trying again", what, type(error).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def finish(
    services: Services,
    request: OperationRequest,
    expected: Status | frozenset[Status],
    new: Status,
    result: dict[str, object],
    *,
    notify: tuple[str, ...] = ("update", "reply", "dm"),
    actor_id: str | None = None,
) -> bool:
    """`record_finish` in a transaction of its own (retried while the database stalls), then
    wake the outbox."""

    async def write(uow: UnitOfWork) -> bool:
        return await record_finish(
            uow,
            request,
            expected,
            new,
            result,
            at=services.clock(),
            notify=notify,
            actor_id=actor_id,
        )

    won = await persist(services, write, f"the end of request #{request.id}")
    if won:
        services.wake_outbox()
    return won


async def confirm_delete(
    services: Services,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> OperationRequest:
    """The requester pressed Delete: one DELETE, however many clicks."""
    request = await _decidable(
        services, request_id, user_id, channel_id, Status.PENDING_CONFIRMATION, clicked_at
    )
    now = services.clock()
    async with services.uow() as uow:
        won = await uow.requests.transition(
            request.id,
            Status.PENDING_CONFIRMATION,
            Status.EXECUTING,
            at=now,
            lease_owner=services.owner,
            lease_until=now + EXECUTION_LEASE,
        )
        uow.audit.record(
            "vote",
            at=now,
            actor_id=user_id,
            request_id=request.id,
            detail={"decision": "confirm", "won": won},
        )
        await uow.commit()
    if not won:
        raise AlreadyHandled("This delete is already being handled.")
    assert request.target_id is not None
    path = f"/{request.kind.value}s/{request.target_id}/"
    try:
        async with holding_lease(services, request.id):
            if request.kind is Kind.SNAPSHOT:
                await services.vps.delete_snapshot(request.target_id)
            else:
                await services.vps.delete_backup(request.target_id)
    except VpsApiError as error:
        await _audit_call(services, request, "DELETE", path, error.status)
        status = Status.FAILED
        result: dict[str, object] = {"error": error.detail, "api_status": error.status}
        if error.outcome_unknown:  # read what happened; never send the DELETE again
            status, result = await _read_back_delete(services, request, error)
        await finish(
            services,
            request,
            Status.EXECUTING,
            status,
            result | {"deleted_by": user_id},
            notify=("update",),
            actor_id=user_id,
        )
        if error.outcome_unknown and status is not Status.NEEDS_ATTENTION:
            return await _stored(services, request.id)  # read back: the channel is told
        raise
    await _audit_call(services, request, "DELETE", path, 204)
    await finish(
        services,
        request,
        Status.EXECUTING,
        Status.SUCCEEDED,
        {"deleted_by": user_id, "deleted_at": iso(services.clock())},
        notify=("update",),
        actor_id=user_id,
    )
    async with services.uow() as uow:
        done = await uow.requests.get(request.id)
    assert done is not None
    return done


async def _audit_call(
    services: Services, request: OperationRequest, method: str, path: str, status: int | None
) -> None:
    """The audit row of a call that was sent, kept however long the database stalls."""
    at = services.clock()

    async def write(uow: UnitOfWork) -> None:
        audit_api_call(uow, at, request, method, path, status)

    await persist(services, write, f"the {method} of request #{request.id}")


async def _read_back_delete(
    services: Services, request: OperationRequest, error: VpsApiError
) -> tuple[Status, dict[str, object]]:
    """After a DELETE whose answer was lost: gone means deleted. Still listed proves nothing
    (VPS.org may act late), so a person has to look."""
    assert request.target_id is not None
    server_id = request.server.id if request.server else None
    try:
        await find_target(services.vps, request.kind, request.target_id, server_id)
    except NotFound:
        return Status.SUCCEEDED, {"recovered": "VPS.org did not confirm, but it is gone"}
    except VpsApiError as reading:
        return Status.NEEDS_ATTENTION, {
            "error": f"{error.detail}; reading it back failed too ({reading.detail}). "
            "It may or may not be deleted, and the delete was not sent again"
        }
    return Status.NEEDS_ATTENTION, {
        "error": f"{error.detail}; it is still listed right now, but VPS.org may still carry the "
        "delete out. The delete was not sent again"
    }


async def _stored(services: Services, request_id: int) -> OperationRequest:
    async with services.uow() as uow:
        stored = await uow.requests.get(request_id)
    assert stored is not None
    return stored


async def cancel(
    services: Services,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """The requester withdrew a delete that was waiting for confirmation."""
    request = await _decidable(
        services, request_id, user_id, channel_id, Status.PENDING_CONFIRMATION, clicked_at
    )
    if not await finish(
        services,
        request,
        Status.PENDING_CONFIRMATION,
        Status.CANCELLED,
        {"cancelled_by": user_id},
        notify=("update",),
        actor_id=user_id,
    ):
        raise AlreadyHandled("This request was already decided.")
