"""Footprint: time from `python -m bot serve` to the first 200 on /healthz, and idle memory.

Run: .venv/bin/python -m bench.footprint   (prints its figures; not part of the test run)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


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
                idle = rss_mib(process.pid)
            finally:
                process.terminate()
                process.wait(timeout=10)
    return times, idle


def main() -> None:
    times, idle = measure_start()
    ordered = sorted(times)
    print(
        f"serve -> first 200 on /healthz: median {ordered[len(ordered) // 2]:.2f} s "
        f"(min {ordered[0]:.2f}, max {ordered[-1]:.2f}, {len(times)} runs, SQLite, fresh database)"
    )
    print(f"resident memory of an idle serve process: {idle:.1f} MiB")


if __name__ == "__main__":
    main()
