"""The bot's peers for load runs, in a process of their own: the VPS.org simulator and the fake
Slack, so that the load generator's process measures only the bot.

Run: python -m bench.peers VPS_PORT SLACK_PORT
"""

from __future__ import annotations

import asyncio
import sys

from bot.console import SlackStandIn
from bot.serving import serving
from bot.vpsorg.simulator import Simulator

TOKEN = "bench-token"


async def main(vps_port: int, slack_port: int) -> None:
    slack = SlackStandIn()
    slack.record = False
    async with (
        serving(Simulator(token=TOKEN).app, port=vps_port),
        serving(slack.app, port=slack_port),
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
