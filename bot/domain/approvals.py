"""Who may approve a restore, when, and when enough have: the rules, with `now` passed in."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bot.domain.errors import (
    AlreadyHandled,
    AlreadyVoted,
    NotEligible,
    RequestExpired,
    SelfApproval,
)
from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest


@dataclass(frozen=True, slots=True)
class Vote:
    voter_id: str
    decision: str  # "approve" | "deny"
    at: datetime


def check_pending(request: OperationRequest, now: datetime) -> None:
    """A decision is only possible while the request waits, and before it expires."""
    if request.status is not Status.PENDING_APPROVAL:
        raise AlreadyHandled(request.status)
    if request.is_expired(now):
        raise RequestExpired("This request has expired; nothing was restored. Ask again if needed.")


def check_vote(
    request: OperationRequest,
    voter_id: str,
    *,
    eligible: bool,
    votes: Collection[Vote],
    now: datetime,
) -> None:
    """Raise the reason this person may not vote on this request now; return if they may."""
    check_pending(request, now)
    if voter_id == request.requester_id:
        raise SelfApproval("You asked for this restore; a second person has to approve it.")
    if not eligible:
        raise NotEligible("You are not one of the approvers configured for restores.")
    if any(vote.voter_id == voter_id for vote in votes):
        raise AlreadyVoted("You have already voted on this request.")


def approvals(votes: Collection[Vote]) -> list[str]:
    return [vote.voter_id for vote in votes if vote.decision == "approve"]


def quorum(request: OperationRequest) -> int:
    """Approvals a restore needs besides the requester: as configured, and never fewer than 1."""
    return max(request.required_approvals, 1)


def still_needed(request: OperationRequest) -> int:
    """Approvals still missing, from those recorded on the request (at least 1 while it waits)."""
    return max(quorum(request) - len(request.outcome.approvers), 1)


def quorum_reached(request: OperationRequest, votes: Collection[Vote]) -> bool:
    return len(approvals(votes)) >= quorum(request)


def is_eligible(voter_id: str, requester_id: str, listed: bool, *, anyone: bool) -> bool:
    """With no approvers configured, anyone but the requester; else the people listed (users,
    or members of listed user groups), but never the requester."""
    if voter_id == requester_id:
        return False
    return anyone or listed
