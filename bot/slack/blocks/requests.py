"""A request's card in the channel (posted, then updated in place), its outcome in the thread
and in DMs, and the words for every failure. One table, `CARD`, says how each (action, status)
reads; another, `FAILURES`, how each failure code does."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.approvals import still_needed
from bot.domain.lifecycle import UNDER_WAY, Status
from bot.domain.model import COMPLETED, Action, Kind, OperationRequest, safety_name
from bot.domain.operations import (
    MAX_DESCRIPTION,
    MAX_MANUAL_BACKUPS_PER_SERVER,
    MAX_SNAPSHOTS_PER_SERVER,
)
from bot.domain.outcomes import Failure, SafetyPlan, SafetyRemoval, SafetyStep, Why
from bot.slack import ids
from bot.slack.blocks.text import (
    DAY,
    MAX_FALLBACK,
    Block,
    Message,
    ago,
    clip,
    context,
    escape,
    people,
    plural,
    safe,
    safe_within,
    section,
    server_label,
    size,
    span,
    user,
    when,
)

# -- how people name things ------------------------------------------------------------------


def what(request: OperationRequest) -> str:
    """`snapshot `before-update`` or `manual backup “Pre-deploy”` or `backup 499`."""
    if request.action is Action.CREATE and request.kind is Kind.BACKUP:
        described = f" “{safe(request.target_name, 100)}”" if request.target_name else ""
        return f"manual backup{described}"
    name = f" `{safe(request.target_name, 100)}`" if request.target_name else ""
    ident = f" (id `{request.target_id}`)" if request.target_id is not None else ""
    return f"{request.kind.value}{name}{ident}"


def on(request: OperationRequest) -> str:
    return server_label(request.server) if request.server else "an unknown server"


def source(request: OperationRequest) -> str:
    """`snapshot `pre-migration` (id `801`, taken 2025-01-15 18:30 UTC, 5.0 GB)`."""
    details = [f"id `{request.target_id}`"]
    if request.asked.target_created_at is not None:
        details.append(f"taken {when(request.asked.target_created_at)}")
    if request.asked.target_size_mb is not None:
        details.append(size(request.asked.target_size_mb))
    name = f" `{safe(request.target_name, 100)}`" if request.target_name else ""
    return f"{request.kind.value}{name} ({', '.join(details)})"


# -- failures: a code and its data, in words --------------------------------------------------


def _detail(failure: Failure) -> str:
    return failure.detail or "no answer"


def _bot_stopped(failure: Failure, request: OperationRequest) -> str:
    if request.action is Action.RESTORE:
        return "the bot stopped while it was sending this request" + _reconciled(failure)
    return (
        "the bot stopped while it was sending this request; it may or may not have happened "
        "and was not sent again"
    )


def _reconciled(failure: Failure) -> str:
    """What the bot read of the server after a restore call with no usable answer."""
    if failure.read_detail:
        seen = f"could not read the server either ({failure.read_detail})"
    elif failure.status:
        seen = f"VPS.org shows the server {failure.status}"
    else:
        return ""
    return (
        f"; {seen}. The bot did not send the restore again: check the server, and ask again "
        "if it is still needed"
    )


def _unconfirmed(failure: Failure, request: OperationRequest) -> str:
    if request.action is Action.RESTORE:
        return _detail(failure) + _reconciled(failure)
    return _detail(failure)


def _refused(failure: Failure, request: OperationRequest) -> str:
    if request.action is Action.RESTORE:
        return f"VPS.org refused: {_detail(failure)}; nothing was restored"
    return _detail(failure)


def _stopped_following(failure: Failure, request: OperationRequest) -> str:
    if failure.detail:
        return (
            f"could not be read when the bot stopped following ({failure.detail}); outcome unknown"
        )
    if request.action is Action.RESTORE:
        return f"still {failure.status} when the bot stopped following; outcome unknown"
    return "still in progress when the bot stopped following it; outcome unknown"


def _not_listed(_: Failure, request: OperationRequest) -> str:
    if request.action is Action.RESTORE:
        return "the server is no longer listed by VPS.org"
    return "no longer listed by VPS.org"


NOTHING_RESTORED = "; nothing was restored"


def is_scheduled(request: OperationRequest) -> bool:
    """A run of a schedule: its card is its one message, updated in place."""
    return request.asked.schedule_id is not None and request.action is Action.CREATE


def counted(kind: Kind, count: int) -> str:
    """`3 snapshots`, `1 manual backup`: what VPS.org's per-server limit counts."""
    return plural(count, "snapshot" if kind is Kind.SNAPSHOT else "manual backup")


def limit_of(kind: Kind) -> int:
    return MAX_SNAPSHOTS_PER_SERVER if kind is Kind.SNAPSHOT else MAX_MANUAL_BACKUPS_PER_SERVER


def _check_failed(failure: Failure, request: OperationRequest) -> str:
    if is_scheduled(request):  # the run's look at the server, before it made anything
        noun = "snapshots" if request.kind is Kind.SNAPSHOT else "manual backups"
        return (
            f"could not read the server's {noun} before the run ({_detail(failure)}); nothing "
            "was created, the next run tries again"
        )
    return (
        f"could not check the {request.kind.value} before restoring ({_detail(failure)})"
        f"{NOTHING_RESTORED}"
    )


def _skipped(failure: Failure, request: OperationRequest, *, escaped: bool) -> str:
    """Why a scheduled run was skipped: the server is at VPS.org's limit and the oldest item
    there is not the schedule's to delete (or was, but could not be deleted). `escaped`: for
    the card (outside words escaped, the oldest's name in a code span); else plain, for
    `reason`, which escapes the whole."""
    server = request.server.name if request.server is not None else ""
    named = clip(server, 100) if server else "the server"
    oldest = clip(failure.detail, 100) if failure.detail else "unnamed"
    if escaped:
        named = f"*{safe(server, 100)}*" if server else "the server"
        oldest = f"`{safe(failure.detail, 100)}`" if failure.detail else "_unnamed_"
    elif failure.detail:
        oldest = f"“{oldest}”"
    limit = limit_of(request.kind)
    if failure.count:
        has = f"{named} already has {counted(request.kind, failure.count)} (VPS.org allows {limit})"
    else:
        has = f"{named} is at VPS.org's limit of {counted(request.kind, limit)}"
    if failure.status == "ours":
        return f"{has} and the oldest, {oldest}, is this schedule's own but could not be deleted"
    return f"{has} and the oldest, {oldest}, is not this schedule's to delete"


def _outside(text: str, limit: int = 60) -> str:
    """Words from VPS.org inside a safety failure, clipped so the failure's end (nothing was
    restored) always fits (the whole reason is escaped once, by `reason`/`short_reason`)."""
    return clip(text, limit) if text else "no answer"


def _safety_limit(failure: Failure, _: OperationRequest) -> str:
    if failure.count:
        many = plural(failure.count, "snapshot")
        most = (
            "the most VPS.org allows"
            if failure.count >= MAX_SNAPSHOTS_PER_SERVER
            else f"VPS.org allows {MAX_SNAPSHOTS_PER_SERVER}"
        )
        return f"the safety snapshot could not be taken: the server has {many}, {most}"
    return (
        "the safety snapshot could not be taken: VPS.org's limit of "
        f"{MAX_SNAPSHOTS_PER_SERVER} snapshots per server is reached ({_outside(failure.detail)})"
    )


def _safety_timeout(failure: Failure, _: OperationRequest) -> str:
    if failure.status:
        seen = f" (it was {_outside(failure.status, 40)})"
    elif failure.detail:
        seen = f" (it could not be read: {_outside(failure.detail)})"
    else:
        seen = ""
    return f"the safety snapshot was still not complete after {span(failure.seconds)}{seen}"


def _safety_unconfirmed(failure: Failure, request: OperationRequest) -> str:
    name = safety_name(request.id)
    if failure.read_detail:
        looked = (
            f"the server's snapshots could not be read to look for {name} "
            f"({_outside(failure.read_detail)})"
        )
    else:
        looked = f"no snapshot named {name} is listed"
    return f"VPS.org did not confirm the safety snapshot ({_outside(failure.detail)}) and {looked}"


# What stopped the safety snapshot, said first; each is followed by NOTHING_RESTORED (which
# the short reason keeps too) and, for SAFETY_UNCONFIRMED, what to do if one appears.
SAFETY: dict[Why, Callable[[Failure, OperationRequest], str]] = {
    Why.SAFETY_LIMIT: _safety_limit,
    Why.SAFETY_REFUSED: lambda f, r: f"VPS.org refused the safety snapshot ({_outside(f.detail)})",
    Why.SAFETY_FAILED: lambda f, r: (
        f"the safety snapshot ended {_outside(f.status, 40) if f.status else 'in no known status'}"
    ),
    Why.SAFETY_GONE: lambda f, r: "the safety snapshot disappeared before the restore",
    Why.SAFETY_TIMEOUT: _safety_timeout,
    Why.SAFETY_UNCONFIRMED: _safety_unconfirmed,
    Why.SAFETY_NAME_TAKEN: lambda f, r: (
        f"a snapshot named {safety_name(r.id)} that this request did not make is already on the "
        "server, so the safety snapshot could not be told apart from it (rename or delete that "
        "one, then ask again)"
    ),
    Why.RESUMED_LATE: lambda f, r: (
        f"the bot was stopped for {span(f.seconds)} before it could restore, and does not go on "
        "that late unasked: what was written on the server meanwhile would be lost (ask again)"
    ),
}


def _safety(failure: Failure, request: OperationRequest) -> str:
    said = SAFETY[failure.why](failure, request) + NOTHING_RESTORED
    if failure.why is Why.SAFETY_UNCONFIRMED:
        said += ". If one appears, it was made by this request: delete it when no longer needed"
    return said


FAILURES: dict[Why, Callable[[Failure, OperationRequest], str]] = {
    Why.API_REFUSED: _refused,
    Why.API_UNCONFIRMED: _unconfirmed,
    Why.STILL_LISTED: lambda f, r: (
        f"{_detail(f)}; it is still listed right now, but VPS.org may still carry the delete "
        "out. The delete was not sent again"
    ),
    Why.UNREADABLE_AFTER: lambda f, r: (
        f"{_detail(f)}; reading it back failed too ({f.read_detail}). It may or may not be "
        "deleted, and the delete was not sent again"
    ),
    Why.CHECK_FAILED: _check_failed,
    Why.TARGET_MOVED: lambda f, r: (
        f"the {r.kind.value} now belongs to another server{NOTHING_RESTORED}"
    ),
    Why.TARGET_INCOMPLETE: lambda f, r: (
        f"the {r.kind.value} is not complete (status: {f.status}){NOTHING_RESTORED}"
    ),
    Why.TARGET_CHANGED: lambda f, r: f"the snapshot changed since the request{NOTHING_RESTORED}",
    Why.SERVER_BUSY: lambda f, r: f"the server is already being restored{NOTHING_RESTORED}",
    Why.NOT_LISTED: _not_listed,
    Why.OBJECT_FAILED: lambda f, r: f"status: {f.status}",
    Why.SERVER_FAILED: lambda f, r: f"server status: {f.status}",
    Why.NEVER_SEEN_RESTORING: lambda f, r: (
        "VPS.org accepted the restore, but the server was never seen restoring (it is "
        f"{f.status}). It may not have happened: check the server before asking again"
    ),
    Why.UNREADABLE: lambda f, r: (
        f"the server could not be read {f.count} times in a row over {span(f.seconds)} "
        f"({f.detail}); the restore may still be running: check the server"
    ),
    Why.STOPPED_FOLLOWING: _stopped_following,
    Why.BOT_STOPPED: _bot_stopped,
    Why.CARD_NOT_POSTED: lambda f, r: f"Slack refused its card ({f.detail})",
    **dict.fromkeys(SAFETY, _safety),
    Why.SCHEDULE_SKIPPED: lambda f, r: _skipped(f, r, escaped=False),
    Why.LEGACY: lambda f, r: f.detail,
}


def _why(request: OperationRequest) -> str:
    failure = request.outcome.failure
    return FAILURES[failure.why](failure, request) if failure else "no reason given"


def reason(request: OperationRequest) -> str:
    """Why the request failed or needs a person, in words (escaped and clipped; a safety
    failure's own words are longer, and its outside words clipped, so its end always fits)."""
    failure = request.outcome.failure
    return safe(_why(request), 400 if failure is not None and failure.why in SAFETY else 300)


def short_reason(request: OperationRequest) -> str:
    """The reason's first clause, for the thread and the DM (the card says it all); for a
    safety snapshot that could not be had, what stopped it and that nothing was restored."""
    failure = request.outcome.failure
    if failure is not None and failure.why in SAFETY:
        return safe_within(SAFETY[failure.why](failure, request), 150) + NOTHING_RESTORED
    text = _why(request)
    cut = min((i for i in (text.find("; "), text.find(". ")) if i > 0), default=len(text))
    return safe(text[:cut], 150)


# -- the card, by (action, status) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    """The pieces a card's sentence is made of, worked out once."""

    request: OperationRequest
    now: datetime

    @property
    def who(self) -> str:
        return user(self.request.requester_id)

    @property
    def what(self) -> str:
        return what(self.request)

    @property
    def on(self) -> str:
        return on(self.request)

    @property
    def source(self) -> str:
        return source(self.request)

    @property
    def approvers(self) -> str:
        return people(self.request.outcome.approvers)

    @property
    def reason(self) -> str:
        return reason(self.request)

    @property
    def decider(self) -> str:
        return user(self.request.outcome.decided_by or self.request.requester_id)

    @property
    def took(self) -> str:
        took = self.request.outcome.took_seconds
        return f"took {span(took)}" if took is not None else "done"

    @property
    def finished(self) -> str:
        parts = [size(self.request.outcome.size_mb)]
        if self.request.outcome.took_seconds is not None:
            parts.append(self.took)
        return ", ".join(parts)

    @property
    def taken(self) -> str:
        taken = self.request.asked.target_created_at
        return f", taken {ago(taken, self.now)}" if taken is not None else ""

    @property
    def discarded(self) -> str:
        taken = self.request.asked.target_created_at
        undone = self.request.asked.undo_of
        if undone is not None:
            since = f" ({ago(taken, self.now)})" if taken is not None else ""
            return (
                f"The server goes back to how it was before the restore of request #{undone}: "
                f"everything written on it since then{since} is lost."
            )
        if taken is None:
            return "Everything written on the server since that point is lost."
        return f"Everything written on the server since then ({ago(taken, self.now)}) is lost."

    @property
    def why_asked(self) -> str:
        text = self.request.reason
        return f"\n*Reason:* {safe(text, 500)}" if text else ""

    @property
    def deny_reason(self) -> str:
        """` Reason: “…”`: what the approver who denied it said ("" when nothing)."""
        said = self.request.outcome.deny_reason
        return f" Reason: “{safe(said, MAX_DESCRIPTION)}”." if said else ""

    @property
    def list_command(self) -> str:
        return f"`/{self.request.kind.value} list`"

    @property
    def caveats(self) -> str:
        """What is wrong with the snapshot or backup to restore, as it was when asked."""
        asked, noun = self.request.asked, self.request.kind.value
        lines = []
        if asked.target_status and asked.target_status != COMPLETED:
            lines.append(
                f"\n:warning: *This {noun} is not complete* (status: "
                f"`{safe(asked.target_status, 40)}`): nothing will be restored unless VPS.org "
                "shows it completed when the restore is approved."
            )
        expires = asked.target_expires_at
        if expires is not None and expires <= self.now:
            lines.append(
                f"\n:warning: *This {noun} expired {ago(expires, self.now)}* ({when(expires)}): "
                "VPS.org may already have removed it."
            )
        return "".join(lines)

    @property
    def undo_of(self) -> str:
        undone = self.request.asked.undo_of
        return f"*Undo of request #{undone}*: " if undone is not None else ""

    @property
    def safety_plan(self) -> str:
        """What the approval card promises about a safety snapshot (the plan approved)."""
        asked = self.request.asked
        if asked.safety is SafetyPlan.PLANNED:
            return (
                "The server is stopped and all its current data is overwritten. A *safety "
                f"snapshot* of {self.on} is taken first, so this restore can be undone; if it "
                "cannot be taken, nothing is restored."
            )
        if asked.safety is SafetyPlan.AT_LIMIT:
            count = asked.server_snapshots
            has = f"has {count}" if count is not None else "has reached that"
            return (
                "The server is stopped first and all its current data is overwritten.\n"
                ":warning: *No safety snapshot can be taken*: VPS.org allows "
                f"{MAX_SNAPSHOTS_PER_SERVER} snapshots per server and {self.on} {has}, so this "
                "restore *cannot be undone*. (To have one: delete one of its snapshots, cancel "
                "this request and ask again.)"
            )
        if asked.safety is SafetyPlan.OFF:
            return (
                "The server is stopped first and all its current data is overwritten. No "
                "safety snapshot is taken (turned off): this cannot be undone."
            )
        return (  # asked before there were safety snapshots
            "The server is stopped first, all its current data is overwritten, and this "
            "cannot be undone."
        )

    @property
    def safety(self) -> str:
        """The line about the safety snapshot once the restore is under way or over ("" when
        none was taken)."""
        request, outcome = self.request, self.request.outcome
        if request.action is not Action.RESTORE or outcome.safety_id is None:
            return ""
        ref = safety_ref(request)
        if outcome.safety_removed is not None:
            return "\n" + _let_go(request)
        if request.status is Status.RUNNING and outcome.safety_step is SafetyStep.READY:
            return (
                f"\n:camera_with_flash: Safety snapshot {ref} was taken first: this restore "
                "can be undone once it is over."
            )
        keep = outcome.safety_keep_until
        kept = f", kept until {when(keep)}" if keep is not None else ""
        if request.undoable:
            return (
                f"\n:camera_with_flash: Safety snapshot {ref} was taken just before the "
                f"restore{kept}: *Undo restore* puts the server back as it was then."
            )
        failure = outcome.failure
        vanished = failure is not None and failure.why is Why.SAFETY_GONE
        if keep is not None and request.status not in UNDER_WAY and not vanished:
            return (
                f"\nThe safety snapshot {ref} is kept until {when(keep)}, then vpsbot deletes it."
            )
        return ""


def safety_ref(request: OperationRequest) -> str:
    """`pre-restore-7` (id `903`): the restore's safety snapshot (its name alone while VPS.org
    has given no id)."""
    ident = request.outcome.safety_id
    name = f"`{safety_name(request.id)}`"
    return f"{name} (id `{ident}`)" if ident is not None else name


def _was_undoable(request: OperationRequest) -> bool:
    """Undo was offered until the bot let go of the safety snapshot."""
    outcome = request.outcome
    return replace(request, outcome=outcome.but(safety_removed=None)).undoable


def _no_more_undo(request: OperationRequest) -> str:
    return "; this restore can no longer be undone" if _was_undoable(request) else ""


def _let_go(request: OperationRequest) -> str:
    """How the bot let go of the safety snapshot, on the card."""
    outcome, ref = request.outcome, safety_ref(request)
    removed_at = outcome.safety_removed_at
    at = f" {when(removed_at)}" if removed_at is not None else ""
    if outcome.safety_removed is SafetyRemoval.DELETED:
        said = f":wastebasket: Safety snapshot {ref} was deleted by vpsbot{at}, as planned"
    elif outcome.safety_removed is SafetyRemoval.GONE:
        said = (
            f":wastebasket: Safety snapshot {ref} was already gone from VPS.org when vpsbot "
            f"came to delete it{at}"
        )
    else:
        said = (
            f":warning: Snapshot id `{outcome.safety_id}` now names another snapshot, not the "
            f"safety snapshot `{safety_name(request.id)}`, so vpsbot left it alone"
        )
    return f"{said}{_no_more_undo(request)}."


def _restoring(c: Card) -> str:
    """The executing restore's card, by how far its safety snapshot has got."""
    request, approved = c.request, f"Approved by {c.approvers}."
    step = request.outcome.safety_step
    if step in (SafetyStep.POSTING, SafetyStep.FOLLOWING):
        ident = request.outcome.safety_id
        named = f"`{safety_name(request.id)}`" + (f", id `{ident}`" if ident is not None else "")
        return (
            f":camera_with_flash: {approved} Taking a *safety snapshot* ({named}) of {c.on} "
            f"before restoring it from {c.source}…"
        )
    if step is SafetyStep.READY:
        return (
            f":hourglass_flowing_sand: {approved} Safety snapshot {safety_ref(request)} is "
            f"complete. Restoring {c.on} from {c.source}: asking VPS.org…"
        )
    planned = request.asked.safety is SafetyPlan.PLANNED
    then = "taking a safety snapshot" if planned else "asking VPS.org"
    return (
        f":hourglass_flowing_sand: {approved} Restoring {c.on} from {c.source}: checking the "
        f"target, then {then}…"
    )


C, R, D = Action.CREATE, Action.RESTORE, Action.DELETE
S = Status
CARD: dict[tuple[Action, Status], Callable[[Card], str]] = {
    (C, S.EXECUTING): lambda c: (
        f":hourglass_flowing_sand: {c.who} is creating a {c.what} of {c.on}: *in progress*."
    ),
    (C, S.RUNNING): lambda c: CARD[C, S.EXECUTING](c),
    (C, S.SUCCEEDED): lambda c: (
        f":white_check_mark: {c.who}'s {c.what} of {c.on} is *complete*: {c.finished}."
    ),
    (C, S.FAILED): lambda c: f":x: {c.who}'s {c.what} of {c.on} *failed*: {c.reason}.",
    (C, S.NEEDS_ATTENTION): lambda c: (
        f":warning: {c.who}'s {c.what} of {c.on}: *outcome unknown* ({c.reason}). "
        f"Check with {c.list_command}."
    ),
    (D, S.PENDING_CONFIRMATION): lambda c: (
        f":wastebasket: {c.who} wants to delete {c.what} of {c.on}{c.taken}. "
        "Deleting is permanent and cannot be undone."
    ),
    (D, S.EXECUTING): lambda c: f":hourglass_flowing_sand: Deleting {c.what} of {c.on}…",
    (D, S.SUCCEEDED): lambda c: f":wastebasket: {c.decider} deleted {c.what} of {c.on}.",
    (D, S.FAILED): lambda c: (
        f":x: {c.what[:1].upper()}{c.what[1:]} of {c.on} was *not deleted*: {c.reason}."
    ),
    (D, S.NEEDS_ATTENTION): lambda c: (
        f":warning: VPS.org did not confirm the delete of {c.what} of {c.on} ({c.reason}): it "
        f"may or may not have happened. Check with {c.list_command} before trying again."
    ),
    (D, S.CANCELLED): lambda c: (
        f":leftwards_arrow_with_hook: {c.who} cancelled the delete of {c.what}. No change."
    ),
    (D, S.EXPIRED): lambda c: (
        f":hourglass: The delete of {c.what} of {c.on} was not confirmed in time: no change."
    ),
    (R, S.PENDING_APPROVAL): lambda c: (
        f":rotating_light: {c.undo_of}*Restore requested* by {c.who}: restore {c.on} from "
        f"{c.source}.\n*{c.discarded}* {c.safety_plan}{c.why_asked}{c.caveats}"
    ),
    (R, S.APPROVED): lambda c: CARD[R, S.EXECUTING](c),
    (R, S.EXECUTING): _restoring,
    (R, S.RUNNING): lambda c: (
        f":arrows_counterclockwise: *Restoring* {c.on} from {c.source}: *in progress*. "
        f"Requested by {c.who}, approved by {c.approvers}.{c.safety}"
    ),
    (R, S.SUCCEEDED): lambda c: (
        f":white_check_mark: {c.on} was *restored* from {c.source} and is running again "
        f"({c.took}). Requested by {c.who}, approved by {c.approvers}.{c.safety}"
    ),
    (R, S.FAILED): lambda c: (
        f":x: The restore of {c.on} from {c.source} *failed*: {c.reason}.{c.safety}"
    ),
    (R, S.NEEDS_ATTENTION): lambda c: (
        f":warning: The restore of {c.on} from {c.source} *needs attention*: {c.reason}.{c.safety}"
    ),
    (R, S.DENIED): lambda c: (
        f":no_entry: {c.decider} denied the restore of {c.on} from {c.source}.{c.deny_reason} "
        "No change."
    ),
    (R, S.CANCELLED): lambda c: (
        f":leftwards_arrow_with_hook: {c.who} cancelled the restore of {c.on}. No change."
    ),
    (R, S.EXPIRED): lambda c: (
        f":hourglass: The restore of {c.on} from {c.source} expired without enough approvals. "
        "Nothing was restored."
    ),
}


def card_text(request: OperationRequest, now: datetime) -> str:
    if is_scheduled(request):
        return scheduled_text(request, now)
    sentence = CARD.get((request.action, request.status))
    if sentence is None:  # a status this action never reaches; say it plainly
        return f"{request.action.value.capitalize()} of {on(request)}: {request.status.value}."
    return sentence(Card(request, now))


# -- a scheduled run's card: one message, updated in place; no buttons ---------------------------

MAX_PRUNED_SHOWN = 10


def timing(text: str) -> str:
    """A schedule's `when` for mrkdwn: as is (`daily 03:00`), or in a code span when it has
    mrkdwn's marks (a cron's `*`)."""
    shown = safe(text, 80)
    return f"`{shown}`" if any(mark in shown for mark in "*_~") else shown


def _run_of(request: OperationRequest) -> str:
    """`auto-3-20261205-0300` (id `901`), or the manual backup (id `901`)."""
    ident = f" (id `{request.target_id}`)" if request.target_id is not None else ""
    if request.kind is Kind.SNAPSHOT:
        name = request.asked.name or request.target_name
        return f"`{safe(name, 100)}`{ident}" if name else f"the snapshot{ident}"
    return f"the manual backup{ident}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _list_command(request: OperationRequest) -> str:
    server = f" {request.server.id}" if request.server is not None else ""
    manual = " manual" if request.kind is Kind.BACKUP and server else ""
    return f"`/{request.kind.value} list{server}{manual}`"


def scheduled_head(request: OperationRequest) -> str:
    """`:calendar: Scheduled snapshot of *web-01* (`123`) — schedule #3 (daily 03:00, keeps 3)`."""
    asked = request.asked
    noun = "snapshot" if request.kind is Kind.SNAPSHOT else "manual backup"
    about = [timing(asked.schedule_when)] if asked.schedule_when else []
    if asked.schedule_keep > 0:
        about.append(f"keeps {asked.schedule_keep}")
    said = f" ({', '.join(about)})" if about else ""
    return f":calendar: Scheduled {noun} of {on(request)} — schedule #{asked.schedule_id}{said}"


def is_skipped(request: OperationRequest) -> bool:
    failure = request.outcome.failure
    return (
        request.status is Status.FAILED
        and failure is not None
        and failure.why is Why.SCHEDULE_SKIPPED
    )


def _skip_text(request: OperationRequest) -> str:
    failure = request.outcome.failure
    assert failure is not None
    if failure.status == "ours":
        then = "Nothing was created; the next run tries again."
    else:
        noun = "snapshots" if request.kind is Kind.SNAPSHOT else "manual backups"
        then = (
            f"Nothing was created: delete one of its {noun} ({_list_command(request)}) to make "
            "room for the next run."
        )
    return f":fast_forward: *skipped*: {_skipped(failure, request, escaped=True)}. {then}"


def _run_state(card: Card) -> str:
    """Where the run stands, in one line."""
    request, status = card.request, card.request.status
    run = _run_of(request)
    if status in (S.APPROVED, S.EXECUTING) and request.target_id is None:
        return f":hourglass_flowing_sand: Creating {run}…"
    if status in (S.APPROVED, S.EXECUTING, S.RUNNING):
        return f":hourglass_flowing_sand: Creating {run}: *in progress*."
    if status is S.SUCCEEDED:
        return f":white_check_mark: {_capital(run)} is *complete*: {card.finished}."
    if is_skipped(request):
        return _skip_text(request)
    if status is S.FAILED:
        return f":x: {_capital(run)} *failed*: {card.reason}."
    if status is S.NEEDS_ATTENTION:
        return (
            f":warning: {_capital(run)}: *outcome unknown* ({card.reason}). Check with "
            f"{_list_command(request)}."
        )
    return f"{_capital(run)}: {status.value.replace('_', ' ')}."  # a status a run never reaches


def _pruned(request: OperationRequest) -> str:
    """`auto-3-…`, `auto-3-…` (snapshots, by name) or manual backups `901`, `902` (by id)."""
    outcome = request.outcome
    if request.kind is Kind.SNAPSHOT and outcome.pruned_names:
        shown = [f"`{safe(name, 100)}`" for name in outcome.pruned_names]
        prefix = ""
    elif outcome.pruned_ids:
        shown = [f"`{ident}`" for ident in outcome.pruned_ids]
        prefix = "manual backups " if len(shown) > 1 else "manual backup "
        prefix = prefix if request.kind is Kind.BACKUP else ""
    else:
        shown = [f"“{safe(name, 100)}”" for name in outcome.pruned_names]
        prefix = ""
    more = len(shown) - MAX_PRUNED_SHOWN
    listed = ", ".join(shown[:MAX_PRUNED_SHOWN]) + (f" and {more} more" if more > 0 else "")
    return prefix + listed


def _retention(request: OperationRequest) -> str:
    """What retention did on this run's account ("" when nothing yet), one line each."""
    outcome = request.outcome
    done = []
    if outcome.pruned_ids or outcome.pruned_names:
        done.append(f"pruned {_pruned(request)}")
    if outcome.kept is not None:
        done.append(f"the schedule keeps {outcome.kept} of its own")
    lines = [f"\n:recycle: Retention: {'; '.join(done)}."] if done else []
    if outcome.prune_failed:
        noun = "snapshot" if request.kind is Kind.SNAPSHOT else "manual backup"
        lines.append(
            f"\n:warning: Retention could not delete an older {noun} the schedule made: "
            f"“{safe(outcome.prune_failed, 300)}”; it tries again later."
        )
    return "".join(lines)


def scheduled_text(request: OperationRequest, now: datetime) -> str:
    """A scheduled run's card: which schedule, where the run stands, what retention did."""
    return f"{scheduled_head(request)}\n{_run_state(Card(request, now))}{_retention(request)}"


def _scheduled_blocks(request: OperationRequest, _now: datetime) -> list[Block]:
    details = []
    if request.kind is Kind.BACKUP and request.asked.description:
        details.append(f"*Description:* {_quoted(request.asked.description)}")
    steps = next_steps(request)
    if steps:
        details.append(steps)
    kind, schedule_id = request.kind.value, request.asked.schedule_id
    note = (
        f"{_api_note(request)}request #{request.id} · `/{kind} schedules` lists the schedules "
        f"· `/{kind} unschedule {schedule_id}` stops this one"
    )
    return [*([section("\n".join(details))] if details else []), context(note)]


# -- buttons --------------------------------------------------------------------------------------


def _button(
    action_id: str,
    label: str,
    request: OperationRequest,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=label),
        action_id=action_id,
        value=str(request.id),
        style=style,
        confirm=confirm,
    )


def _confirm(
    title: str, text: str, yes: str, no: str, *, style: str | None = None
) -> ConfirmObject:
    return ConfirmObject(
        title=PlainTextObject(text=title),
        text=MarkdownTextObject(text=clip(text, 300)),
        confirm=PlainTextObject(text=yes),
        deny=PlainTextObject(text=no),
        style=style,
    )


def delete_buttons(request: OperationRequest) -> Block:
    noun = request.kind.value
    sure = _confirm(
        f"Delete this {noun}?",
        f"{what(request)} of {on(request)} will be gone for good.",
        "Delete",
        "Keep it",
        style="danger",
    )
    return ActionsBlock(
        block_id=f"delete_decision_{request.id}",
        elements=[
            _button(ids.DELETE_CONFIRM, f"Delete {noun}", request, style="danger", confirm=sure),
            _button(ids.DELETE_CANCEL, "Cancel", request),
        ],
    ).to_dict()


def approve_warning(request: OperationRequest) -> str:
    """The Approve button's confirmation: what the restore does, and whether it can be undone
    (what the card says, in short)."""
    asked = request.asked
    if asked.safety is SafetyPlan.PLANNED:
        undo = "A safety snapshot is taken first, so this restore can be undone."
    elif asked.safety is SafetyPlan.AT_LIMIT:
        undo = "No safety snapshot can be taken (snapshot limit reached): this cannot be undone."
    elif asked.safety is SafetyPlan.OFF:
        undo = "No safety snapshot is taken: this cannot be undone."
    else:
        undo = "This cannot be undone."
    return f"{undo} {on(request)} will be overwritten."


def restore_buttons(request: OperationRequest) -> Block:
    sure = _confirm("Approve this restore?", approve_warning(request), "Approve", "Not yet")
    return ActionsBlock(
        block_id=f"restore_decision_{request.id}",
        elements=[
            _button(ids.RESTORE_APPROVE, "Approve", request, style="primary", confirm=sure),
            _button(ids.RESTORE_DENY, "Deny", request, style="danger"),
            _button(ids.RESTORE_CANCEL, "Cancel", request),
        ],
    ).to_dict()


def undo_button(request: OperationRequest) -> Block:
    """*Undo restore*: asks for a restore back to the safety snapshot (approved like any)."""
    return ActionsBlock(
        block_id=f"restore_undo_{request.id}",
        elements=[_button(ids.RESTORE_UNDO, "Undo restore", request)],
    ).to_dict()


def _undo(request: OperationRequest) -> list[Block]:
    """The Undo button, while the restore can be undone."""
    return [undo_button(request)] if request.undoable else []


# -- whole messages -----------------------------------------------------------------------------


def _api_note(request: OperationRequest) -> str:
    message = request.outcome.api_message
    if message and request.status in (Status.RUNNING, Status.EXECUTING):
        return f"VPS.org: “{safe(message, 300)}” · "
    return ""


def _restore_blocks(request: OperationRequest, now: datetime) -> list[Block]:
    if request.status is not Status.PENDING_APPROVAL:
        note = _api_note(request) if request.status is Status.RUNNING else ""
        undone = request.asked.undo_of
        undoes = f" · undo of request #{undone}" if undone is not None else ""
        return [*_undo(request), context(f"{note}request #{request.id}{undoes}")]
    have = request.outcome.approvers
    needed = still_needed(request)
    noun = "approval" if needed == 1 else "approvals"
    so_far = f" Approved so far by {people(have)}." if have else ""
    expires = request.expires_at
    deadline = f"expires {ago(expires, now)} ({when(expires)})" if expires else "no expiry"
    return [
        section(
            f"Needs *{needed} more {noun}* from someone other than "
            f"{user(request.requester_id)}.{so_far}"
        ),
        restore_buttons(request),
        context(f"Request #{request.id} · {deadline}"),
    ]


def _delete_blocks(request: OperationRequest, now: datetime) -> list[Block]:
    if request.status is not Status.PENDING_CONFIRMATION:
        return [context(f"request #{request.id}")]
    expires = f" · expires {ago(request.expires_at, now)}" if request.expires_at else ""
    return [
        delete_buttons(request),
        context(f"Only {user(request.requester_id)} can confirm{expires} · request #{request.id}"),
    ]


def _quoted(text: str) -> str:
    return f"“{safe(text, 500)}”" if text.strip() else "_none_"


def _understood(request: OperationRequest) -> str:
    """What the bot understood the create to be: the snapshot's name and the description, as
    parsed from the command, so a slip (a space in the name) shows at once."""
    asked = request.asked
    described = f"*Description:* {_quoted(asked.description)}"
    if request.kind is Kind.SNAPSHOT:
        return f"*Name:* `{safe(asked.name or request.target_name, 100)}` · {described}"
    return described


def next_steps(request: OperationRequest) -> str:
    """The new snapshot's or backup's id and the commands to restore or delete it, once VPS.org
    gave the id ("" while unknown, or when nothing is left to restore)."""
    ident, kind = request.target_id, request.kind.value
    if ident is None:
        return ""
    restore, delete = f"`/{kind} restore {ident}`", f"`/{kind} delete {ident}`"
    failure = request.outcome.failure
    if request.status is Status.RUNNING:
        commands = f"{restore} (once it is complete) · {delete}"
    elif request.status in (Status.SUCCEEDED, Status.NEEDS_ATTENTION):
        commands = f"{restore} · {delete}"
    elif request.status is Status.FAILED and failure and failure.why is Why.OBJECT_FAILED:
        commands = delete  # it is there, failed: only worth deleting
    else:
        return ""
    return f"{kind.capitalize()} id `{ident}` · {commands}"


def _create_blocks(request: OperationRequest, now: datetime) -> list[Block]:
    steps = next_steps(request)
    details = _understood(request) + (f"\n{steps}" if steps else "")
    return [section(details), context(f"{_api_note(request)}request #{request.id}")]


MORE: dict[Action, Callable[[OperationRequest, datetime], list[Block]]] = {
    Action.CREATE: _create_blocks,
    Action.DELETE: _delete_blocks,
    Action.RESTORE: _restore_blocks,
}


def _more(request: OperationRequest, now: datetime) -> list[Block]:
    """The card's blocks after its sentence."""
    if is_scheduled(request):
        return _scheduled_blocks(request, now)
    return MORE[request.action](request, now)


def request_message(request: OperationRequest, now: datetime) -> Message:
    """The request's message in the channel, as it stands now (posted, then updated in place).
    A scheduled run's card reads as one: its schedule, the run, what retention did."""
    text = card_text(request, now)
    return Message(clip(text, MAX_FALLBACK), [section(text), *_more(request, now)])


# -- how it ended, said short: in the card's thread and in DMs ----------------------------------


def _cancelled(card: Card) -> str:
    if card.request.outcome.decided_by is None and card.request.outcome.failure is not None:
        return f"cancelled: {short_reason(card.request)}"  # by the bot: Slack refused the card
    return f"cancelled by {card.decider}"


EMOJI: dict[Status, str] = {
    S.SUCCEEDED: ":white_check_mark:",
    S.FAILED: ":x:",
    S.NEEDS_ATTENTION: ":warning:",
    S.DENIED: ":no_entry:",
    S.CANCELLED: ":leftwards_arrow_with_hook:",
    S.EXPIRED: ":hourglass:",
    S.RUNNING: ":arrows_counterclockwise:",
    S.EXECUTING: ":hourglass_flowing_sand:",
    S.APPROVED: ":hourglass_flowing_sand:",
    S.PENDING_APPROVAL: ":hourglass_flowing_sand:",
    S.PENDING_CONFIRMATION: ":hourglass_flowing_sand:",
}

# The thread reply, under the card: "done in 21 s", "failed: <why>".
REPLY: dict[Status, Callable[[Card], str]] = {
    S.SUCCEEDED: lambda c: (
        f"done in {span(c.request.outcome.took_seconds)}"
        if c.request.outcome.took_seconds is not None
        else "done"
    ),
    S.FAILED: lambda c: f"failed: {short_reason(c.request)}",
    S.NEEDS_ATTENTION: lambda c: f"needs attention: {short_reason(c.request)}",
    S.DENIED: lambda c: f"denied by {c.decider}",
    S.CANCELLED: lambda c: _cancelled(c),
    S.EXPIRED: lambda c: (
        "expired without enough approvals: nothing was restored"
        if c.request.action is Action.RESTORE
        else "expired: not confirmed in time, nothing was done"
    ),
    S.RUNNING: lambda c: "in progress",
    S.EXECUTING: lambda c: "under way",
    S.APPROVED: lambda c: "approved, under way",
    S.PENDING_APPROVAL: lambda c: "waiting for approval",
    S.PENDING_CONFIRMATION: lambda c: "waiting for confirmation",
}

# How it ended, after what it was: "... is ready (took 21 s)", "... failed: <why>".
ENDED: dict[Status, Callable[[Card], str]] = {
    S.SUCCEEDED: lambda c: (
        ("is ready" if c.request.action is Action.CREATE else "is done")
        + (f" ({c.took})" if c.request.outcome.took_seconds is not None else "")
    ),
    S.FAILED: lambda c: f"failed: {short_reason(c.request)}",
    S.NEEDS_ATTENTION: lambda c: f"needs attention: {short_reason(c.request)}",
    S.DENIED: lambda c: f"was denied by {c.decider}{_short_deny_reason(c.request)}",
    S.CANCELLED: lambda c: f"was {_cancelled(c)}",
    S.EXPIRED: lambda c: (
        "expired without enough approvals: nothing was restored"
        if c.request.action is Action.RESTORE
        else "expired: nothing was done"
    ),
}


def _short_deny_reason(request: OperationRequest) -> str:
    """`: “…”`, the denial's reason for the one-line DM (clipped; the card has it whole)."""
    said = request.outcome.deny_reason
    return f": “{safe_within(said, 150)}”" if said else ""


def _ended(card: Card) -> str:
    if is_skipped(card.request):
        return f"was skipped: {short_reason(card.request)}"
    said = ENDED.get(card.request.status)
    return said(card) if said else f"is {card.request.status.value.replace('_', ' ')}"


def _subject(card: Card) -> str:
    """What it was, for a DM read away from the channel."""
    request = card.request
    if is_scheduled(request):
        return f"The scheduled {card.what} of {card.on} (schedule #{request.asked.schedule_id})"
    if request.action is Action.CREATE:  # only the requester hears of a create
        return f"Your {card.what} of {card.on}"
    if request.action is Action.RESTORE:  # the requester and the approvers
        return f"The restore of {card.on} from {card.what}"
    return f"The delete of {card.what} of {card.on}"


def _channel(request: OperationRequest) -> str:
    return f"<#{safe(request.channel_id, 40)}>"


def _link(permalink: str) -> str:
    """A link to the card, when Slack gave a plain https URL (nothing that could break out of
    the `<url|label>` markup); "" otherwise."""
    usable = (
        permalink.startswith("https://")
        and len(permalink) <= 200
        and not any(c in permalink for c in "<>| \n\t")
    )
    return f"<{permalink}|see the request>" if usable else ""


def outcome_message(
    request: OperationRequest, now: datetime, *, direct: bool = False, permalink: str = ""
) -> Message:
    """How the request ended, said once per place (the card, updated in place, holds the
    whole story): the reply in the card's thread is one short line; `direct`, the DM is one
    line saying what it was and how it ended, with a link to the card (`permalink`, from
    chat.getPermalink) or, without one, the channel's name. A request whose card was never
    posted has only its DM: that one says it all, as the card would have."""
    card = Card(request, now)
    if not direct:
        said = (
            f":fast_forward: skipped: {short_reason(request)}"
            if is_skipped(request)
            else f"{EMOJI[request.status]} {REPLY[request.status](card)}"
        )
        text = clip(said, MAX_FALLBACK)
        return Message(text, [section(text), *_undo(request)])
    if not request.message_ts:  # no card (Slack refused it): the DM is the whole story
        text = f"{card_text(request, now)} (in {_channel(request)})"
        more = [b for b in _more(request, now) if b["type"] != "actions"]
        return Message(clip(text, MAX_FALLBACK), [section(text), *more])
    where = _link(permalink) or f"in {_channel(request)}"
    emoji = ":fast_forward:" if is_skipped(request) else EMOJI[request.status]
    said = f"{emoji} {_subject(card)} {_ended(card)}"
    head = clip(said, MAX_FALLBACK - len(where) - 3)
    text = f"{head} · {where}"
    return Message(text, [section(text)])


# -- notes in the card's thread: what the bot did later on its own ---------------------------


def _kept_for(request: OperationRequest) -> str:
    """` after 7 days`: how long the safety snapshot was kept ("" when not known)."""
    taken, until = request.outcome.safety_taken_at, request.outcome.safety_keep_until
    if taken is None or until is None or until <= taken:
        return ""
    seconds = (until - taken).total_seconds()
    if seconds < DAY:
        return f" after {span(seconds)}"
    return f" after {plural(int(seconds / DAY + 0.5), 'day')}"


def _safety_deleted(request: OperationRequest) -> str:
    return (
        f":wastebasket: Safety snapshot {safety_ref(request)} deleted{_kept_for(request)} as "
        f"planned{_no_more_undo(request)}."
    )


def _safety_gone(request: OperationRequest) -> str:
    return (
        f":wastebasket: Safety snapshot {safety_ref(request)} was already gone from VPS.org "
        f"when vpsbot came to delete it{_kept_for(request)}{_no_more_undo(request)}."
    )


def _safety_not_ours(request: OperationRequest) -> str:
    ident = request.outcome.safety_id
    which = f"Snapshot id `{ident}`" if ident is not None else "Its id"
    stopped = " and no longer offers *Undo restore*" if _was_undoable(request) else ""
    return (
        f":warning: {which} now names another snapshot, not the safety snapshot "
        f"`{safety_name(request.id)}` of this restore, so vpsbot left it alone{stopped}."
    )


# A note's code (the outbox row's payload) -> its words.
NOTES: dict[str, Callable[[OperationRequest], str]] = {
    "safety_deleted": _safety_deleted,
    "safety_gone": _safety_gone,
    "safety_not_ours": _safety_not_ours,
}


def note_message(request: OperationRequest, note: str, now: datetime) -> Message:
    """A note in the request's thread about something the bot did later on its own (deleting
    the safety snapshot after its keep period). A code this version does not know reads as a
    neutral line."""
    said = NOTES.get(note)
    if said is not None:
        text = said(request)
    else:
        text = f":information_source: An update on request #{request.id} (`{safe(note, 40)}`)."
    return Message(clip(text, MAX_FALLBACK), [section(text)])


# -- a reminder in the thread of a restore still waiting for approval ----------------------------


def who_may_approve(approvers: Sequence[str], requester_id: str) -> str:
    """The configured approvers as Slack mentions (users `<@U…>`, user groups
    `<!subteam^S…>`), or "anyone but <@requester>" when none are configured."""
    if not approvers:
        return f"anyone but {user(requester_id)}"
    named = [f"<!subteam^{escape(a)}>" if a.startswith("S") else user(a) for a in approvers[:20]]
    more = f" and {len(approvers) - 20} more" if len(approvers) > 20 else ""
    return f"{', '.join(named)}{more} (not {user(requester_id)})"


def reminder_message(request: OperationRequest, approvers: Sequence[str], now: datetime) -> Message:
    """The one reminder, in the card's thread: the restore is still waiting, who can approve
    it (mentioned, so they are notified) and when it expires."""
    needed = still_needed(request)
    noun = "approval" if needed == 1 else "approvals"
    expires = request.expires_at
    deadline = f" It expires {ago(expires, now)} ({when(expires)})." if expires else ""
    text = (
        f":bell: Reminder: the restore of {on(request)} from {what(request)} (request "
        f"#{request.id}) still needs *{needed} more {noun}*. Who can approve: "
        f"{who_may_approve(approvers, request.requester_id)}.{deadline}"
    )
    return Message(clip(text, MAX_FALLBACK), [section(text)])


# -- Deny asks for a reason in a modal --------------------------------------------------------

DENY_VIEW = "restore_deny_reason"  # the modal's callback_id (its view_submission listener)
DENY_REASON_BLOCK = "deny_reason"
DENY_REASON_INPUT = "deny_reason_text"


def deny_modal(request_id: int, channel_id: str) -> dict[str, Any]:
    """The modal Deny opens (views.open): an optional reason, at most MAX_DESCRIPTION
    characters. `private_metadata` carries the request and the card's channel."""
    return View(
        type="modal",
        callback_id=DENY_VIEW,
        title=PlainTextObject(text="Deny restore"),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Back"),
        private_metadata=json.dumps({"request": request_id, "channel": channel_id}),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f"Deny restore request #{request_id}? Nothing is restored; the requester "
                        "is told, with your reason."
                    )
                )
            ),
            InputBlock(
                block_id=DENY_REASON_BLOCK,
                label=PlainTextObject(text="Reason (optional)"),
                element=PlainTextInputElement(
                    action_id=DENY_REASON_INPUT,
                    multiline=True,
                    max_length=MAX_DESCRIPTION,
                    placeholder=PlainTextObject(text="Why not restore?"),
                ),
                optional=True,
            ),
        ],
    ).to_dict()


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
    asked = f"{request.action.value} {what(request)} on {on(request)}"
    head = f":warning: vpsbot could not post in {where} ({safe(slack_error, 60)})."
    if cancelled:
        text = (
            f"{head} {if_cancelled} Nothing was changed: your request #{request.id} ({asked}) "
            "was *cancelled*, since nobody there could see it."
        )
    else:
        if request.status in UNDER_WAY:
            later = (
                " You will get a DM when it is done."
                if request.action in (Action.CREATE, Action.RESTORE)
                else ""
            )
            going = f"it is already under way at VPS.org and goes on.{later}"
        else:
            going = f"it went ahead at VPS.org all the same and is now *{request.status.value}*."
        text = (
            f"{head} The channel was not told about your request #{request.id} ({asked}); "
            f"{going} {if_going_on}"
        )
    return Message(clip(text, MAX_FALLBACK), [section(text)])


__all__ = [
    "DENY_VIEW",
    "card_not_posted_message",
    "deny_modal",
    "note_message",
    "outcome_message",
    "reminder_message",
    "request_message",
]
