"""`/vpsbot`: the restores waiting for approval, one request's history, the audit file's notes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, PlainTextObject
from slack_sdk.models.blocks import MarkdownTextObject as Markdown

from bot.domain.approvals import still_needed
from bot.domain.model import OperationRequest
from bot.services.ports import AuditEvent
from bot.services.reports import History, Pending
from bot.slack import ids
from bot.slack.blocks.requests import approve_warning, card_text, on, source
from bot.slack.blocks.text import (
    MAX_BLOCKS,
    MAX_FALLBACK,
    MAX_SECTION_TEXT,
    Block,
    Message,
    ago,
    clip,
    context,
    people,
    plural,
    safe,
    section,
    user,
    when,
)

# -- /vpsbot pending ----------------------------------------------------------------------------

# The header, and one context line at the end for the requests that did not fit.
PER_REQUEST = 2  # a section and its buttons (or a context line)
SHOWN_AT_MOST = (MAX_BLOCKS - 2) // PER_REQUEST


def _pending_text(item: Pending, now: datetime) -> str:
    request = item.request
    needed = still_needed(request)
    noun = "approval" if needed == 1 else "approvals"
    so_far = f" · approved so far by {people(request.outcome.approvers)}"
    expires = request.expires_at
    deadline = f"expires {ago(expires, now)} ({when(expires)})" if expires else "no expiry"
    reason = f"\n*Reason:* {safe(request.reason, 300)}" if request.reason else ""
    return (
        f"*Request #{request.id}*: restore {on(request)} from {source(request)}\n"
        f"Asked by {user(request.requester_id)} {ago(request.created_at, now)} · {deadline} · "
        f"needs *{needed} more {noun}*{so_far if request.outcome.approvers else ''}{reason}"
    )


def _why_no_buttons(item: Pending, user_id: str, channel_id: str) -> str:
    request = item.request
    if item.voted is not None:
        return f"You already voted: {'approved' if item.voted == 'approve' else 'denied'}."
    if request.requester_id == user_id:
        return "You asked for this restore: someone else has to approve it."
    if item.unsure:
        return "Slack could not say who is in the approvers' user groups: try again soon."
    if not item.may_vote:
        return "You are not one of the approvers configured for restores."
    return (
        f"Vote on its card in <#{request.channel_id}>." if request.channel_id != channel_id else ""
    )


def decision_buttons(request: OperationRequest) -> Block:
    """Approve (with the card's confirmation) and Deny: the card's own action ids and value,
    so a click here is the very click on the card."""
    sure = ConfirmObject(
        title=PlainTextObject(text="Approve this restore?"),
        text=Markdown(text=clip(approve_warning(request), 300)),
        confirm=PlainTextObject(text="Approve"),
        deny=PlainTextObject(text="Not yet"),
    )
    return ActionsBlock(
        block_id=f"pending_decision_{request.id}",
        elements=[
            ButtonElement(
                text=PlainTextObject(text="Approve"),
                action_id=ids.RESTORE_APPROVE,
                value=str(request.id),
                style="primary",
                confirm=sure,
            ),
            ButtonElement(
                text=PlainTextObject(text="Deny"),
                action_id=ids.RESTORE_DENY,
                value=str(request.id),
                style="danger",
            ),
        ],
    ).to_dict()


def pending_message(items: list[Pending], now: datetime, user_id: str, channel_id: str) -> Message:
    """The restores waiting for approval, oldest first, with Approve / Deny where the caller
    may vote, and may vote here (a decision is taken in the request's own channel)."""
    if not items:
        return Message(
            "Nothing is waiting for approval.",
            [section(":white_check_mark: *Nothing is waiting for approval.*")],
        )
    count = plural(len(items), "restore")
    blocks = [section(f":hourglass_flowing_sand: *{count} waiting for approval*, oldest first")]
    for item in items[:SHOWN_AT_MOST]:
        blocks.append(section(_pending_text(item, now)))
        why_not = _why_no_buttons(item, user_id, channel_id)
        if why_not:
            blocks.append(context(why_not))
        else:
            blocks.append(decision_buttons(item.request))
    if len(items) > SHOWN_AT_MOST:
        rest = items[SHOWN_AT_MOST:]
        blocks.append(
            context(f"…and {len(rest)} more: " + ", ".join(f"#{i.request.id}" for i in rest[:100]))
        )
    return Message(f"{count} waiting for approval", blocks)


# -- /vpsbot request <id> -------------------------------------------------------------------------

DECIDED = {"approve": "approved", "deny": "denied"}


def _value(detail: dict[str, Any], key: str, limit: int = 100) -> str:
    value = detail.get(key)
    return "" if value is None else safe(str(value), limit)


def _reason_of(detail: dict[str, Any]) -> str:
    reason = detail.get("reason")
    return f": “{safe(str(reason), 300)}”" if reason else ""


def _by(event: AuditEvent) -> str:
    return f" by {user(event.actor_id)}" if event.actor_id else ""


PRUNED = {
    "deleted": "deleted",
    "gone": "was already gone",
    "not_ours": "no longer the schedule's (its id names another): left alone",
}


def _event_line(event: AuditEvent) -> str:
    """One audit row in words (every outside word escaped)."""
    detail = event.detail or {}
    name = event.event
    if name == "request":
        action = _value(detail, "action") or "something"
        if detail.get("schedule_id") is not None:
            schedule = _value(detail, "schedule_id", 20)
            return f"schedule #{schedule} (of {user(event.actor_id or '')}) ran a {action}"
        return f"{user(event.actor_id or '')} asked for a {action}{_reason_of(detail)}"
    if name == "pruned":
        how = PRUNED.get(str(detail.get("how")), _value(detail, "how", 40))
        return (
            f"schedule #{_value(detail, 'schedule_id', 20)}'s retention: "
            f"`{_value(detail, 'name', 100)}` {how}"
        )
    if name == "vote":
        decided = DECIDED.get(str(detail.get("decision")), _value(detail, "decision"))
        return f"{user(event.actor_id or '')} {decided}{_reason_of(detail)}"
    if name == "transition":
        move = f"`{_value(detail, 'from')}` → `{_value(detail, 'to')}`"
        why = f" ({_value(detail, 'why', 200)})" if detail.get("why") else ""
        return f"{move} ({_value(detail, 'event')}){_by(event)}{why}{_reason_of(detail)}"
    if name == "api_call":
        status = detail.get("status")
        answer = f"HTTP {safe(str(status), 10)}" if status is not None else "no answer"
        return (
            f"VPS.org call `{_value(detail, 'method', 10)} {_value(detail, 'path', 200)}` "
            f"→ {answer}"
        )
    if name == "safety_snapshot":
        snapshot = (
            f" (snapshot `{_value(detail, 'snapshot_id', 20)}`)"
            if detail.get("snapshot_id")
            else ""
        )
        return f"safety snapshot: {_value(detail, 'step', 60)}{snapshot}"
    shown = safe(json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str), 300)
    return f"{safe(name, 40)}{_by(event)}: {shown}"


def _timeline(events: tuple[AuditEvent, ...], room: int) -> list[Block]:
    """The events as lines, packed into as few sections as fit, in at most `room` blocks."""
    lines = [f"{when(e.created_at)} · {_event_line(e)}" for e in events]
    blocks: list[Block] = []
    chunk = ""
    for index, line in enumerate(lines):
        candidate = f"{chunk}\n{line}" if chunk else line
        if len(candidate) <= MAX_SECTION_TEXT:
            chunk = candidate
            continue
        blocks.append(section(chunk))
        chunk = line
        if len(blocks) == room - 1:  # keep one for the note of what did not fit
            left = len(lines) - index
            blocks.append(
                context(f"…and {plural(left, 'more event')}: `/vpsbot audit` has them all.")
            )
            return blocks
    if chunk:
        blocks.append(section(chunk))
    return blocks


def history_message(history: History, now: datetime) -> Message:
    """A request's history: what it is, who asked and why, then every audit row in order, and
    where it stands now (the card's own sentence)."""
    request = history.request
    target = f" from {source(request)}" if request.target_id is not None else ""
    head = (
        f"*Request #{request.id}*: {request.action.value} of {on(request)}{target}\n"
        f"Asked by {user(request.requester_id)} in <#{request.channel_id}> "
        f"{when(request.created_at)} ({ago(request.created_at, now)})"
    )
    if request.reason:
        head += f"\n*Reason:* {safe(request.reason, 500)}"
    status = f"*Now:* `{request.status.value}` · {card_text(request, now)}"
    blocks = [section(head), section(status)]
    if history.events:
        blocks += _timeline(history.events, MAX_BLOCKS - len(blocks) - 1)
    else:
        blocks.append(context("No audit rows were written for this request."))
    blocks.append(context(f"Request #{request.id} · updated {when(request.updated_at)}"))
    return Message(clip(f"Request #{request.id}: {request.status.value}", MAX_FALLBACK), blocks)


# -- /vpsbot audit ---------------------------------------------------------------------------------


def audit_sent_message(days: int, rows: int, filename: str) -> Message:
    text = (
        f":page_facing_up: The audit trail of the last {plural(days, 'day')} "
        f"({plural(rows, 'event')}) is in your DM with vpsbot as `{safe(filename, 100)}`."
    )
    return Message(clip(text, MAX_FALLBACK), [section(text)])


def audit_failed_message(code: str) -> Message:
    text = (
        ":warning: vpsbot could not put the audit file in your DM "
        f"(Slack said `{safe(code or 'no answer', 60)}`). Nothing was sent; try again later, or "
        "ask an admin for `python -m bot audit`."
    )
    return Message(clip(text, MAX_FALLBACK), [section(text)])


def audit_comment(days: int, rows: int, since: datetime) -> str:
    """The DM's words beside the file."""
    return (
        f"The vpsbot audit trail since {when(since)} (the last {plural(days, 'day')}): "
        f"{plural(rows, 'event')}, one row each, times in UTC."
    )


__all__ = [
    "audit_comment",
    "audit_failed_message",
    "audit_sent_message",
    "decision_buttons",
    "history_message",
    "pending_message",
]
