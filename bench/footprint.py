"""Footprint: time from `python -m bot serve` to the first 200 on /healthz, resident memory
idle, and resident memory after every 2,500 of 10,000 commands (it must level off).

Run: .venv/bin/python -m bench.footprint   (prints its figures; not part of the test run)
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import instance_rss_mib, load, served, settle

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure_start(runs: int = 5) -> tuple[list[float], float]:
    times: list[float] = []
    idle = 0.0
    for _ in range(runs):
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS"))}
            env |= {
                "PORT": str(port),
                "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": "bench-secret",
                "VPS_API_TOKEN": "bench-token",
                "VPS_API_URL": "http://127.0.0.1:9/api/v1",
            }
            started = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    try:
                        if (
                            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                            == 200
                        ):
                            break
                    except httpx.TransportError:
                        time.sleep(0.01)
                times.append(time.monotonic() - started)
                time.sleep(2)
                idle = instance_rss_mib(process.pid)
            finally:
                process.terminate()
                process.wait(timeout=10)
    return times, idle


async def memory_under_commands(total: int = 10_000, step: int = 2_500) -> list[tuple[int, float]]:
    """RSS of a serve process and its work process idle, then after every `step` commands
    (200 people waiting for their answers), up to `total`."""
    points: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with served(f"sqlite:///{tmp}/mem.db") as env:
            pid = env.processes[0].pid
            await asyncio.sleep(1)
            points.append((0, instance_rss_mib(pid)))
            sent = 0
            while sent < total:
                result = await load(env.urls, env.slack, 200, total=step, replies=env.replies)
                sent += result.sent
                await settle(env.database, sent)
                points.append((sent, instance_rss_mib(pid)))
    return points


def main() -> None:
    times, idle = measure_start()
    ordered = sorted(times)
    print(
        f"serve -> first 200 on /healthz: median {ordered[len(ordered) // 2]:.2f} s "
        f"(min {ordered[0]:.2f}, max {ordered[-1]:.2f}, {len(times)} runs, SQLite, fresh database)"
    )
    print(f"resident memory of an idle serve process and its work process: {idle:.1f} MiB")
    points = asyncio.run(memory_under_commands())
    print(
        "resident memory under load (200 people, /snapshot list): "
        + ", ".join(f"{mib:.1f} MiB after {sent:,}" for sent, mib in points)
    )
    growth = points[-1][1] - points[1][1]
    print(
        f"growth from the first {points[1][0]:,} commands to {points[-1][0]:,}: {growth:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
