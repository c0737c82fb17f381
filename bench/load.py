"""Load: 200 concurrent people sending slash commands for 60 s against a served instance
(SQLite), and two instances on PostgreSQL when TEST_DATABASE_URL is set: no 5xx, every ack under
3 s, exactly one audit row per command. Each person waits for the bot's answer before typing the
next command (closed loop), as people do.

Run: .venv/bin/python -m bench.load [seconds]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

from bench.harness import HEADER, load, reset_postgres, served, settle


async def main(seconds: float) -> None:
    print(f"Load: 200 concurrent clients, {seconds:.0f} s each run, /snapshot list on loopback")
    print(HEADER + f" {'audit rows':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("SQLite, 1 instance", f"sqlite:///{tmp}/load.db", 1)]
        if os.environ.get("TEST_DATABASE_URL"):
            runs.append(("PostgreSQL, 2 instances", os.environ["TEST_DATABASE_URL"], 2))
        for label, url, instances in runs:
            if url.startswith("postgres"):
                await reset_postgres(url)
            async with served(url, instances) as env:
                result = await load(env.urls, env.slack, 200, seconds=seconds, replies=env.replies)
                rows = await settle(env.database, result.sent)
            answer = sorted(result.answers)
            print(
                result.line(label) + f" {rows:>11}   answer p50 {answer[len(answer) // 2]:.2f} s,"
                f" p99 {answer[int(len(answer) * 0.99)]:.2f} s"
            )
            assert rows == result.sent, "one audit row per command"
            assert max(result.latencies) < 3, "every ack under 3 s"


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))
