"""Tracker cost: 1,000 in-flight operations over 100 servers, API calls and wall time per cycle,
next to a naive tracker that reads each operation on its own, measured in the same run.

Run: .venv/bin/python -m bench.tracker
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import defaultdict
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


async def main() -> None:
    sim = Simulator(token=TOKEN, seed=False)
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(sim.app) as url:
            settings = Settings(
                vps_api_url=f"{url}/api/v1", vps_api_token=TOKEN, slack_bot_token="xoxb-bench",
                database_url=f"sqlite:///{tmp}/bench.db", vpsbot_poll_interval=0.01,
            )  # fmt: skip
            bot = build(settings, run_worker=False)
            await bot.start()
            await seed(bot, sim, servers=100, per_kind=5)
            async with SqlUnitOfWork(bot.database.sessions) as uow:
                flying = await uow.requests.in_status(Status.RUNNING)
            per_server: dict[int, int] = defaultdict(int)

            sim.calls.clear()
            started = time.perf_counter()
            report = await tracking.check_in_flight(bot.services.vps, bot.services.life, "bench")
            ours = time.perf_counter() - started
            for call in sim.calls:
                per_server[int(call.query["server_id"])] += 1

            vps = VpsClient(f"{url}/api/v1", TOKEN)
            targets = [(r.kind, r.server.id, r.target_id or 0) for r in flying if r.server]
            started = time.perf_counter()
            naive_calls = await naive_cycle(vps, targets)
            naive = time.perf_counter() - started
            await vps.aclose()
            await bot.stop()

    print("Tracker cost, 1,000 in-flight operations on 100 servers (SQLite, simulator on loopback)")
    print(f"{'tracker':<10}{'API calls/cycle':>17}{'max per server':>16}{'wall time/cycle':>17}")
    print(f"{'vpsbot':<10}{report.api_calls:>17}{max(per_server.values()):>16}{ours:>16.2f}s")
    print(f"{'naive':<10}{naive_calls:>17}{10:>16}{naive:>16.2f}s")
    print(
        f"ratio naive/vpsbot: calls {naive_calls / report.api_calls:.1f}x, time {naive / ours:.1f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
