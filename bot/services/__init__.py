"""Use cases, one function per user intent; they depend on ports only."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.services.alarms import Alarms
from bot.services.commands import CommandLog
from bot.services.ports import Clock, Directory, UnitOfWorkFactory, VpsApi


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

    def next_tick(self, after: datetime) -> datetime:
        """The first poll tick after `after`. Ticks sit on one grid of the wall clock shared by
        every instance, so each in-flight operation is due at every tick, whenever it started:
        a completion is seen within one interval, and a server's operations are read together."""
        step = self.poll_interval.total_seconds()
        tick = (math.floor(after.timestamp() / step) + 1) * step
        return datetime.fromtimestamp(tick, UTC)


class InFlight:
    """Work started for people after Slack's ack, each piece a task of its own: at most `active`
    run at a time (so acks, which come first, never wait behind a crowd of busy handlers), more
    than `backlog` in flight makes a command answer "busy" (without waiting for the work ahead of
    it), and shutdown drains them."""

    def __init__(self, active: int = 4, backlog: int = 500) -> None:
        self._active = active
        self._gates: dict[str, asyncio.Semaphore] = {}
        self.backlog = backlog
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until each is done
        # requests whose VPS.org call this process is making (or recording) right now
        self.executing: set[int] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as its own task; `drain` waits for it, even before it has begun."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def full(self) -> bool:
        """Asked from within started work: more than `backlog` other pieces are in flight."""
        return len(self._tasks) > self.backlog

    @contextlib.asynccontextmanager
    async def hold(self, *, lane: str = "work") -> AsyncIterator[None]:
        """Wait for one of the `active` turns of `lane`. Each lane has turns of its own:
        "work" (commands, which may call VPS.org slowly), "click" (votes, cancels and
        confirmations, which must not wait behind slow lists) and "busy" (a "busy" answer: one
        audit row and a reply, which must not queue behind the work it was refused for)."""
        gate = self._gates.get(lane)
        if gate is None:
            gate = self._gates[lane] = asyncio.Semaphore(self._active)
        async with gate:
            yield

    @property
    def count(self) -> int:
        return len(self._tasks)

    async def drain(self, seconds: float) -> bool:
        """Wait until nothing is in flight; False if `seconds` passed first."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True


def _nothing() -> None:
    return None


class NoDirectory:
    """A directory with no user groups (for tests and the demo)."""

    async def members(self, group_id: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Services:
    """What the transports (Slack, the console) call into; built by bootstrap.build()."""

    vps: VpsApi
    uow: UnitOfWorkFactory
    clock: Clock
    commands: CommandLog
    policy: Policy = field(default_factory=Policy)
    wake_outbox: Callable[[], None] = _nothing  # set by the worker: deliver new messages now
    directory: Directory = field(default_factory=NoDirectory)
    owner: str = "vpsbot"  # this instance, for the leases it takes
    alarms: Alarms = field(default_factory=Alarms)
    inflight: InFlight = field(default_factory=lambda: InFlight())
