"""Repositories: select()/add() over one session. They never commit; the unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.tables import AuditRecord


class AuditRepository:
    """Append-only: rows are added and read, never changed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def record(
        self,
        event: str,
        *,
        at: datetime,
        actor_id: str | None = None,
        channel_id: str | None = None,
        request_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._session.add(
            AuditRecord(
                created_at=at,
                event=event,
                actor_id=actor_id,
                channel_id=channel_id,
                request_id=request_id,
                detail=detail or {},
            )
        )

    async def events(
        self, event: str | None = None, request_id: int | None = None
    ) -> Sequence[AuditRecord]:
        query = select(AuditRecord).order_by(AuditRecord.id)
        if event is not None:
            query = query.where(AuditRecord.event == event)
        if request_id is not None:
            query = query.where(AuditRecord.request_id == request_id)
        return (await self._session.scalars(query)).all()
