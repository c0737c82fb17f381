"""Approval path: click on Approve -> the restore call arriving at VPS.org, p50/p99, on SQLite
and (when TEST_DATABASE_URL is set) PostgreSQL, with two served instances sharing the database.

Run: .venv/bin/python -m bench.approval
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import SECRET, TOKEN, approve_body, bench_settings
from bot.bootstrap import build
from bot.config import async_database_url
from bot.console import SlackStandIn
from bot.domain.model import Kind
from bot.domain.operations import RequestRestore
from bot.services import restores
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator

RUNS = 100


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(database_url: str) -> list[float]:
    sim = Simulator(token=TOKEN, restore_delay=3600, seed=False)
    for i in range(RUNS):
        sim.add_server(100 + i, f"srv-{i}")
        sim.add_snapshot(100 + i, f"snap-{i}", snapshot_id=1000 + i)
    slack = SlackStandIn()
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        vps_url = await stack.enter_async_context(serving(sim.app))
        slack.base_url = await stack.enter_async_context(serving(slack.app))
        settings = bench_settings(
            vps_url, slack, database_url, vpsbot_safety_snapshot=False
        )  # bench.safety: with one
        bots = [build(settings), build(settings)]
        urls = [await stack.enter_async_context(serving(b.web, lifespan="on")) for b in bots]
        http = await stack.enter_async_context(httpx.AsyncClient())
        for i in range(RUNS):
            request = await restores.request_restore(
                bots[0].services.vps,
                bots[0].services.life,
                Actor("U1", "C1"),
                RequestRestore(Kind.SNAPSHOT, 1000 + i),
            )
            body = approve_body(slack, i, request.id)
            path = f"/snapshots/{1000 + i}/restore/"
            clicked = time.monotonic()
            await http.post(
                f"{urls[i % 2]}/slack/events", content=body, headers=signed_headers(SECRET, body)
            )
            while not sim.calls_to("POST", path):
                await asyncio.sleep(0.0005)
            latencies.append(sim.calls_to("POST", path)[0].at - clicked)
    return latencies


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(async_database_url(url))
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def main() -> None:
    print(f"Click on Approve -> restore call at VPS.org, {RUNS} requests, two served instances")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{tmp}/bench.db")]
        if os.environ.get("TEST_DATABASE_URL"):
            targets.append(("PostgreSQL", os.environ["TEST_DATABASE_URL"]))
        for name, url in targets:
            if name == "PostgreSQL":
                await reset_postgres(url)
            values = [v * 1000 for v in await measure(url)]
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            mean = statistics.mean(values)
            print(f"{name:<11} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   mean {mean:6.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
