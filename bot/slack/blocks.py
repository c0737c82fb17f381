"""Pure Block Kit builders: results in, messages out. Nothing here talks to Slack.

Every string that comes from a person or from VPS.org goes through `escape()`, so `<!channel>`,
links and user mentions in it are shown as text and never trigger anything. Every builder keeps
within Slack's limits: 50 blocks, 3,000 characters per section text, 75 per button label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.model import (
    COMPLETED,
    IN_PROGRESS,
    Action,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    ServerRef,
    Snapshot,
    Status,
)
from bot.services.listings import BackupList, SnapshotList
from bot.slack import ids

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_LISTED = 40  # leaves room for headers and the "more" note within 50 blocks


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: `text` is the notification/fallback, `blocks` the rich body."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# -- text helpers --------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Make text safe to put in mrkdwn: Slack's three control characters become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# U+02CB MODIFIER LETTER GRAVE ACCENT: reads as a backtick, but opens and closes no code span.
BACKTICK_STAND_IN = "\u02cb"


def safe(text: str, limit: int = 200) -> str:
    """Clip, then escape: user and API text ready for mrkdwn, inside a `code span` too (a
    backtick in it becomes a look-alike, so it can neither end the span nor open one)."""
    return escape(clip(text, limit)).replace("`", BACKTICK_STAND_IN)


def size(mb: int | None) -> str:
    if mb is None:
        return "size not known yet"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb} MB"


def span(seconds: float) -> str:
    """A duration in words, two units at most: '3 days 4 hours', '5 minutes'."""
    seconds = int(abs(seconds))
    units = (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
    parts: list[str] = []
    for name, length in units:
        count, seconds = divmod(seconds, length)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        if len(parts) == 2 or (parts and count == 0):
            break
    return " ".join(parts) or "less than a minute"


def ago(then: datetime, now: datetime) -> str:
    delta = (now - then).total_seconds()
    if abs(delta) < 60:
        return "just now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def when(moment: datetime) -> str:
    """A date Slack shows in the reader's own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def status_label(status: str) -> str:
    if status == COMPLETED:
        return ":white_check_mark: completed"
    if status == IN_PROGRESS:
        return ":hourglass_flowing_sand: in progress"
    return f":x: status: {safe(status, 40)}"


def server_label(server: ServerRef) -> str:
    if not server.name:  # VPS.org sent no name (null): the id alone, never an empty `**`
        return f"server `{server.id}`"
    return f"*{safe(server.name, 100)}* (`{server.id}`)"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 2000)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


# -- listings ------------------------------------------------------------------------------------


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


def _expiry(backup: Backup, now: datetime) -> str:
    if backup.expires_at is None:
        return "never expires"
    if backup.expires_at <= now:
        return f"expired {ago(backup.expires_at, now)}"
    return f"expires {ago(backup.expires_at, now)}"


def _backup_line(backup: Backup, now: datetime) -> str:
    kind = backup.backup_type
    kind_text = kind.value if isinstance(kind, BackupType) else safe(str(kind), 20)
    lines = [
        f"*{kind_text} backup* · id `{backup.id}` · {status_label(backup.status)}",
        f"{size(backup.size_mb)} · taken {ago(backup.created_at, now)}, "
        f"{when(backup.created_at)} · {_expiry(backup, now)}",
    ]
    if backup.description:
        lines.append(f"_{safe(backup.description)}_")
    return "\n".join(lines)


def _grouped(
    items: Sequence[Snapshot | Backup], line: Any, now: datetime, single_server: bool
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
    items: Sequence[Snapshot | Backup],
    line: Any,
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
        "Use `/snapshot list <server_id>` for one server.",
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
        "Use `/backup list <server_id> [manual|automatic]` to narrow it.",
    )


# -- help and errors -----------------------------------------------------------------------------


def help_message(kind: Kind, usage_text: str) -> Message:
    intro = {
        Kind.SNAPSHOT: "Snapshots are quick point-in-time copies (at most 5 per server).",
        Kind.BACKUP: "Backups are kept for the long term (at most 10 manual backups per server).",
    }[kind]
    blocks = [
        section(f"*`/{kind.value}`*: {intro}"),
        section(usage_text),
        context("Restores overwrite the whole server and need a second person's approval."),
    ]
    return Message(f"/{kind.value} help", blocks)


def error_message(text: str, usage_text: str | None = None) -> Message:
    blocks = [section(text)]
    if usage_text:
        blocks.append(context(usage_text))
    return Message(clip(text, 300), blocks)


def unavailable_message(kind: Kind, subcommand: str) -> Message:
    text = f"`/{kind.value} {subcommand}` is not available in this version of vpsbot yet."
    return Message(text, [section(text)])


# -- requests: the channel message (posted, then updated in place) and its outcome -------------


def user(user_id: str) -> str:
    return f"<@{escape(user_id)}>"


def _what(request: OperationRequest) -> str:
    """`snapshot `before-update`` or `manual backup “Pre-deploy”` or `backup 499`."""
    if request.action is Action.CREATE and request.kind is Kind.BACKUP:
        described = f" “{safe(request.target_name, 100)}”" if request.target_name else ""
        return f"manual backup{described}"
    name = f" `{safe(request.target_name, 100)}`" if request.target_name else ""
    ident = f" (id `{request.target_id}`)" if request.target_id is not None else ""
    return f"{request.kind.value}{name}{ident}"


def _on(request: OperationRequest) -> str:
    return server_label(request.server) if request.server else "an unknown server"


def _reason(request: OperationRequest) -> str:
    result = request.result
    text = str(result.get("reason") or result.get("error") or "no reason given")
    return safe(text, 300)


def _finished(request: OperationRequest) -> str:
    size_mb = request.result.get("size_mb")
    took = request.result.get("took_seconds")
    parts = [size(size_mb if isinstance(size_mb, int) else None)]
    if isinstance(took, int):
        parts.append(f"took {span(took)}")
    return ", ".join(parts)


def _create_text(request: OperationRequest) -> str:
    what, on, who = _what(request), _on(request), user(request.requester_id)
    match request.status:
        case Status.SUCCEEDED:
            return f":white_check_mark: {who}'s {what} of {on} is *complete*: {_finished(request)}."
        case Status.FAILED:
            return f":x: {who}'s {what} of {on} *failed*: {_reason(request)}."
        case Status.NEEDS_ATTENTION:
            return (
                f":warning: {who}'s {what} of {on}: *outcome unknown* ({_reason(request)}). "
                f"Check with `/{request.kind.value} list`."
            )
        case _:
            return f":hourglass_flowing_sand: {who} is creating a {what} of {on}: *in progress*."


def _delete_text(request: OperationRequest, now: datetime) -> str:
    what, on, who = _what(request), _on(request), user(request.requester_id)
    result = request.result
    match request.status:
        case Status.PENDING_CONFIRMATION:
            taken = request.params.get("created_at")
            age = ""
            if isinstance(taken, str):
                age = f", taken {ago(datetime.fromisoformat(taken), now)}"
            return (
                f":wastebasket: {who} wants to delete {what} of {on}{age}. "
                "Deleting is permanent and cannot be undone."
            )
        case Status.EXECUTING:
            return f":hourglass_flowing_sand: Deleting {what} of {on}…"
        case Status.SUCCEEDED:
            deleter = user(str(result.get("deleted_by", request.requester_id)))
            return f":wastebasket: {deleter} deleted {what} of {on}."
        case Status.FAILED:
            return f":x: {what.capitalize()} of {on} was *not deleted*: {_reason(request)}."
        case Status.NEEDS_ATTENTION:
            return (
                f":warning: VPS.org did not confirm the delete of {what} of {on} "
                f"({_reason(request)}): it may or may not have happened. Check with "
                f"`/{request.kind.value} list` before trying again."
            )
        case Status.CANCELLED:
            return f":leftwards_arrow_with_hook: {who} cancelled the delete of {what}. No change."
        case Status.EXPIRED:
            return f":hourglass: The delete of {what} of {on} was not confirmed in time: no change."
        case _:
            return f"Delete of {what} of {on}: {request.status.value}."


def _delete_buttons(request: OperationRequest) -> Block:
    noun = request.kind.value
    return {
        "type": "actions",
        "block_id": f"delete_decision_{request.id}",
        "elements": [
            {
                "type": "button",
                "action_id": ids.DELETE_CONFIRM,
                "text": {"type": "plain_text", "text": f"Delete {noun}"},
                "style": "danger",
                "value": str(request.id),
                "confirm": {
                    "title": {"type": "plain_text", "text": f"Delete this {noun}?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"{_what(request)} of {_on(request)} will be gone for good.", 300
                        ),
                    },
                    "confirm": {"type": "plain_text", "text": "Delete"},
                    "deny": {"type": "plain_text", "text": "Keep it"},
                    "style": "danger",
                },
            },
            {
                "type": "button",
                "action_id": ids.DELETE_CANCEL,
                "text": {"type": "plain_text", "text": "Cancel"},
                "value": str(request.id),
            },
        ],
    }


def _people(ids_: object) -> str:
    found = [user(str(i)) for i in ids_] if isinstance(ids_, list) else []
    return ", ".join(found) or "nobody yet"


def _restore_source(request: OperationRequest, now: datetime) -> str:
    """`snapshot `pre-migration` (id `801`, taken 2025-01-15 18:30 UTC, 5.0 GB)`."""
    details = [f"id `{request.target_id}`"]
    taken = request.params.get("target_created_at")
    if isinstance(taken, str):
        details.append(f"taken {when(datetime.fromisoformat(taken))}")
    size_mb = request.params.get("target_size_mb")
    if isinstance(size_mb, int):
        details.append(size(size_mb))
    noun = "snapshot" if request.kind is Kind.SNAPSHOT else "backup"
    name = f" `{safe(request.target_name, 100)}`" if request.target_name else ""
    return f"{noun}{name} ({', '.join(details)})"


def _discarded(request: OperationRequest, now: datetime) -> str:
    taken = request.params.get("target_created_at")
    if not isinstance(taken, str):
        return "Everything written on the server since that point is lost."
    return (
        f"Everything written on the server since then ({ago(datetime.fromisoformat(taken), now)})"
        " is lost."
    )


def _restore_text(request: OperationRequest, now: datetime) -> str:
    who, on, source = user(request.requester_id), _on(request), _restore_source(request, now)
    approvers = _people(request.result.get("approvers"))
    match request.status:
        case Status.PENDING_APPROVAL:
            reason = f"\n*Reason:* {safe(request.reason, 500)}" if request.reason else ""
            return (
                f":rotating_light: *Restore requested* by {who}: restore {on} from {source}.\n"
                f"*{_discarded(request, now)}* The server is stopped first, all its current data "
                f"is overwritten, and this cannot be undone.{reason}"
            )
        case Status.APPROVED | Status.EXECUTING:
            return (
                f":hourglass_flowing_sand: Approved by {approvers}. Restoring {on} from {source}: "
                "checking the target, then asking VPS.org…"
            )
        case Status.RUNNING:
            return (
                f":arrows_counterclockwise: *Restoring* {on} from {source}: *in progress*. "
                f"Requested by {who}, approved by {approvers}."
            )
        case Status.SUCCEEDED:
            return (
                f":white_check_mark: {on} was *restored* from {source} and is running again "
                f"({_finished_restore(request)}). Requested by {who}, approved by {approvers}."
            )
        case Status.FAILED:
            return f":x: The restore of {on} from {source} *failed*: {_reason(request)}."
        case Status.NEEDS_ATTENTION:
            return (
                f":warning: The restore of {on} from {source} *needs attention*: "
                f"{_reason(request)}."
            )
        case Status.DENIED:
            denier = user(str(request.result.get("denied_by", "")))
            return f":no_entry: {denier} denied the restore of {on} from {source}. No change."
        case Status.CANCELLED:
            return f":leftwards_arrow_with_hook: {who} cancelled the restore of {on}. No change."
        case Status.EXPIRED:
            return (
                f":hourglass: The restore of {on} from {source} expired without enough approvals. "
                "Nothing was restored."
            )
        case _:
            return f"Restore of {on}: {request.status.value}."


def _finished_restore(request: OperationRequest) -> str:
    took = request.result.get("took_seconds")
    return f"took {span(took)}" if isinstance(took, int) else "done"


def _restore_buttons(request: OperationRequest) -> Block:
    value = str(request.id)
    return {
        "type": "actions",
        "block_id": f"restore_decision_{request.id}",
        "elements": [
            {
                "type": "button",
                "action_id": ids.RESTORE_APPROVE,
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": value,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Approve this restore?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": clip(
                            f"{_on(request)} will be overwritten. This cannot be undone.", 300
                        ),
                    },
                    "confirm": {"type": "plain_text", "text": "Approve"},
                    "deny": {"type": "plain_text", "text": "Not yet"},
                },
            },
            {
                "type": "button",
                "action_id": ids.RESTORE_DENY,
                "text": {"type": "plain_text", "text": "Deny"},
                "style": "danger",
                "value": value,
            },
            {
                "type": "button",
                "action_id": ids.RESTORE_CANCEL,
                "text": {"type": "plain_text", "text": "Cancel"},
                "value": value,
            },
        ],
    }


def _restore_message(request: OperationRequest, now: datetime) -> Message:
    text = _restore_text(request, now)
    blocks = [section(text)]
    if request.status is Status.PENDING_APPROVAL:
        have = request.result.get("approvers")
        count = len(have) if isinstance(have, list) else 0
        needed = max(request.required_approvals - count, 1)
        noun = "approval" if needed == 1 else "approvals"
        so_far = f" Approved so far by {_people(have)}." if count else ""
        blocks.append(
            section(
                f"Needs *{needed} more {noun}* from someone other than "
                f"{user(request.requester_id)}.{so_far}"
            )
        )
        blocks.append(_restore_buttons(request))
        expires = request.expires_at
        deadline = f"expires {ago(expires, now)} ({when(expires)})" if expires else "no expiry"
        blocks.append(context(f"Request #{request.id} · {deadline}"))
    else:
        api_message = request.result.get("api_message")
        note = (
            f"VPS.org: “{safe(str(api_message), 300)}” · "
            if api_message and request.status is Status.RUNNING
            else ""
        )
        blocks.append(context(f"{note}request #{request.id}"))
    return Message(clip(text, 300), blocks)


def request_message(request: OperationRequest, now: datetime) -> Message:
    """The request's message in the channel, as it stands now (posted, then updated in place)."""
    blocks: list[Block]
    if request.action is Action.RESTORE:
        return _restore_message(request, now)
    if request.action is Action.DELETE:
        text = _delete_text(request, now)
        blocks = [section(text)]
        if request.status is Status.PENDING_CONFIRMATION:
            blocks.append(_delete_buttons(request))
            expires = f" · expires {ago(request.expires_at, now)}" if request.expires_at else ""
            blocks.append(
                context(
                    f"Only {user(request.requester_id)} can confirm{expires}"
                    f" · request #{request.id}"
                )
            )
        else:
            blocks.append(context(f"request #{request.id}"))
        return Message(clip(text, 300), blocks)
    text = _create_text(request)
    notes = [f"request #{request.id}"]
    api_message = request.result.get("api_message")
    if request.status in (Status.RUNNING, Status.EXECUTING) and api_message:
        notes.insert(0, f"VPS.org: “{safe(str(api_message), 300)}”")
    return Message(clip(text, 300), [section(text), context(" · ".join(notes))])


def outcome_message(request: OperationRequest, now: datetime, *, direct: bool = False) -> Message:
    """The thread reply (and, `direct`, the DM naming the channel) when a request ends."""
    text = request_message(request, now).blocks[0]["text"]["text"]
    if direct:
        text += f" (in <#{escape(request.channel_id)}>)"
    return Message(clip(text, 300), [section(text)])


NOTICES = {
    "vps_unauthorized": (
        ":closed_lock_with_key: *vpsbot cannot reach VPS.org: the API token is rejected (HTTP "
        "401).* This is a configuration problem: an admin needs to set a valid `VPS_API_TOKEN` "
        "and restart the bot. Until then no command that reads or changes servers can work."
    ),
}


def notice_message(event: str) -> Message:
    text = NOTICES.get(event, f"vpsbot notice: {safe(event, 100)}")
    return Message(clip(text, 300), [section(text)])


# -- the request's card could not be posted: tell the requester how to fix it ---------------------

# Slack's error -> what to do: (when the request was cancelled, when it goes on regardless)
_INVITE = (
    "Invite it with `/invite @vpsbot` and ask again.",
    "Invite it with `/invite @vpsbot` so the channel hears about the next one.",
)
_ARCHIVED = (
    "The channel is archived: ask again in another channel.",
    "The channel is archived: use another channel next time.",
)
_CHANNEL_FIXES = {
    "is_archived": _ARCHIVED,
    "channel_is_archived": _ARCHIVED,
    "restricted_action": (
        "This workspace does not let vpsbot post there: ask a Slack admin, or ask again in "
        "another channel.",
        "This workspace does not let vpsbot post there: ask a Slack admin, or use another "
        "channel next time.",
    ),
}


def card_not_posted_message(
    request: OperationRequest, slack_error: str, *, cancelled: bool, direct: bool
) -> Message:
    """To the requester (ephemeral in the channel, or `direct` in a DM naming the channel) when
    Slack refused the request's card there: `cancelled` when nothing was done, else the
    operation goes on without the channel being told."""
    where = f"<#{escape(request.channel_id)}>" if direct else "this channel"
    if_cancelled, if_going_on = _CHANNEL_FIXES.get(slack_error, _INVITE)
    what = f"{request.action.value} {_what(request)} on {_on(request)}"
    head = f":warning: vpsbot could not post in {where} ({safe(slack_error, 60)})."
    if cancelled:
        text = (
            f"{head} {if_cancelled} Nothing was changed: your request #{request.id} ({what}) "
            "was *cancelled*, since nobody there could see it."
        )
    else:
        if request.status in (Status.APPROVED, Status.EXECUTING, Status.RUNNING):
            later = (
                " You will get a DM when it is done."
                if request.action in (Action.CREATE, Action.RESTORE)
                else ""
            )
            going = f"it is already under way at VPS.org and goes on.{later}"
        else:
            going = f"it went ahead at VPS.org all the same and is now *{request.status.value}*."
        text = (
            f"{head} The channel was not told about your request #{request.id} ({what}); "
            f"{going} {if_going_on}"
        )
    return Message(clip(text, 300), [section(text)])
