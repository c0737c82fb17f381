"""Tracker cost: 1,000 in-flight operations over 100 servers, API calls and wall time per cycle:
one listing per server and kind (the tracker before), the tracker now (per kind, account-wide or
by server, whichever is fewer calls) at two page sizes, and a naive tracker that reads each
operation on its own, in the same run.

Run: .venv/bin/python -m bench.tracker
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bot.bootstrap import Bot, build
from bot.config import Settings
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, ServerRef
from bot.services import tracking
from bot.serving import serving
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Simulator

TOKEN = "bench-token"
PAGE_SIZES = (100, 250)


async def seed(bot: Bot, sim: Simulator, servers: int, per_kind: int) -> None:
    now = datetime.now(UTC) - timedelta(seconds=1)
    async with SqlUnitOfWork(bot.database.sessions) as uow:
        for s in range(servers):
            server = ServerRef(1000 + s, f"srv-{s}")
            sim.add_server(server.id, server.name)
            for kind in (Kind.SNAPSHOT, Kind.BACKUP):
                for j in range(per_kind):
                    if kind is Kind.SNAPSHOT:
                        obj = sim.add_snapshot(server.id, f"s{j}", status="in_progress")
                    else:
                        obj = sim.add_backup(server.id, "manual", f"b{j}", status="in_progress")
                    request = await uow.requests.add(
                        kind=kind, action=Action.CREATE, status=Status.RUNNING,
                        requester_id="U1", channel_id="C1", at=now, server=server,
                        target_id=obj.id, target_name=obj.name,
                        expires_at=now + timedelta(hours=6),
                    )  # fmt: skip
                    await uow.requests.change(request.id, next_check_at=now)
        await uow.commit()


async def naive_cycle(vps: VpsClient, requests: list[tuple[Kind, int, int]]) -> int:
    """What a tracker without grouping does: one list call per operation."""
    calls = 0
    for kind, server_id, target_id in requests:
        calls += 1
        if kind is Kind.SNAPSHOT:
            items = (await vps.list_snapshots(server_id)).items
        else:
            items = (await vps.list_backups(server_id)).items
        assert any(item.id == target_id for item in items)
    return calls


async def cycle(bot: Bot, sim: Simulator, wide: bool | None) -> tuple[int, float]:
    """One tracker cycle over everything in flight: VPS.org calls and wall time."""
    async with SqlUnitOfWork(bot.database.sessions) as uow:  # every operation due now
        for request in await uow.requests.in_status(Status.RUNNING):
            await uow.requests.change(request.id, next_check_at=datetime.now(UTC))
        await uow.commit()
    before = len(sim.calls)
    started = time.perf_counter()
    await tracking.check_in_flight(bot.services.vps, bot.services.life, "bench", wide=wide)
    return len(sim.calls) - before, time.perf_counter() - started


async def main() -> None:
    rows: list[tuple[str, int, float]] = []
    for page_size in PAGE_SIZES:
        sim = Simulator(token=TOKEN, seed=False, page_size=page_size)
        with tempfile.TemporaryDirectory() as tmp:
            async with serving(sim.app) as url:
                settings = Settings(
                    vps_api_url=f"{url}/api/v1", vps_api_token=TOKEN, slack_bot_token="xoxb-bench",
                    database_url=f"sqlite:///{tmp}/bench.db", vpsbot_poll_interval=0.01,
                )  # fmt: skip
                bot = build(settings, run_worker=False)
                await bot.start()
                await seed(bot, sim, servers=100, per_kind=5)
                if page_size == PAGE_SIZES[0]:
                    calls, took = await cycle(bot, sim, wide=False)
                    rows.append(("one listing per server and kind (before)", calls, took))
                await cycle(bot, sim, wide=None)  # the first cycle learns the account's size
                calls, took = await cycle(bot, sim, wide=None)
                rows.append((f"vpsbot now, {page_size} items a page", calls, took))
                if page_size == PAGE_SIZES[0]:
                    async with SqlUnitOfWork(bot.database.sessions) as uow:
                        flying = await uow.requests.in_status(Status.RUNNING)
                    vps = VpsClient(f"{url}/api/v1", TOKEN)
                    targets = [(r.kind, r.server.id, r.target_id or 0) for r in flying if r.server]
                    started = time.perf_counter()
                    naive_calls = await naive_cycle(vps, targets)
                    rows.append(
                        ("one call per operation", naive_calls, time.perf_counter() - started)
                    )
                    await vps.aclose()
                await bot.stop()

    print("Tracker cost per cycle, 1,000 operations in flight on 100 servers")
    print("(5 snapshots and 5 manual backups each; SQLite; the simulator on loopback, paging)")
    print(f"{'tracker':<44}{'VPS.org calls/cycle':>20}{'wall time/cycle':>17}")
    for name, calls, took in rows:
        print(f"{name:<44}{calls:>20}{took:>16.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
