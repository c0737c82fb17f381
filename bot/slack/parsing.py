"""Command grammar -> typed intents. The help text lives here, beside the grammar it describes.

A usage error names the word that was wrong, quoted as typed, and what was expected in its
place; its usage is that of the one subcommand concerned. An unknown subcommand gets the
nearest known one ("did you mean “create”?") and its usage, or, with nothing near, the short
list of subcommands. The message is plain text: slack/errors.py escapes it for mrkdwn (a word
typed with `<!channel>` or backticks is shown, never acted on); the usage is the bot's own mrkdwn.
"""

from __future__ import annotations

import difflib
import unicodedata

from bot.domain.errors import UsageError
from bot.domain.model import BackupType, Kind
from bot.domain.operations import (
    DEFAULT_AUDIT_DAYS,
    MAX_AUDIT_DAYS,
    MAX_DESCRIPTION,
    MAX_SNAPSHOT_NAME,
    AddSchedule,
    CreateBackup,
    CreateSnapshot,
    ExportAudit,
    Intent,
    ListBackups,
    ListSchedules,
    ListSnapshots,
    RemoveSchedule,
    RequestDelete,
    RequestRestore,
    ShowHelp,
    ShowPending,
    ShowRequest,
    ShowStatus,
    ShowVpsbotHelp,
    VpsbotIntent,
    is_snapshot_name,
    parse_id,
)
from bot.domain.schedules import (
    FORMS,
    MAX_KEEP,
    MAX_WHEN_WORDS,
    MIN_KEEP,
    BadWhen,
    When,
    check_keep,
    parse_when,
    words,
)
from bot.slack.blocks.text import clip, escape

MAX_TEXT = 2000
MAX_ID = 9_999_999_999
QUOTED = 40  # characters of a wrong word shown back

WHEN_HELP = (
    "when: `hourly`, `daily 03:00`, `weekly mon 03:00`, `every 6h`, or a cron expression in "
    'quotes as in `"0 3 * * *"`; times in the bot\'s time zone'
)


def _keeps(kind: Kind) -> str:
    return f"{MIN_KEEP}-{MAX_KEEP[kind]}"


# (usage, what it does) for each command; `help` renders exactly these lines.
GRAMMAR: dict[Kind, dict[str, tuple[str, str]]] = {
    Kind.SNAPSHOT: {
        "list": ("list [server_id]", "list snapshots, of every server or of one"),
        "create": (
            "create <server_id> <name> [description…]",
            f"take a snapshot; name: 1-{MAX_SNAPSHOT_NAME} letters, digits, - or _",
        ),
        "restore": (
            "restore <snapshot_id> [reason…]",
            "restore the snapshot's server from it, after a second person approves",
        ),
        "delete": ("delete <snapshot_id>", "delete a snapshot (you confirm with a button)"),
        "schedule": (
            "schedule <server_id> <when> keep <N>",
            f"take snapshots on a schedule, keeping the newest N it took, "
            f"{_keeps(Kind.SNAPSHOT)} (one of VPS.org's 5 places stays free); {WHEN_HELP}",
        ),
        "schedules": (
            "schedules [server_id]",
            "list snapshot schedules, of every server or of one",
        ),
        "unschedule": (
            "unschedule <schedule_id>",
            "stop a snapshot schedule (its id as `schedules` shows it: `#3` or `3`)",
        ),
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
        "schedule": (
            "schedule <server_id> <when> keep <N>",
            f"take manual backups on a schedule, keeping the newest N it took, "
            f"{_keeps(Kind.BACKUP)} (one of VPS.org's 10 places stays free); {WHEN_HELP}",
        ),
        "schedules": ("schedules [server_id]", "list backup schedules, of every server or of one"),
        "unschedule": (
            "unschedule <schedule_id>",
            "stop a backup schedule (its id as `schedules` shows it: `#3` or `3`)",
        ),
        "status": (
            "status [server_id]",
            "the health of scheduled backups and snapshots, of every server or of one",
        ),
        "help": ("help", "show this help"),
    },
}

# Words people type for a subcommand: suggested, never run (a restore is always asked by name).
ALIASES = {
    "ls": "list",
    "show": "list",
    "get": "list",
    "new": "create",
    "take": "create",
    "make": "create",
    "add": "create",
    "rm": "delete",
    "del": "delete",
    "remove": "delete",
    "rollback": "restore",
    "revert": "restore",
    "cron": "schedule",
    "crontab": "schedule",
    "every": "schedule",
    "auto": "schedule",
    "plan": "schedule",
    "crons": "schedules",
    "timers": "schedules",
    "jobs": "schedules",
    "stop": "unschedule",
    "cancel": "unschedule",
    "deschedule": "unschedule",
    "health": "status",
    "check": "status",
    "overview": "status",
    "?": "help",
    "-h": "help",
    "--help": "help",
    "usage": "help",
}

NAME_RULE = f"1-{MAX_SNAPSHOT_NAME} letters, digits, - or _"
TYPE_WORDS = tuple(t.value for t in BackupType)
TYPES = " or ".join(f"“{t}”" for t in TYPE_WORDS)


def usage(kind: Kind, subcommand: str | None = None) -> str:
    """Usage lines for one subcommand, or for all of them (the help)."""
    entries = GRAMMAR[kind]
    chosen = [entries[subcommand]] if subcommand in entries else list(entries.values())
    # `<server_id>` is escaped: Slack reads `<…>` as a link or a mention, even in code
    return "\n".join(f"`/{kind.value} {escape(form)}`: {what}" for form, what in chosen)


def summary(kind: Kind) -> str:
    """The short list of subcommands: one usage line each, no descriptions."""
    lines = [f"`/{kind.value} {escape(form)}`" for form, _ in GRAMMAR[kind].values()]
    return "\n".join(lines)


def quoted(word: str) -> str:
    """A word as typed, between quotes and clipped; control and format characters (a bidi
    override, a zero-width space) become �. Plain text: the renderer escapes it for mrkdwn."""
    shown = "".join("\ufffd" if unicodedata.category(ch)[0] == "C" else ch for ch in word)
    return f"“{clip(shown, QUOTED)}”"


def suggestion(kind: Kind, word: str) -> str | None:
    """The known subcommand nearest to an unknown word, if any is near."""
    lowered = word.lower()
    if lowered in ALIASES:
        return ALIASES[lowered] if ALIASES[lowered] in GRAMMAR[kind] else None
    if parse_id(word) is not None or (kind is Kind.BACKUP and lowered in TYPE_WORDS):
        return "list"  # `/snapshot 12345`: the subcommand was left out
    if len(lowered) > 20:
        return None
    close = difflib.get_close_matches(lowered, list(GRAMMAR[kind]), n=1, cutoff=0.6)
    return close[0] if close else None


def _fail(kind: Kind, subcommand: str | None, message: str) -> UsageError:
    return UsageError(message, usage(kind, subcommand) if subcommand else summary(kind))


def _id(kind: Kind, subcommand: str, word: str, what: str) -> int:
    """An id typed after the subcommand (`what`: "server id", "snapshot id", "backup id")."""
    value = parse_id(word)
    if value is not None:
        return value
    if word.isascii() and word.isdigit():
        problem = f"ids are 1 to {MAX_ID}"
    else:
        problem = f"expected a {what} (a number) after “{subcommand}”"
    raise _fail(kind, subcommand, f"{quoted(word)} is not a {what}: {problem}.")


def _free_text(kind: Kind, subcommand: str, text: str, what: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        raise _fail(
            kind,
            subcommand,
            f"The {what} is too long: expected at most {MAX_DESCRIPTION} characters "
            f"(it has {len(text)}).",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in text):
        raise _fail(
            kind,
            subcommand,
            f"The {what} contains control characters: expected plain text.",
        )
    return text


def parse(kind: Kind, text: str) -> Intent:
    """Parse the text after `/snapshot` or `/backup`; raise UsageError for anything else."""
    head, *rest = text.split(maxsplit=1) or ["help"]
    subcommand = head.lower()
    known = subcommand in GRAMMAR[kind]
    if len(text) > MAX_TEXT:
        raise _fail(
            kind,
            subcommand if known else None,
            f"That command is too long: expected at most {MAX_TEXT} characters "
            f"(it has {len(text)}).",
        )
    if not known:
        raise _unknown(kind, head)
    tail = rest[0] if rest else ""
    if subcommand == "help":
        return ShowHelp(kind)
    if subcommand == "list":
        return _parse_list(kind, tail.split())
    if subcommand == "create":
        return _parse_create(kind, tail)
    if subcommand == "schedule":
        return _parse_schedule(kind, tail)
    if subcommand in ("schedules", "status"):
        server_id = _optional_server(kind, subcommand, tail.split())
        return (
            ListSchedules(kind, server_id) if subcommand == "schedules" else ShowStatus(server_id)
        )
    if subcommand == "unschedule":
        return RemoveSchedule(kind, _schedule_id(kind, tail.split()))
    target_text, *more = tail.split(maxsplit=1) or [""]
    what = f"{kind.value} id"
    if not target_text:
        raise _fail(
            kind,
            subcommand,
            f"The {what} is missing: expected a {what} (a number) after “{subcommand}”.",
        )
    target = _id(kind, subcommand, target_text, what)
    if subcommand == "restore":
        reason = _free_text(kind, subcommand, more[0] if more else "", "reason")
        return RequestRestore(kind, target, reason)
    if more:
        extra = more[0].split()[0]
        raise _fail(
            kind,
            subcommand,
            f"{quoted(extra)} is one word too many: “delete” takes only the {what}.",
        )
    return RequestDelete(kind, target)


def _unknown(kind: Kind, head: str) -> UsageError:
    known = ", ".join(f"“{name}”" for name in GRAMMAR[kind])
    message = f"{quoted(head)} is not a /{kind.value} subcommand"
    lowered = head.lower()
    if kind is Kind.SNAPSHOT and "status" in (lowered, ALIASES.get(lowered)):
        return UsageError(
            f"{message}: the health of scheduled snapshots and backups is “/backup status”.",
            summary(kind),
        )
    near = suggestion(kind, head)
    if near is None:
        return UsageError(f"{message}: expected one of {known}.", summary(kind))
    return UsageError(f"{message}. Did you mean “{near}”?", usage(kind, near))


def _parse_list(kind: Kind, words: list[str]) -> Intent:
    server_id: int | None = None
    backup_type: BackupType | None = None
    for word in words:
        lowered = word.lower()
        if kind is Kind.BACKUP and lowered in TYPE_WORDS and backup_type is None:
            backup_type = BackupType(lowered)
        elif server_id is None and backup_type is None:
            server_id = _list_server(kind, word)
        else:
            raise _fail(kind, "list", _list_extra(kind, word, backup_type))
    if kind is Kind.SNAPSHOT:
        return ListSnapshots(server_id)
    return ListBackups(server_id, backup_type)


def _list_server(kind: Kind, word: str) -> int:
    """The first word after `list` that is not a backup type: a server id."""
    value = parse_id(word)
    if value is not None:
        return value
    if word.isascii() and word.isdigit():
        raise _fail(kind, "list", f"{quoted(word)} is not a server id: ids are 1 to {MAX_ID}.")
    if kind is Kind.BACKUP:
        message = f"is not a server id or a backup type: expected a server id (a number), {TYPES}"
    elif word.lower() in TYPE_WORDS:
        message = "is not a server id: snapshots have no type; expected a server id (a number)"
    else:
        message = "is not a server id: expected a server id (a number), or nothing for every server"
    raise _fail(kind, "list", f"{quoted(word)} {message}.")


def _list_extra(kind: Kind, word: str, backup_type: BackupType | None) -> str:
    """A word after a complete `list`: what it could have been instead."""
    lowered = word.lower()
    if kind is Kind.SNAPSHOT:
        if lowered in TYPE_WORDS:
            return f"{quoted(word)} is one word too many: snapshots have no type."
        return f"{quoted(word)} is one word too many: expected only a server id."
    if backup_type is None:
        return f"{quoted(word)} is not a backup type: expected {TYPES} after the server id."
    if lowered in TYPE_WORDS:
        return f"{quoted(word)} is one word too many: expected one type at most."
    if parse_id(word) is not None:
        return f"{quoted(word)} is one word too many: the server id comes before the type."
    return f"{quoted(word)} is one word too many: expected nothing after the type."


def _parse_create(kind: Kind, tail: str) -> Intent:
    words = tail.split(maxsplit=2 if kind is Kind.SNAPSHOT else 1)
    if not words:
        raise _fail(
            kind,
            "create",
            "The server id is missing: expected a server id (a number) after “create”.",
        )
    server_id = _id(kind, "create", words[0], "server id")
    if kind is Kind.BACKUP:
        description = _free_text(kind, "create", words[1] if len(words) > 1 else "", "description")
        return CreateBackup(server_id, description)
    if len(words) < 2:
        raise _fail(
            kind,
            "create",
            f"The snapshot name is missing: expected a snapshot name ({NAME_RULE}) "
            "after the server id.",
        )
    name = words[1]
    if not is_snapshot_name(name):
        problem = (
            f"is too long for a snapshot name (it has {len(name)} characters)"
            if len(name) > MAX_SNAPSHOT_NAME
            else "is not a snapshot name"
        )
        raise _fail(kind, "create", f"{quoted(name)} {problem}: expected {NAME_RULE}.")
    description = _free_text(kind, "create", words[2] if len(words) > 2 else "", "description")
    return CreateSnapshot(server_id, name, description)


# -- schedules -----------------------------------------------------------------------------------


def _parse_schedule(kind: Kind, tail: str) -> Intent:
    """`schedule <server_id> <when> keep <N>`."""
    try:
        found = words(tail)
    except BadWhen as error:
        raise _fail(kind, "schedule", _when_message(error)) from None
    if not found:
        raise _fail(
            kind,
            "schedule",
            "The server id is missing: expected a server id (a number) after “schedule”.",
        )
    server_id = _id(kind, "schedule", found[0], "server id")
    rest = found[1:]
    keep_at = next((i for i, word in enumerate(rest) if word.lower() == "keep"), None)
    if not rest or keep_at == 0:
        raise _fail(
            kind, "schedule", f"The timing is missing after the server id: expected {FORMS}."
        )
    if keep_at is None:
        raise _fail(kind, "schedule", _no_keep(kind, rest))
    when = _when(kind, rest[:keep_at])
    after = rest[keep_at + 1 :]
    if not after:
        raise _fail(
            kind,
            "schedule",
            f"The number to keep is missing: expected a whole number from {_keep_range(kind)} "
            "after “keep”.",
        )
    keep = _keep(kind, after[0])
    if len(after) > 1:
        raise _fail(
            kind,
            "schedule",
            f"{quoted(after[1])} is one word too many: expected nothing after “keep {keep}”.",
        )
    return AddSchedule(kind, server_id, when, keep)


def _when(kind: Kind, found: list[str]) -> When:
    try:
        return parse_when(" ".join(found))
    except BadWhen as error:
        raise _fail(kind, "schedule", _when_message(error)) from None


def _when_message(error: BadWhen) -> str:
    return error.problem if error.word is None else f"{quoted(error.word)} {error.problem}"


def _no_keep(kind: Kind, rest: list[str]) -> str:
    """What to say when `keep` is not there: where it was expected, or what is wrong before."""
    expected = f"expected “keep <N>” at the end, N from {_keep_range(kind)}"
    try:
        parse_when(" ".join(rest))
    except BadWhen as error:
        problem = _when_message(error)
    else:
        return f"The number to keep is missing: {expected}."
    for length in range(min(len(rest) - 1, MAX_WHEN_WORDS), 0, -1):
        try:
            when = parse_when(" ".join(rest[:length]))
        except BadWhen:
            continue
        return f"{quoted(rest[length])} is not “keep”: {expected} (after {quoted(when.text)})."
    return problem


def _keep_range(kind: Kind) -> str:
    return f"{MIN_KEEP} to {MAX_KEEP[kind]}"


def _keep(kind: Kind, word: str) -> int:
    if not (word.isascii() and word.isdigit()):
        raise _fail(
            kind,
            "schedule",
            f"{quoted(word)} is not a number to keep: expected a whole number from "
            f"{_keep_range(kind)} after “keep”.",
        )
    keep = int(word)
    try:
        check_keep(kind, keep)
    except ValueError as error:
        raise _fail(
            kind, "schedule", f"{quoted(word)} is out of range for “keep”. {error}"
        ) from None
    return keep


def _optional_server(kind: Kind, subcommand: str, found: list[str]) -> int | None:
    """`schedules [server_id]`, `status [server_id]`."""
    if not found:
        return None
    value = parse_id(found[0])
    if value is None:
        problem = (
            f"ids are 1 to {MAX_ID}"
            if found[0].isascii() and found[0].isdigit()
            else "expected a server id (a number), or nothing for every server"
        )
        raise _fail(kind, subcommand, f"{quoted(found[0])} is not a server id: {problem}.")
    if len(found) > 1:
        raise _fail(
            kind,
            subcommand,
            f"{quoted(found[1])} is one word too many: “{subcommand}” takes only a server id.",
        )
    return value


def _schedule_id(kind: Kind, found: list[str]) -> int:
    """A schedule id as the bot shows it (`#3`) or as a bare number."""
    expected = "expected a schedule id (a number, as in “#3”) after “unschedule”"
    if not found:
        raise _fail(kind, "unschedule", f"The schedule id is missing: {expected}.")
    digits = found[0].removeprefix("#")
    value = parse_id(digits)
    if value is None:
        problem = f"ids are 1 to {MAX_ID}" if digits.isascii() and digits.isdigit() else expected
        raise _fail(kind, "unschedule", f"{quoted(found[0])} is not a schedule id: {problem}.")
    if len(found) > 1:
        raise _fail(
            kind,
            "unschedule",
            f"{quoted(found[1])} is one word too many: “unschedule” takes only the schedule id.",
        )
    return value


# -- /vpsbot: looking things up ------------------------------------------------------------------

VPSBOT = "vpsbot"
VPSBOT_GRAMMAR: dict[str, tuple[str, str]] = {
    "pending": (
        "pending",
        "the restores waiting for approval, with Approve / Deny if you may vote",
    ),
    "request": ("request <id>", "one request's whole history: who asked, each vote, each call"),
    "audit": (
        "audit [days]",
        f"the audit trail of the last {DEFAULT_AUDIT_DAYS} days (or 1-{MAX_AUDIT_DAYS}) as a "
        "CSV file in your DM",
    ),
    "help": ("help", "show this help"),
}
VPSBOT_ALIASES = {
    "waiting": "pending",
    "approvals": "pending",
    "list": "pending",
    "ls": "pending",
    "show": "request",
    "history": "request",
    "get": "request",
    "export": "audit",
    "csv": "audit",
    "log": "audit",
    "?": "help",
    "-h": "help",
    "--help": "help",
    "usage": "help",
}


def vpsbot_usage(subcommand: str | None = None) -> str:
    """Usage lines for one `/vpsbot` subcommand, or for all of them (the help)."""
    entries = VPSBOT_GRAMMAR
    chosen = [entries[subcommand]] if subcommand in entries else list(entries.values())
    return "\n".join(f"`/{VPSBOT} {escape(form)}`: {what}" for form, what in chosen)


def _vpsbot_summary() -> str:
    return "\n".join(f"`/{VPSBOT} {escape(form)}`" for form, _ in VPSBOT_GRAMMAR.values())


def _vpsbot_fail(subcommand: str | None, message: str) -> UsageError:
    return UsageError(message, vpsbot_usage(subcommand) if subcommand else _vpsbot_summary())


def _vpsbot_suggestion(word: str) -> str | None:
    lowered = word.lower()
    if lowered in VPSBOT_ALIASES:
        return VPSBOT_ALIASES[lowered]
    if parse_id(lowered.removeprefix("#")) is not None:
        return "request"  # `/vpsbot 7`: the subcommand was left out
    if len(lowered) > 20:
        return None
    close = difflib.get_close_matches(lowered, list(VPSBOT_GRAMMAR), n=1, cutoff=0.6)
    return close[0] if close else None


def parse_vpsbot(text: str) -> VpsbotIntent:
    """Parse the text after `/vpsbot`; raise UsageError for anything else."""
    head, *rest = text.split(maxsplit=1) or ["help"]
    subcommand = head.lower()
    known = subcommand in VPSBOT_GRAMMAR
    if len(text) > MAX_TEXT:
        raise _vpsbot_fail(
            subcommand if known else None,
            f"That command is too long: expected at most {MAX_TEXT} characters "
            f"(it has {len(text)}).",
        )
    if not known:
        raise _vpsbot_unknown(head)
    words = rest[0].split() if rest else []
    if subcommand in ("help", "pending"):
        if words:
            raise _vpsbot_fail(
                subcommand,
                f"{quoted(words[0])} is one word too many: “{subcommand}” takes nothing after it.",
            )
        return ShowVpsbotHelp() if subcommand == "help" else ShowPending()
    if subcommand == "request":
        if not words:
            raise _vpsbot_fail(
                "request",
                "The request id is missing: expected a request id (a number, as in “#7”) "
                "after “request”.",
            )
        request_id = _request_id(words[0])
        _nothing_after(words, "request", "the request id")
        return ShowRequest(request_id)
    days = _days(words[0]) if words else DEFAULT_AUDIT_DAYS
    _nothing_after(words, "audit", "a number of days")
    return ExportAudit(days)


def _vpsbot_unknown(head: str) -> UsageError:
    message = f"{quoted(head)} is not a /{VPSBOT} subcommand"
    near = _vpsbot_suggestion(head)
    if near is None:
        names = ", ".join(f"“{name}”" for name in VPSBOT_GRAMMAR)
        return UsageError(f"{message}: expected one of {names}.", _vpsbot_summary())
    return UsageError(f"{message}. Did you mean “{near}”?", vpsbot_usage(near))


def _nothing_after(words: list[str], subcommand: str, what: str) -> None:
    if len(words) > 1:
        raise _vpsbot_fail(
            subcommand,
            f"{quoted(words[1])} is one word too many: “{subcommand}” takes only {what}.",
        )


def _request_id(word: str) -> int:
    """A request id as the bot's messages show it (`#7`) or as a bare number."""
    value = parse_id(word.removeprefix("#"))
    if value is not None:
        return value
    digits = word.removeprefix("#")
    if digits.isascii() and digits.isdigit():
        problem = f"ids are 1 to {MAX_ID}"
    else:
        problem = "expected a request id (a number, as in “#7”) after “request”"
    raise _vpsbot_fail("request", f"{quoted(word)} is not a request id: {problem}.")


def _days(word: str) -> int:
    if word.isascii() and word.isdigit() and len(word) <= 6 and 1 <= int(word) <= MAX_AUDIT_DAYS:
        return int(word)
    raise _vpsbot_fail(
        "audit",
        f"{quoted(word)} is not a number of days: expected a whole number from 1 to "
        f"{MAX_AUDIT_DAYS} after “audit” (or nothing, for {DEFAULT_AUDIT_DAYS}).",
    )
