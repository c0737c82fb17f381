"""Value objects for what VPS.org holds: servers, snapshots and backups."""

from __future__ import annotations

from dataclasses import dataclass
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
