"""Configuration problems a channel should hear about once, not with every command."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.errors import Unauthorized

if TYPE_CHECKING:
    from bot.services.lifecycle import Lifecycle

log = logging.getLogger(__name__)
QUIET_FOR = timedelta(hours=1)


class Alarms:
    """Tells a channel once (per hour, per instance) that VPS.org rejects the bot's token."""

    def __init__(self) -> None:
        self._told: dict[str, datetime] = {}

    async def noticed(self, life: Lifecycle, error: BaseException, channel_id: str) -> None:
        if not isinstance(error, Unauthorized):
            return
        log.error("VPS.org rejected the API token (HTTP 401): set a valid VPS_API_TOKEN")
        now = life.clock()
        last = self._told.get(channel_id)
        if not channel_id or (last is not None and now - last < QUIET_FOR):
            return
        self._told[channel_id] = now
        async with life.uow() as uow:
            uow.outbox.add("notice", {"event": "vps_unauthorized", "channel": channel_id}, at=now)
            uow.audit.record("alarm", at=now, channel_id=channel_id, detail={"alarm": "vps_401"})
            await uow.commit()
