"""What one person's App Home shows: the restores waiting for their approval, their own
requests still waiting, what is in flight at VPS.org, and the last requests to finish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.errors import DirectoryUnavailable
from bot.domain.lifecycle import FINAL, UNDER_WAY, Status
from bot.domain.model import Action, OperationRequest
from bot.services import restores
from bot.services.access import is_member
from bot.services.lifecycle import Lifecycle
from bot.services.ports import Directory

RECENT = 10  # finished requests shown
# Over as far as the bot can tell: the final statuses, and `needs_attention` (a person checks
# the server; only late evidence moves it on).
ENDED = FINAL | {Status.NEEDS_ATTENTION}


@dataclass(frozen=True, slots=True)
class Home:
    """One person's Home tab, as read at `at`. `approvers_unknown`: Slack could not say who is
    in the approver groups, so the restores waiting for this person could not be told apart."""

    user_id: str
    at: datetime
    to_approve: list[OperationRequest]
    own: list[OperationRequest]
    in_flight: list[OperationRequest]
    recent: list[OperationRequest]
    approvers_unknown: bool = False
    approvals_open: bool = False  # no approvers configured: votes are taken on the cards only


async def trusted(life: Lifecycle, directory: Directory, user_id: str) -> bool:
    """Whether `user_id` is one of the configured approvers or operators (a listed user, or a
    member of a listed group). The Home tab is not in any channel: only they see the requests
    of every channel there, and only configured approvers vote there. Everyone else sees
    their own requests, and votes on the cards, in the channels they can read."""
    for configured, purpose in (
        (life.policy.approvers, "who may approve"),
        (life.policy.operators, "who may create and delete"),
    ):
        if configured and await is_member(directory, user_id, configured, purpose):
            return True
    return False


async def home(life: Lifecycle, directory: Directory, user_id: str) -> Home:
    """Read `user_id`'s Home tab. A restore waits for their approval when it is pending, not
    past its expiry, not theirs, not already approved by them, and they are a configured
    approver (`restores.eligible`, the rule the Approve button applies). With no approvers
    configured, anyone in a request's channel may vote, which only its card can tell: the
    tab lists none to approve. In flight and recently finished: every channel's for a trusted
    person (`trusted`), else only their own."""
    async with life.uow() as uow:
        waiting = await uow.requests.in_status(Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION)
        under_way = await uow.requests.in_status(*UNDER_WAY)
        recent = await uow.requests.recent(RECENT, ENDED)
    now = life.clock()
    live = [r for r in waiting if not r.is_expired(now)]
    own = [r for r in live if r.requester_id == user_id]
    to_approve: list[OperationRequest] = []
    unknown = False
    verdicts: dict[str, bool] = {}  # by requester: the rule depends on nothing else
    for request in live:
        if request.action is not Action.RESTORE or request.status is not Status.PENDING_APPROVAL:
            continue
        if request.requester_id == user_id or user_id in request.outcome.approvers:
            continue
        if request.requester_id not in verdicts:
            try:
                verdicts[request.requester_id] = await restores.eligible(
                    life, directory, user_id, request.requester_id
                )
            except DirectoryUnavailable:
                unknown = True
                break
        if verdicts[request.requester_id]:
            to_approve.append(request)
    try:
        sees_all = await trusted(life, directory, user_id)
    except DirectoryUnavailable:
        sees_all, unknown = False, True
    if not sees_all:
        under_way = [r for r in under_way if _involved(r, user_id)]
        recent = [r for r in recent if _involved(r, user_id)]
    open_ = not life.policy.approvers
    return Home(
        user_id=user_id,
        at=now,
        to_approve=[] if unknown or open_ else to_approve,
        own=own,
        in_flight=under_way,
        recent=recent,
        approvers_unknown=unknown,
        approvals_open=open_,
    )


def _involved(request: OperationRequest, user_id: str) -> bool:
    return user_id == request.requester_id or user_id in request.outcome.approvers


async def find(life: Lifecycle, request_id: int) -> OperationRequest | None:
    """The request a button in a Home tab names (None when there is no such request)."""
    async with life.uow() as uow:
        return await uow.requests.get(request_id)
