"""Snapshot and backup listings: one section per item, grouped by server, within 50 blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from bot.domain.model import COMPLETED, IN_PROGRESS, Backup, BackupType, ServerRef, Snapshot
from bot.services.listings import BackupList, SnapshotList
from bot.slack.blocks.text import (
    MAX_BLOCKS,
    Block,
    Message,
    ago,
    context,
    safe,
    section,
    server_label,
    size,
    when,
)

MAX_LISTED = 40  # leaves room for headers and the "more" note within 50 blocks
Item = TypeVar("Item", Snapshot, Backup)


def status_label(status: str) -> str:
    if status == COMPLETED:
        return ":white_check_mark: completed"
    if status == IN_PROGRESS:
        return ":hourglass_flowing_sand: in progress"
    return f":x: status: {safe(status, 40)}"


def _snapshot_line(snapshot: Snapshot, now: datetime) -> str:
    name = f"*{safe(snapshot.name, 100)}*" if snapshot.name.strip() else "_unnamed_"
    lines = [
        f"{name} · id `{snapshot.id}` · {status_label(snapshot.status)}",
        f"{size(snapshot.size_mb)} · taken {ago(snapshot.created_at, now)}, "
        f"{when(snapshot.created_at)}",
    ]
    if snapshot.description:
        lines.append(f"_{safe(snapshot.description)}_")
    return "\n".join(lines)


def is_expired(backup: Backup, now: datetime) -> bool:
    """An automatic backup past its retention: VPS.org may still list it as `completed`, but it
    is (about to be) gone."""
    return backup.expires_at is not None and backup.expires_at <= now


def backup_status_label(backup: Backup, now: datetime) -> str:
    """A backup's status, and `expired` rather than a green `completed` past its retention."""
    if backup.status == COMPLETED and is_expired(backup, now):
        return ":hourglass: expired"
    return status_label(backup.status)


def _expiry(backup: Backup, now: datetime) -> str:
    if backup.expires_at is None:
        return "never expires"
    if is_expired(backup, now):
        return f"expired {ago(backup.expires_at, now)}"
    return f"expires {ago(backup.expires_at, now)}"


def _backup_line(backup: Backup, now: datetime) -> str:
    kind = backup.backup_type
    kind_text = kind.value if isinstance(kind, BackupType) else safe(str(kind), 20)
    lines = [
        f"*{kind_text} backup* · id `{backup.id}` · {backup_status_label(backup, now)}",
        f"{size(backup.size_mb)} · taken {ago(backup.created_at, now)}, "
        f"{when(backup.created_at)} · {_expiry(backup, now)}",
    ]
    if backup.description:
        lines.append(f"_{safe(backup.description)}_")
    return "\n".join(lines)


def _grouped(
    items: Sequence[Item], line: Callable[[Item, datetime], str], now: datetime, single_server: bool
) -> list[Block]:
    blocks: list[Block] = []
    current: int | None = None
    for item in items[:MAX_LISTED]:
        if not single_server and item.server.id != current:
            current = item.server.id
            blocks.append(section(f":desktop_computer: {server_label(item.server)}"))
        blocks.append(section(line(item, now)))
    return blocks


def _listing(
    title: str,
    items: Sequence[Item],
    line: Callable[[Item, datetime], str],
    now: datetime,
    server: ServerRef | None,
    partial: bool,
    empty: str,
    narrow_hint: str,
) -> Message:
    count = len(items)
    noun = "item" if count == 1 else "items"
    heading = f"*{title}* of {server_label(server)}" if server else f"*{title}*, all servers"
    blocks: list[Block] = [section(f"{heading}: {count} {noun}")]
    if not items:
        blocks.append(section(empty))
    ordered = items if server else sorted(items, key=lambda i: i.server.id)
    blocks.extend(_grouped(ordered, line, now, single_server=server is not None))
    notes = []
    if count > MAX_LISTED:
        notes.append(f"Showing {MAX_LISTED} of {count}. {narrow_hint}")
    if partial:
        notes.append(
            "This list may be incomplete: VPS.org holds more than it returned, or returned "
            "some that vpsbot could not read."
        )
    if notes:
        blocks.append(context(" ".join(notes)))
    plain_heading = f"{title} of {safe(server.name, 100)} ({server.id})" if server else title
    return Message(f"{plain_heading}: {count} {noun}", blocks[:MAX_BLOCKS])


def snapshot_list(result: SnapshotList, now: datetime) -> Message:
    return _listing(
        "Snapshots",
        result.snapshots,
        _snapshot_line,
        now,
        result.server,
        result.partial,
        "No snapshots.",
        "Use `/snapshot list &lt;server_id&gt;` for one server.",
    )


def backup_list(result: BackupList, now: datetime) -> Message:
    title = f"{result.backup_type.value.capitalize()} backups" if result.backup_type else "Backups"
    return _listing(
        title,
        result.backups,
        _backup_line,
        now,
        result.server,
        result.partial,
        "No backups.",
        "Use `/backup list &lt;server_id&gt; [manual|automatic]` to narrow it.",
    )
