"""Slack user groups, resolved with usergroups.users.list and reused for at most a TTL.

Fail closed: membership older than the TTL is never used, not even when Slack cannot answer;
the decision that needed it is refused instead (`DirectoryUnavailable`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DirectoryUnavailable

log = logging.getLogger(__name__)
DEFAULT_TTL = 60.0  # seconds; VPSBOT_DIRECTORY_TTL


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        cached = self._cache.get(group_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        self._cache.pop(group_id, None)  # too old to decide with, whatever happens next
        asked = self._clock()
        try:
            answer = await self._client.usergroups_users_list(usergroup=group_id)
        except Exception as error:  # Slack down or the scope missing: never guess
            detail = (
                str(error.response.get("error", "")) if isinstance(error, SlackApiError) else ""
            )
            log.warning(
                "usergroups.users.list %s failed: %s %s", group_id, type(error).__name__, detail
            )
            raise DirectoryUnavailable(detail or type(error).__name__) from None
        users = frozenset(str(u) for u in answer.get("users") or [])
        self._cache[group_id] = (asked, users)
        return users
