"""Who may do what, and where: channels, operators and approvers (users or user groups)."""

from __future__ import annotations

from collections.abc import Collection

from bot.domain.errors import DirectoryUnavailable, NotAllowed
from bot.services.ports import Directory


async def is_member(
    directory: Directory, user_id: str, configured: Collection[str], purpose: str
) -> bool:
    """True if `user_id` is listed, or is in a listed user group (IDs starting with S).
    When Slack cannot say who is in a group, the decision is refused, naming `purpose`."""
    if user_id in configured:
        return True
    for group in (entry for entry in configured if entry.startswith("S")):
        try:
            members = await directory.members(group)
        except DirectoryUnavailable as error:
            raise DirectoryUnavailable(error.detail, purpose) from None
        if user_id in members:
            return True
    return False


def check_channel(channels: Collection[str], channel_id: str) -> None:
    if channels and channel_id not in channels:
        raise NotAllowed(
            "vpsbot does not take commands in this channel; use one of the channels an admin "
            "set in VPSBOT_CHANNELS."
        )


async def check_operator(directory: Directory, operators: Collection[str], user_id: str) -> None:
    if operators and not await is_member(directory, user_id, operators, "who may create or delete"):
        raise NotAllowed(
            "Only operators can create or delete backups and snapshots (VPSBOT_OPERATORS). "
            "Nothing was changed."
        )
