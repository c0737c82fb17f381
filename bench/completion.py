"""Completion delay: from the simulator finishing an operation to the update in Slack, at the
default poll interval (15 s). Eight creates finish at spread-out moments; each delay is measured.

Run: .venv/bin/python -m bench.completion   (takes about a minute)
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bot.bootstrap import build
from bot.config import Settings
from bot.console import SlackStandIn
from bot.domain.operations import CreateSnapshot
from bot.services import operations
from bot.serving import serving
from bot.vpsorg.simulator import Simulator

TOKEN = "bench-token"
SAMPLES = 8


async def main() -> None:
    sim = Simulator(token=TOKEN, create_delay=3600, seed=False)
    slack = SlackStandIn()
    for i in range(SAMPLES):
        sim.add_server(100 + i, f"srv-{i}")
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(sim.app) as url, serving(slack.app) as slack_url:
            slack.base_url = slack_url
            settings = Settings(
                vps_api_url=f"{url}/api/v1", vps_api_token=TOKEN, slack_bot_token="xoxb-bench",
                slack_api_url=f"{slack_url}/api/", database_url=f"sqlite:///{tmp}/bench.db",
            )  # fmt: skip
            bot = build(settings)
            await bot.start()
            actor = operations.Actor("U1", "C1")
            requests = [
                await operations.create(
                    bot.services.vps, bot.services.life, actor, CreateSnapshot(100 + i, f"s{i}")
                )
                for i in range(SAMPLES)
            ]
            finished_at: dict[str, float] = {}
            rng = random.Random(7)
            for request in requests:
                await asyncio.sleep(rng.uniform(1, 5))
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
            await bot.stop()
    values = sorted(delays.values())
    print(f"Completion delay at the default poll interval ({settings.vpsbot_poll_interval:.0f} s),")
    print(f"{SAMPLES} operations: " + ", ".join(f"{v:.1f}" for v in values) + " s")
    print(
        f"mean {statistics.mean(values):.1f} s, max {values[-1]:.1f} s "
        f"(expected: uniform over one interval, plus delivery)"
    )


if __name__ == "__main__":
    asyncio.run(main())
