"""Value objects for what VPS.org holds: servers, snapshots and backups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from bot.domain.lifecycle import Event, Status, Transition, move
from bot.domain.outcomes import Asked, Outcome, SafetyStep

T = TypeVar("T", covariant=True)  # read-only records: a Listing[Snapshot] is a Listing[Item]


class Kind(StrEnum):
    """What an operation acts on."""

    SNAPSHOT = "snapshot"
    BACKUP = "backup"


class BackupType(StrEnum):
    MANUAL = "manual"
    AUTOMATIC = "automatic"


IN_PROGRESS = "in_progress"
COMPLETED = "completed"


# Where a restore that VPS.org accepted can end (the server may have been overwritten).
FINISHED_RESTORE = frozenset({Status.SUCCEEDED, Status.FAILED, Status.NEEDS_ATTENTION})


def safety_name(request_id: int) -> str:
    """The name of the safety snapshot taken before restore request #`request_id`: how the
    bot finds it again after a crash, and knows it for one of its own."""
    return f"pre-restore-{request_id}"


@dataclass(frozen=True, slots=True)
class ServerRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Server:
    id: int
    name: str
    status: str

    @property
    def ref(self) -> ServerRef:
        return ServerRef(self.id, self.name)


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: int
    server: ServerRef
    name: str
    status: str
    size_mb: int | None
    created_at: datetime
    description: str = ""


@dataclass(frozen=True, slots=True)
class Backup:
    id: int
    server: ServerRef
    backup_type: BackupType | str
    status: str
    size_mb: int | None
    created_at: datetime
    expires_at: datetime | None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A list read from the API; `partial` when the API said it holds more than it returned.
    `count` is what the API said it holds, `pages` how many pages were read, `per_page` how
    many items its first page held when there were more (0: it was one page)."""

    items: tuple[T, ...]
    partial: bool = False
    count: int | None = None
    pages: int = 1
    per_page: int = 0


@dataclass(frozen=True, slots=True)
class Call:
    """A call VPS.org answered: what was sent where, and the HTTP status (for the audit)."""

    method: str
    path: str
    status: int


@dataclass(frozen=True, slots=True)
class Started(Generic[T]):
    """A create the API accepted: the new object (still in progress) and the API's own message."""

    item: T
    message: str
    call: Call


@dataclass(frozen=True, slots=True)
class RestoreStarted:
    server: Server
    message: str
    call: Call


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring snapshot or manual backup of one server, keeping `keep` of its own."""

    id: int
    kind: Kind
    server: ServerRef
    channel_id: str
    created_by: str
    when: str  # canonical (bot.domain.schedules.from_text reads it back)
    keep: int
    created_at: datetime
    next_run_at: datetime
    removed_at: datetime | None = None
    removed_by: str | None = None


def run_name(schedule_id: int, stamp: str) -> str:
    """The name of the snapshot a scheduled run takes (`stamp`: YYYYMMDD-HHMM of its run)."""
    return f"auto-{schedule_id}-{stamp}"


def run_description(kind: Kind, schedule_id: int, stamp: str) -> str:
    """The description of what a scheduled run makes: names the schedule (and, for a
    backup, which has no name, is how the bot finds it again)."""
    return f"Scheduled {kind.value} by vpsbot, schedule #{schedule_id}, run {stamp}"


class Action(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """One thing a person asked the bot to do to a server, as stored."""

    id: int
    kind: Kind
    action: Action
    status: Status
    requester_id: str
    channel_id: str
    server: ServerRef | None
    target_id: int | None
    target_name: str
    reason: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    message_ts: str | None = None
    required_approvals: int = 0
    asked: Asked = field(default_factory=Asked)
    outcome: Outcome = field(default_factory=Outcome)

    def move(
        self,
        event: Event,
        *,
        at: datetime,
        actor_id: str | None = None,
        **detail: str | int | bool | list[str] | None,
    ) -> Transition:
        """The transition `event` causes now (IllegalMove when the table has none)."""
        return move(self.id, self.status, event, at=at, actor_id=actor_id, **detail)

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @property
    def undoable(self) -> bool:
        """A finished restore whose safety snapshot is there to go back to: VPS.org accepted
        the restore (it then succeeded, failed, or the bot lost track of it), and the bot has
        not let go of the snapshot."""
        outcome = self.outcome
        restored = self.status in FINISHED_RESTORE and outcome.started_at is not None
        return (
            self.action is Action.RESTORE
            and restored
            and outcome.safety_step is SafetyStep.READY
            and outcome.safety_id is not None
            and outcome.safety_removed is None
        )
