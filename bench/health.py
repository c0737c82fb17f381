"""Backup health: the cost of one check for 100 servers against the simulator over HTTP, on
SQLite: VPS.org calls per check, its wall time (p50/p99), the `/backup status` message built
from it, and the first alerting check (100 servers' states written).

Run: .venv/bin/python -m bench.health
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.approval import percentile
from bench.harness import TOKEN
from bot.services import health
from bot.services.lifecycle import Lifecycle, Policy
from bot.serving import serving
from bot.slack.blocks import status_message
from bot.storage.database import Database
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.client import VpsClient
from bot.vpsorg.simulator import Simulator

SERVERS = 100
RUNS = 50


def world(now: datetime) -> Simulator:
    """100 servers, each with 3 automatic backups, 1 manual and 2 snapshots (600 items);
    one in ten stale, one in twenty with a failed backup."""
    sim = Simulator(token=TOKEN, seed=False)
    for n in range(SERVERS):
        sid = 10_000 + n
        sim.add_server(sid, f"srv-{n:03}")
        age = 30 if n % 10 == 0 else 2  # hours
        for day in range(3):
            created = now - timedelta(hours=age + 24 * day)
            sim.add_backup(sid, "automatic", "daily", None, created.isoformat())
        status = "failed" if n % 20 == 5 else "completed"
        sim.add_backup(sid, "manual", "before deploy", None, now.isoformat(), status=status)
        for k in range(2):
            sim.add_snapshot(sid, f"snap-{n}-{k}", created_at=now.isoformat())
    return sim


async def main() -> None:
    now = datetime.now(UTC)
    sim = world(now)
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite+aiosqlite:///{folder}/bench.db")
        await database.upgrade()
        async with serving(sim.app) as url:
            vps = VpsClient(f"{url}/api/v1", TOKEN)
            policy = Policy(alert_channel="C1", safety_snapshot=False)
            life = Lifecycle(lambda: SqlUnitOfWork(database.sessions), lambda: now, policy)
            await health.check(vps, life)  # warm-up
            times, calls, render = [], [], []
            for _ in range(RUNS):
                before = len(sim.calls)
                started = time.perf_counter()
                report = await health.check(vps, life)
                times.append(time.perf_counter() - started)
                calls.append(len(sim.calls) - before)
                started = time.perf_counter()
                message = status_message(report, UTC)
                render.append(time.perf_counter() - started)
            started = time.perf_counter()
            told = await health.alert_due(vps, life)
            alerting = time.perf_counter() - started
            await vps.aclose()
        await database.dispose()
    states = {s: sum(h.state is s for h in report.servers) for s in health.State}
    print(
        f"health check, {SERVERS} servers ({len(sim.objects['backups'])} backups, "
        f"{len(sim.objects['snapshots'])} snapshots), SQLite, {RUNS} checks:"
    )
    print(f"  VPS.org calls per check: {statistics.mean(calls):.0f} (min {min(calls)}, "
          f"max {max(calls)})")  # fmt: skip
    print(f"  wall time: p50 {percentile(times, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(times, 0.99) * 1000:.1f} ms")  # fmt: skip
    print(f"  states: {', '.join(f'{s.value} {n}' for s, n in states.items())}")
    print(f"  /backup status message: {len(message.blocks)} blocks, built in "
          f"p50 {percentile(render, 0.5) * 1000:.2f} ms")  # fmt: skip
    print(f"  first alerting check (100 states written, {told} alerts queued): "
          f"{alerting * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
