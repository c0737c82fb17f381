"""Read use cases: list snapshots and backups, for one server or all of them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.errors import NotFound
from bot.domain.model import Backup, BackupType, ServerRef, Snapshot
from bot.services.ports import VpsApi


@dataclass(frozen=True, slots=True)
class SnapshotList:
    server: ServerRef | None  # None: every server
    snapshots: tuple[Snapshot, ...]  # newest first
    partial: bool = False


@dataclass(frozen=True, slots=True)
class BackupList:
    server: ServerRef | None
    backup_type: BackupType | None
    backups: tuple[Backup, ...]  # newest first
    partial: bool = False


async def _server_ref(vps: VpsApi, server_id: int) -> ServerRef:
    """Name an empty listing's server, and tell a missing server from one with nothing on it."""
    try:
        return (await vps.get_server(server_id)).ref
    except NotFound as exc:
        raise NotFound(
            f"Server {server_id} does not exist on VPS.org.",
            status=exc.status,
            method=exc.method,
            path=exc.path,
        ) from None


async def list_snapshots(vps: VpsApi, server_id: int | None) -> SnapshotList:
    listing = await vps.list_snapshots(server_id)
    items = tuple(sorted(listing.items, key=lambda s: (s.created_at, s.id), reverse=True))
    server = None
    if server_id is not None:
        server = items[0].server if items else await _server_ref(vps, server_id)
    return SnapshotList(server, items, listing.partial)


async def list_backups(
    vps: VpsApi, server_id: int | None, backup_type: BackupType | None
) -> BackupList:
    listing = await vps.list_backups(server_id, backup_type)
    items = tuple(sorted(listing.items, key=lambda b: (b.created_at, b.id), reverse=True))
    server = None
    if server_id is not None:
        server = items[0].server if items else await _server_ref(vps, server_id)
    return BackupList(server, backup_type, items, listing.partial)
