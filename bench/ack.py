"""Ack latency and throughput: N concurrent clients (N = 1, 10, 50, 200) sending signed
`/snapshot list 12345` to the served bot (the simulator on loopback), next to the same load on a
bare bolt AsyncApp that only acks, served the same way, in the same run.

Closed loop: each client sends its next command as soon as the previous one is acked, so both
apps run flat out; the bot's work after the ack (the API call, the audit row, the answer) shares
its process meanwhile. Open loop: the same number of commands per second (50, 200) offered to
both for 10 s, the way Slack delivers a team's commands, each ack timed on its own.

Run: .venv/bin/python -m bench.ack [seconds per level]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from bench.harness import LoadResult, load, load_at_rate, served, settle

LEVELS = (1, 10, 50, 200)
RATES = (50, 200)  # commands per second offered to both apps (open loop)
OPEN_SECONDS = 10.0  # per rate: enough acks for a p99 that means something
Row = tuple[int, float, float, float, float, float, float]


def row(level: int, ours: LoadResult, floor: LoadResult) -> Row:
    return (
        level,
        ours.percentile(0.5) * 1000, ours.percentile(0.99) * 1000, ours.sent / ours.seconds,
        floor.percentile(0.5) * 1000, floor.percentile(0.99) * 1000, floor.sent / floor.seconds,
    )  # fmt: skip


async def measure(seconds: float) -> tuple[list[Row], list[Row]]:
    closed: list[Row] = []
    opened: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            served(f"sqlite:///{tmp}/bench.db") as bot,
            served(f"sqlite:///{tmp}/bare.db", bare=True) as bare,
        ):
            sent = 0
            for level in LEVELS:
                ours = await load(bot.urls, bot.slack, level, seconds=seconds)
                sent += ours.sent
                await settle(bot.database, sent)  # let the bot finish before the next level
                floor = await load(bare.urls, bare.slack, level, seconds=seconds)
                closed.append(row(level, ours, floor))
            for rate in RATES:
                ours = await load_at_rate(bot.urls, bot.slack, rate, OPEN_SECONDS)
                sent += ours.sent
                await settle(bot.database, sent)
                floor = await load_at_rate(bare.urls, bare.slack, rate, OPEN_SECONDS)
                opened.append(row(rate, ours, floor))
    return closed, opened


def table(rows: list[Row], first: str) -> None:
    print(
        f"{first:>5} {'bot p50':>9} {'bot p99':>9} {'bot req/s':>10} "
        f"{'bare p50':>9} {'bare p99':>9} {'bare req/s':>11} {'p99 ratio':>10}"
    )
    for n, p50, p99, rps, bp50, bp99, brps in rows:
        print(
            f"{n:>5} {p50:>7.1f}ms {p99:>7.1f}ms {rps:>10.0f} "
            f"{bp50:>7.1f}ms {bp99:>7.1f}ms {brps:>11.0f} {p99 / bp99:>9.2f}x"
        )


def report(results: tuple[list[Row], list[Row]]) -> None:
    closed, opened = results
    print("Ack latency, signed /snapshot list, vpsbot vs a bare bolt app that only acks")
    print("closed loop: N clients, each sending again as soon as it is acked (saturation)")
    table(closed, "N")
    print("open loop: the same commands per second offered to both apps")
    table(opened, "cmd/s")


if __name__ == "__main__":
    report(asyncio.run(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)))
