"""What a person can ask for, as typed intents, and the rules for their arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain.model import BackupType, Kind
from bot.domain.schedules import When

MAX_SNAPSHOTS_PER_SERVER = 5
MAX_MANUAL_BACKUPS_PER_SERVER = 10
MAX_SNAPSHOT_NAME = 64
MAX_DESCRIPTION = 500
DEFAULT_AUDIT_DAYS = 30
MAX_AUDIT_DAYS = 3650

_ID = re.compile(r"[0-9]{1,10}")
_SNAPSHOT_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SNAPSHOT_NAME}}}")


def parse_id(text: str) -> int | None:
    """An id is 1-10 ASCII digits with a value above 0; anything else is None."""
    if _ID.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value > 0 else None


def is_snapshot_name(text: str) -> bool:
    """1-64 ASCII letters, digits, '-' or '_' (the documented charset, read conservatively)."""
    return _SNAPSHOT_NAME.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ShowHelp:
    kind: Kind


@dataclass(frozen=True, slots=True)
class ListSnapshots:
    server_id: int | None = None


@dataclass(frozen=True, slots=True)
class ListBackups:
    server_id: int | None = None
    backup_type: BackupType | None = None


@dataclass(frozen=True, slots=True)
class CreateSnapshot:
    server_id: int
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class CreateBackup:
    server_id: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class RequestRestore:
    kind: Kind
    target_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RequestDelete:
    kind: Kind
    target_id: int


@dataclass(frozen=True, slots=True)
class AddSchedule:
    """Take a snapshot or a manual backup of the server at `when`, keeping the newest `keep`."""

    kind: Kind
    server_id: int
    when: When
    keep: int


@dataclass(frozen=True, slots=True)
class ListSchedules:
    kind: Kind
    server_id: int | None = None


@dataclass(frozen=True, slots=True)
class RemoveSchedule:
    kind: Kind
    schedule_id: int


@dataclass(frozen=True, slots=True)
class ShowStatus:
    """The health of the scheduled backups and snapshots, of every server or of one."""

    server_id: int | None = None


Intent = (
    ShowHelp
    | ListSnapshots
    | ListBackups
    | CreateSnapshot
    | CreateBackup
    | RequestRestore
    | RequestDelete
    | AddSchedule
    | ListSchedules
    | RemoveSchedule
    | ShowStatus
)


# -- `/vpsbot`: what the bot has seen and decided, looked up -------------------------------------


@dataclass(frozen=True, slots=True)
class ShowVpsbotHelp:
    pass


@dataclass(frozen=True, slots=True)
class ShowPending:
    """The restore requests waiting for approval."""


@dataclass(frozen=True, slots=True)
class ShowRequest:
    """One request's whole history."""

    request_id: int


@dataclass(frozen=True, slots=True)
class ExportAudit:
    """The audit trail of the last `days` days, as a file."""

    days: int = DEFAULT_AUDIT_DAYS


VpsbotIntent = ShowVpsbotHelp | ShowPending | ShowRequest | ExportAudit
