"""Work started for people after Slack's ack: bounded, in lanes, drained at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

CANCEL_GRACE = 5.0  # seconds cancelled work may take to unwind at shutdown


class InFlight:
    """Work started for people after Slack's ack, each piece a task of its own: at most `active`
    run at a time (so acks, which come first, never wait behind a crowd of busy handlers), more
    than `backlog` in flight makes a command answer "busy" (without waiting for the work ahead of
    it), and shutdown drains them."""

    TURNS = 4  # beside the acks, in one process
    WORK_PROCESS_TURNS = 16  # in a work process: no ack shares its event loop

    def __init__(self, active: int = TURNS, backlog: int = 500) -> None:
        self._active = active
        self._gates: dict[str, asyncio.Semaphore] = {}
        self.backlog = backlog
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until each is done

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
        """Wait until nothing is in flight; False if `seconds` passed first. What is still
        running then is cancelled and awaited, so no task holds a database connection (or a
        socket) past shutdown: each of them ends at a transaction boundary it rolls back."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                left_over = set(self._tasks)
                for task in left_over:
                    task.cancel()
                await asyncio.wait(left_over, timeout=CANCEL_GRACE)
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True
