"""At most one restore per server is under way, across instances: restores of two snapshots of
one server, approved at the same instant on two instances, send one restore call."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

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
ROUNDS = 3


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    sim = Simulator(token=VPS_TOKEN, restore_delay=3600)
    for round_ in range(ROUNDS):
        for n in (902, 903):
            sim.add_snapshot(
                12345, f"snap-{round_}-{n}", snapshot_id=n + 10 * round_,
                created_at="2025-01-20T00:00:00Z",
            )  # fmt: skip
    async with AsyncExitStack() as stack, serving(sim.app) as vps_url:
        first, second = [
            await stack.enter_async_context(
                running_stack(sim, f"{vps_url}/api/v1", database_url, vpsbot_poll_interval=0.2)
            )
            for _ in range(2)
        ]
        yield first, second


def restore_calls(sim: Simulator) -> list[Any]:
    return [c for c in sim.calls_to("POST") if c.path.endswith("/restore/")]


async def statuses(stack: Stack, *request_ids: int) -> list[Status]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        found = [await uow.requests.get(rid) for rid in request_ids]
    return [r.status for r in found if r is not None]


async def test_two_restores_of_one_server_approved_at_once_send_one_call(
    two_instances: tuple[Stack, Stack],
) -> None:
    first, second = two_instances
    sim = first.sim
    actor = Actor(ALICE, CHANNEL)
    for round_ in range(ROUNDS):
        a, b = [
            await restores.request_restore(
                first.bot.services.vps,
                first.bot.services.life,
                actor,
                RequestRestore(Kind.SNAPSHOT, n + 10 * round_, "r"),
            )
            for n in (902, 903)
        ]
        before = len(restore_calls(sim))
        (ack_a, key_a), (ack_b, key_b) = await asyncio.gather(
            first.click(ids.RESTORE_APPROVE, str(a.id), user=BOB),
            second.click(ids.RESTORE_APPROVE, str(b.id), user=CAROL),
        )
        assert (ack_a.status_code, ack_b.status_code) == (200, 200)
        # one of the two is refused at the click, the other restores
        refused = await first.until(
            lambda a=key_a, b=key_b: [
                c
                for c in first.slack.responses(a) + second.slack.responses(b)
                if "already being restored" in text_of(c)
            ],
            what="the refusal of the second restore",
        )
        assert len(refused) == 1
        assert "web-server-01 (12345) is already being restored" in text_of(refused[0])
        await first.until(lambda n=before: len(restore_calls(sim)) > n, what="the restore call")
        await first.until(
            lambda: sim.servers[12345].status == "restoring", what="the server restoring"
        )
        for _ in range(500):
            if Status.RUNNING in await statuses(first, a.id, b.id):
                break
            await asyncio.sleep(0.02)
        assert len(restore_calls(sim)) == before + 1, f"round {round_}: two restores were sent"
        now = sorted(await statuses(first, a.id, b.id))
        assert now == sorted([Status.RUNNING, Status.PENDING_APPROVAL]), now

        # the refused request is still waiting; it may go once the first restore has ended
        sim.finish_all()
        for _ in range(500):
            if Status.SUCCEEDED in await statuses(first, a.id, b.id):
                break
            await asyncio.sleep(0.02)
        pending = [r for r in (a, b) if (await statuses(first, r.id)) == [Status.PENDING_APPROVAL]]
        assert len(pending) == 1
        # withdraw it before the next round (it would restore now: the server is free again)
        await first.click(ids.RESTORE_CANCEL, str(pending[0].id), user=ALICE)
        for _ in range(500):
            if await statuses(first, pending[0].id) == [Status.CANCELLED]:
                break
            await asyncio.sleep(0.02)
    assert len(restore_calls(sim)) == ROUNDS
    async with SqlUnitOfWork(first.bot.database.sessions) as uow:
        refusals = await uow.audit.events("refused")
    assert [r.detail["error"] for r in refusals] == ["RestoreUnderWay"] * ROUNDS
