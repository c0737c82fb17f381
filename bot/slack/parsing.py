"""Command grammar -> typed intents. The help text lives here, beside the grammar it describes."""

from __future__ import annotations

import unicodedata

from bot.domain.errors import UsageError
from bot.domain.model import BackupType, Kind
from bot.domain.operations import (
    MAX_DESCRIPTION,
    MAX_SNAPSHOT_NAME,
    CreateBackup,
    CreateSnapshot,
    Intent,
    ListBackups,
    ListSnapshots,
    RequestDelete,
    RequestRestore,
    ShowHelp,
    is_snapshot_name,
    parse_id,
)

MAX_TEXT = 2000

# (usage, what it does) for each command; `help` renders exactly these lines.
GRAMMAR: dict[Kind, dict[str, tuple[str, str]]] = {
    Kind.SNAPSHOT: {
        "list": ("list [server_id]", "list snapshots, of every server or of one"),
        "create": (
            "create <server_id> <name> [description…]",
            "take a snapshot; name: 1-64 letters, digits, - or _",
        ),
        "restore": (
            "restore <snapshot_id> [reason…]",
            "restore the snapshot's server from it, after a second person approves",
        ),
        "delete": ("delete <snapshot_id>", "delete a snapshot (you confirm with a button)"),
        "help": ("help", "show this help"),
    },
    Kind.BACKUP: {
        "list": (
            "list [server_id] [manual|automatic]",
            "list backups, of every server or of one, optionally by type",
        ),
        "create": ("create <server_id> [description…]", "take a manual backup"),
        "restore": (
            "restore <backup_id> [reason…]",
            "restore the backup's server from it, after a second person approves",
        ),
        "delete": ("delete <backup_id>", "delete a backup (you confirm with a button)"),
        "help": ("help", "show this help"),
    },
}


def usage(kind: Kind, subcommand: str | None = None) -> str:
    """Usage lines for one subcommand, or for all of them."""
    entries = GRAMMAR[kind]
    chosen = [entries[subcommand]] if subcommand in entries else list(entries.values())
    return "\n".join(f"`/{kind.value} {form}`: {what}" for form, what in chosen)


def _fail(kind: Kind, subcommand: str | None, message: str) -> UsageError:
    return UsageError(message, usage(kind, subcommand))


def _id(kind: Kind, subcommand: str, text: str, what: str) -> int:
    value = parse_id(text)
    if value is None:
        raise _fail(kind, subcommand, f"{what} must be a number from 1 to 9999999999.")
    return value


def _free_text(kind: Kind, subcommand: str, text: str, what: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        raise _fail(kind, subcommand, f"The {what} is too long (at most {MAX_DESCRIPTION}).")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in text):
        raise _fail(kind, subcommand, f"The {what} contains control characters.")
    return text


def parse(kind: Kind, text: str) -> Intent:
    """Parse the text after `/snapshot` or `/backup`; raise UsageError for anything else."""
    if len(text) > MAX_TEXT:
        raise _fail(kind, None, f"That command is too long (at most {MAX_TEXT} characters).")
    head, *rest = text.split(maxsplit=1) or ["help"]
    subcommand = head.lower()
    tail = rest[0] if rest else ""
    if subcommand not in GRAMMAR[kind]:
        raise _fail(kind, None, f"Unknown subcommand “{head[:40]}”.")
    if subcommand == "help":
        return ShowHelp(kind)
    if subcommand == "list":
        return _parse_list(kind, tail.split())
    if subcommand == "create":
        return _parse_create(kind, tail)
    target_text, *more = tail.split(maxsplit=1) or [""]
    what = f"The {kind.value} id"
    if not target_text:
        raise _fail(kind, subcommand, f"{what} is missing.")
    target = _id(kind, subcommand, target_text, what)
    if subcommand == "restore":
        reason = _free_text(kind, subcommand, more[0] if more else "", "reason")
        return RequestRestore(kind, target, reason)
    if more:
        raise _fail(kind, subcommand, "`delete` takes only the id.")
    return RequestDelete(kind, target)


def _parse_list(kind: Kind, words: list[str]) -> Intent:
    server_id: int | None = None
    backup_type: BackupType | None = None
    for word in words:
        lowered = word.lower()
        if kind is Kind.BACKUP and lowered in ("manual", "automatic") and backup_type is None:
            backup_type = BackupType(lowered)
        elif server_id is None and backup_type is None and parse_id(word) is not None:
            server_id = parse_id(word)
        else:
            raise _fail(kind, "list", "That is not a server id or a filter I know.")
    if kind is Kind.SNAPSHOT:
        return ListSnapshots(server_id)
    return ListBackups(server_id, backup_type)


def _parse_create(kind: Kind, tail: str) -> Intent:
    words = tail.split(maxsplit=2 if kind is Kind.SNAPSHOT else 1)
    if not words:
        raise _fail(kind, "create", "The server id is missing.")
    server_id = _id(kind, "create", words[0], "The server id")
    if kind is Kind.BACKUP:
        description = _free_text(kind, "create", words[1] if len(words) > 1 else "", "description")
        return CreateBackup(server_id, description)
    if len(words) < 2:
        raise _fail(kind, "create", "The snapshot name is missing.")
    if not is_snapshot_name(words[1]):
        raise _fail(
            kind,
            "create",
            f"A snapshot name is 1-{MAX_SNAPSHOT_NAME} letters, digits, “-” or “_”.",
        )
    description = _free_text(kind, "create", words[2] if len(words) > 2 else "", "description")
    return CreateSnapshot(server_id, words[1], description)
