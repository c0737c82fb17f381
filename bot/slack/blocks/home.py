"""A person's App Home tab: the restores waiting for their approval (Approve / Deny), their own
requests still waiting (Cancel), what is in flight at VPS.org, and the last ones to finish.

Within Slack's limits for a view: at most 100 blocks (each list is clipped, and says how many
it left out), 3,000 characters per section text, 150 per header."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.approvals import still_needed
from bot.domain.lifecycle import Status
from bot.domain.model import Action, OperationRequest
from bot.services.views import Home
from bot.slack import ids
from bot.slack.blocks.requests import approve_warning, on, source, what
from bot.slack.blocks.text import (
    MAX_SECTION_TEXT,
    Block,
    ago,
    clip,
    context,
    plural,
    safe,
    section,
    user,
    when,
)

MAX_VIEW_BLOCKS = 100  # Slack's limit for a Home tab
# How many of each list are shown: 2 blocks per restore to approve, 1 per own request, and the
# two last lists packed as lines into sections. With the headers, dividers and "more" lines
# this stays under MAX_VIEW_BLOCKS (checked in `home_view`).
SHOWN_TO_APPROVE = 25
SHOWN_OWN = 15
SHOWN_IN_FLIGHT = 30

ICONS = {
    Status.APPROVED: ":hourglass_flowing_sand:",
    Status.EXECUTING: ":hourglass_flowing_sand:",
    Status.RUNNING: ":arrows_counterclockwise:",
    Status.SUCCEEDED: ":white_check_mark:",
    Status.FAILED: ":x:",
    Status.NEEDS_ATTENTION: ":warning:",
    Status.DENIED: ":no_entry:",
    Status.CANCELLED: ":leftwards_arrow_with_hook:",
    Status.EXPIRED: ":hourglass:",
}
WORDS = {
    Status.APPROVED: "starting",
    Status.EXECUTING: "starting",
    Status.RUNNING: "in progress",
    Status.NEEDS_ATTENTION: "needs attention",
}


def _subject(request: OperationRequest) -> str:
    """`restore *web-01* (`12345`) from snapshot `nightly` (id `801`)`, and the like."""
    if request.action is Action.RESTORE:
        return f"restore {on(request)} from {what(request)}"
    if request.action is Action.DELETE:
        return f"delete {what(request)} of {on(request)}"
    return f"create {what(request)} of {on(request)}"


def _line(request: OperationRequest, now: datetime) -> str:
    """One request in a list: what, how it stands, who asked, since when."""
    word = WORDS.get(request.status, request.status.value.replace("_", " "))
    icon = ICONS.get(request.status, ":information_source:")
    return (
        f"{icon} *#{request.id}* {_subject(request)}: *{word}* · asked by "
        f"{user(request.requester_id)} · {ago(request.updated_at, now)}"
    )


def _expiry(request: OperationRequest, now: datetime) -> str:
    return f"expires {ago(request.expires_at, now)}" if request.expires_at else "no expiry"


def _button(action_id: str, label: str, request: OperationRequest, **extra: Any) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=label), action_id=action_id, value=str(request.id), **extra
    )


def _to_approve(request: OperationRequest, now: datetime) -> list[Block]:
    needed = still_needed(request)
    reason = f"\n*Reason:* {safe(request.reason, 500)}" if request.reason else ""
    text = (
        f":rotating_light: *#{request.id}* Restore {on(request)} from {source(request)}\n"
        f"Asked by {user(request.requester_id)} {ago(request.created_at, now)} in "
        f"<#{request.channel_id}> · needs *{plural(needed, 'more approval')}* · "
        f"{_expiry(request, now)}{reason}"
    )
    sure = ConfirmObject(
        title=PlainTextObject(text="Approve this restore?"),
        text=MarkdownTextObject(text=clip(approve_warning(request), 300)),  # as on the card
        confirm=PlainTextObject(text="Approve"),
        deny=PlainTextObject(text="Not yet"),
    )
    buttons = ActionsBlock(
        block_id=f"home_decision_{request.id}",
        elements=[
            _button(ids.HOME_APPROVE, "Approve", request, style="primary", confirm=sure),
            _button(ids.HOME_DENY, "Deny", request, style="danger"),
        ],
    )
    return [section(text), buttons.to_dict()]


def _own(request: OperationRequest, now: datetime) -> Block:
    if request.action is Action.RESTORE:
        needed = plural(still_needed(request), "more approval")
        state = f"waiting for approval ({needed})"
    else:
        state = f"waiting for your confirmation in <#{request.channel_id}>"
    text = (
        f":hourglass: *#{request.id}* You asked to {_subject(request)}: {state} · "
        f"{_expiry(request, now)}"
    )
    return SectionBlock(
        text=MarkdownTextObject(text=clip(text, MAX_SECTION_TEXT)),
        accessory=_button(ids.HOME_CANCEL, "Cancel", request),
    ).to_dict()


def _packed(lines: list[str]) -> list[Block]:
    """Lines in as few sections as fit (3,000 characters each)."""
    sections: list[str] = []
    for line in lines:
        line = clip(line, MAX_SECTION_TEXT)
        if sections and len(sections[-1]) + 1 + len(line) <= MAX_SECTION_TEXT:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    return [section(text) for text in sections]


def _header(text: str) -> Block:
    return HeaderBlock(text=PlainTextObject(text=text)).to_dict()


def _more(shown: int, total: int, where: str) -> list[Block]:
    left = total - shown
    return [context(f"…and {left} more {where}.")] if left > 0 else []


def home_blocks(home: Home, notice: str | None = None) -> list[Block]:
    now = home.at
    blocks: list[Block] = []
    if notice:
        blocks.append(section(notice))
    blocks.append(_header("Restores waiting for your approval"))
    if home.approvers_unknown:
        blocks.append(
            context(":warning: Slack could not say who is in the approver groups just now, so "
                    "the restores waiting for you cannot be listed. Open this tab again soon.")
        )  # fmt: skip
    elif home.approvals_open:
        blocks.append(
            context("No approvers are configured, so anyone in a request's channel may approve "
                    "it: vote on its card there (`/vpsbot pending` in that channel lists them).")
        )  # fmt: skip
    elif not home.to_approve:
        blocks.append(context("Nothing is waiting for your approval."))
    for request in home.to_approve[:SHOWN_TO_APPROVE]:
        blocks += _to_approve(request, now)
    blocks += _more(SHOWN_TO_APPROVE, len(home.to_approve), "(oldest first; `/vpsbot pending`)")

    blocks += [DividerBlock().to_dict(), _header("Your requests waiting")]
    if not home.own:
        blocks.append(context("None of your requests is waiting."))
    blocks += [_own(request, now) for request in home.own[:SHOWN_OWN]]
    blocks += _more(SHOWN_OWN, len(home.own), "of yours (oldest first)")

    blocks += [DividerBlock().to_dict(), _header("In flight at VPS.org")]
    flying = home.in_flight[:SHOWN_IN_FLIGHT]
    blocks += _packed([_line(r, now) for r in flying]) or [context("Nothing is in flight.")]
    blocks += _more(len(flying), len(home.in_flight), "in flight")

    blocks += [DividerBlock().to_dict(), _header("Recently finished")]
    blocks += _packed([_line(r, now) for r in home.recent]) or [context("Nothing yet.")]
    blocks.append(context(f"As of {when(now)} · updated each time you open this tab"))
    return blocks[:MAX_VIEW_BLOCKS]


def home_view(home: Home, notice: str | None = None) -> dict[str, Any]:
    """The Home tab `views.publish` shows `home.user_id`; `notice` goes on top (what became of
    their last click there)."""
    return View(type="home", blocks=home_blocks(home, notice)).to_dict()
