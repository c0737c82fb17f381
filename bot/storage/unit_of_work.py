"""The unit of work owns the session and its transaction: commit together or not at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.repositories import (
    ApprovalRepository,
    AuditRepository,
    DeliveryRepository,
    HealthRepository,
    JobRepository,
    OutboxRepository,
    RequestRepository,
    ScheduleRepository,
)


def _nothing() -> None:
    return None


class SqlUnitOfWork:
    """`async with uow: ...; await uow.commit()`; leaving without commit rolls back.

    Messages queued in the outbox go out once their transaction has committed: `commit()`
    then calls `on_outbox` (the sender's wake-up), so no use case has to remember to."""

    audit: AuditRepository
    requests: RequestRepository
    outbox: OutboxRepository
    approvals: ApprovalRepository
    deliveries: DeliveryRepository
    schedules: ScheduleRepository
    health: HealthRepository
    jobs: JobRepository

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_outbox: Callable[[], None] = _nothing,
    ) -> None:
        self._sessions = sessions
        self._on_outbox = on_outbox
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.audit = AuditRepository(self._session)
        self.requests = RequestRepository(self._session)
        self.outbox = OutboxRepository(self._session)
        self.approvals = ApprovalRepository(self._session)
        self.deliveries = DeliveryRepository(self._session)
        self.schedules = ScheduleRepository(self._session)
        self.health = HealthRepository(self._session)
        self.jobs = JobRepository(self._session)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._session is not None
        # close() rolls back whatever was not committed and detaches the loaded rows intact
        # (a rollback() would expire them, and reading them afterwards would fail).
        await self._session.close()
        self._session = None

    async def commit(self) -> None:
        assert self._session is not None, "use the unit of work inside `async with`"
        await self._session.commit()
        if self.outbox.added:
            self.outbox.added = 0
            self._on_outbox()
