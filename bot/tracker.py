"""The background worker: the tracker loop and the outbox sender, with leases across instances."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from bot.services import Services, outbox, tracking
from bot.services.ports import Notifier

log = logging.getLogger(__name__)
OUTBOX_POLL = 1.0  # seconds: picks up messages queued by other instances
TICK_SLACK = 0.01  # wake just after the tick, so operations due at it are due


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs `tracking.check_in_flight` every poll interval and delivers the outbox."""

    def __init__(self, services: Services, notifier: Notifier, owner: str | None = None) -> None:
        self.services = services
        self.notifier = notifier
        self.owner = owner or instance_id()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.cycles = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._tracker(), name="vpsbot-tracker"),
            asyncio.create_task(self._sender(), name="vpsbot-outbox"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:  # hand our claims back at once rather than when the leases lapse
            try:
                async with self.services.uow() as uow:
                    await uow.requests.release_all(self.owner)
                    await uow.outbox.release_all(self.owner)
                    await uow.commit()
            except Exception:
                log.exception("could not release leases; they lapse on their own")
        self._tasks = []

    async def _tracker(self) -> None:
        """A cycle at every tick of the poll grid. While VPS.org fails, the operations it could
        not read are pushed back (exponential backoff per operation, in tracking)."""
        policy = self.services.policy
        while True:
            now = self.services.clock()
            wait = (policy.next_tick(now) - now).total_seconds() + TICK_SLACK
            await asyncio.sleep(wait)
            try:
                await tracking.cycle(self.services, self.owner)
            except Exception:
                log.exception("tracker cycle failed")
            self.cycles += 1

    async def _sender(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=OUTBOX_POLL)
            self._wake.clear()
            try:
                while (await outbox.deliver_due(self.services, self.notifier, self.owner)).sent:
                    pass
            except Exception:
                log.exception("outbox delivery failed")
