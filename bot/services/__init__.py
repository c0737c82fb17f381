"""Use cases, one function per user intent; they depend on ports only."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.services.alarms import Alarms
from bot.services.commands import CommandLog
from bot.services.lifecycle import Lifecycle, Policy
from bot.services.ports import Directory, VpsApi


class NoDirectory:
    """A directory with no user groups (for tests and the demo)."""

    async def members(self, group_id: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class Services:
    """What the transports (Slack, the console, the worker) call into; built once by
    bootstrap.build(). Each use case takes only the parts of it that it needs."""

    vps: VpsApi
    life: Lifecycle
    commands: CommandLog
    directory: Directory = field(default_factory=NoDirectory)
    alarms: Alarms = field(default_factory=Alarms)

    @property
    def policy(self) -> Policy:
        return self.life.policy


__all__ = ["Lifecycle", "NoDirectory", "Policy", "Services"]
