"""VPS.org ids of 2**31 and above (the grammar takes ten digits) are stored and used, on SQLite
and PostgreSQL (they overflowed INTEGER columns there)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.domain.lifecycle import Status
from bot.serving import serving
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import VPS_TOKEN, Stack, running_stack

SERVER = 3_000_000_000
SNAPSHOT = 4_000_000_000


@pytest.fixture
async def big_stack(database_url: str) -> AsyncIterator[Stack]:
    sim = Simulator(token=VPS_TOKEN, create_delay=0.3, restore_delay=0.3)
    sim.add_server(SERVER, "big-server")
    sim.add_snapshot(SERVER, "big-snap", snapshot_id=SNAPSHOT, created_at="2025-01-20T00:00:00Z")
    async with (
        serving(sim.app) as url,
        running_stack(sim, f"{url}/api/v1", database_url, vpsbot_poll_interval=0.2) as stack,
    ):
        yield stack


async def test_ten_digit_ids_are_recorded_and_followed(big_stack: Stack) -> None:
    stack = big_stack
    ack, _ = await stack.command(f"restore {SNAPSHOT} big ids")
    assert ack.status_code == 200
    await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    ack, _ = await stack.command(f"create {SERVER} nightly-big")
    assert ack.status_code == 200
    for _ in range(500):
        async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
            found = await uow.requests.in_status(*Status)
        if any(r.status is Status.SUCCEEDED for r in found):
            break
        await asyncio.sleep(0.02)
    restore, create = found
    assert (restore.server and restore.server.id, restore.target_id) == (SERVER, SNAPSHOT)
    assert create.server is not None
    assert create.server.id == SERVER
    assert create.status is Status.SUCCEEDED
    said = " ".join(str(c.data) for c in stack.slack.calls)
    assert "Something went wrong" not in said
