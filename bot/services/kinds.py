"""Snapshots and backups, side by side: one row per kind of the calls and limits that differ,
so no use case branches on the kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain.errors import NotFound
from bot.domain.model import (
    Backup,
    BackupType,
    Call,
    Kind,
    Listing,
    OperationRequest,
    RestoreStarted,
    Snapshot,
    Started,
)
from bot.domain.operations import MAX_MANUAL_BACKUPS_PER_SERVER, MAX_SNAPSHOTS_PER_SERVER
from bot.services.ports import VpsApi

Item = Snapshot | Backup


@dataclass(frozen=True)
class KindCalls:
    """How one kind is listed, created, restored and deleted at VPS.org, and its limit."""

    kind: Kind
    limit: int  # per server, of the items `counted` lists
    counted_noun: str  # what the limit counts: "snapshots", "manual backups"
    listing: Callable[[VpsApi, int | None], Awaitable[tuple[Item, ...]]]  # all of a server's
    counted: Callable[[VpsApi, int], Awaitable[Listing[Item]]]  # the ones the limit counts
    # what a create makes, of one server or (None) the whole account, as listed (the tracker)
    made: Callable[[VpsApi, int | None], Awaitable[Listing[Item]]]
    create: Callable[[VpsApi, int, str, str], Awaitable[Started[Item]]]  # server, name, descr.
    restore: Callable[[VpsApi, OperationRequest], Awaitable[RestoreStarted]]
    delete: Callable[[VpsApi, int], Awaitable[Call]]
    name: Callable[[Item], str]  # how people name one: a snapshot's name, a backup's description

    def matches(self, item: Item, name: str, description: str) -> bool:
        """Whether `item` is the one a create with this name and description made."""
        return self.name(item) == (name if self.kind is Kind.SNAPSHOT else description)


async def _snapshots(vps: VpsApi, server_id: int | None) -> Listing[Item]:
    return await vps.list_snapshots(server_id)


async def _backups(vps: VpsApi, server_id: int | None) -> tuple[Item, ...]:
    return (await vps.list_backups(server_id)).items


async def _manual_backups(vps: VpsApi, server_id: int) -> Listing[Item]:
    return await vps.list_backups(server_id, BackupType.MANUAL)


async def _made_backups(vps: VpsApi, server_id: int | None) -> Listing[Item]:
    """A server's backups of every type (as ever: what VPS.org says of one it made is read
    whatever type it gives it); account-wide, the manual ones (what creates make, far fewer)."""
    return await vps.list_backups(server_id, BackupType.MANUAL if server_id is None else None)


async def _all_snapshots(vps: VpsApi, server_id: int | None) -> tuple[Item, ...]:
    return (await vps.list_snapshots(server_id)).items


async def _create_snapshot(
    vps: VpsApi, server_id: int, name: str, description: str
) -> Started[Item]:
    return await vps.create_snapshot(server_id, name, description)


async def _create_backup(
    vps: VpsApi, server_id: int, _name: str, description: str
) -> Started[Item]:
    return await vps.create_backup(server_id, description)


async def _restore_snapshot(vps: VpsApi, request: OperationRequest) -> RestoreStarted:
    assert request.target_id is not None
    return await vps.restore_snapshot(request.target_id)


async def _restore_backup(vps: VpsApi, request: OperationRequest) -> RestoreStarted:
    assert request.target_id is not None
    assert request.server is not None
    return await vps.restore_backup(request.server.id, request.target_id)


async def _delete_snapshot(vps: VpsApi, target_id: int) -> Call:
    return await vps.delete_snapshot(target_id)


async def _delete_backup(vps: VpsApi, target_id: int) -> Call:
    return await vps.delete_backup(target_id)


def _snapshot_name(item: Item) -> str:
    return item.name if isinstance(item, Snapshot) else ""


def _backup_name(item: Item) -> str:
    return item.description


KINDS: dict[Kind, KindCalls] = {
    Kind.SNAPSHOT: KindCalls(
        Kind.SNAPSHOT,
        MAX_SNAPSHOTS_PER_SERVER,
        "snapshots",
        _all_snapshots,
        _snapshots,
        _snapshots,
        _create_snapshot,
        _restore_snapshot,
        _delete_snapshot,
        _snapshot_name,
    ),
    Kind.BACKUP: KindCalls(
        Kind.BACKUP,
        MAX_MANUAL_BACKUPS_PER_SERVER,
        "manual backups",
        _backups,
        _manual_backups,
        _made_backups,
        _create_backup,
        _restore_backup,
        _delete_backup,
        _backup_name,
    ),
}


def target_name(item: Item) -> str:
    return KINDS[Kind.SNAPSHOT if isinstance(item, Snapshot) else Kind.BACKUP].name(item)


async def find_target(
    vps: VpsApi, kind: Kind, target_id: int, server_id: int | None = None
) -> Item:
    """Find a snapshot or backup by id (the API has no single-object GET: list and pick),
    listing only `server_id`'s when the server is known."""
    found = next((i for i in await KINDS[kind].listing(vps, server_id) if i.id == target_id), None)
    if found is None:
        raise NotFound(
            f"{kind.value.capitalize()} {target_id} does not exist on VPS.org.", status=404
        )
    return found
