"""The ports the use cases need: the VPS.org API, the unit of work, the clock."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

from bot.domain.approvals import Vote
from bot.domain.lifecycle import Status, Transition
from bot.domain.model import (
    Action,
    Backup,
    BackupType,
    Call,
    Kind,
    Listing,
    OperationRequest,
    RestoreStarted,
    Schedule,
    Server,
    ServerRef,
    Snapshot,
    Started,
)
from bot.domain.outcomes import Asked

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class VpsApi(Protocol):
    """VPS.org; every method raises a `bot.domain.errors.VpsApiError` subclass on failure."""

    async def list_servers(self) -> Listing[Server]: ...

    async def get_server(self, server_id: int) -> Server: ...

    async def list_snapshots(self, server_id: int | None = None) -> Listing[Snapshot]: ...

    async def create_snapshot(
        self, server_id: int, name: str, description: str = ""
    ) -> Started[Snapshot]: ...

    async def restore_snapshot(self, snapshot_id: int) -> RestoreStarted: ...

    async def delete_snapshot(self, snapshot_id: int) -> Call: ...

    async def list_backups(
        self, server_id: int | None = None, backup_type: BackupType | None = None
    ) -> Listing[Backup]: ...

    async def create_backup(self, server_id: int, description: str = "") -> Started[Backup]: ...

    async def restore_backup(self, server_id: int, backup_id: int) -> RestoreStarted: ...

    async def delete_backup(self, backup_id: int) -> Call: ...


class AuditEvent(Protocol):
    """One audit row as the storage reads it back."""

    @property
    def id(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def event(self) -> str: ...
    @property
    def actor_id(self) -> str | None: ...
    @property
    def channel_id(self) -> str | None: ...
    @property
    def request_id(self) -> int | None: ...
    @property
    def detail(self) -> dict[str, Any]: ...


class AuditLog(Protocol):
    async def events(
        self,
        event: str | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
    ) -> Sequence[AuditEvent]:
        """Every row, or those of one event, one request, or written at or after `since`, in
        the order they were written."""
        ...

    def record(
        self,
        event: str,
        *,
        at: datetime,
        actor_id: str | None = None,
        channel_id: str | None = None,
        request_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...


class RequestStore(Protocol):
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
    ) -> OperationRequest: ...

    async def get(self, request_id: int) -> OperationRequest | None: ...

    async def lock(self, request_id: int) -> OperationRequest | None: ...

    async def lock_restores(self, server_id: int) -> list[OperationRequest]:
        """Hold the server's restores until commit (no other transaction adds or moves one
        meanwhile) and read those not in a FINAL status, oldest first."""
        ...

    async def apply(
        self, transition: Transition, *, holder: str | None = None, **changes: Any
    ) -> bool:
        """Compare-and-set the move (and, with `holder`, only while that instance holds the
        lease), and write its audit row with it; True when it won."""
        ...

    async def change(self, request_id: int, **changes: Any) -> None: ...

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
        """Set fields of a request in `status` only while `owner` holds its lease, with a
        `safety_snapshot` audit row (unless `detail` is None); True when it did."""
        ...

    async def renew(self, request_id: int, owner: str, until: datetime) -> None:
        """Extend `owner`'s lease on the request; nothing when it is not (or no longer) theirs."""
        ...

    async def restores_of(self, kind: Kind, target_id: int) -> list[OperationRequest]:
        """The restores from this snapshot or backup waiting for approval or under way."""
        ...

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
    ) -> list[OperationRequest]: ...

    async def release(self, request_ids: Collection[int], owner: str) -> None: ...

    async def release_all(self, owner: str) -> None: ...

    async def kept_by(self, schedule_id: int) -> list[OperationRequest]:
        """What a schedule made and still keeps (succeeded runs not pruned), oldest first."""
        ...

    async def over_keep(self, now: datetime) -> list[int]:
        """The active schedules keeping more than their `keep`, unless put off until later."""
        ...

    async def runs(
        self, schedule_ids: Collection[int], per_schedule: int = 1
    ) -> list[OperationRequest]:
        """The latest runs of these schedules (at most `per_schedule` each), newest first."""
        ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def in_status(self, *statuses: Status) -> list[OperationRequest]: ...

    async def recent(self, limit: int, statuses: Collection[Status]) -> list[OperationRequest]:
        """At most `limit` requests in `statuses`, the latest changed first."""
        ...


class OutboxEntry(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def request_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def attempts(self) -> int: ...


class Outbox(Protocol):
    def add(
        self, kind: str, payload: dict[str, Any], *, at: datetime, request_id: int | None = None
    ) -> None: ...

    async def claim_due(
        self, *, now: datetime, owner: str, lease: timedelta, limit: int = 50
    ) -> list[Any]: ...

    async def release(self, item_ids: Collection[int], owner: str) -> None: ...

    async def release_all(self, owner: str) -> None: ...

    async def mark_sent(self, item_id: int, *, at: datetime) -> None: ...

    async def retry_later(self, item_id: int, *, error: str, at: datetime) -> None: ...

    async def mark_failed(self, item_id: int, *, error: str) -> None: ...

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many messages wait to be delivered, and when the oldest was queued."""
        ...


class ApprovalStore(Protocol):
    async def add(self, request_id: int, voter_id: str, decision: str, *, at: datetime) -> None: ...

    async def votes(self, request_id: int) -> list[Vote]: ...


class DeliveryLog(Protocol):
    """The Slack requests already acted on, by identity (see services.commands.CommandLog)."""

    async def first_time(self, key: str, *, at: datetime) -> bool: ...

    async def seen(self, key: str) -> bool: ...

    async def forget_before(self, moment: datetime) -> int: ...


class ScheduleStore(Protocol):
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
    ) -> Schedule: ...

    async def get(self, schedule_id: int) -> Schedule | None: ...

    async def active(self, server_id: int | None = None) -> list[Schedule]: ...

    async def remove(self, schedule_id: int, *, by: str, at: datetime) -> bool: ...

    async def lock_server(self, server_id: int) -> None:
        """Hold the server's schedules until commit (adds are decided one at a time)."""
        ...

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
        """Lease the active schedules that are due (or, without `due`, any one not leased)."""
        ...

    async def hand_back(
        self, schedule_id: int, owner: str, *, active: bool = False, **changes: Any
    ) -> bool:
        """Release `owner`'s lease with `changes`; False when it is no longer theirs (or, with
        `active`, the schedule was removed)."""
        ...

    async def renew(self, schedule_id: int, owner: str, *, now: datetime, until: datetime) -> bool:
        """Extend `owner`'s live lease on an active schedule; False: its work must stop."""
        ...

    async def release_all(self, owner: str) -> None: ...


class HealthStore(Protocol):
    async def states(self) -> dict[int, tuple[str, str]]:
        """server id -> (name, state) for every server ever checked."""
        ...

    async def change(
        self, server_id: int, name: str, *, old: str | None, new: str, at: datetime
    ) -> bool:
        """Compare-and-set the server's state; False when another check moved it first."""
        ...

    async def forget(self, server_id: int) -> None: ...


class JobStore(Protocol):
    async def take_turn(self, name: str, *, now: datetime, next_run_at: datetime) -> bool:
        """True for the one caller that finds the job due and moves it to `next_run_at`."""
        ...


class UnitOfWork(Protocol):
    @property
    def audit(self) -> AuditLog: ...
    @property
    def requests(self) -> RequestStore: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def approvals(self) -> ApprovalStore: ...
    @property
    def deliveries(self) -> DeliveryLog: ...
    @property
    def schedules(self) -> ScheduleStore: ...
    @property
    def health(self) -> HealthStore: ...
    @property
    def jobs(self) -> JobStore: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where Slack put a message (None where it does not say)."""

    channel: str | None = None
    ts: str | None = None


class DeliveryError(Exception):
    """Slack did not take a message; `retryable` when trying again later may work.

    `code` is Slack's error code (`not_in_channel`, `ratelimited`…), "" when Slack gave none
    (unreachable, or no request behind the message)."""

    # The bot cannot post in that channel at all: trying again will not help, the people there
    # never see the message, and only someone fixing the channel (an invite) can change that.
    CHANNEL_ERRORS = frozenset(
        {
            "not_in_channel",
            "channel_not_found",
            "is_archived",
            "channel_is_archived",
            "restricted_action",
        }
    )

    def __init__(self, reason: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.code = code

    @property
    def channel_unusable(self) -> bool:
        """Slack refused the channel itself (not this one message)."""
        return not self.retryable and self.code in self.CHANNEL_ERRORS


class Notifier(Protocol):
    """Delivers one outbox entry to Slack: post, update, reply (in the thread) or dm."""

    async def deliver(
        self, kind: str, payload: dict[str, Any], request: OperationRequest | None
    ) -> Delivery: ...


class Directory(Protocol):
    """Who belongs to a Slack user group (for approvers and operators given as groups)."""

    async def members(self, group_id: str) -> frozenset[str]: ...
