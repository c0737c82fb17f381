"""The background worker: the tracker loop and the outbox sender, with leases across instances."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from bot import metrics
from bot.services import Services, outbox, tracking
from bot.services.ports import Notifier

log = logging.getLogger(__name__)
OUTBOX_POLL = 1.0  # seconds: picks up messages queued by other instances
TICK_SLACK = 0.01  # wake just after the tick, so operations due at it are due
STOP_GRACE = 10.0  # seconds a cycle or a delivery in progress may take to end at shutdown


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs `tracking.check_in_flight` every poll interval and delivers the outbox."""

    def __init__(self, services: Services, notifier: Notifier, wake: asyncio.Event) -> None:
        self.services = services
        self.notifier = notifier
        self.owner = services.life.owner
        self._wake = wake  # set by the unit of work when it commits outbox rows
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._tracker(), name="vpsbot-tracker"),
            asyncio.create_task(self._sender(), name="vpsbot-outbox"),
        ]

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Let a cycle or a delivery in progress end (up to `grace` seconds, then cancel it),
        then hand our claims back at once rather than when the leases lapse."""
        self._stopping.set()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=grace)
            for task in stuck:
                task.cancel()
            for task in stuck:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                async with self.services.life.uow() as uow:
                    await uow.requests.release_all(self.owner)
                    await uow.outbox.release_all(self.owner)
                    await uow.schedules.release_all(self.owner)
                    await uow.commit()
            except Exception:
                log.exception("could not release leases; they lapse on their own")
        self._tasks = []

    async def _pause(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Sleep `seconds` or until `wake` is set; False once the worker is stopping."""
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=max(seconds, 0), return_when="FIRST_COMPLETED")
        finally:
            for waiting in waits:
                waiting.cancel()
        return not self._stopping.is_set()

    async def _tracker(self) -> None:
        """A cycle at every tick of the poll grid. While VPS.org fails, the operations it could
        not read are pushed back (exponential backoff per operation, in tracking)."""
        vps, life = self.services.vps, self.services.life
        try:  # once, at start: creates whose answer a stopped bot never recorded
            await tracking.read_back_lost_creates(vps, life)
        except Exception:
            log.exception("could not read back lost creates")
        while True:
            now = life.clock()
            if not await self._pause(
                (life.policy.next_tick(now) - now).total_seconds() + TICK_SLACK
            ):
                return
            started = time.perf_counter()
            try:
                report = await tracking.cycle(vps, life, self.services.commands, self.owner)
                metrics.TRACKER_CALLS.inc(report.api_calls)
            except Exception:
                log.exception("tracker cycle failed")
            metrics.CYCLE_SECONDS.observe(time.perf_counter() - started)

    async def _sender(self) -> None:
        while await self._pause(OUTBOX_POLL, self._wake):
            self._wake.clear()
            try:
                while not self._stopping.is_set():
                    life = self.services.life
                    report = await outbox.deliver_due(life, self.notifier, self.owner)
                    if not report.settled:
                        break
            except Exception:
                log.exception("outbox delivery failed")
