"""At most one restore per server, across instances sharing one database (SQLite, and
PostgreSQL when TEST_DATABASE_URL is set):

- asked at the same instant on two instances, one restore request is accepted and the other is
  refused (ConflictingRestore): the check and the insert hold the server;
- the server's lock makes a second asker wait until the first has committed, then see its
  request;
- two restores of one server that are both waiting (rows from before restores were refused when
  asked, or one asked while an earlier restore needed attention that then turned out to be
  running) and approved at the same instant on two instances still send one restore call: the
  database's one-restore-under-way index refuses the second.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import async_database_url
from bot.domain.errors import ConflictingRestore
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, OperationRequest, ServerRef
from bot.domain.operations import RequestRestore
from bot.services import restores
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack import ids
from bot.storage.database import Database
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, VPS_TOKEN, Stack, running_stack

CAROL = "U0000CARL"
ROUNDS = 3
ASKED_AT_ONCE = 10
SERVER = ServerRef(12345, "web-server-01")


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


async def all_requests(stack: Stack) -> list[OperationRequest]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status)


class InStep:
    """VPS.org as an instance sees it, except that a request's last look-up (the server) waits
    until the other instance's has answered too: both then check and insert at once."""

    def __init__(self, vps: Any, meet: asyncio.Barrier) -> None:
        self._vps = vps
        self._meet = meet

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vps, name)

    async def get_server(self, server_id: int) -> Any:
        server = await self._vps.get_server(server_id)
        await self._meet.wait()
        return server


async def test_two_restores_asked_at_once_on_two_instances_one_is_accepted(
    two_instances: tuple[Stack, Stack],
) -> None:
    first, second = two_instances
    actor = Actor(ALICE, CHANNEL)
    accepted: list[int] = []
    for round_ in range(ASKED_AT_ONCE):
        meet = asyncio.Barrier(2)
        outcomes = await asyncio.gather(
            *(
                restores.request_restore(
                    InStep(stack.bot.services.vps, meet),
                    stack.bot.services.life,
                    actor,
                    RequestRestore(Kind.SNAPSHOT, snapshot, "at once"),
                )
                for stack, snapshot in ((first, 902), (second, 903))
            ),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, OperationRequest)]
        lost = [o for o in outcomes if isinstance(o, ConflictingRestore)]
        assert (len(won), len(lost)) == (1, 1), f"round {round_}: {outcomes}"
        assert lost[0].existing.id == won[0].id
        assert f"request #{won[0].id} " in str(lost[0])
        accepted.append(won[0].id)
        # exactly one request more, and it is the one accepted
        assert [r.id for r in await all_requests(first)][-1] == won[0].id
        assert len(await all_requests(first)) == round_ + 1
        # withdrawn, so that the next round may ask again
        await restores.cancel(first.bot.services.life, ALICE, won[0].id, CHANNEL)
    assert await statuses(first, *accepted) == [Status.CANCELLED] * ASKED_AT_ONCE
    assert restore_calls(first.sim) == []
    async with SqlUnitOfWork(first.bot.database.sessions) as uow:
        asked = await uow.audit.events("request")
    assert [e.request_id for e in asked] == accepted


async def test_the_servers_lock_holds_a_second_asker_until_the_first_commits(
    database_url: str,
) -> None:
    """Two instances (two engines): the first holds the server and inserts; the second's
    lock_restores waits, then sees the first's request. Another server is not held."""
    url = async_database_url(database_url)
    one, two = Database(url), Database(url)
    await one.upgrade()
    at = datetime.now(UTC)
    try:
        async with SqlUnitOfWork(one.sessions) as holder:
            assert await holder.requests.lock_restores(SERVER.id) == []
            made = await holder.requests.add(
                kind=Kind.SNAPSHOT,
                action=Action.RESTORE,
                status=Status.PENDING_APPROVAL,
                requester_id=ALICE,
                channel_id=CHANNEL,
                at=at,
                server=SERVER,
                target_id=902,
                expires_at=at + timedelta(minutes=30),
            )

            async def second_asker() -> list[OperationRequest]:
                async with SqlUnitOfWork(two.sessions) as uow:
                    return await uow.requests.lock_restores(SERVER.id)

            waiting = asyncio.create_task(second_asker())
            await asyncio.sleep(0.5)
            assert not waiting.done(), "the second asker did not wait for the server"
            await holder.commit()
        found = await asyncio.wait_for(waiting, 10)
        assert [(r.id, r.status) for r in found] == [(made.id, Status.PENDING_APPROVAL)]
        if one.dialect == "postgresql":  # (SQLite has one writer at a time, whatever the server)
            async with SqlUnitOfWork(one.sessions) as holder:
                await holder.requests.lock_restores(SERVER.id)
                async with SqlUnitOfWork(two.sessions) as other:
                    other_server = await asyncio.wait_for(other.requests.lock_restores(23456), 5)
                assert other_server == []
    finally:
        await one.dispose()
        await two.dispose()


async def _second_waiting(stack: Stack, snapshot_id: int) -> OperationRequest:
    """A second restore of the server waiting for approval, as stored before restores were
    refused when asked (request_restore no longer makes one while another is waiting)."""
    now = datetime.now(UTC)
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.add(
            kind=Kind.SNAPSHOT,
            action=Action.RESTORE,
            status=Status.PENDING_APPROVAL,
            requester_id=ALICE,
            channel_id=CHANNEL,
            at=now,
            server=SERVER,
            target_id=snapshot_id,
            target_name=f"snap-{(snapshot_id - 900) // 10}-{900 + snapshot_id % 10}",
            reason="r",
            expires_at=now + timedelta(minutes=30),
            required_approvals=1,
        )
        uow.outbox.add("post", {"event": "approval_requested"}, at=now, request_id=request.id)
        await uow.commit()
    return request


async def test_two_restores_of_one_server_approved_at_once_send_one_call(
    two_instances: tuple[Stack, Stack],
) -> None:
    first, second = two_instances
    sim = first.sim
    actor = Actor(ALICE, CHANNEL)
    for round_ in range(ROUNDS):
        a = await restores.request_restore(
            first.bot.services.vps,
            first.bot.services.life,
            actor,
            RequestRestore(Kind.SNAPSHOT, 902 + 10 * round_, "r"),
        )
        b = await _second_waiting(first, 903 + 10 * round_)
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
