"""Completion latency and what it costs: from the simulator finishing an operation to its card
updated in Slack, at poll intervals of 5 s and 15 s, while 1,000 other operations on 100
servers are in flight; and the VPS.org calls per minute the tracker makes meanwhile.

For each interval: the bot as `serve` runs it (tracker and outbox sender on), 1,000 creates in
progress that never finish (5 snapshots and 5 manual backups on each of 100 servers), and 8
measured creates that finish at random moments over two intervals. The simulator pages its lists
100 items a page, as a Django REST framework API commonly does.

Run: .venv/bin/python -m bench.completion   (about a minute and a half)
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.tracker import seed
from bot.bootstrap import build
from bot.config import Settings
from bot.console import SlackStandIn
from bot.domain.operations import CreateSnapshot
from bot.services import operations
from bot.serving import serving
from bot.vpsorg.simulator import Simulator

TOKEN = "bench-token"
SAMPLES = 8
INTERVALS = (5.0, 15.0)


async def measure(interval: float) -> tuple[list[float], float]:
    """The completion delays of SAMPLES creates, and the tracker's VPS.org calls per minute."""
    sim = Simulator(token=TOKEN, create_delay=3600, seed=False, page_size=100)
    slack = SlackStandIn()
    slack.record = True
    for i in range(SAMPLES):
        sim.add_server(100 + i, f"measured-{i}")
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(sim.app) as url, serving(slack.app) as slack_url:
            slack.base_url = slack_url
            settings = Settings(
                vps_api_url=f"{url}/api/v1", vps_api_token=TOKEN, slack_bot_token="xoxb-bench",
                slack_api_url=f"{slack_url}/api/", database_url=f"sqlite:///{tmp}/bench.db",
                vpsbot_poll_interval=interval,
            )  # fmt: skip
            bot = build(settings)
            await bot.start()
            await seed(bot, sim, servers=100, per_kind=5)
            actor = operations.Actor("U1", "C1")
            requests = [
                await operations.create(
                    bot.services.vps, bot.services.life, actor, CreateSnapshot(100 + i, f"m{i}")
                )
                for i in range(SAMPLES)
            ]
            await asyncio.sleep(interval)  # the tracker's first cycle (it learns the account)
            calls_before, counted_from = len(sim.calls), time.monotonic()
            finished_at: dict[str, float] = {}
            rng = random.Random(7)
            for request in requests:
                await asyncio.sleep(rng.uniform(0, 2 * interval / SAMPLES))
                obj = sim.objects["snapshots"][request.target_id or 0]
                obj.done_at = datetime.now(UTC) - timedelta(milliseconds=1)
                sim.advance()
                finished_at[request.target_name] = time.monotonic()
            delays: dict[str, float] = {}
            while len(delays) < SAMPLES:
                for call in slack.api_calls("chat.update"):
                    for name in finished_at:
                        if f"`{name}`" in str(call.data.get("text")) and name not in delays:
                            delays[name] = time.monotonic() - finished_at[name]
                await asyncio.sleep(0.05)
            minutes = (time.monotonic() - counted_from) / 60
            per_minute = (len(sim.calls) - calls_before) / minutes
            await bot.stop()
    return sorted(delays.values()), per_minute


async def main() -> None:
    print(
        "Completion latency (VPS.org finishes -> card updated in Slack), 8 operations, with 1,000"
    )
    print("others in flight on 100 servers; VPS.org lists page 100 items; SQLite")
    print(f"{'interval':>9} {'mean':>7} {'max':>7} {'VPS.org calls/min':>18}")
    for interval in INTERVALS:
        delays, per_minute = await measure(interval)
        print(
            f"{interval:>8.0f}s {statistics.mean(delays):>6.1f}s {delays[-1]:>6.1f}s "
            f"{per_minute:>18.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
