"""Ack latency and throughput: N concurrent clients (N = 1, 10, 50, 200) sending signed
`/snapshot list 12345` to the served bot (the simulator on loopback), next to the same load on a
bare bolt AsyncApp that only acks, served the same way, in the same run.

Each client sends its next command as soon as the previous one is acked: this measures how fast
Slack gets its 200, which is what Slack's 3-second rule is about. The bot's work after the ack
(the API call, the audit row, the answer) goes on in the same process meanwhile.

Run: .venv/bin/python -m bench.ack [seconds per level]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from bench.harness import load, served, settle

LEVELS = (1, 10, 50, 200)


async def measure(seconds: float) -> list[tuple[int, float, float, float, float, float, float]]:
    rows = []
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
                rows.append(
                    (
                        level,
                        ours.percentile(0.5) * 1000, ours.percentile(0.99) * 1000,
                        ours.sent / ours.seconds,
                        floor.percentile(0.5) * 1000, floor.percentile(0.99) * 1000,
                        floor.sent / floor.seconds,
                    )
                )  # fmt: skip
    return rows


def report(rows: list[tuple[int, float, float, float, float, float, float]]) -> None:
    print("Ack latency, signed /snapshot list, vpsbot vs a bare bolt app that only acks")
    print(
        f"{'N':>4} {'bot p50':>9} {'bot p99':>9} {'bot req/s':>10} "
        f"{'bare p50':>9} {'bare p99':>9} {'bare req/s':>11} {'p99 ratio':>10}"
    )
    for n, p50, p99, rps, bp50, bp99, brps in rows:
        print(
            f"{n:>4} {p50:>7.1f}ms {p99:>7.1f}ms {rps:>10.0f} "
            f"{bp50:>7.1f}ms {bp99:>7.1f}ms {brps:>11.0f} {p99 / bp99:>9.2f}x"
        )


if __name__ == "__main__":
    report(asyncio.run(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)))
