"""A world for the tests of what the tracker does on its own (schedules, health): the VPS.org
simulator over HTTP, a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
and an injected clock; the tracker's cycle is run tick by tick, as the worker runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import async_database_url
from bot.domain.model import OperationRequest
from bot.services import tracking
from bot.services.commands import CommandLog
from bot.services.lifecycle import Lifecycle, Policy
from bot.services.operations import Actor
from bot.serving import serving
from bot.storage.database import Database
from bot.storage.tables import OutboxRecord
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Simulator

TOKEN = "sim-token"
SERVER = 12345
OPS = Actor("U0000OPS1", "C0000OPS1")
START = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    sim: Simulator
    vps: VpsClient
    life: Lifecycle
    clock: Clock
    database: Database
    commands: CommandLog

    async def tick(self, seconds: float = 15, owner: str = "one") -> None:
        """The clock moves on; VPS.org finishes what is due; one tracker cycle runs."""
        self.clock.now += timedelta(seconds=seconds)
        self.sim.advance()
        await tracking.cycle(self.vps, self.life, self.commands, owner)

    async def runs(self, schedule_id: int) -> list[OperationRequest]:
        async with SqlUnitOfWork(self.database.sessions) as uow:
            return list(reversed(await uow.requests.runs([schedule_id], per_schedule=1000)))

    async def outbox(self) -> list[tuple[str, dict[str, Any], int | None]]:
        async with self.database.sessions() as session:
            rows = (await session.scalars(select(OutboxRecord).order_by(OutboxRecord.id))).all()
        return [(r.kind, r.payload, r.request_id) for r in rows]

    def snapshot_names(self, server_id: int = SERVER) -> list[str]:
        return sorted(
            o.name for o in self.sim.objects["snapshots"].values() if o.server_id == server_id
        )


def world_policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {"safety_snapshot": False, "poll_interval": timedelta(seconds=15)}
    return Policy(**(values | overrides))


@pytest.fixture
async def world(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Parametrize indirectly with a dict of Policy fields to change the policy."""
    clock = Clock()
    # lists come in pages of 2 (the seeded 3 snapshots and 4 backups too), as tests/conftest
    sim = Simulator(token=TOKEN, create_delay=60, clock=clock, page_size=2)
    database = Database(async_database_url(database_url))
    await database.upgrade()
    async with serving(sim.app) as url:
        vps = VpsClient(f"{url}/api/v1", TOKEN)

        def uow() -> SqlUnitOfWork:
            return SqlUnitOfWork(database.sessions)

        life = Lifecycle(uow, clock, world_policy(**getattr(request, "param", {})), owner="one")
        yield World(sim, vps, life, clock, database, CommandLog(uow, clock))
        await vps.aclose()
    await database.dispose()
