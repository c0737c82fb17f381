"""The request state machine: every legal move is one row of MOVES, and nothing else moves.

A move is (from, event) -> to. `move()` checks a move against the table and returns the
`Transition` it causes, which is also the audit event storage writes in the same transaction
as the compare-and-set that applies it. Creates start in `executing` (no approval needed),
restores in `pending_approval`, deletes in `pending_confirmation`:

    pending_approval  --approve-->  approved  --claim-->  executing
    pending_confirmation  --confirm-->  executing
    executing  --accept-->  running  --complete-->  succeeded
    executing  --complete-->  succeeded (a delete)
    executing | running  --fail-->  failed,  --lose-->  needs_attention
    pending_*  --cancel-->  cancelled,  --expire-->  expired;  pending_approval --deny--> denied
    needs_attention  --accept-->  running (VPS.org's answer, or the object, found after all)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    """Where a request stands."""

    PENDING_APPROVAL = "pending_approval"
    PENDING_CONFIRMATION = "pending_confirmation"
    APPROVED = "approved"
    EXECUTING = "executing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    NEEDS_ATTENTION = "needs_attention"


class Event(StrEnum):
    """What happens to a request; together with its status it decides the next status."""

    APPROVE = "approve"  # the vote that reaches the quorum
    CLAIM = "claim"  # the approved request is taken for execution (same transaction)
    CONFIRM = "confirm"  # the requester confirmed a delete
    DENY = "deny"
    CANCEL = "cancel"  # the requester withdrew it, or its card could not be posted
    EXPIRE = "expire"  # nobody decided in time
    ACCEPT = "accept"  # VPS.org took the call (or the object is found after all)
    COMPLETE = "complete"  # done, with evidence
    FAIL = "fail"  # refused, or VPS.org reports a failure: nothing (more) happened
    LOSE = "lose"  # the outcome is unknown: a person has to look


S = Status
MOVES: Mapping[tuple[Status, Event], Status] = {
    (S.PENDING_APPROVAL, Event.APPROVE): S.APPROVED,
    (S.PENDING_APPROVAL, Event.DENY): S.DENIED,
    (S.PENDING_APPROVAL, Event.CANCEL): S.CANCELLED,
    (S.PENDING_APPROVAL, Event.EXPIRE): S.EXPIRED,
    (S.APPROVED, Event.CLAIM): S.EXECUTING,
    (S.PENDING_CONFIRMATION, Event.CONFIRM): S.EXECUTING,
    (S.PENDING_CONFIRMATION, Event.CANCEL): S.CANCELLED,
    (S.PENDING_CONFIRMATION, Event.EXPIRE): S.EXPIRED,
    (S.EXECUTING, Event.ACCEPT): S.RUNNING,
    (S.EXECUTING, Event.COMPLETE): S.SUCCEEDED,
    (S.EXECUTING, Event.FAIL): S.FAILED,
    (S.EXECUTING, Event.LOSE): S.NEEDS_ATTENTION,
    (S.RUNNING, Event.COMPLETE): S.SUCCEEDED,
    (S.RUNNING, Event.FAIL): S.FAILED,
    (S.RUNNING, Event.LOSE): S.NEEDS_ATTENTION,
    # The answer to a call (or the object read back) arrived after the request was marked
    # needs_attention: that evidence is better than the guess.
    (S.NEEDS_ATTENTION, Event.ACCEPT): S.RUNNING,
}

# Where a request may be waiting for a person, under way at VPS.org, or done for good (no
# move leaves it; needs_attention is not: late evidence may still move it to running).
WAITING = frozenset({S.PENDING_APPROVAL, S.PENDING_CONFIRMATION})
UNDER_WAY = frozenset({S.APPROVED, S.EXECUTING, S.RUNNING})
FINAL = frozenset(s for s in Status if not any(source is s for source, _ in MOVES))


class IllegalMove(Exception):
    """A move that is not in MOVES: a bug in the caller, never a person's mistake."""

    def __init__(self, status: Status, event: Event) -> None:
        super().__init__(f"no move from {status.value} on {event.value}")
        self.status = status
        self.event = event


def sources(event: Event) -> frozenset[Status]:
    """Every status `event` may move a request out of."""
    return frozenset(status for status, on in MOVES if on is event)


@dataclass(frozen=True, slots=True)
class Transition:
    """One applied move: what storage compares-and-sets and what the audit trail records."""

    request_id: int
    source: Status
    event: Event
    target: Status
    at: datetime
    actor_id: str | None = None
    detail: Mapping[str, str | int | bool | list[str] | None] = field(default_factory=dict)

    def audit_detail(self) -> dict[str, object]:
        return {"from": self.source.value, "to": self.target.value, "event": self.event.value} | {
            key: value if not isinstance(value, tuple) else list(value)
            for key, value in self.detail.items()
        }


def move(
    request_id: int,
    source: Status,
    event: Event,
    *,
    at: datetime,
    actor_id: str | None = None,
    **detail: str | int | bool | list[str] | None,
) -> Transition:
    """The transition `event` causes from `source`; IllegalMove when the table has none."""
    target = MOVES.get((source, event))
    if target is None:
        raise IllegalMove(source, event)
    return Transition(request_id, source, event, target, at, actor_id, detail)
