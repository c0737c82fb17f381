"""Value objects for what VPS.org holds: servers, snapshots and backups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Kind(StrEnum):
    """What an operation acts on."""

    SNAPSHOT = "snapshot"
    BACKUP = "backup"


class BackupType(StrEnum):
    MANUAL = "manual"
    AUTOMATIC = "automatic"


IN_PROGRESS = "in_progress"
COMPLETED = "completed"


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
    """A list read from the API; `partial` when the API said it holds more than it returned."""

    items: tuple[T, ...]
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Started(Generic[T]):
    """A create the API accepted: the new object (still in progress) and the API's own message."""

    item: T
    message: str


@dataclass(frozen=True, slots=True)
class RestoreStarted:
    server: Server
    message: str


class Action(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    RESTORE = "restore"


class Status(StrEnum):
    """Where a request stands; see the state machine in ARCHITECTURE.md."""

    PENDING_APPROVAL = "pending_approval"
    PENDING_CONFIRMATION = "pending_confirmation"
    APPROVED = "approved"
    EXECUTING = "executing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    NEEDS_ATTENTION = "needs_attention"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.DENIED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.NEEDS_ATTENTION,
    }
)


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
    params: dict[str, object] = field(default_factory=dict)
    result: dict[str, object] = field(default_factory=dict)

    @property
    def target_label(self) -> str:
        """`snapshot before-update (801)`, `backup 499`: how people name the target."""
        name = f" {self.target_name}" if self.target_name else ""
        ident = (
            f" ({self.target_id})"
            if self.target_id is not None and name
            else (f" {self.target_id}" if self.target_id is not None else "")
        )
        return f"{self.kind.value}{name}{ident}"
