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
MAX_TRACKER_BACKOFF = 300.0


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
        self._tasks = []

    async def _tracker(self) -> None:
        interval = self.services.policy.poll_interval.total_seconds()
        delay = 0.0
        failures = 0
        while True:
            await asyncio.sleep(delay)
            try:
                report = await tracking.check_in_flight(self.services, self.owner)
            except Exception:
                log.exception("tracker cycle failed")
                failures += 1
            else:
                failures = failures + 1 if report.failed_calls and not report.finished else 0
            self.cycles += 1
            delay = min(interval * 2**failures, max(interval, MAX_TRACKER_BACKOFF))

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
