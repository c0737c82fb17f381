"""Slack user groups, resolved with usergroups.users.list and cached for a few minutes."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import NotAllowed

log = logging.getLogger(__name__)
CACHE_SECONDS = 300.0


class SlackDirectory:
    def __init__(self, client: AsyncWebClient, ttl: float = CACHE_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        cached = self._cache.get(group_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            answer = await self._client.usergroups_users_list(usergroup=group_id)
        except Exception as error:  # Slack down or the scope missing: never guess who may approve
            log.warning("usergroups.users.list %s failed: %s", group_id, type(error).__name__)
            if cached is not None:
                return cached[1]
            detail = error.response.get("error") if isinstance(error, SlackApiError) else ""
            why = f" ({detail})" if detail else ""
            raise NotAllowed(
                f"Could not check who is in the approver group right now{why}; try again soon."
            ) from None
        users = frozenset(str(u) for u in answer.get("users") or [])
        self._cache[group_id] = (time.monotonic(), users)
        return users
