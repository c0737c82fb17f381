"""Every command the bot receives is recorded once, with who, where, what and the outcome."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from bot import metrics
from bot.domain.errors import Busy, Interrupted, NotAllowed, UsageError, VpsApiError
from bot.services.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)
MAX_RECORDED_TEXT = 1000
# Slack's signatures are valid for 5 minutes; remembering twice that covers clock skew.
REPLAY_MEMORY = timedelta(minutes=10)
ENDED = "f:"  # before a request's identity: its work ended (see CommandLog.finished)
Progress = Literal["new", "begun", "ended"]


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
    if isinstance(error, Interrupted):
        return "interrupted"
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
            metrics.COMMANDS.labels(invocation.command[:32], str(detail["outcome"])).inc()
            async with self._uow() as uow:
                uow.audit.record(
                    "command",
                    at=self._clock(),
                    actor_id=invocation.user_id,
                    channel_id=invocation.channel_id,
                    detail=detail,
                )
                await uow.commit()

    async def first_delivery(self, key: str, user_id: str, channel_id: str, what: str) -> bool:
        """True the first time a Slack request with this identity is acted on. A retry or a
        replay (the same signed body, on any instance, within REPLAY_MEMORY) gets False and
        leaves a `replay` audit row instead."""
        now = self._clock()
        async with self._uow() as uow:
            if await uow.deliveries.first_time(key, at=now):
                await uow.commit()
                return True
        log.warning("ignored a repeated Slack request (%s)", what[:64])
        async with self._uow() as uow:
            uow.audit.record(
                "replay",
                at=now,
                actor_id=user_id,
                channel_id=channel_id,
                detail={"what": what[:64], "key": key[:16]},
            )
            await uow.commit()
        return False

    async def finished(self, keys: list[str]) -> None:
        """Record that the work for these Slack requests ended (a second identity each, ENDED +
        key, in the same table, forgotten with it), in one transaction."""
        async with self._uow() as uow:
            for key in keys:
                await uow.deliveries.first_time(ENDED + key, at=self._clock())
            await uow.commit()

    async def progress(self, key: str) -> Progress:
        """How far the work for the Slack request `key` went: "new" (never acted on), "begun"
        (its first delivery recorded) or "ended" (`finished`). Records nothing."""
        async with self._uow() as uow:
            if await uow.deliveries.seen(ENDED + key):
                return "ended"
            return "begun" if await uow.deliveries.seen(key) else "new"

    async def forget_deliveries(self) -> int:
        """Identities older than REPLAY_MEMORY: Slack refuses a signature that old anyway."""
        async with self._uow() as uow:
            forgotten = await uow.deliveries.forget_before(self._clock() - REPLAY_MEMORY)
            await uow.commit()
        return forgotten

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

    async def refused_request(
        self,
        user_id: str,
        channel_id: str,
        action: str,
        reason: str,
        *,
        team_id: str = "",
        enterprise_id: str = "",
    ) -> None:
        """A request refused before any listener ran (from another workspace, or while the
        bot's own is unknown): one `refused` row naming the workspace it came from."""
        async with self._uow() as uow:
            uow.audit.record(
                "refused",
                at=self._clock(),
                actor_id=user_id[:32] or None,
                channel_id=channel_id[:32] or None,
                detail={
                    "action": action[:64],
                    "error": reason[:64],
                    "team_id": team_id[:64],
                    "enterprise_id": enterprise_id[:64],
                },
            )
            await uow.commit()
