"""Repositories: select()/add() over one session. They never commit; the unit of work does."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.approvals import Vote
from bot.domain.errors import AlreadyVoted, RestoreUnderWay
from bot.domain.lifecycle import FINAL, UNDER_WAY, Status, Transition
from bot.domain.model import Action, Kind, OperationRequest, Schedule, ServerRef
from bot.domain.outcomes import Asked, Outcome
from bot.storage.codec import dump_asked, dump_outcome, load_asked, load_outcome
from bot.storage.tables import (
    ApprovalRecord,
    AuditRecord,
    JobRecord,
    OutboxRecord,
    RequestRecord,
    ScheduleRecord,
    ServerHealthRecord,
    SlackDelivery,
)


def _rows(result: object) -> int:
    """How many rows an UPDATE or DELETE changed (1: a compare-and-set won)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


class AuditRepository:
    """Append-only: rows are added and read, never changed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def record(
        self,
        event: str,
        *,
        at: datetime,
        actor_id: str | None = None,
        channel_id: str | None = None,
        request_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._session.add(
            AuditRecord(
                created_at=at,
                event=event,
                actor_id=actor_id,
                channel_id=channel_id,
                request_id=request_id,
                detail=detail or {},
            )
        )

    async def events(
        self,
        event: str | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
    ) -> Sequence[AuditRecord]:
        query = select(AuditRecord).order_by(AuditRecord.id)
        if since is not None:
            query = query.where(AuditRecord.created_at >= since)
        if event is not None:
            query = query.where(AuditRecord.event == event)
        if request_id is not None:
            query = query.where(AuditRecord.request_id == request_id)
        return (await self._session.scalars(query)).all()


def _request(record: RequestRecord) -> OperationRequest:
    server = (
        ServerRef(record.server_id, record.server_name) if record.server_id is not None else None
    )
    return OperationRequest(
        id=record.id,
        kind=Kind(record.kind),
        action=Action(record.action),
        status=Status(record.status),
        requester_id=record.requester_id,
        channel_id=record.channel_id,
        server=server,
        target_id=record.target_id,
        target_name=record.target_name,
        reason=record.reason,
        created_at=record.created_at,
        updated_at=record.updated_at,
        expires_at=record.expires_at,
        message_ts=record.message_ts,
        required_approvals=record.required_approvals,
        asked=load_asked(dict(record.params)),
        outcome=load_outcome(dict(record.result)),
    )


def _columns(changes: dict[str, Any]) -> dict[str, Any]:
    """Typed fields as their columns: `asked` -> params, `outcome` -> result (JSON)."""
    values = dict(changes)
    if "asked" in values:
        values["params"] = dump_asked(values.pop("asked"))
    if "outcome" in values:
        values["result"] = dump_outcome(values.pop("outcome"))
    return values


# The key space of the servers' advisory locks (PostgreSQL): this prefix above 40 bits of
# server id (VPS.org ids have at most 10 digits, < 2**34), so no two servers share a key and
# none meets the migrations' lock (database._MIGRATION_LOCK, below 2**40).
_SERVER_LOCKS = 0x7B5B << 40


def server_lock_key(server_id: int) -> int:
    """The advisory lock that serialises the restore requests of one server."""
    # an id beyond 40 bits shares its key with another server: both are then serialised
    # together, which is only slower, never wrong
    return _SERVER_LOCKS | (server_id % (1 << 40))


class RequestRepository:
    """Requests and their compare-and-set transitions; tracker claims use leases."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        kind: Kind,
        action: Action,
        status: Status,
        requester_id: str,
        channel_id: str,
        at: datetime,
        server: ServerRef | None = None,
        target_id: int | None = None,
        target_name: str = "",
        reason: str = "",
        asked: Asked | None = None,
        expires_at: datetime | None = None,
        required_approvals: int = 0,
        schedule_id: int | None = None,
    ) -> OperationRequest:
        record = RequestRecord(
            schedule_id=schedule_id,
            kind=kind.value,
            action=action.value,
            status=status.value,
            requester_id=requester_id,
            channel_id=channel_id,
            server_id=server.id if server else None,
            server_name=server.name if server else "",
            target_id=target_id,
            target_name=target_name,
            reason=reason,
            params=dump_asked(asked or Asked()),
            result=dump_outcome(Outcome()),
            created_at=at,
            updated_at=at,
            expires_at=expires_at,
            required_approvals=required_approvals,
        )
        self._session.add(record)
        await self._session.flush()
        return _request(record)

    async def get(self, request_id: int) -> OperationRequest | None:
        record = await self._session.get(RequestRecord, request_id, populate_existing=True)
        return None if record is None else _request(record)

    async def lock(self, request_id: int) -> OperationRequest | None:
        """Read the request and hold its row until commit: votes on one request take turns
        (PostgreSQL row lock; on SQLite the transaction already holds the write lock)."""
        query = (
            select(RequestRecord)
            .where(RequestRecord.id == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        record = (await self._session.scalars(query)).one_or_none()
        return None if record is None else _request(record)

    async def lock_restores(self, server_id: int) -> list[OperationRequest]:
        """Hold the server's restores until commit, and read those that have not ended for good
        (not FINAL), oldest first: no other transaction can add a restore of this server, or
        move one of these, before this one commits. What a restore request checks and inserts
        under this lock is therefore decided one transaction at a time, on any instance.

        PostgreSQL: a transaction-scoped advisory lock keyed by the server (there is no server
        row to lock, and a row that does not exist yet cannot be locked), then the rows found
        `FOR UPDATE`. Taken first, so the SELECT after it sees what the previous holder
        committed (READ COMMITTED, the default: each statement reads anew).
        SQLite: the transaction has held the write lock since it began (BEGIN IMMEDIATE)."""
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": server_lock_key(server_id)}
            )
        query = (
            select(RequestRecord)
            .where(RequestRecord.action == Action.RESTORE.value)
            .where(RequestRecord.server_id == server_id)
            .where(RequestRecord.status.not_in([s.value for s in FINAL]))
            .order_by(RequestRecord.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return [_request(r) for r in (await self._session.scalars(query)).all()]

    async def apply(
        self, transition: Transition, *, holder: str | None = None, **changes: Any
    ) -> bool:
        """Apply a move of the state machine: one conditional UPDATE (`WHERE status = from`)
        and, when it matched, the move's audit row, in the caller's transaction. True when
        this call won: of two transactions racing for one request, exactly one matches the
        row, whatever the database. `changes` sets other fields with it (`outcome`, leases…).

        A move that would put a second restore of one server under way violates
        `uq_requests_one_restore_per_server` and raises RestoreUnderWay (in a savepoint, so
        the caller's transaction stays usable). With `holder`, the move is made only while that
        instance holds the request's lease (`AND lease_owner = :holder`): one whose lease
        lapsed and was taken over while it worked writes nothing."""
        values: dict[str, Any] = {"status": transition.target.value, "updated_at": transition.at}
        values |= _columns(changes)
        statement = (
            update(RequestRecord)
            .where(RequestRecord.id == transition.request_id)
            .where(RequestRecord.status == transition.source.value)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if holder is not None:
            statement = statement.where(RequestRecord.lease_owner == holder)
        if transition.target not in UNDER_WAY:
            result = await self._session.execute(statement)
        else:
            try:
                async with self._session.begin_nested():
                    result = await self._session.execute(statement)
            except IntegrityError:
                raise RestoreUnderWay(
                    "Another restore of this server is already under way; this one was not started."
                ) from None
        won = _rows(result) == 1
        if won:
            self._session.add(
                AuditRecord(
                    created_at=transition.at,
                    event="transition",
                    actor_id=transition.actor_id,
                    request_id=transition.request_id,
                    detail=transition.audit_detail(),
                )
            )
        return won

    async def step(
        self,
        request_id: int,
        owner: str,
        *,
        at: datetime,
        detail: dict[str, Any] | None,
        status: Status = Status.EXECUTING,
        **changes: Any,
    ) -> bool:
        """Record a step of a request's work (its safety snapshot, a look at an operation) that
        only the holder of its lease may take: one conditional UPDATE (`WHERE status = :status
        AND lease_owner = :owner`, `executing` by default) and, when it matched and `detail` is
        given, a `safety_snapshot` audit row with it. False when another instance took the
        request over (its lease lapsed): that instance decides from what this one committed,
        so a step is never taken twice."""
        values = {"updated_at": at} | _columns(changes)
        result = await self._session.execute(
            update(RequestRecord)
            .where(RequestRecord.id == request_id)
            .where(RequestRecord.status == status.value)
            .where(RequestRecord.lease_owner == owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        won = _rows(result) == 1
        if won and detail is not None:
            self._session.add(
                AuditRecord(
                    created_at=at, event="safety_snapshot", request_id=request_id, detail=detail
                )
            )
        return won

    async def renew(self, request_id: int, owner: str, until: datetime) -> None:
        """Extend `owner`'s lease; a request handed back (or taken over) is left alone."""
        await self._session.execute(
            update(RequestRecord)
            .where(RequestRecord.id == request_id)
            .where(RequestRecord.lease_owner == owner)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )

    async def restores_of(self, kind: Kind, target_id: int) -> list[OperationRequest]:
        """The restores from this snapshot or backup waiting for approval or under way."""
        open_ = [Status.PENDING_APPROVAL.value, *(s.value for s in UNDER_WAY)]
        query = (
            select(RequestRecord)
            .where(RequestRecord.action == Action.RESTORE.value)
            .where(RequestRecord.kind == kind.value)
            .where(RequestRecord.target_id == target_id)
            .where(RequestRecord.status.in_(open_))
            .order_by(RequestRecord.id)
        )
        return [_request(r) for r in (await self._session.scalars(query)).all()]

    async def change(self, request_id: int, **changes: Any) -> None:
        """Set fields other than the status (message_ts, outcome, next check, leases)."""
        await self._session.execute(
            update(RequestRecord)
            .where(RequestRecord.id == request_id)
            .values(**_columns(changes))
            .execution_options(synchronize_session=False)
        )

    async def claim_due(
        self,
        *,
        statuses: Collection[Status],
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int = 5000,
        expired_before: datetime | None = None,
        exclude: Collection[int] = (),
        safety_due: bool = False,
    ) -> list[OperationRequest]:
        """Lease the requests in `statuses` that are due and not leased by a live owner
        (and, with `expired_before`, only those whose expires_at has passed; with
        `safety_due`, only those whose safety snapshot is due for deletion).

        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows.
        SQLite: the transaction holds the write lock from its start (BEGIN IMMEDIATE).
        """
        query = (
            select(RequestRecord)
            .where(RequestRecord.status.in_([s.value for s in statuses]))
            .where(or_(RequestRecord.next_check_at.is_(None), RequestRecord.next_check_at <= now))
            .where(or_(RequestRecord.lease_until.is_(None), RequestRecord.lease_until < now))
            .order_by(RequestRecord.next_check_at, RequestRecord.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if expired_before is not None:
            query = query.where(RequestRecord.expires_at <= expired_before)
        if exclude:
            query = query.where(RequestRecord.id.not_in(list(exclude)))
        if safety_due:
            query = query.where(RequestRecord.safety_delete_at <= now)
        records = (await self._session.scalars(query)).all()
        for record in records:
            record.lease_owner = owner
            record.lease_until = now + lease
        await self._session.flush()
        return [_request(record) for record in records]

    async def release(self, request_ids: Collection[int], owner: str) -> None:
        if not request_ids:
            return
        await self._session.execute(
            update(RequestRecord)
            .where(RequestRecord.id.in_(list(request_ids)))
            .where(RequestRecord.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def release_all(self, owner: str) -> None:
        await self._session.execute(
            update(RequestRecord)
            .where(RequestRecord.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def kept_by(self, schedule_id: int) -> list[OperationRequest]:
        """What a schedule made and still keeps: its succeeded runs not yet pruned, oldest
        first."""
        query = (
            select(RequestRecord)
            .where(RequestRecord.schedule_id == schedule_id)
            .where(RequestRecord.status == Status.SUCCEEDED.value)
            .where(RequestRecord.pruned_at.is_(None))
            .where(RequestRecord.target_id.is_not(None))
            .order_by(RequestRecord.created_at, RequestRecord.id)
        )
        return [_request(r) for r in (await self._session.scalars(query)).all()]

    async def over_keep(self, now: datetime) -> list[int]:
        """The active schedules keeping more than their `keep` (retention is due), unless a
        failed attempt put them off until later."""
        query = (
            select(ScheduleRecord.id)
            .join(RequestRecord, RequestRecord.schedule_id == ScheduleRecord.id)
            .where(ScheduleRecord.removed_at.is_(None))
            .where(or_(ScheduleRecord.prune_after.is_(None), ScheduleRecord.prune_after <= now))
            .where(RequestRecord.status == Status.SUCCEEDED.value)
            .where(RequestRecord.pruned_at.is_(None))
            .where(RequestRecord.target_id.is_not(None))
            .group_by(ScheduleRecord.id, ScheduleRecord.keep)
            .having(func.count(RequestRecord.id) > ScheduleRecord.keep)
            .order_by(ScheduleRecord.id)
        )
        return list((await self._session.scalars(query)).all())

    async def runs(
        self, schedule_ids: Collection[int], per_schedule: int = 1
    ) -> list[OperationRequest]:
        """The latest runs of these schedules (at most `per_schedule` each), newest first: an
        index probe per schedule (`ix_requests_schedule_runs`), however many runs it made."""
        found: list[RequestRecord] = []
        for schedule_id in schedule_ids:
            query = (
                select(RequestRecord)
                .where(RequestRecord.schedule_id == schedule_id)
                .order_by(RequestRecord.id.desc())
                .limit(per_schedule)
            )
            found += (await self._session.scalars(query)).all()
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [_request(r) for r in found]

    async def count_by_status(self) -> dict[str, int]:
        query = select(RequestRecord.status, func.count(RequestRecord.id)).group_by(
            RequestRecord.status
        )
        return {status: int(count) for status, count in (await self._session.execute(query)).all()}

    async def in_status(self, *statuses: Status) -> list[OperationRequest]:
        query = (
            select(RequestRecord)
            .where(RequestRecord.status.in_([s.value for s in statuses]))
            .order_by(RequestRecord.id)
        )
        return [_request(r) for r in (await self._session.scalars(query)).all()]

    async def recent(self, limit: int, statuses: Collection[Status]) -> list[OperationRequest]:
        """At most `limit` requests in `statuses`, the latest changed first."""
        query = (
            select(RequestRecord)
            .where(RequestRecord.status.in_([s.value for s in statuses]))
            .order_by(RequestRecord.updated_at.desc(), RequestRecord.id.desc())
            .limit(limit)
        )
        return [_request(r) for r in (await self._session.scalars(query)).all()]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    request_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int


class OutboxRepository:
    """Slack messages to deliver, added in the same transaction as the change that causes them.
    `added` counts the rows this transaction queued (the unit of work wakes the sender for
    them once they are committed)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.added = 0

    def add(
        self, kind: str, payload: dict[str, Any], *, at: datetime, request_id: int | None = None
    ) -> None:
        self.added += 1
        self._session.add(
            OutboxRecord(
                created_at=at,
                request_id=request_id,
                kind=kind,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=at,
                last_error="",
            )
        )

    async def claim_due(
        self, *, now: datetime, owner: str, lease: timedelta, limit: int = 50
    ) -> list[OutboxItem]:
        """Lease due rows, oldest first, skipping any row whose request has an older row still
        pending (so a thread reply never overtakes the message it replies to)."""
        earlier = aliased(OutboxRecord)
        blocked = exists().where(
            earlier.request_id == OutboxRecord.request_id,
            earlier.id < OutboxRecord.id,
            earlier.status == "pending",
        )
        query = (
            select(OutboxRecord)
            .where(OutboxRecord.status == "pending")
            .where(OutboxRecord.next_attempt_at <= now)
            .where(or_(OutboxRecord.lease_until.is_(None), OutboxRecord.lease_until < now))
            .where(or_(OutboxRecord.request_id.is_(None), ~blocked))
            .order_by(OutboxRecord.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=OutboxRecord)
        )
        records = (await self._session.scalars(query)).all()
        for record in records:
            record.lease_owner = owner
            record.lease_until = now + lease
        await self._session.flush()
        return [
            OutboxItem(r.id, r.request_id, r.kind, dict(r.payload), r.attempts) for r in records
        ]

    async def release(self, item_ids: Collection[int], owner: str) -> None:
        if not item_ids:
            return
        await self._session.execute(
            update(OutboxRecord)
            .where(OutboxRecord.id.in_(list(item_ids)))
            .where(OutboxRecord.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def release_all(self, owner: str) -> None:
        await self._set_where(OutboxRecord.lease_owner == owner, lease_owner=None, lease_until=None)

    async def _set_where(self, condition: Any, **values: Any) -> None:
        await self._session.execute(
            update(OutboxRecord)
            .where(condition)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def mark_sent(self, item_id: int, *, at: datetime) -> None:
        await self._set(item_id, status="sent", sent_at=at, lease_owner=None, lease_until=None)

    async def retry_later(self, item_id: int, *, error: str, at: datetime) -> None:
        await self._session.execute(
            update(OutboxRecord)
            .where(OutboxRecord.id == item_id)
            .values(
                attempts=OutboxRecord.attempts + 1,
                next_attempt_at=at,
                last_error=error[:500],
                lease_owner=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )

    async def mark_failed(self, item_id: int, *, error: str) -> None:
        await self._set(
            item_id, status="failed", last_error=error[:500], lease_owner=None, lease_until=None
        )

    async def _set(self, item_id: int, **values: Any) -> None:
        await self._set_where(OutboxRecord.id == item_id, **values)

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many messages wait to be delivered, and when the oldest was queued."""
        row = (
            await self._session.execute(
                select(func.count(OutboxRecord.id), func.min(OutboxRecord.created_at)).where(
                    OutboxRecord.status == "pending"
                )
            )
        ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:  # SQLite: min() skips the column type
            oldest = oldest.replace(tzinfo=UTC)
        return int(row[0] or 0), oldest

    async def items(self, status: str | None = None) -> Sequence[OutboxRecord]:
        query = select(OutboxRecord).order_by(OutboxRecord.id)
        if status is not None:
            query = query.where(OutboxRecord.status == status)
        return (await self._session.scalars(query)).all()


class ApprovalRepository:
    """One row per vote; the unique (request, voter) pair is the last line against double votes."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, request_id: int, voter_id: str, decision: str, *, at: datetime) -> None:
        try:
            async with self._session.begin_nested():
                self._session.add(
                    ApprovalRecord(
                        request_id=request_id, voter_id=voter_id, decision=decision, created_at=at
                    )
                )
        except IntegrityError:
            raise AlreadyVoted("You have already voted on this request.") from None

    async def votes(self, request_id: int) -> list[Vote]:
        query = (
            select(ApprovalRecord)
            .where(ApprovalRecord.request_id == request_id)
            .order_by(ApprovalRecord.id)
        )
        return [
            Vote(r.voter_id, r.decision, r.created_at)
            for r in (await self._session.scalars(query)).all()
        ]


class DeliveryRepository:
    """The identities of the Slack requests acted on; the primary key decides the first."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def first_time(self, key: str, *, at: datetime) -> bool:
        """Record `key`; False if it was recorded before (by this or any other instance).
        On PostgreSQL a concurrent insert of the same key waits for the first to commit."""
        try:
            async with self._session.begin_nested():
                self._session.add(SlackDelivery(key=key, created_at=at))
        except IntegrityError:
            return False
        return True

    async def seen(self, key: str) -> bool:
        """Whether `key` was recorded (acted on) before."""
        return await self._session.get(SlackDelivery, key) is not None

    async def forget_before(self, moment: datetime) -> int:
        result = await self._session.execute(
            delete(SlackDelivery).where(SlackDelivery.created_at < moment)
        )
        return _rows(result)


def _schedule(record: ScheduleRecord) -> Schedule:
    return Schedule(
        id=record.id,
        kind=Kind(record.kind),
        server=ServerRef(record.server_id, record.server_name),
        channel_id=record.channel_id,
        created_by=record.created_by,
        when=record.spec,
        keep=record.keep,
        created_at=record.created_at,
        next_run_at=record.next_run_at,
        removed_at=record.removed_at,
        removed_by=record.removed_by,
    )


class ScheduleRepository:
    """Schedules; a run or a retention pass is made by the instance holding the lease."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        kind: Kind,
        server: ServerRef,
        channel_id: str,
        created_by: str,
        when: str,
        keep: int,
        at: datetime,
        next_run_at: datetime,
    ) -> Schedule:
        record = ScheduleRecord(
            kind=kind.value,
            server_id=server.id,
            server_name=server.name,
            channel_id=channel_id,
            created_by=created_by,
            spec=when,
            keep=keep,
            created_at=at,
            next_run_at=next_run_at,
        )
        self._session.add(record)
        await self._session.flush()
        return _schedule(record)

    async def get(self, schedule_id: int) -> Schedule | None:
        record = await self._session.get(ScheduleRecord, schedule_id, populate_existing=True)
        return None if record is None else _schedule(record)

    async def active(self, server_id: int | None = None) -> list[Schedule]:
        """The schedules not removed, of one server or all, in id order."""
        query = (
            select(ScheduleRecord)
            .where(ScheduleRecord.removed_at.is_(None))
            .order_by(ScheduleRecord.id)
        )
        if server_id is not None:
            query = query.where(ScheduleRecord.server_id == server_id)
        return [_schedule(r) for r in (await self._session.scalars(query)).all()]

    async def remove(self, schedule_id: int, *, by: str, at: datetime) -> bool:
        """Unschedule (compare-and-set: False when it was already removed)."""
        result = await self._session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.id == schedule_id)
            .where(ScheduleRecord.removed_at.is_(None))
            .values(removed_at=at, removed_by=by)
            .execution_options(synchronize_session=False)
        )
        return _rows(result) == 1

    async def lock_server(self, server_id: int) -> None:
        """Hold the server's schedules until commit: what one transaction checks and adds for a
        server is decided one transaction at a time (PostgreSQL: the server's advisory lock,
        as `lock_restores`; SQLite: the write lock held since BEGIN IMMEDIATE)."""
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": server_lock_key(server_id)}
            )

    async def claim(
        self,
        *,
        now: datetime,
        owner: str,
        lease: timedelta,
        due: bool = True,
        schedule_id: int | None = None,
        limit: int | None = None,
    ) -> list[Schedule]:
        """Lease the active schedules that are due (`due`: next_run_at has come) and not
        leased by a live owner; one of them only with `schedule_id`. PostgreSQL: `FOR UPDATE
        SKIP LOCKED`; SQLite: the transaction holds the write lock (BEGIN IMMEDIATE)."""
        query = (
            select(ScheduleRecord)
            .where(ScheduleRecord.removed_at.is_(None))
            .where(or_(ScheduleRecord.lease_until.is_(None), ScheduleRecord.lease_until < now))
            .order_by(ScheduleRecord.next_run_at, ScheduleRecord.id)
            .with_for_update(skip_locked=True)
        )
        if due:
            query = query.where(ScheduleRecord.next_run_at <= now)
        if schedule_id is not None:
            query = query.where(ScheduleRecord.id == schedule_id)
        if limit is not None:
            query = query.limit(limit)
        records = (await self._session.scalars(query)).all()
        for record in records:
            record.lease_owner = owner
            record.lease_until = now + lease
        await self._session.flush()
        return [_schedule(record) for record in records]

    async def hand_back(
        self, schedule_id: int, owner: str, *, active: bool = False, **changes: Any
    ) -> bool:
        """Release `owner`'s lease with `changes` (next_run_at, prune_after); nothing and
        False when the lease is no longer theirs (it lapsed and another instance took it), or,
        with `active`, when the schedule was removed meanwhile."""
        query = (
            update(ScheduleRecord)
            .where(ScheduleRecord.id == schedule_id)
            .where(ScheduleRecord.lease_owner == owner)
        )
        if active:
            query = query.where(ScheduleRecord.removed_at.is_(None))
        result = await self._session.execute(
            query.values(lease_owner=None, lease_until=None, **changes).execution_options(
                synchronize_session=False
            )
        )
        return _rows(result) == 1

    async def renew(self, schedule_id: int, owner: str, *, now: datetime, until: datetime) -> bool:
        """Extend `owner`'s live lease on an active schedule; False when it lapsed (whoever
        holds it now), was taken, or the schedule was removed: its work must stop."""
        result = await self._session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.id == schedule_id)
            .where(ScheduleRecord.lease_owner == owner)
            .where(ScheduleRecord.lease_until >= now)
            .where(ScheduleRecord.removed_at.is_(None))
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return _rows(result) == 1

    async def release_all(self, owner: str) -> None:
        await self._session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


class HealthRepository:
    """The health each server was last seen in; a change is a compare-and-set."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def states(self) -> dict[int, tuple[str, str]]:
        """server id -> (name, state), for every server ever checked."""
        rows = (await self._session.scalars(select(ServerHealthRecord))).all()
        return {r.server_id: (r.server_name, r.state) for r in rows}

    async def change(
        self, server_id: int, name: str, *, old: str | None, new: str, at: datetime
    ) -> bool:
        """Move the server from `old` (None: never checked) to `new`; False when another
        check moved it first (this one must then say nothing)."""
        if old is None:
            try:
                async with self._session.begin_nested():
                    self._session.add(
                        ServerHealthRecord(
                            server_id=server_id,
                            server_name=name,
                            state=new,
                            since=at,
                            checked_at=at,
                        )
                    )
            except IntegrityError:
                return False
            return True
        result = await self._session.execute(
            update(ServerHealthRecord)
            .where(ServerHealthRecord.server_id == server_id)
            .where(ServerHealthRecord.state == old)
            .values(state=new, server_name=name, since=at, checked_at=at)
            .execution_options(synchronize_session=False)
        )
        return _rows(result) == 1

    async def forget(self, server_id: int) -> None:
        """A server VPS.org no longer has: out of the health view, and never alerted again."""
        await self._session.execute(
            delete(ServerHealthRecord).where(ServerHealthRecord.server_id == server_id)
        )


class JobRepository:
    """Periodic jobs shared by every instance."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take_turn(self, name: str, *, now: datetime, next_run_at: datetime) -> bool:
        """True for the one caller that finds the job due and moves it to `next_run_at`."""
        due = await self._session.scalar(
            select(JobRecord.next_run_at).where(JobRecord.name == name)
        )
        if due is None:  # its first run: the insert decides
            try:
                async with self._session.begin_nested():
                    self._session.add(JobRecord(name=name, next_run_at=next_run_at))
            except IntegrityError:
                return False
            return True
        if due > now:
            return False
        result = await self._session.execute(
            update(JobRecord)
            .where(JobRecord.name == name)
            .where(JobRecord.next_run_at <= now)
            .values(next_run_at=next_run_at)
            .execution_options(synchronize_session=False)
        )
        return _rows(result) == 1
