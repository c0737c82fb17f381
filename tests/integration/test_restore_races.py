"""Races: two approvers clicking at the same instant on two served instances sharing one
database, 200 times: exactly one restore per request, on SQLite and on PostgreSQL."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Kind
from bot.domain.operations import RequestRestore
from bot.services import restores
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, VPS_TOKEN, Stack, running_stack

CAROL = "U0000CARL"
RUNS = 200
BATCH = 10


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    sim = Simulator(token=VPS_TOKEN, restore_delay=3600, seed=False)
    for i in range(RUNS):
        sim.add_server(5000 + i, f"race-{i}")
        sim.add_snapshot(
            5000 + i, f"snap-{i}", snapshot_id=70000 + i, created_at="2025-01-01T00:00:00Z"
        )
    async with AsyncExitStack() as stack, serving(sim.app) as vps_url:
        url = f"{vps_url}/api/v1"
        first, second = [
            await stack.enter_async_context(
                running_stack(sim, url, database_url, vpsbot_poll_interval=5)
            )
            for _ in range(2)
        ]
        yield first, second


async def test_two_approvers_at_the_same_instant_restore_once(
    two_instances: tuple[Stack, Stack],
) -> None:
    first, second = two_instances
    sim = first.sim
    actor = Actor(ALICE, CHANNEL)
    request_ids = []

    async def race(i: int) -> None:
        request = await restores.request_restore(
            first.bot.services.vps,
            first.bot.services.life,
            actor,
            RequestRestore(Kind.SNAPSHOT, 70000 + i, "race"),
        )
        request_ids.append(request.id)
        acks = await asyncio.gather(
            first.click(ids.RESTORE_APPROVE, str(request.id), user=BOB),
            second.click(ids.RESTORE_APPROVE, str(request.id), user=CAROL),
        )
        assert all(ack.status_code == 200 for ack, _ in acks)

    for batch in range(0, RUNS, BATCH):  # races on different requests overlap, too
        await asyncio.gather(*(race(i) for i in range(batch, batch + BATCH)))

    async def settled() -> list[Status]:
        async with SqlUnitOfWork(first.bot.database.sessions) as uow:
            return [r.status for r in await uow.requests.in_status(*Status)]

    for _ in range(400):
        statuses = await settled()
        if statuses.count(Status.RUNNING) == RUNS:
            break
        await asyncio.sleep(0.05)
    calls = Counter(c.path for c in sim.calls_to("POST") if c.path.endswith("/restore/"))
    assert len(calls) == RUNS, f"{len(calls)} requests were restored, statuses {Counter(statuses)}"
    assert set(calls.values()) == {1}
    assert Counter(statuses) == {Status.RUNNING: RUNS}
    async with SqlUnitOfWork(first.bot.database.sessions) as uow:
        votes = [len(await uow.approvals.votes(rid)) for rid in request_ids]
    assert set(votes) == {1}  # the second click came too late: the request was no longer pending
