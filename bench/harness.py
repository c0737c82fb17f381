"""Shared pieces for the load benchmarks: a served bot (or several), signed slash commands, and
closed-loop clients that measure ack latency."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings, async_database_url
from bot.console import DEMO_TEAM, SlackCall, SlackStandIn
from bot.serving import serving
from bot.slack import ids
from bot.slack.signing import signed_headers
from bot.storage.database import Database
from bot.storage.tables import AuditRecord
from bot.vpsorg.simulator import Simulator

TOKEN = "bench-token"
# The simulator and Slack's stand-in stand for services on other machines; here they share the
# cores with what is measured, so they take only the CPU it leaves (the lowest priority).
PEER = ("nice", "-n", "19")
SECRET = "bench-signing-secret"


@dataclass
class Served:
    sim: Simulator
    slack: SlackStandIn
    database: Database
    urls: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    replies: Replies = field(default_factory=lambda: Replies())


class Replies:
    """The bot's answers (response_url posts), by key, for clients that wait for them."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Event] = {}

    def expect(self, key: str) -> asyncio.Event:
        self._waiting[key] = asyncio.Event()
        return self._waiting[key]

    def seen(self, call: SlackCall) -> None:
        if call.method == "response" and call.key in self._waiting:
            self._waiting.pop(call.key).set()


@asynccontextmanager
async def served(
    database_url: str,
    instances: int = 1,
    *,
    bare: bool = False,
    slack_apart: bool = False,
    env_extra: dict[str, str] | None = None,
) -> AsyncIterator[Served]:
    """The bot as `instances` real `python -m bot serve` processes (each with its own core and
    event loop, as deployed), or with `bare` the bare bolt app of `bench.bare` in their place;
    the simulator runs in a process of its own, and the fake Slack here, on loopback. With
    `slack_apart` (for the acks, where the peers' answers are not what is measured), the fake
    Slack runs in a process of its own too, so that answering the bot costs the measuring
    process nothing (its calls are then neither recorded nor seen by `replies`), and both
    peers run at the lowest CPU priority, standing for services on other machines."""
    sim = Simulator(token=TOKEN)
    replies = Replies()
    slack = SlackStandIn(on_call=replies.seen)
    slack.record = False
    vps_port = free_port()
    simulator = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [*(PEER if slack_apart else ()), sys.executable, "-m", "bot", "simulator",
         "--port", str(vps_port),
         "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    vps_url = f"http://127.0.0.1:{vps_port}"
    await wait_port(vps_port)
    async with AsyncExitStack() as stack:
        stack.callback(simulator.terminate)
        if slack_apart:
            slack_port = free_port()
            apart = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                [*PEER, sys.executable, "-m", "bench.slack", str(slack_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(apart.terminate)
            await wait_port(slack_port)
            slack.base_url = f"http://127.0.0.1:{slack_port}"
        else:
            slack.base_url = await stack.enter_async_context(serving(slack.app))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS"))}
        env |= {
            "VPS_API_URL": f"{vps_url}/api/v1", "VPS_API_TOKEN": TOKEN,
            "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{slack.base_url}/api/", "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
        } | (env_extra or {})  # fmt: skip
        processes, urls = [], []
        for _ in range(instances):
            port = free_port()
            argv = ["-m", "bot", "serve"]
            if bare:  # the floor: a bolt app that only acks, served the same way
                argv = ["-m", "bench.bare", str(port), f"{slack.base_url}/api/"]
            process = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
                [sys.executable, *argv], env=env | {"PORT": str(port)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            await wait_healthy(urls[-1])
        database = Database(async_database_url(database_url))
        try:
            yield Served(sim, slack, database, urls, processes, replies)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            await database.dispose()


async def wait_port(port: int) -> None:
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
        else:
            writer.close()
            return
    raise RuntimeError(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.02)


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(async_database_url(url))
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def command_body(slack: SlackStandIn, number: int, text_: str = "list 12345") -> str:
    return urlencode(
        {
            "team_id": DEMO_TEAM, "channel_id": "C1", "user_id": f"U{number % 50}",
            "command": "/snapshot", "text": text_, "trigger_id": str(number),
            "response_url": slack.response_url(str(number)),
        }
    )  # fmt: skip


def bench_settings(vps_url: str, slack: SlackStandIn, database_url: str, **more: Any) -> Settings:
    """Settings for a bot served against the simulator at `vps_url` and the stand-in `slack`."""
    return Settings(
        vps_api_url=f"{vps_url}/api/v1", vps_api_token=TOKEN, slack_bot_token="xoxb-bench",
        slack_signing_secret=SECRET, slack_api_url=f"{slack.base_url}/api/",
        database_url=database_url, **more,
    )  # fmt: skip


def approve_body(slack: SlackStandIn, number: int, request_id: int) -> str:
    """The form body of U2's click on Approve of `request_id` in C1, as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": slack.team_id},
        "user": {"id": "U2", "team_id": slack.team_id},
        "channel": {"id": "C1"},
        "container": {"channel_id": "C1"},
        "response_url": slack.response_url(str(number)),
        "actions": [{"action_id": ids.RESTORE_APPROVE, "value": str(request_id)}],
    }
    return "payload=" + quote(json.dumps(payload))


def instance_rss_mib(pid: int) -> float:
    """Resident memory of a `serve` process and its children (its work process): the
    instance's memory, whatever runs where."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return rss_mib(pid) + sum(rss_mib(int(child)) for child in children)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.latencies)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def line(self, label: str) -> str:
        fives = sum(n for code, n in self.statuses.items() if code >= 500)
        return (
            f"{label:<26} {self.sent:>7} {self.sent / self.seconds:>8.1f} "
            f"{self.percentile(0.5) * 1000:>8.1f} {self.percentile(0.99) * 1000:>8.1f} "
            f"{max(self.latencies) * 1000:>8.1f} {fives:>5}"
        )


HEADER = (
    f"{'run':<26} {'sent':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'5xx':>5}"
)


async def _send(
    http: aiohttp.ClientSession,
    urls: list[str],
    slack: SlackStandIn,
    number: int,
    secret: str,
    result: LoadResult,
) -> None:
    """POST signed command `number` to one of `urls` (in turn); record its ack time and status."""
    body = command_body(slack, number)
    started = time.monotonic()
    async with http.post(
        f"{urls[number % len(urls)]}/slack/events", data=body, headers=signed_headers(secret, body)
    ) as answer:
        await answer.read()
        status = answer.status
    result.latencies.append(time.monotonic() - started)
    result.statuses[status] = result.statuses.get(status, 0) + 1


# Command numbers (trigger ids, response_url keys) for the whole run: a body sent twice would be
# a replay, acted on once, and its command never recorded a second time.
NUMBERS = itertools.count()


async def load(
    urls: list[str],
    slack: SlackStandIn,
    concurrency: int,
    *,
    seconds: float | None = None,
    total: int | None = None,
    secret: str = SECRET,
    replies: Replies | None = None,
) -> LoadResult:
    """`concurrency` clients, each sending a signed command as soon as the last was acked (or,
    given `replies`, answered: a person waits for the answer before typing again).
    aiohttp here: httpx's pool slows down quadratically with hundreds of requests in flight,
    which would measure the load generator instead of the bot."""
    result = LoadResult()
    counter = iter(range(10**9))  # this call's commands, for `total`
    deadline = time.monotonic() + (seconds or 1e9)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            while time.monotonic() < deadline:
                if total is not None and next(counter) >= total:
                    return
                number = next(NUMBERS)  # never the same body twice: a replay is acted on once
                answered = replies.expect(str(number)) if replies else None
                started = time.monotonic()
                await _send(http, urls, slack, number, secret, result)
                if answered is not None:
                    await asyncio.wait_for(answered.wait(), timeout=60)
                    result.answers.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.seconds = time.monotonic() - started
    return result


async def load_at_rate(
    urls: list[str], slack: SlackStandIn, rate: float, seconds: float, *, secret: str = SECRET
) -> LoadResult:
    """Open loop: a signed command every 1/`rate` seconds whatever the answers (as Slack sends
    a team's commands), each ack timed on its own; the same offered load for any app."""
    result = LoadResult()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        begin = time.monotonic()
        sending: list[asyncio.Task[None]] = []
        for step in range(int(rate * seconds)):
            number = next(NUMBERS)
            delay = begin + step / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(_send(http, urls, slack, number, secret, result)))
        await asyncio.gather(*sending)
        result.seconds = time.monotonic() - begin
    return result


async def command_rows(database: Database) -> int:
    """How many commands the bot has recorded: a count, not the rows (reading 50,000 rows every
    0.2 s took this process's CPU, and with it the fake Slack's answers to the bot)."""
    async with database.engine.connect() as conn:
        found = await conn.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.event == "command")
        )
    return int(found or 0)


async def settle(database: Database, expected: int, wait: float = 900) -> int:
    """Wait until `expected` command rows are written (commands finish after their ack); a
    command never recorded is a defect, so fail loudly rather than measure on."""
    deadline = time.monotonic() + wait
    rows = await command_rows(database)
    while rows < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {rows} of {expected} commands were recorded in {wait:.0f} s")
        await asyncio.sleep(0.2)
        rows = await command_rows(database)
    return rows


__all__ = [
    "HEADER",
    "LoadResult",
    "Served",
    "load",
    "load_at_rate",
    "reset_postgres",
    "served",
    "settle",
    "statistics",
]
