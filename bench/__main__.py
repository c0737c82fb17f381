"""`python -m bench`: every benchmark in one run (a few minutes on 2 cores), then a summary.

Each benchmark prints its own figures; comparisons are measured in the same run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys


def run(module: str, *args: str) -> None:
    print(f"\n=== python -m {module} {' '.join(args)}".rstrip(), flush=True)
    subprocess.run([sys.executable, "-m", module, *args], check=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    print(f"vpsbot benchmarks on {machine()}")
    print(
        "PostgreSQL runs: "
        + ("yes" if os.environ.get("TEST_DATABASE_URL") else "no (set TEST_DATABASE_URL)")
    )
    run("bench.ack", "2")
    run("bench.tracker")
    run("bench.approval")
    run("bench.safety")
    run("bench.home")
    run("bench.health")
    run("bench.footprint")
    run("bench.load", "20")
    run("bench.completion")


if __name__ == "__main__":
    main()
