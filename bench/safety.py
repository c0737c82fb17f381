"""Safety snapshots: the click on Approve -> the restore call arriving at VPS.org, with
VPSBOT_SAFETY_SNAPSHOT on and off, one served instance on SQLite, the embedded simulator.

With it on, the time is the snapshot's (the simulator's `create_delay`; VPS.org says 3 to 10
minutes) plus at most one poll tick (`VPSBOT_POLL_INTERVAL`) for the tracker to see it
`completed`; the figures below show how much the bot itself adds to that.

Run: .venv/bin/python -m bench.safety [create_delay_seconds] [poll_interval_seconds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack

import httpx

from bench.harness import SECRET, TOKEN, approve_body, bench_settings
from bot.bootstrap import build
from bot.console import SlackStandIn
from bot.domain.model import Kind
from bot.domain.operations import RequestRestore
from bot.services import restores
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator

RUNS = 10


async def measure(safety: bool, create_delay: float, poll: float, db: str) -> list[float]:
    """Seconds from each click on Approve to its restore call, RUNS restores of RUNS servers."""
    sim = Simulator(token=TOKEN, create_delay=create_delay, restore_delay=3600, seed=False)
    for i in range(RUNS):
        sim.add_server(100 + i, f"srv-{i}")
        sim.add_snapshot(100 + i, f"snap-{i}", snapshot_id=1000 + i)
    slack = SlackStandIn()
    took: list[float] = []
    async with AsyncExitStack() as stack:
        vps_url = await stack.enter_async_context(serving(sim.app))
        slack.base_url = await stack.enter_async_context(serving(slack.app))
        settings = bench_settings(
            vps_url, slack, db, vpsbot_safety_snapshot=safety, vpsbot_poll_interval=poll
        )
        bot = build(settings)
        url = await stack.enter_async_context(serving(bot.web, lifespan="on"))
        http = await stack.enter_async_context(httpx.AsyncClient())
        for i in range(RUNS):
            request = await restores.request_restore(
                bot.services.vps,
                bot.services.life,
                Actor("U1", "C1"),
                RequestRestore(Kind.SNAPSHOT, 1000 + i),
            )
            body = approve_body(slack, i, request.id)
            path = f"/snapshots/{1000 + i}/restore/"
            clicked = time.monotonic()
            await http.post(
                f"{url}/slack/events", content=body, headers=signed_headers(SECRET, body)
            )
            while not sim.calls_to("POST", path):
                await asyncio.sleep(0.001)
            took.append(sim.calls_to("POST", path)[0].at - clicked)
        posts = len(sim.calls_to("POST", "/snapshots/"))
        restores_sent = sum(
            len(sim.calls_to("POST", f"/snapshots/{1000 + i}/restore/")) for i in range(RUNS)
        )
        assert posts == (RUNS if safety else 0), posts
        assert restores_sent == RUNS, restores_sent
    return took


async def main() -> None:
    create_delay = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    poll = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    print(
        f"Click on Approve -> restore call at VPS.org, {RUNS} restores, SQLite, simulator "
        f"create_delay {create_delay:g} s, VPSBOT_POLL_INTERVAL {poll:g} s"
    )
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for safety in (False, True):
            db = f"sqlite:///{tmp}/bench-{safety}.db"
            values = await measure(safety, create_delay, poll, db)
            figures[safety] = statistics.median(values)
            overhead = [v - create_delay for v in values] if safety else values
            label = "on " if safety else "off"
            print(
                f"safety snapshot {label}: median {statistics.median(values):7.3f} s"
                f"   min {min(values):7.3f} s   max {max(values):7.3f} s"
                + (
                    f"   beyond the snapshot itself: median {statistics.median(overhead):6.3f} s"
                    f" (at most one tick, {poll:g} s, is expected)"
                    if safety
                    else ""
                )
            )
    print(f"ratio on/off (median): {figures[True] / figures[False]:.0f}x")


if __name__ == "__main__":
    asyncio.run(main())
