"""In-memory fakes of the ports in `bot.services.ports`: a unit of work over one shared store,
and VPS.org as three dicts. No database, no HTTP; they behave like the real ones where the use
cases can tell the difference.

`FakeUnitOfWork` (after cosmicpython's): repositories write into the unit of work's pending
changes; `commit()` copies them into the shared `MemoryStore` and sets `committed`; leaving
without commit discards them. A row a unit of work writes (or locks, or claims) stays locked
until it commits or ends, so two units of work take turns on one request, as with row locks.
Ids are handed out at `add`, like a database sequence, and are not given back on rollback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from bot.domain.approvals import Vote
from bot.domain.errors import AlreadyVoted, LimitReached, NotFound, RestoreUnderWay, VpsApiError
from bot.domain.lifecycle import FINAL, UNDER_WAY, Status, Transition
from bot.domain.model import (
    COMPLETED,
    IN_PROGRESS,
    Action,
    Backup,
    BackupType,
    Call,
    Kind,
    Listing,
    OperationRequest,
    RestoreStarted,
    Server,
    ServerRef,
    Snapshot,
    Started,
)
from bot.domain.operations import MAX_MANUAL_BACKUPS_PER_SERVER, MAX_SNAPSHOTS_PER_SERVER
from bot.domain.outcomes import Asked, Outcome

LOCK_WAIT = 2.0  # seconds a unit of work waits for another's row lock before calling it a hang
# What `requests.change` may set: never the status, which moves only through `apply`.
CHANGEABLE = frozenset(
    {
        "target_id",
        "target_name",
        "reason",
        "message_ts",
        "expires_at",
        "required_approvals",
        "asked",
        "outcome",
        "next_check_at",
        "lease_owner",
        "lease_until",
        "safety_delete_at",
    }
)
ROW_ONLY = frozenset({"next_check_at", "lease_owner", "lease_until", "safety_delete_at"})
T = TypeVar("T")


@dataclass
class RequestRow:
    """A stored request and the columns the domain object does not carry."""

    request: OperationRequest
    next_check_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    safety_delete_at: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    event: str
    detail: dict[str, Any]
    at: datetime
    actor_id: str | None = None
    channel_id: str | None = None
    request_id: int | None = None


@dataclass
class OutboxRow:
    id: int
    request_id: int | None
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    last_error: str = ""
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass
class MemoryStore:
    """What is committed: the tables every unit of work shares."""

    requests: dict[int, RequestRow] = field(default_factory=dict)
    audit: list[AuditRow] = field(default_factory=list)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    votes: dict[int, list[Vote]] = field(default_factory=dict)
    deliveries: dict[str, datetime] = field(default_factory=dict)
    locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    server_locks: dict[int, asyncio.Lock] = field(default_factory=dict)  # advisory, by server
    commits: int = 0
    wakeups: int = 0  # commits that queued outbox rows (the real unit of work wakes the sender)
    _ids: dict[str, int] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        self._ids[table] = self._ids.get(table, 0) + 1
        return self._ids[table]

    def request(self, request_id: int) -> OperationRequest:
        return self.requests[request_id].request

    def audit_rows(self, event: str | None = None, request_id: int | None = None) -> list[AuditRow]:
        return [
            row
            for row in self.audit
            if (event is None or row.event == event)
            and (request_id is None or row.request_id == request_id)
        ]

    def queued(self, request_id: int | None = None) -> list[tuple[str, dict[str, Any], int | None]]:
        """The outbox as (kind, payload, request_id), oldest first."""
        return [
            (row.kind, row.payload, row.request_id)
            for row in self.outbox.values()
            if request_id is None or row.request_id == request_id
        ]


class FakeAuditLog:
    def __init__(self) -> None:
        self.pending: list[AuditRow] = []

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
        self.pending.append(
            AuditRow(event, dict(detail or {}), at, actor_id, channel_id, request_id)
        )


class FakeRequests:
    """Requests: reads see the store with this unit of work's own changes on top."""

    def __init__(self, store: MemoryStore, audit: FakeAuditLog) -> None:
        self._store = store
        self._audit = audit
        self.pending: dict[int, RequestRow] = {}
        self.held: set[int] = set()
        self.held_servers: set[int] = set()

    def _row(self, request_id: int) -> RequestRow | None:
        return self.pending.get(request_id) or self._store.requests.get(request_id)

    def _rows(self) -> list[RequestRow]:
        ids = sorted(self._store.requests.keys() | self.pending.keys())
        return [row for i in ids if (row := self._row(i)) is not None]

    def _lock_free(self, request_id: int) -> bool:
        lock = self._store.locks.get(request_id)
        return request_id in self.held or lock is None or not lock.locked()

    async def _hold(self, request_id: int) -> None:
        if request_id in self.held:
            return
        await _acquire(self._store.locks, request_id, f"request #{request_id}")
        self.held.add(request_id)

    async def _writable(self, request_id: int) -> RequestRow | None:
        await self._hold(request_id)
        row = self._row(request_id)
        if row is None:
            return None
        if request_id not in self.pending:
            self.pending[request_id] = row = replace(row)
        return row

    def unlock(self) -> None:
        for request_id in self.held:
            self._store.locks[request_id].release()
        self.held.clear()
        for server_id in self.held_servers:
            self._store.server_locks[server_id].release()
        self.held_servers.clear()

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
    ) -> OperationRequest:
        request = OperationRequest(
            id=self._store.next_id("requests"),
            kind=kind,
            action=action,
            status=status,
            requester_id=requester_id,
            channel_id=channel_id,
            server=server,
            target_id=target_id,
            target_name=target_name,
            reason=reason,
            created_at=at,
            updated_at=at,
            expires_at=expires_at,
            required_approvals=required_approvals,
            asked=asked or Asked(),
            outcome=Outcome(),
        )
        self.pending[request.id] = RequestRow(request)
        await self._hold(request.id)
        return request

    async def get(self, request_id: int) -> OperationRequest | None:
        row = self._row(request_id)
        return None if row is None else row.request

    async def lock(self, request_id: int) -> OperationRequest | None:
        await self._hold(request_id)
        return await self.get(request_id)

    async def lock_restores(self, server_id: int) -> list[OperationRequest]:
        """The server's lock (PostgreSQL's advisory lock), then its restores not FINAL, each
        row held (FOR UPDATE), oldest first."""
        if server_id not in self.held_servers:
            await _acquire(self._store.server_locks, server_id, f"server {server_id}")
            self.held_servers.add(server_id)
        found = []
        for row in self._rows():
            request = row.request
            if (
                request.action is Action.RESTORE
                and request.server is not None
                and request.server.id == server_id
                and request.status not in FINAL
            ):
                await self._hold(request.id)
                fresh = self._row(request.id)
                if fresh is not None and fresh.request.status not in FINAL:
                    found.append(fresh.request)
        await asyncio.sleep(0)  # a database answers later: others run meanwhile
        return found

    async def apply(
        self, transition: Transition, *, holder: str | None = None, **changes: Any
    ) -> bool:
        """Compare-and-set on the status (and the lease's holder, when given), with the
        move's audit row when it wins."""
        _check_changeable(changes)
        row = await self._writable(transition.request_id)
        if row is None or row.request.status is not transition.source:
            return False
        if holder is not None and row.lease_owner != holder:
            return False
        if transition.target in UNDER_WAY:
            self._check_one_restore(row.request)
        _set(row, changes)
        row.request = replace(row.request, status=transition.target, updated_at=transition.at)
        self._audit.record(
            "transition",
            at=transition.at,
            actor_id=transition.actor_id,
            request_id=transition.request_id,
            detail=transition.audit_detail(),
        )
        return True

    def _check_one_restore(self, request: OperationRequest) -> None:
        """The database's one-restore-per-server index."""
        if request.action is not Action.RESTORE or request.server is None:
            return
        for other in self._rows():
            if (
                other.request.id != request.id
                and other.request.action is Action.RESTORE
                and other.request.server is not None
                and other.request.server.id == request.server.id
                and other.request.status in UNDER_WAY
            ):
                raise RestoreUnderWay(
                    "Another restore of this server is already under way; this one was not started."
                )

    async def change(self, request_id: int, **changes: Any) -> None:
        _check_changeable(changes)
        row = await self._writable(request_id)
        if row is not None:
            _set(row, changes)

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
        """Set fields of an executing request only while `owner` holds its lease."""
        _check_changeable(changes)
        row = await self._writable(request_id)
        if row is None or row.request.status is not status or row.lease_owner != owner:
            return False
        _set(row, changes)
        row.request = replace(row.request, updated_at=at)
        if detail is not None:
            self._audit.record("safety_snapshot", at=at, request_id=request_id, detail=detail)
        return True

    async def renew(self, request_id: int, owner: str, until: datetime) -> None:
        row = self._row(request_id)
        if row is not None and row.lease_owner == owner:
            await self.change(request_id, lease_until=until)

    async def restores_of(self, kind: Kind, target_id: int) -> list[OperationRequest]:
        return [
            row.request
            for row in self._rows()
            if row.request.action is Action.RESTORE
            and row.request.kind is kind
            and row.request.target_id == target_id
            and row.request.status in (UNDER_WAY | {Status.PENDING_APPROVAL})
        ]

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
        def due(row: RequestRow) -> bool:
            request = row.request
            return (
                request.status in statuses
                and (not safety_due or (row.safety_delete_at or now + lease) <= now)
                and (row.next_check_at is None or row.next_check_at <= now)
                and (row.lease_until is None or row.lease_until < now)
                and (
                    expired_before is None
                    or (request.expires_at is not None and request.expires_at <= expired_before)
                )
                and request.id not in exclude
                and self._lock_free(request.id)  # SKIP LOCKED
            )

        never = datetime.min.replace(tzinfo=UTC)
        rows = sorted(
            (row for row in self._rows() if due(row)),
            key=lambda row: (row.next_check_at or never, row.request.id),
        )[:limit]
        claimed = []
        for found in rows:
            row = await self._writable(found.request.id)
            assert row is not None
            row.lease_owner, row.lease_until = owner, now + lease
            claimed.append(row.request)
        return claimed

    async def release(self, request_ids: Collection[int], owner: str) -> None:
        for request_id in request_ids:
            row = self._row(request_id)
            if row is not None and row.lease_owner == owner:
                await self.change(request_id, lease_owner=None, lease_until=None)

    async def release_all(self, owner: str) -> None:
        await self.release([row.request.id for row in self._rows()], owner)

    async def in_status(self, *statuses: Status) -> list[OperationRequest]:
        return [row.request for row in self._rows() if row.request.status in statuses]

    async def recent(self, limit: int, statuses: Collection[Status]) -> list[OperationRequest]:
        found = [row.request for row in self._rows() if row.request.status in statuses]
        found.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
        return found[:limit]


async def _acquire(locks: dict[int, asyncio.Lock], key: int, what: str) -> None:
    lock = locks.setdefault(key, asyncio.Lock())
    try:
        # a free lock is taken at once; a taken one is waited for, but not for ever
        await asyncio.wait_for(lock.acquire(), LOCK_WAIT if lock.locked() else None)
    except TimeoutError:
        raise AssertionError(f"{what} stayed locked by another unit of work") from None


def _check_changeable(changes: dict[str, Any]) -> None:
    unknown = changes.keys() - CHANGEABLE
    if unknown:
        raise TypeError(f"requests cannot change {sorted(unknown)} (a status moves by apply)")


def _set(row: RequestRow, changes: dict[str, Any]) -> None:
    for name in changes.keys() & ROW_ONLY:
        setattr(row, name, changes[name])
    fields = {name: value for name, value in changes.items() if name not in ROW_ONLY}
    if fields:
        row.request = replace(row.request, **fields)


class FakeOutbox:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.pending: dict[int, OutboxRow] = {}
        self.added = 0

    def _row(self, item_id: int) -> OutboxRow | None:
        return self.pending.get(item_id) or self._store.outbox.get(item_id)

    def _writable(self, item_id: int) -> OutboxRow | None:
        row = self._row(item_id)
        if row is not None and item_id not in self.pending:
            self.pending[item_id] = row = replace(row)
        return row

    def add(
        self, kind: str, payload: dict[str, Any], *, at: datetime, request_id: int | None = None
    ) -> None:
        self.added += 1
        item_id = self._store.next_id("outbox")
        self.pending[item_id] = OutboxRow(item_id, request_id, kind, dict(payload), at, at)

    async def claim_due(
        self, *, now: datetime, owner: str, lease: timedelta, limit: int = 50
    ) -> list[OutboxRow]:
        """Due rows oldest first, but never one whose request has an older row pending."""
        rows = [
            r
            for i in sorted(self._store.outbox.keys() | self.pending.keys())
            if (r := self._row(i))
        ]
        claimed: list[OutboxRow] = []
        waiting: set[int | None] = set()
        for row in rows:
            if row.status != "pending":
                continue
            blocked = row.request_id is not None and row.request_id in waiting
            waiting.add(row.request_id)
            if blocked or row.next_attempt_at > now:
                continue
            if row.lease_until is not None and row.lease_until >= now:
                continue
            if len(claimed) < limit:
                mine = self._writable(row.id)
                assert mine is not None
                mine.lease_owner, mine.lease_until = owner, now + lease
                claimed.append(replace(mine))
        return claimed

    def _update(self, item_id: int, **values: Any) -> None:
        row = self._writable(item_id)
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)

    async def release(self, item_ids: Collection[int], owner: str) -> None:
        for item_id in item_ids:
            row = self._row(item_id)
            if row is not None and row.lease_owner == owner:
                self._update(item_id, lease_owner=None, lease_until=None)

    async def release_all(self, owner: str) -> None:
        await self.release(list(self._store.outbox.keys() | self.pending.keys()), owner)

    async def mark_sent(self, item_id: int, *, at: datetime) -> None:
        self._update(item_id, status="sent", lease_owner=None, lease_until=None)

    async def retry_later(self, item_id: int, *, error: str, at: datetime) -> None:
        row = self._row(item_id)
        attempts = 0 if row is None else row.attempts + 1
        self._update(
            item_id,
            attempts=attempts,
            next_attempt_at=at,
            last_error=error[:500],
            lease_owner=None,
            lease_until=None,
        )

    async def mark_failed(self, item_id: int, *, error: str) -> None:
        self._update(
            item_id, status="failed", last_error=error[:500], lease_owner=None, lease_until=None
        )


class FakeApprovals:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.pending: list[tuple[int, Vote]] = []

    async def add(self, request_id: int, voter_id: str, decision: str, *, at: datetime) -> None:
        if any(vote.voter_id == voter_id for vote in await self.votes(request_id)):
            raise AlreadyVoted("You have already voted on this request.")
        self.pending.append((request_id, Vote(voter_id, decision, at)))

    async def votes(self, request_id: int) -> list[Vote]:
        mine = [vote for on, vote in self.pending if on == request_id]
        return [*self._store.votes.get(request_id, []), *mine]


class FakeDeliveries:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.pending: dict[str, datetime] = {}
        self.forgotten: set[str] = set()

    async def first_time(self, key: str, *, at: datetime) -> bool:
        known = (key in self._store.deliveries and key not in self.forgotten) or key in self.pending
        if not known:
            self.pending[key] = at
        return not known

    async def forget_before(self, moment: datetime) -> int:
        old = {key for key, at in self._store.deliveries.items() if at < moment} - self.forgotten
        old_pending = {key for key, at in self.pending.items() if at < moment}
        for key in old_pending:
            del self.pending[key]
        self.forgotten |= old
        return len(old) + len(old_pending)


class FakeUnitOfWork:
    """`async with uow: ...; await uow.commit()` over a shared MemoryStore."""

    audit: FakeAuditLog
    requests: FakeRequests
    outbox: FakeOutbox
    approvals: FakeApprovals
    deliveries: FakeDeliveries

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.committed = False
        self._begin()

    def _begin(self) -> None:
        self.audit = FakeAuditLog()
        self.requests = FakeRequests(self.store, self.audit)
        self.outbox = FakeOutbox(self.store)
        self.approvals = FakeApprovals(self.store)
        self.deliveries = FakeDeliveries(self.store)

    async def __aenter__(self) -> Self:
        self._begin()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.requests.unlock()  # what was not committed is dropped with the repositories
        self._begin()

    async def commit(self) -> None:
        store = self.store
        store.requests.update(self.requests.pending)
        store.audit.extend(self.audit.pending)
        store.outbox.update(self.outbox.pending)
        for request_id, vote in self.approvals.pending:
            store.votes.setdefault(request_id, []).append(vote)
        for key in self.deliveries.forgotten:
            store.deliveries.pop(key, None)
        store.deliveries.update(self.deliveries.pending)
        store.commits += 1
        if self.outbox.added:
            store.wakeups += 1
        self.committed = True
        self.requests.unlock()
        self._begin()  # a new transaction, as a session after commit


def factory(store: MemoryStore) -> Callable[[], FakeUnitOfWork]:
    """What `Lifecycle(uow=...)` takes: a new unit of work over `store` at each call."""
    return lambda: FakeUnitOfWork(store)


# -- VPS.org ---------------------------------------------------------------------------------

EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeVps:
    """VPS.org in three dicts. Every call is recorded as (method, path) as the client names it,
    failed ones too (they were sent). `fail_next(name, error)` makes the next call of method
    `name` raise `error`; with `after=True` the change is made first (the answer is lost)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: EPOCH) -> None:
        self.clock = clock
        self.servers: dict[int, Server] = {}
        self.snapshots: dict[int, Snapshot] = {}
        self.backups: dict[int, Backup] = {}
        self.calls: list[tuple[str, str]] = []
        self._failures: dict[str, tuple[VpsApiError, bool]] = {}
        self._ids = 1000

    # -- test setup --------------------------------------------------------------------------

    def fail_next(self, name: str, error: VpsApiError, *, after: bool = False) -> None:
        assert callable(getattr(self, name, None)), name
        self._failures[name] = (error, after)

    def add_server(self, server_id: int, name: str, status: str = "running") -> Server:
        self.servers[server_id] = Server(server_id, name, status)
        return self.servers[server_id]

    def add_snapshot(
        self, server_id: int, name: str, *, status: str = COMPLETED, size_mb: int | None = 2048
    ) -> Snapshot:
        item = Snapshot(self._id(), self._ref(server_id), name, status, size_mb, self.clock())
        self.snapshots[item.id] = item
        return item

    def add_backup(
        self,
        server_id: int,
        description: str = "",
        *,
        backup_type: BackupType = BackupType.MANUAL,
        status: str = COMPLETED,
        size_mb: int | None = 4096,
    ) -> Backup:
        item = Backup(
            self._id(),
            self._ref(server_id),
            backup_type,
            status,
            size_mb,
            self.clock(),
            None,
            description,
        )
        self.backups[item.id] = item
        return item

    def paths(self, method: str) -> list[str]:
        return [path for sent, path in self.calls if sent == method]

    # -- the API -----------------------------------------------------------------------------

    async def list_servers(self) -> Listing[Server]:
        self._sent("list_servers", "GET", "/servers/")
        return Listing(tuple(self.servers.values()))

    async def get_server(self, server_id: int) -> Server:
        path = f"/servers/{server_id}/"
        self._sent("get_server", "GET", path)
        return self._server(server_id, "GET", path)

    async def list_snapshots(self, server_id: int | None = None) -> Listing[Snapshot]:
        self._sent("list_snapshots", "GET", _query("/snapshots/", server_id=server_id))
        return Listing(
            tuple(s for s in self.snapshots.values() if server_id in (None, s.server.id))
        )

    async def create_snapshot(
        self, server_id: int, name: str, description: str = ""
    ) -> Started[Snapshot]:
        path = "/snapshots/"

        def make() -> Snapshot:
            ref = self._server(server_id, "POST", path).ref
            if sum(s.server.id == server_id for s in self.snapshots.values()) >= (
                MAX_SNAPSHOTS_PER_SERVER
            ):
                raise LimitReached("Snapshot limit reached", status=400, method="POST", path=path)
            item = Snapshot(self._id(), ref, name, IN_PROGRESS, None, self.clock(), description)
            self.snapshots[item.id] = item
            return item

        item = self._mutate("create_snapshot", "POST", path, make)
        return Started(item, "Snapshot creation started", Call("POST", path, 201))

    async def restore_snapshot(self, snapshot_id: int) -> RestoreStarted:
        path = f"/snapshots/{snapshot_id}/restore/"

        def restore() -> Server:
            snapshot = self.snapshots.get(snapshot_id)
            if snapshot is None:
                raise NotFound("Not found.", status=404, method="POST", path=path)
            return self._restoring(snapshot.server.id, path)

        server = self._mutate("restore_snapshot", "POST", path, restore)
        message = "Server is being restored from snapshot. This may take 5-15 minutes."
        return RestoreStarted(server, message, Call("POST", path, 200))

    async def delete_snapshot(self, snapshot_id: int) -> Call:
        path = f"/snapshots/{snapshot_id}/"
        self._mutate(
            "delete_snapshot", "DELETE", path, lambda: _pop(self.snapshots, snapshot_id, path)
        )
        return Call("DELETE", path, 204)

    async def list_backups(
        self, server_id: int | None = None, backup_type: BackupType | None = None
    ) -> Listing[Backup]:
        path = _query("/backups/", server_id=server_id, backup_type=backup_type)
        self._sent("list_backups", "GET", path)
        return Listing(
            tuple(
                b
                for b in self.backups.values()
                if server_id in (None, b.server.id) and backup_type in (None, b.backup_type)
            )
        )

    async def create_backup(self, server_id: int, description: str = "") -> Started[Backup]:
        path = "/backups/"

        def make() -> Backup:
            ref = self._server(server_id, "POST", path).ref
            manual = [
                b
                for b in self.backups.values()
                if b.server.id == server_id and b.backup_type == BackupType.MANUAL
            ]
            if len(manual) >= MAX_MANUAL_BACKUPS_PER_SERVER:
                raise LimitReached("Backup limit reached", status=400, method="POST", path=path)
            item = Backup(
                self._id(),
                ref,
                BackupType.MANUAL,
                IN_PROGRESS,
                None,
                self.clock(),
                None,
                description,
            )
            self.backups[item.id] = item
            return item

        item = self._mutate("create_backup", "POST", path, make)
        return Started(item, "Backup creation started", Call("POST", path, 201))

    async def restore_backup(self, server_id: int, backup_id: int) -> RestoreStarted:
        path = f"/servers/{server_id}/restore/"

        def restore() -> Server:
            backup = self.backups.get(backup_id)
            if backup is None or backup.server.id != server_id:
                raise NotFound("Not found.", status=404, method="POST", path=path)
            return self._restoring(server_id, path)

        server = self._mutate("restore_backup", "POST", path, restore)
        return RestoreStarted(
            server, "Server is being restored from backup.", Call("POST", path, 200)
        )

    async def delete_backup(self, backup_id: int) -> Call:
        path = f"/backups/{backup_id}/"
        self._mutate("delete_backup", "DELETE", path, lambda: _pop(self.backups, backup_id, path))
        return Call("DELETE", path, 204)

    # -- plumbing ----------------------------------------------------------------------------

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def _ref(self, server_id: int) -> ServerRef:
        return self.servers[server_id].ref

    def _server(self, server_id: int, method: str, path: str) -> Server:
        server = self.servers.get(server_id)
        if server is None:
            raise NotFound("Not found.", status=404, method=method, path=path)
        return server

    def _restoring(self, server_id: int, path: str) -> Server:
        server = self._server(server_id, "POST", path)
        self.servers[server_id] = replace(server, status="restoring")
        return self.servers[server_id]

    def _sent(self, name: str, method: str, path: str) -> None:
        """Record a call; raise the failure planned for it, if any (a read changes nothing)."""
        self.calls.append((method, path))
        planned = self._failures.pop(name, None)
        if planned is not None:
            raise _named(planned[0], method, path)

    def _mutate(self, name: str, method: str, path: str, change: Callable[[], T]) -> T:
        self.calls.append((method, path))
        planned = self._failures.pop(name, None)
        if planned is None:
            return change()
        error, after = planned
        if after:
            change()  # VPS.org acted, but its answer never arrived
        raise _named(error, method, path)


def _named(error: VpsApiError, method: str, path: str) -> VpsApiError:
    """The client names every error's call: `outcome_unknown` depends on the method."""
    error.method = error.method or method
    error.path = error.path or path
    return error


def _query(path: str, **params: object) -> str:
    given = [f"{name}={value}" for name, value in params.items() if value is not None]
    return path + ("?" + "&".join(given) if given else "")


def _pop(items: dict[int, Any], item_id: int, path: str) -> None:
    if items.pop(item_id, None) is None:
        raise NotFound("Not found.", status=404, method="DELETE", path=path)
