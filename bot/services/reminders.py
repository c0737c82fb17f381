"""One reminder for a restore still waiting for approval, once across restarts and instances.

A restore asked at `created_at` is due for its reminder at `created_at + policy.reminder_delay`
(`first_check`, stored as the request's `next_check_at`). The tracker claims the waiting
restores that are due (`requests.claim_due`: one instance at a time takes a row) and, in the
same transaction, queues the reminder (outbox kind `remind`) and records that it was sent
(`Outcome.reminded_at`): both commit, or neither. A request decided meanwhile is no longer
waiting and is not claimed; one reminded, or past its expiry, is not reminded (again).

`next_check_at` of a waiting restore is never later than its expiry, so the sweeper
(`restores.expire_due`, which claims through the same due filter) still expires it on time:
after the reminder it is set to the expiry. Requests asked before this version, or while
reminders were off, have no `next_check_at`: they are claimed at the next tick and reminded if
due, else given the moment they will be.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.lifecycle import Status
from bot.domain.model import Action, OperationRequest
from bot.services.lifecycle import Lifecycle, Policy

LEASE = timedelta(seconds=15)  # held only inside the claiming transaction
REMIND = "remind"  # the outbox kind of a reminder (rendered by the notifier)


def remind_at(policy: Policy, asked_at: datetime) -> datetime | None:
    """When a restore asked at `asked_at` is reminded; None when reminders are off."""
    delay = policy.reminder_delay
    return None if delay is None else asked_at + delay


def first_check(policy: Policy, asked_at: datetime, expires_at: datetime | None) -> datetime | None:
    """The `next_check_at` of a new restore request: its reminder, never after its expiry
    (the sweeper claims through the same filter). None when reminders are off (as before)."""
    at = remind_at(policy, asked_at)
    if at is None:
        return None
    return min(at, expires_at) if expires_at is not None else at


def reminder_due(request: OperationRequest, policy: Policy, now: datetime) -> bool:
    """The rule: a restore still waiting for approval, not reminded yet, not expired, asked at
    least `policy.reminder_delay` ago, gets its one reminder."""
    at = remind_at(policy, request.created_at)
    return (
        at is not None
        and request.action is Action.RESTORE
        and request.status is Status.PENDING_APPROVAL
        and request.outcome.reminded_at is None
        and not request.is_expired(now)
        and now >= at
    )


def _next_check(request: OperationRequest, policy: Policy, now: datetime) -> datetime | None:
    """When a claimed request that gets no reminder now matters next: its reminder if still to
    come, else its expiry (for the sweeper)."""
    at = remind_at(policy, request.created_at)
    if at is not None and request.outcome.reminded_at is None and at > now:
        return first_check(policy, request.created_at, request.expires_at)
    return request.expires_at


async def remind_due(life: Lifecycle) -> int:
    """Queue the reminders that are due; returns how many. The claim, the outbox row and the
    fact it was sent commit in one transaction."""
    policy = life.policy
    if policy.reminder_delay is None:
        return 0
    now = life.clock()
    reminded = 0
    async with life.uow() as uow:
        waiting = await uow.requests.claim_due(
            statuses={Status.PENDING_APPROVAL}, now=now, owner=life.owner, lease=LEASE
        )
        for request in waiting:
            if reminder_due(request, policy, now):
                payload: dict[str, object] = {"event": REMIND, "approvers": list(policy.approvers)}
                uow.outbox.add(REMIND, payload, at=now, request_id=request.id)
                uow.audit.record(
                    "reminder",
                    at=now,
                    channel_id=request.channel_id,
                    request_id=request.id,
                    detail={"approvers": list(policy.approvers), "expires_at": _iso(request)},
                )
                await uow.requests.change(
                    request.id,
                    outcome=request.outcome.but(reminded_at=now),
                    next_check_at=request.expires_at,
                    lease_owner=None,
                    lease_until=None,
                )
                reminded += 1
            else:
                await uow.requests.change(
                    request.id,
                    next_check_at=_next_check(request, policy, now),
                    lease_owner=None,
                    lease_until=None,
                )
        await uow.commit()
    return reminded


def _iso(request: OperationRequest) -> str | None:
    return request.expires_at.isoformat() if request.expires_at is not None else None


__all__ = ["REMIND", "first_check", "remind_at", "remind_due", "reminder_due"]
