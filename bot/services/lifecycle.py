"""What every use case that changes a request shares: moves committed with their messages,
calls audited, leases held while VPS.org is called, answers kept through a database stall.

The rules themselves (which moves exist) are in `bot.domain.lifecycle`; storage applies a
move and writes its audit row in one transaction (`requests.apply`); the unit of work wakes
the outbox sender once the messages queued here are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TypeVar

from bot.domain.errors import DomainError, OutcomeUnrecorded, VpsApiError
from bot.domain.lifecycle import Event, IllegalMove, Transition
from bot.domain.model import Call, OperationRequest
from bot.domain.outcomes import Outcome
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

EXECUTION_LEASE = timedelta(seconds=10)
LEASE_RENEWAL = 3.0  # seconds
RENEWAL_GRACE = 5.0  # seconds a renewal in progress may take to end once the work is done
RECORD_FOR = 600.0  # seconds an outcome is retried against a stalled database before giving up
T = TypeVar("T")
log = logging.getLogger(__name__)

# Who hears about a move, by what it moved to: the card is updated in place, the thread gets
# a reply and the people involved a DM.
UPDATE = ("update",)
EVERYWHERE = ("update", "reply", "dm")


@dataclass(frozen=True)
class Policy:
    """The knobs the use cases follow (from settings)."""

    poll_interval: timedelta = timedelta(seconds=15)
    confirm_ttl: timedelta = timedelta(minutes=30)
    follow_for: timedelta = timedelta(hours=6)  # after this, a create's outcome is "unknown"
    max_poll_backoff: timedelta = timedelta(minutes=5)
    approval_ttl: timedelta = timedelta(minutes=30)
    required_approvals: int = 1
    approvers: tuple[str, ...] = ()  # user IDs (U…, W…) and user-group IDs (S…); empty: anyone
    require_reason: bool = False
    channels: tuple[str, ...] = ()  # where commands are accepted; empty: everywhere
    operators: tuple[str, ...] = ()  # who may create and delete; empty: everyone
    restore_for: timedelta = timedelta(hours=6)  # after this, a restore's outcome is "unknown"
    # A restore VPS.org accepted but whose server is not seen `restoring` within this needs a
    # person: a 200 alone is no evidence that anything happened.
    restore_seen_within: timedelta = timedelta(minutes=2)
    safety_snapshot: bool = True  # snapshot the server before each restore (Undo)
    safety_keep: timedelta = timedelta(days=7)  # then the bot deletes its safety snapshot
    # An approved restore the bot was not working on for longer than this (it was stopped) is
    # not sent when it comes back: what was written meanwhile would be lost unasked.
    resume_within: timedelta = timedelta(minutes=15)
    # A restore still waiting this long after it was asked gets one reminder in its thread.
    # None: half of approval_ttl; zero: no reminders.
    reminder_after: timedelta | None = None
    timezone: tzinfo = UTC  # schedules' times (VPSBOT_TIMEZONE)
    schedule_min_interval: timedelta = timedelta(hours=1)  # no schedule runs more often
    stale_after: timedelta = timedelta(hours=26)  # a server's newest completed backup older: stale
    health_interval: timedelta = timedelta(minutes=15)  # how often health is checked for alerts
    alert_channel: str = ""  # where health alerts go ("": no alerts)

    @property
    def reminder_delay(self) -> timedelta | None:
        """How long after it was asked a waiting restore is reminded; None: never."""
        delay = self.approval_ttl / 2 if self.reminder_after is None else self.reminder_after
        return delay if delay > timedelta(0) else None

    def next_tick(self, after: datetime) -> datetime:
        """The first poll tick after `after`. Ticks sit on one grid of the wall clock shared by
        every instance, so each in-flight operation is due at every tick, whatever it started:
        a completion is seen within one interval, and a server's operations are read together."""
        step = self.poll_interval.total_seconds()
        tick = (math.floor(after.timestamp() / step) + 1) * step
        return datetime.fromtimestamp(tick, UTC)


@dataclass
class ListingSize:
    """What the last account-wide listing of a kind held (its count and items per page), or
    that it failed; and how many cycles have been decided on it since."""

    count: int
    per_page: int  # 0: it came in one page
    failed: bool = False
    decided: int = 0

    @property
    def pages(self) -> int:
        return 1 if self.per_page <= 0 else max(1, -(-self.count // self.per_page))


@dataclass
class Lifecycle:
    """What changing a request needs: transactions, the clock, the policy, and who we are.
    `executing` holds the requests whose VPS.org call this process is making right now: its
    own tracker never takes them for a crashed instance's."""

    uow: UnitOfWorkFactory
    clock: Clock
    policy: Policy = field(default_factory=Policy)
    owner: str = "vpsbot"
    executing: set[int] = field(default_factory=set)
    # What the tracker learnt of each kind's account-wide listing, to choose between it and
    # one call per server (tracking.account_wide)
    listing_sizes: dict[str, ListingSize] = field(default_factory=dict)


async def stored(life: Lifecycle, request_id: int) -> OperationRequest:
    async with life.uow() as uow:
        request = await uow.requests.get(request_id)
    assert request is not None, f"request #{request_id} vanished"
    return request


def audit_call(
    uow: UnitOfWork, at: datetime, request: OperationRequest, call: Call | VpsApiError
) -> None:
    """The audit row of a call that was sent: where, as the client names it, and its status."""
    uow.audit.record(
        "api_call",
        at=at,
        request_id=request.id,
        detail={"method": call.method, "path": call.path, "status": call.status},
    )


def dm_recipients(request: OperationRequest) -> list[str]:
    """The requester, and for a restore the people who approved it."""
    people = [request.requester_id]
    people += [a for a in request.outcome.approvers if a not in people]
    return people


async def end(
    uow: UnitOfWork,
    request: OperationRequest,
    event: Event,
    outcome: Outcome,
    *,
    at: datetime,
    notify: Collection[str] = EVERYWHERE,
    actor_id: str | None = None,
    holder: str | None = None,
) -> bool:
    """Apply `event` to `request` (compare-and-set, audited) with its new outcome and the
    messages it causes, in the caller's transaction (not committed here). Leases are handed
    back. False when another transaction moved the request first (or, with `holder`, when
    that instance no longer holds its lease)."""
    transition = request.move(event, at=at, actor_id=actor_id)
    return await apply(uow, request, transition, outcome, notify=notify, holder=holder)


async def apply(
    uow: UnitOfWork,
    request: OperationRequest,
    transition: Transition,
    outcome: Outcome,
    *,
    notify: Collection[str] = (),
    holder: str | None = None,
    **changes: object,
) -> bool:
    """`requests.apply` with the outcome and the messages the move causes. The lease is
    handed back unless `changes` sets one (a request claimed for execution)."""
    failure = outcome.failure
    if failure is not None and failure != request.outcome.failure:  # the audit says why, too
        why = {"why": failure.why.value, "detail": failure.detail[:200] or None}
        if failure.status:
            why["status"] = failure.status
        transition = replace(transition, detail={**why, **transition.detail})
    if request.asked.schedule_id is not None:  # a scheduled run: its card, updated in place
        notify = UPDATE if notify else ()
    leases: dict[str, object] = {"lease_owner": None, "lease_until": None}
    won = await uow.requests.apply(transition, holder=holder, outcome=outcome, **(leases | changes))
    if won:
        moved = replace(request, status=transition.target, outcome=outcome)
        for kind in notify:
            targets = dm_recipients(moved) if kind == "dm" else [None]
            for person in targets:
                payload: dict[str, object] = {"event": transition.target.value}
                if person is not None:
                    payload["user"] = person
                uow.outbox.add(kind, payload, at=transition.at, request_id=request.id)
    return won


async def finish(
    life: Lifecycle,
    request: OperationRequest,
    event: Event,
    outcome: Outcome,
    *,
    notify: Collection[str] = EVERYWHERE,
    actor_id: str | None = None,
    holding: bool = False,
) -> bool:
    """`end` in a transaction of its own, retried while the database stalls. `holding`: only
    while this instance holds the request's lease (work it may have been overtaken on)."""
    holder = life.owner if holding else None

    async def write(uow: UnitOfWork) -> bool:
        return await end(
            uow,
            request,
            event,
            outcome,
            at=life.clock(),
            notify=notify,
            actor_id=actor_id,
            holder=holder,
        )

    return await persist(life, write, f"the end of request #{request.id}")


async def persist(life: Lifecycle, write: Callable[[UnitOfWork], Awaitable[T]], what: str) -> T:
    """Run `write` in a transaction of its own and commit, retrying while the database does not
    answer (up to RECORD_FOR): what VPS.org answered to a mutation that was sent must not be
    lost to a database that stalls for a while. A domain error is not retried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECORD_FOR
    delay = 0.2
    while True:
        try:
            async with life.uow() as uow:
                value = await write(uow)
                await uow.commit()
            return value
        except (DomainError, IllegalMove):  # a retry would meet the same answer
            raise
        except Exception as error:
            if loop.time() + delay > deadline:
                log.error("gave up recording %s: %s", what, type(error).__name__)
                raise OutcomeUnrecorded(what) from error
            log.warning("could not record %s (%s); trying again", what, type(error).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def record_call(life: Lifecycle, request: OperationRequest, call: Call | VpsApiError) -> None:
    """The audit row of a call that was sent, kept however long the database stalls."""
    at = life.clock()

    async def write(uow: UnitOfWork) -> None:
        audit_call(uow, at, request, call)

    await persist(life, write, f"the {call.method} of request #{request.id}")


@contextlib.asynccontextmanager
async def holding_lease(life: Lifecycle, request_id: int) -> AsyncIterator[None]:
    """Renew this instance's lease on an executing request while it works on it, so no other
    instance takes it for a crashed one (a crashed owner's lease lapses within EXECUTION_LEASE).
    While held, this process's own tracker never reconciles the request (`life.executing`),
    however late the renewals: a live process never takes its own work for a crashed one. A
    renewal that fails (the database stalls) is logged and tried again; it never masks the
    outcome of the call it covers."""

    stop = asyncio.Event()

    async def renew() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE_RENEWAL)
            if stop.is_set():
                return
            try:
                async with life.uow() as uow:
                    until = life.clock() + EXECUTION_LEASE
                    await uow.requests.renew(request_id, life.owner, until)
                    await uow.commit()
            except Exception as error:  # the database stalls: the call goes on regardless
                log.warning(
                    "could not renew the lease on #%d: %s", request_id, type(error).__name__
                )

    life.executing.add(request_id)
    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        # Let a renewal in progress end its transaction: cancelling it mid-way left its
        # connection to the garbage collector. Cancel only one that hangs.
        stop.set()
        _, pending = await asyncio.wait({task}, timeout=RENEWAL_GRACE)
        for hanging in pending:
            hanging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hanging
        life.executing.discard(request_id)
