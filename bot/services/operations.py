"""Create and delete: check, record, call VPS.org once, and queue what the channel should hear."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain.errors import (
    AlreadyHandled,
    AtLimit,
    NotFound,
    NotRequester,
    RequestExpired,
    UnknownRequest,
    VpsApiError,
)
from bot.domain.lifecycle import Event, Status
from bot.domain.model import Action, Call, Kind, OperationRequest, Server
from bot.domain.operations import CreateBackup, CreateSnapshot, RequestDelete
from bot.domain.outcomes import Asked, Failure, Outcome, Recovery, Why
from bot.services.kinds import KINDS, Item, find_target, target_name
from bot.services.lifecycle import (
    EXECUTION_LEASE,
    UPDATE,
    Lifecycle,
    apply,
    audit_call,
    finish,
    holding_lease,
    persist,
    record_call,
    stored,
)
from bot.services.ports import UnitOfWork, VpsApi

log = logging.getLogger(__name__)
READ_BACK_SKEW = timedelta(minutes=1)  # VPS.org's clock against ours, for `created_at`


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked, and where."""

    user_id: str
    channel_id: str


async def existing_server(vps: VpsApi, server_id: int) -> Server:
    try:
        return await vps.get_server(server_id)
    except NotFound as exc:
        raise NotFound(
            f"Server {server_id} does not exist on VPS.org.", status=404, path=exc.path
        ) from None


async def _check_limit(vps: VpsApi, kind: Kind, server: Server) -> tuple[int, ...]:
    """Refuse at the limit; return the ids that exist now (to recognise a new one later)."""
    calls = KINDS[kind]
    existing = (await calls.counted(vps, server.id)).items
    if len(existing) >= calls.limit:
        names = ", ".join(
            f"{calls.name(item) or item.id} ({item.id})" for item in existing[: calls.limit]
        )
        raise AtLimit(
            f"{server.name} ({server.id}) already has {len(existing)} {calls.counted_noun}; "
            f"VPS.org allows at most {calls.limit} per server. Delete one first. "
            f"Existing: {names}."
        )
    return tuple(sorted(item.id for item in existing))


def _kind(intent: CreateSnapshot | CreateBackup) -> Kind:
    return Kind.SNAPSHOT if isinstance(intent, CreateSnapshot) else Kind.BACKUP


async def create(
    vps: VpsApi, life: Lifecycle, actor: Actor, intent: CreateSnapshot | CreateBackup
) -> OperationRequest:
    """Validate, check the limit, record the request, POST exactly once, queue the channel post."""
    kind = _kind(intent)
    server = await existing_server(vps, intent.server_id)
    known = await _check_limit(vps, kind, server)
    name = intent.name if isinstance(intent, CreateSnapshot) else ""
    now = life.clock()
    async with life.uow() as uow:
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
            asked=Asked(name=name, description=intent.description, known_ids=known),
        )
        await uow.requests.change(
            request.id, lease_owner=life.owner, lease_until=now + EXECUTION_LEASE
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

    await send_create(vps, life, request)
    return await stored(life, request.id)


async def send_create(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> None:
    """The one POST of a create recorded as `executing` with this instance's lease, and what
    VPS.org answered (the VpsApiError is raised again once recorded, when nothing was made)."""
    assert request.server is not None
    asked = request.asked
    # The lease is held until the answer is recorded, however long the database takes.
    async with holding_lease(life, request.id):
        try:
            started = await KINDS[request.kind].create(
                vps, request.server.id, asked.name, asked.description
            )
        except VpsApiError as error:
            found = None
            if error.outcome_unknown:  # VPS.org may or may not have made it: read, never resend
                found = await _find_created(vps, request, asked.known_ids)
            if found is None:
                await _record_failure(life, request, error)
                raise
            await _mark_created(life, request, found, "", error, Recovery.LISTED)
        else:
            await _mark_created(life, request, started.item, started.message, started.call, None)


async def _mark_created(
    life: Lifecycle,
    request: OperationRequest,
    item: Item,
    message: str,
    call: Call | VpsApiError,
    recovered: Recovery | None,
) -> None:
    """Record what VPS.org answered to the POST (retried while the database stalls)."""
    now = life.clock()

    async def write(uow: UnitOfWork) -> bool:
        audit_call(uow, now, request, call)
        return await _follow_created(life, uow, request, item, message, recovered, now)

    await persist(life, write, f"the answer to the create of request #{request.id}")


async def _follow_created(
    life: Lifecycle,
    uow: UnitOfWork,
    request: OperationRequest,
    item: Item,
    message: str,
    recovered: Recovery | None,
    now: datetime,
) -> bool:
    """Move a create whose object is known to `running`, with its id, and queue the post. The
    request may meanwhile have been marked needs_attention by an instance that took it for a
    crashed one: the answer is better evidence, and the create is followed after all."""
    current = await uow.requests.lock(request.id)
    if current is None or current.target_id is not None:
        return False
    if current.status not in (Status.EXECUTING, Status.NEEDS_ATTENTION):
        return False
    outcome = current.outcome.but(
        api_message=message, started_at=now, recovered=recovered, failure=None
    )
    first = current.status is Status.EXECUTING
    return await apply(
        uow,
        current,
        current.move(Event.ACCEPT, at=now, target_id=item.id),
        outcome,
        notify=("post",) if first else UPDATE,
        target_id=item.id,
        next_check_at=life.policy.next_tick(now),
        expires_at=now + life.policy.follow_for,
    )


async def _find_created(
    vps: VpsApi, request: OperationRequest, known: tuple[int, ...], since: datetime | None = None
) -> Item | None:
    """After a create whose answer was lost: the new object, if VPS.org lists it (not among
    the ids that existed before the POST, with the name asked for, and not older than `since`
    when given)."""
    assert request.server is not None
    calls = KINDS[request.kind]
    try:
        items = (await calls.counted(vps, request.server.id)).items
    except VpsApiError:
        return None
    found = [
        item
        for item in items
        if item.id not in known
        and (since is None or item.created_at >= since)
        and calls.matches(item, request.asked.name, request.asked.description)
    ]
    return max(found, key=lambda item: item.id) if found else None


async def read_back_create(vps: VpsApi, life: Lifecycle, request: OperationRequest) -> bool:
    """A create whose POST may have been sent but whose answer was never recorded (the bot
    stopped mid-call, or recorded it as needs_attention without an id): look for the object by
    name, and follow it if VPS.org lists it. Never sends the POST again. True when found."""
    if request.action is not Action.CREATE or request.server is None:
        return False
    found = await _find_created(
        vps, request, request.asked.known_ids, request.created_at - READ_BACK_SKEW
    )
    if found is None:
        return False
    now = life.clock()

    async def write(uow: UnitOfWork) -> bool:
        return await _follow_created(life, uow, request, found, "", Recovery.READ_BACK, now)

    return await persist(life, write, f"the read-back of request #{request.id}")


def failure_of(error: VpsApiError) -> Failure:
    """What a VPS.org error says about a call: refused, or no usable answer."""
    why = Why.API_UNCONFIRMED if error.outcome_unknown else Why.API_REFUSED
    return Failure(why, detail=error.detail, http_status=error.status)


async def _record_failure(life: Lifecycle, request: OperationRequest, error: VpsApiError) -> None:
    """The API said no (failed), or did not say (needs attention: it may have happened)."""
    now = life.clock()
    event = Event.LOSE if error.outcome_unknown else Event.FAIL

    async def write(uow: UnitOfWork) -> None:
        audit_call(uow, now, request, error)
        await apply(
            uow,
            request,
            request.move(event, at=now, error=type(error).__name__),
            request.outcome.but(failure=failure_of(error)),
            # a person hears it in the command's answer; a scheduled run on its card
            notify=UPDATE if request.asked.schedule_id is not None else (),
        )

    await persist(life, write, f"the failure of request #{request.id}")


# -- delete --------------------------------------------------------------------------------------


async def request_delete(
    vps: VpsApi, life: Lifecycle, actor: Actor, intent: RequestDelete
) -> OperationRequest:
    """Look the target up, then post a confirmation only the requester can press."""
    target = await find_target(vps, intent.kind, intent.target_id)
    now = life.clock()
    async with life.uow() as uow:
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
            expires_at=now + life.policy.confirm_ttl,
            asked=Asked(target_created_at=target.created_at, target_size_mb=target.size_mb),
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
    return request


async def _decidable(
    life: Lifecycle,
    request_id: int,
    user_id: str,
    channel_id: str,
    clicked_at: datetime | None,
) -> OperationRequest:
    """The delete a click names, if this person may still decide it here and now."""
    async with life.uow() as uow:
        request = await uow.requests.get(request_id)
    if request is None or request.channel_id != channel_id or request.action is not Action.DELETE:
        raise UnknownRequest("That button belongs to a request this bot does not know.")
    if user_id != request.requester_id:
        raise NotRequester(request.requester_id)
    if request.status is not Status.PENDING_CONFIRMATION:
        raise AlreadyHandled(request.status)
    now = clicked_at or life.clock()  # judged when the click arrived, not when its turn came
    if request.is_expired(now):
        await finish(life, request, Event.EXPIRE, request.outcome, notify=UPDATE)
        raise RequestExpired("This request has expired; ask again if it is still needed.")
    return request


async def confirm_delete(
    vps: VpsApi,
    life: Lifecycle,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> OperationRequest:
    """The requester pressed Delete: one DELETE, however many clicks."""
    request = await _decidable(life, request_id, user_id, channel_id, clicked_at)
    now = life.clock()
    confirmed = request.outcome.but(decided_by=user_id)
    async with life.uow() as uow:
        won = await apply(
            uow,
            request,
            request.move(Event.CONFIRM, at=now, actor_id=user_id),
            confirmed,
            lease_owner=life.owner,
            lease_until=now + EXECUTION_LEASE,
        )
        await uow.commit()
    if not won:  # another click, the requester's Cancel or the sweeper got there first
        raise AlreadyHandled((await stored(life, request.id)).status)
    # As this transaction left it: no read between the claim and the lease that covers it.
    executing = replace(request, status=Status.EXECUTING, outcome=confirmed)
    assert executing.target_id is not None
    try:
        async with holding_lease(life, request.id):
            call = await KINDS[request.kind].delete(vps, executing.target_id)
    except VpsApiError as error:
        await record_call(life, executing, error)
        event, outcome = Event.FAIL, confirmed.but(failure=failure_of(error))
        if error.outcome_unknown:  # read what happened; never send the DELETE again
            event, outcome = await _read_back_delete(vps, executing, error)
        await finish(life, executing, event, outcome, notify=UPDATE, actor_id=user_id)
        if event is Event.COMPLETE:
            return await stored(life, request.id)  # read back: the channel is told
        raise
    await record_call(life, executing, call)
    await finish(
        life,
        executing,
        Event.COMPLETE,
        confirmed.but(finished_at=life.clock()),
        notify=UPDATE,
        actor_id=user_id,
    )
    return await stored(life, request.id)


async def _read_back_delete(
    vps: VpsApi, request: OperationRequest, error: VpsApiError
) -> tuple[Event, Outcome]:
    """After a DELETE whose answer was lost: gone means deleted. Still listed proves nothing
    (VPS.org may act late), so a person has to look."""
    assert request.target_id is not None
    server_id = request.server.id if request.server else None
    base = request.outcome
    try:
        await find_target(vps, request.kind, request.target_id, server_id)
    except NotFound:
        return Event.COMPLETE, base.but(recovered=Recovery.GONE)
    except VpsApiError as reading:
        failure = Failure(
            Why.UNREADABLE_AFTER,
            detail=error.detail,
            http_status=error.status,
            read_detail=reading.detail,
        )
        return Event.LOSE, base.but(failure=failure)
    failure = Failure(Why.STILL_LISTED, detail=error.detail, http_status=error.status)
    return Event.LOSE, base.but(failure=failure)


async def cancel(
    life: Lifecycle,
    user_id: str,
    request_id: int,
    channel_id: str,
    clicked_at: datetime | None = None,
) -> None:
    """The requester withdrew a delete that was waiting for confirmation."""
    request = await _decidable(life, request_id, user_id, channel_id, clicked_at)
    cancelled = request.outcome.but(decided_by=user_id)
    if not await finish(life, request, Event.CANCEL, cancelled, notify=UPDATE, actor_id=user_id):
        raise AlreadyHandled((await stored(life, request.id)).status)
