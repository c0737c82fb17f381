"""Use cases, one function per user intent; they depend on ports only."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.commands import CommandLog
from bot.services.ports import Clock, UnitOfWorkFactory, VpsApi


@dataclass(frozen=True)
class Services:
    """What the transports (Slack, the console) call into; built by bootstrap.build()."""

    vps: VpsApi
    uow: UnitOfWorkFactory
    clock: Clock
    commands: CommandLog
