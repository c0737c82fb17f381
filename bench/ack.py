"""Ack latency and throughput: N concurrent clients (N = 1, 10, 50, 200) sending signed
`/snapshot list 12345` to the served bot (the simulator on loopback), next to the same load on a
bare bolt AsyncApp that only acks, served the same way, in the same run: measured in turn (the
bot, then the bare app, ROUNDS times per level), and reported as the median ratio with its
spread, since one pair of runs on a shared machine says little.

Closed loop: each client sends its next command as soon as the previous one is acked, so both
apps run flat out; the bot's work after the ack (the API call, the audit row, the answer) shares
its process meanwhile. Open loop: the same number of commands per second (50, 200) offered to
both for 10 s, the way Slack delivers a team's commands, each ack timed on its own.

Run: .venv/bin/python -m bench.ack [seconds per level]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass, field

from bench.harness import LoadResult, load, load_at_rate, served, settle

LEVELS = (1, 10, 50, 200)
RATES = (50, 200)  # commands per second offered to both apps (open loop)
OPEN_SECONDS = 5.0  # per rate and round: enough acks for a p99 that means something
ROUNDS = 3  # each level measured A B A B A B: the bot, then the bare app, in turn


@dataclass
class Level:
    """One load level measured in alternation: the bot's and the bare app's result per round."""

    n: int
    ours: list[LoadResult] = field(default_factory=list)
    bare: list[LoadResult] = field(default_factory=list)

    def ratios(self, share: float) -> list[float]:
        return [
            a.percentile(share) / b.percentile(share)
            for a, b in zip(self.ours, self.bare, strict=True)
        ]

    @staticmethod
    def median_ms(results: list[LoadResult], share: float) -> float:
        return statistics.median(r.percentile(share) for r in results) * 1000

    @staticmethod
    def rate(results: list[LoadResult]) -> float:
        return statistics.median(r.sent / r.seconds for r in results)


async def measure(seconds: float, rounds: int = ROUNDS) -> tuple[list[Level], list[Level]]:
    closed = [Level(n) for n in LEVELS]
    opened = [Level(n) for n in RATES]
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            served(f"sqlite:///{tmp}/bench.db", slack_apart=True) as bot,
            served(f"sqlite:///{tmp}/bare.db", bare=True, slack_apart=True) as bare,
        ):
            sent = 0
            for level in closed:
                for _ in range(rounds):
                    ours = await load(bot.urls, bot.slack, level.n, seconds=seconds)
                    sent += ours.sent
                    await settle(bot.database, sent)  # the bot's work done before the bare app
                    level.ours.append(ours)
                    level.bare.append(await load(bare.urls, bare.slack, level.n, seconds=seconds))
            for level in opened:
                for _ in range(rounds):
                    ours = await load_at_rate(bot.urls, bot.slack, level.n, OPEN_SECONDS)
                    sent += ours.sent
                    await settle(bot.database, sent)
                    level.ours.append(ours)
                    level.bare.append(
                        await load_at_rate(bare.urls, bare.slack, level.n, OPEN_SECONDS)
                    )
    return closed, opened


def table(levels: list[Level], first: str) -> None:
    print(
        f"{first:>5} {'bot p50':>9} {'bot p99':>9} {'bot req/s':>10} "
        f"{'bare p50':>9} {'bare p99':>9} {'bare req/s':>11} "
        f"{'p99 ratio: median (min-max)':>29}"
    )
    for level in levels:
        ratios = level.ratios(0.99)
        print(
            f"{level.n:>5} {level.median_ms(level.ours, 0.5):>7.1f}ms "
            f"{level.median_ms(level.ours, 0.99):>7.1f}ms {level.rate(level.ours):>10.0f} "
            f"{level.median_ms(level.bare, 0.5):>7.1f}ms "
            f"{level.median_ms(level.bare, 0.99):>7.1f}ms {level.rate(level.bare):>11.0f} "
            f"{statistics.median(ratios):>14.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )


def report(results: tuple[list[Level], list[Level]], rounds: int = ROUNDS) -> None:
    closed, opened = results
    print("Ack latency, signed /snapshot list, vpsbot vs a bare bolt app that only acks")
    print(
        f"each level: {rounds} rounds, the bot then the bare app in turn (A B A B…); latencies are "
        "medians over the rounds, the ratio is the median of the rounds' p99 ratios (and spread)"
    )
    print("closed loop: N clients, each sending again as soon as it is acked (saturation)")
    table(closed, "N")
    print("open loop: the same commands per second offered to both apps")
    table(opened, "cmd/s")


if __name__ == "__main__":
    report(asyncio.run(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)))
