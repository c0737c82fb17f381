"""App Home: a signed `app_home_opened` event POSTed -> the `views.publish` call arriving at
Slack, p50/p99, with 100 restore requests waiting for the approval of the person who opens
the tab, on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL.

Run: .venv/bin/python -m bench.home
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import AsyncExitStack

import httpx

from bench.approval import percentile, reset_postgres
from bench.harness import SECRET, TOKEN, bench_settings
from bot.bootstrap import build
from bot.console import SlackCall, SlackStandIn
from bot.domain.model import Kind
from bot.domain.operations import RequestRestore
from bot.services import restores
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator

PENDING = 100
RUNS = 100
OPENER = "U2"


def event(team: str, n: int) -> str:
    return json.dumps(
        {
            "team_id": team,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"EvBENCH{n:06d}",
            "event_time": 1700000000 + n,
            "event": {"type": "app_home_opened", "user": OPENER, "tab": "home", "channel": "D1"},
            "authorizations": [{"team_id": team, "user_id": "U0BOT", "is_bot": True}],
        }
    )


async def measure(database_url: str) -> tuple[list[float], int]:
    sim = Simulator(token=TOKEN, seed=False)
    for i in range(PENDING):
        sim.add_server(100 + i, f"srv-{i}")
        sim.add_snapshot(100 + i, f"snap-{i}", snapshot_id=1000 + i)
    published = asyncio.Event()
    views: list[SlackCall] = []
    cards: list[SlackCall] = []

    def seen(call: SlackCall) -> None:
        if call.method == "chat.postMessage":
            cards.append(call)
        if call.method == "views.publish":
            views.append(call)
            published.set()

    slack = SlackStandIn(on_call=seen)
    slack.record = False
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        vps_url = await stack.enter_async_context(serving(sim.app))
        slack.base_url = await stack.enter_async_context(serving(slack.app))
        settings = bench_settings(
            vps_url, slack, database_url, vpsbot_safety_snapshot=False, vpsbot_approvers=OPENER
        )
        bot = build(settings)
        url = await stack.enter_async_context(serving(bot.web, lifespan="on"))
        http = await stack.enter_async_context(httpx.AsyncClient())
        for i in range(PENDING):
            await restores.request_restore(
                bot.services.vps,
                bot.services.life,
                Actor("U1", "C1"),
                RequestRestore(Kind.SNAPSHOT, 1000 + i),
            )
        while len(cards) < PENDING:  # the cards are posted: measure the Home tab alone
            await asyncio.sleep(0.01)
        for n in range(RUNS + 5):  # the first five warm up
            published.clear()
            body = event(slack.team_id, n)
            opened = time.monotonic()
            answer = await http.post(
                f"{url}/slack/events",
                content=body,
                headers=signed_headers(SECRET, body) | {"Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
            await asyncio.wait_for(published.wait(), 10)
            if n >= 5:
                latencies.append(time.monotonic() - opened)
    view = views[-1].data["view"]
    blocks = len((json.loads(view) if isinstance(view, str) else view)["blocks"])
    return latencies, blocks


async def main() -> None:
    print(
        f"app_home_opened -> views.publish, {PENDING} restores waiting for the opener's "
        f"approval, {RUNS} openings"
    )
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{tmp}/bench.db")]
        if os.environ.get("TEST_DATABASE_URL"):
            targets.append(("PostgreSQL", os.environ["TEST_DATABASE_URL"]))
        for name, url in targets:
            if name == "PostgreSQL":
                await reset_postgres(url)
            latencies, blocks = await measure(url)
            values = [v * 1000 for v in latencies]
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            mean = statistics.mean(values)
            print(
                f"{name:<11} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   mean {mean:6.1f} ms   "
                f"({blocks} blocks published)"
            )


if __name__ == "__main__":
    asyncio.run(main())
