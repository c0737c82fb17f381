"""Races: two approvers clicking at the same instant on two served instances sharing one
database, 200 times: exactly one restore per request, on SQLite and on PostgreSQL. With safety
snapshots on, one snapshot POST per request and, once the snapshots are complete and both
trackers race to go on, one restore per server; and an instance that stalls between a look
at the snapshot and writing what it saw must not let a second restore through."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest

from bot.bootstrap import build
from bot.config import async_database_url
from bot.domain.lifecycle import Status
from bot.domain.model import Kind, Listing, OperationRequest, Snapshot
from bot.domain.operations import RequestRestore
from bot.domain.outcomes import SafetyStep
from bot.services import NoDirectory, restores, tracking
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack import ids
from bot.storage.database import Database
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import ALICE, BOB, CHANNEL, VPS_TOKEN, Stack, make_settings, running_stack

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


SAFE_RUNS = 20


@pytest.fixture
async def two_instances_with_safety(database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    """Two instances on one database, safety snapshots on, their trackers ticking every 0.2 s
    on the same grid (so they race for the same requests); the snapshots are made until the
    test says (`sim.finish_all()`)."""
    sim = Simulator(token=VPS_TOKEN, create_delay=3600, restore_delay=3600, seed=False)
    for i in range(SAFE_RUNS):
        sim.add_server(6000 + i, f"safe-{i}")
        sim.add_snapshot(
            6000 + i, f"snap-{i}", snapshot_id=80000 + i, created_at="2025-01-01T00:00:00Z"
        )
    async with AsyncExitStack() as stack, serving(sim.app) as vps_url:
        url = f"{vps_url}/api/v1"
        first, second = [
            await stack.enter_async_context(
                running_stack(
                    sim, url, database_url, vpsbot_poll_interval=0.2, vpsbot_safety_snapshot=True
                )
            )
            for _ in range(2)
        ]
        yield first, second


async def test_two_approvers_at_the_same_instant_take_one_safety_snapshot_and_restore_once(
    two_instances_with_safety: tuple[Stack, Stack],
) -> None:
    """With safety snapshots on: two approvers click at the same instant on two instances, for
    20 requests at once. Each request gets one `POST /snapshots/` named after it; once the
    snapshots are complete, both instances' trackers race to go on, and each server is
    restored once."""
    first, second = two_instances_with_safety
    sim = first.sim
    actor = Actor(ALICE, CHANNEL)
    servers: dict[int, int] = {}  # request id -> server id

    async def race(i: int) -> None:
        request = await restores.request_restore(
            first.bot.services.vps,
            first.bot.services.life,
            actor,
            RequestRestore(Kind.SNAPSHOT, 80000 + i, "race"),
        )
        servers[request.id] = 6000 + i
        acks = await asyncio.gather(
            first.click(ids.RESTORE_APPROVE, str(request.id), user=BOB),
            second.click(ids.RESTORE_APPROVE, str(request.id), user=CAROL),
        )
        assert all(ack.status_code == 200 for ack, _ in acks)

    await asyncio.gather(*(race(i) for i in range(SAFE_RUNS)))

    async def requests() -> list[OperationRequest]:
        async with SqlUnitOfWork(first.bot.database.sessions) as uow:
            return list(await uow.requests.in_status(*Status))

    def posted() -> Counter[tuple[int, str]]:
        return Counter(
            (c.body["server_id"], c.body["name"])
            for c in sim.calls_to("POST", "/snapshots/")
            if isinstance(c.body, dict)
        )

    async def following() -> bool:
        return all(r.outcome.safety_step is SafetyStep.FOLLOWING for r in await requests())

    await first.until(lambda: len(posted()) == SAFE_RUNS, wait=30, what="20 snapshot POSTs")
    for _ in range(300):  # each POST's answer is recorded: the trackers follow the snapshots
        if await following():
            break
        await asyncio.sleep(0.1)
    assert await following(), Counter(r.outcome.safety_step for r in await requests())
    ticks = len(sim.calls_to("GET", "/snapshots/"))
    await first.until(  # a few ticks of both trackers looking at the snapshots being made
        lambda: len(sim.calls_to("GET", "/snapshots/")) >= ticks + 3 * SAFE_RUNS, wait=30
    )
    expected = {(server, f"pre-restore-{rid}"): 1 for rid, server in servers.items()}
    assert posted() == expected, "one safety snapshot POST per request, named after it"
    assert len(sim.calls_to("POST", "/snapshots/")) == SAFE_RUNS
    assert not [c for c in sim.calls_to("POST") if c.path.endswith("/restore/")]
    assert {r.status for r in await requests()} == {Status.EXECUTING}

    sim.finish_all()  # every safety snapshot is complete: now the restores

    def restored() -> Counter[str]:
        return Counter(c.path for c in sim.calls_to("POST") if c.path.endswith("/restore/"))

    await first.until(lambda: len(restored()) == SAFE_RUNS, wait=30, what="20 restores")
    statuses: list[Status] = []
    for _ in range(300):
        statuses = [r.status for r in await requests()]
        if statuses.count(Status.RUNNING) == SAFE_RUNS:
            break
        await asyncio.sleep(0.1)
    reads = len(sim.calls_to("GET"))
    await first.until(  # a few more ticks of both trackers: room for a second restore
        lambda: len(sim.calls_to("GET")) >= reads + 3 * SAFE_RUNS, wait=30
    )
    calls = restored()
    assert set(calls) == {f"/snapshots/{80000 + i}/restore/" for i in range(SAFE_RUNS)}
    assert set(calls.values()) == {1}, f"restored twice: {calls}"
    assert Counter(statuses) == {Status.RUNNING: SAFE_RUNS}
    assert all(sim.servers[server].status == "restoring" for server in servers.values())
    assert len(sim.calls_to("POST", "/snapshots/")) == SAFE_RUNS  # still one each
    async with SqlUnitOfWork(first.bot.database.sessions) as uow:
        votes = [len(await uow.approvals.votes(rid)) for rid in servers]
    assert set(votes) == {1}  # the second click came too late: the request was executing


class Stalling(VpsClient):
    """A VPS.org client whose snapshot listing, once `stall` is set, reads VPS.org and then
    waits for `stall` before handing the answer back: an instance frozen (or whose database
    writes stall) between a look at a snapshot and the write of what it saw."""

    stall: asyncio.Event | None = None
    stalled = False

    async def list_snapshots(self, server_id: int | None = None) -> Listing[Snapshot]:
        listing = await super().list_snapshots(server_id)
        if self.stall is not None:
            self.stalled = True
            await self.stall.wait()
        return listing


async def test_a_look_written_late_by_an_instance_that_lost_its_lease_does_not_restore_twice(
    database_url: str,
) -> None:
    """Instance A looks at the safety snapshot (still being made) and stalls before writing
    what it saw, past its lease. B takes the request over, sees the snapshot complete, commits
    READY and sends the restore (VPS.org slow to answer). A's late write must change nothing:
    no instance may then take the request for one still following its snapshot and send a
    second restore. Time is a shared test clock; the trackers are driven by hand."""
    now = [datetime.now(UTC)]
    sim = Simulator(token=VPS_TOKEN, create_delay=3600, restore_delay=3600)
    restore = "/snapshots/801/restore/"
    database = Database(async_database_url(database_url))
    await database.upgrade()
    async with serving(sim.app) as url:
        settings = make_settings(
            vps_api_url=f"{url}/api/v1",
            database_url=database_url,
            vpsbot_safety_snapshot=True,
            vpsbot_poll_interval=1,
        )
        slow = Stalling(f"{url}/api/v1", VPS_TOKEN)
        a, b = (
            build(settings, vps=vps, database=database, clock=lambda: now[0], run_worker=False,
                  owner=owner)
            for vps, owner in ((slow, "instance-a"), (None, "instance-b"))
        )  # fmt: skip
        tasks: list[asyncio.Task[int]] = []
        try:
            life_a, life_b = a.services.life, b.services.life
            actor = Actor(ALICE, CHANNEL)
            asked = RequestRestore(Kind.SNAPSHOT, 801, "stalled look")
            request = await restores.request_restore(a.vps, life_a, actor, asked)
            await restores.approve(a.vps, life_a, NoDirectory(), BOB, request.id, CHANNEL)
            assert len(sim.calls_to("POST", "/snapshots/")) == 1  # posted, now following

            now[0] += timedelta(seconds=2)  # a tick: A looks, and stalls after the listing
            slow.stall = asyncio.Event()
            looking = asyncio.create_task(tracking.reconcile_stale(slow, life_a, life_a.owner))
            tasks.append(looking)
            for _ in range(500):
                if slow.stalled:
                    break
                await asyncio.sleep(0.01)
            assert slow.stalled

            now[0] += timedelta(seconds=20)  # A's lease lapses; the snapshot completes
            sim.finish_all()
            sim.inject(Fault("POST", restore, kind="hang", delay=30))  # VPS.org slow to answer
            restoring = asyncio.create_task(tracking.reconcile_stale(b.vps, life_b, life_b.owner))
            tasks.append(restoring)
            for _ in range(500):
                if sim.calls_to("POST", restore):
                    break
                await asyncio.sleep(0.01)
            assert len(sim.calls_to("POST", restore)) == 1  # B sent the restore

            slow.stall.set()  # A writes what it saw, late
            slow.stall = None
            await looking
            async with SqlUnitOfWork(database.sessions) as uow:
                after = await uow.requests.get(request.id)
            assert after is not None
            assert after.status is Status.EXECUTING
            assert after.outcome.safety_step is SafetyStep.READY  # not put back to following
            now[0] += timedelta(seconds=2)  # the next tick, B's answer still awaited
            await tracking.reconcile_stale(slow, life_a, life_a.owner)
            sim.release_hangs()
            await restoring
            assert len(sim.calls_to("POST", restore)) == 1, "the server was restored twice"
        finally:  # on a failure, no task left behind
            if slow.stall is not None:
                slow.stall.set()
            sim.release_hangs()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in (slow, b.vps):
                assert isinstance(client, VpsClient)
                await client.aclose()
            await database.dispose()
