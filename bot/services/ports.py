"""The ports the use cases need: the VPS.org API, the unit of work, the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, Self

from bot.domain.model import (
    Backup,
    BackupType,
    Listing,
    RestoreStarted,
    Server,
    Snapshot,
    Started,
)

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

    async def delete_snapshot(self, snapshot_id: int) -> None: ...

    async def list_backups(
        self, server_id: int | None = None, backup_type: BackupType | None = None
    ) -> Listing[Backup]: ...

    async def create_backup(self, server_id: int, description: str = "") -> Started[Backup]: ...

    async def restore_backup(self, server_id: int, backup_id: int) -> RestoreStarted: ...

    async def delete_backup(self, backup_id: int) -> None: ...


class AuditLog(Protocol):
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


class UnitOfWork(Protocol):
    @property
    def audit(self) -> AuditLog: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
