"""Every command the bot receives is recorded once, with who, where, what and the outcome."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.domain.errors import Busy, NotAllowed, UsageError, VpsApiError
from bot.services.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)
MAX_RECORDED_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Invocation:
    user_id: str
    channel_id: str
    command: str
    text: str


def outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, UsageError):
        return "usage_error"
    if isinstance(error, Busy):
        return "busy"
    if isinstance(error, NotAllowed):
        return "refused"
    if isinstance(error, VpsApiError):
        return "api_error"
    return "error"


class CommandLog:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    @asynccontextmanager
    async def recording(self, invocation: Invocation) -> AsyncIterator[None]:
        """Run the body, then write exactly one `command` audit row with its outcome."""
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            detail: dict[str, object] = {
                "command": invocation.command,
                "text": invocation.text[:MAX_RECORDED_TEXT],
                "outcome": outcome_of(error),
            }
            if error is not None:
                detail["error"] = type(error).__name__
            if isinstance(error, VpsApiError):
                detail["api_status"] = error.status
            async with self._uow() as uow:
                uow.audit.record(
                    "command",
                    at=self._clock(),
                    actor_id=invocation.user_id,
                    channel_id=invocation.channel_id,
                    detail=detail,
                )
                await uow.commit()

    async def refused(self, user_id: str, channel_id: str, action: str, error: Exception) -> None:
        """A click that was refused (not the requester, not eligible, already decided…)."""
        async with self._uow() as uow:
            uow.audit.record(
                "refused",
                at=self._clock(),
                actor_id=user_id,
                channel_id=channel_id,
                detail={"action": action[:64], "error": type(error).__name__},
            )
            await uow.commit()
