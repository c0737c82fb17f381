"""`serve` acks in one process and does the work in another (`python -m bot work`), as an
operator runs it: the real processes, Slack's stand-in and the VPS.org simulator on loopback.

What an operator and the people in Slack must see: every acked command answered once and
audited once, by a work process; one that dies is replaced and what it had not finished is
finished (or, if it had begun, reported as interrupted, never done twice); stopping `serve`
finishes what was acked; `/metrics` counts the work process's commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from bot.slack.inflight import InFlight
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Fault, Simulator
from tests.fakes.slack import FIXTURES_TEAM, SlackStandIn
from tests.test_cli import ROOT
from tests.test_startup import SIGNING, environment, peers

TURNS = InFlight.WORK_PROCESS_TURNS  # pieces of work a work process runs at once
SNAPSHOTS = "/snapshots/"  # the list `/snapshot list 12345` reads


def slow_lists(seconds: float, times: int | None) -> Fault:
    return Fault("GET", SNAPSHOTS, kind="hang", delay=seconds, times=times)


def work_processes(parent: int) -> list[int]:
    """The work processes `parent` has now (its children running `bot work`)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(p) for p in children if b"work" in Path(f"/proc/{p}/cmdline").read_bytes()]


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    sim: Simulator
    slack: SlackStandIn
    database: Path
    http: httpx.AsyncClient

    async def command(self, key: str, text: str = "list 12345") -> httpx.Response:
        body = urlencode(
            {
                "team_id": FIXTURES_TEAM, "channel_id": "C1", "user_id": "U1",
                "command": "/snapshot", "text": text, "trigger_id": key,
                "response_url": self.slack.response_url(key),
            }
        )  # fmt: skip
        return await self.http.post(
            f"http://127.0.0.1:{self.port}/slack/events",
            content=body,
            headers=signed_headers(SIGNING, body),
        )

    async def health_until(self, wanted: dict[str, str]) -> None:
        for _ in range(1200):
            answer = await self.http.get(f"http://127.0.0.1:{self.port}/healthz")
            if answer.json() == wanted:
                assert answer.status_code == (200 if wanted["status"] == "ok" else 503)
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"/healthz never said {wanted}")

    def work_pids(self) -> list[int]:
        return work_processes(self.process.pid)

    def commands(self) -> list[dict[str, object]]:
        with sqlite3.connect(self.database) as db:
            rows = db.execute("SELECT detail FROM audit_events WHERE event = 'command'")
            return [json.loads(detail) for (detail,) in rows]

    def answers(self, key: str) -> list[str]:
        return [json.dumps(call.data) for call in self.slack.responses(key)]


async def until(condition: object, what: str, seconds: float = 60) -> None:
    """Wait for `condition()` (a callable) to hold: on a condition, not on a clock."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def serving_bot(tmp_path: Path, *prefix: str) -> AsyncIterator[Served]:
    async with peers() as (sim, slack, slack_url, vps_url):
        env = environment(
            tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url, VPSBOT_WORK_PROCESS="true"
        )
        process = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
            start_new_session=bool(prefix),  # a wrapper's whole group is stopped at the end
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        port = int(env["PORT"])
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                served = Served(process, port, sim, slack, tmp_path / "cli.db", http)

                async def healthy() -> bool:
                    try:
                        return (await http.get(f"http://127.0.0.1:{port}/healthz")).is_success
                    except httpx.TransportError:
                        return False

                for _ in range(1200):
                    if await healthy() or process.returncode is not None:
                        break
                    await asyncio.sleep(0.05)
                assert process.returncode is None, "serve stopped at start"
                yield served
            finally:
                if prefix:  # unshare and everything in its namespace
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                elif process.returncode is None:
                    process.terminate()
                sim.release_hangs()
                await asyncio.wait_for(process.wait(), 60)


async def test_the_work_after_the_ack_runs_in_the_work_process_and_is_counted(
    tmp_path: Path,
) -> None:
    async with serving_bot(tmp_path) as bot:
        [worker] = bot.work_pids()
        assert worker != bot.process.pid
        for key in ("k1", "k2", "k3"):
            assert (await bot.command(key)).status_code == 200
        await until(lambda: all(bot.answers(k) for k in ("k1", "k2", "k3")), "three answers")
        for key in ("k1", "k2", "k3"):
            [answer] = bot.answers(key)
            assert "nightly-2025-01-15" in answer or "Snapshots" in answer
        await until(lambda: len(bot.commands()) == 3, "three command rows")
        assert [row["outcome"] for row in bot.commands()] == ["ok"] * 3
        # counted by the work process, scraped from serve's port
        text = (await bot.http.get(f"http://127.0.0.1:{bot.port}/metrics")).text
        assert 'vpsbot_commands_total{command="/snapshot",outcome="ok"} 3.0' in text
        assert 'vpsbot_vpsorg_requests_total{method="GET"' in text


async def test_a_work_process_that_dies_is_replaced_and_every_acked_command_answered_once(
    tmp_path: Path,
) -> None:
    """As many commands begun in the work process as it has turns (their lists hang at
    VPS.org), one more waiting for a turn: kill -9 the work process. The new one tells those
    begun they were interrupted (each audited once, nothing done twice) and carries out the
    last."""
    async with serving_bot(tmp_path) as bot:
        [first] = bot.work_pids()
        bot.sim.inject(slow_lists(60, times=None))
        keys = [f"d{n}" for n in range(TURNS + 1)]
        for key in keys:
            assert (await bot.command(key)).status_code == 200
        # so many at a time: the last waits for a turn, not begun
        await until(lambda: len(bot.sim.calls_to("GET", SNAPSHOTS)) >= TURNS, "lists under way")
        assert len(bot.sim.calls_to("GET", SNAPSHOTS)) == TURNS
        os.kill(first, signal.SIGKILL)
        bot.sim.faults.clear()
        # /healthz says so until another is up (a platform restarts an instance that stays so)
        await bot.health_until({"status": "unavailable", "database": "ok", "work_process": "down"})
        await bot.health_until({"status": "ok", "database": "ok", "work_process": "ok"})
        assert bot.work_pids() not in ([], [first])
        await until(lambda: all(bot.answers(k) for k in keys), "an answer to every command")
        await until(lambda: len(bot.commands()) == TURNS + 1, "a command row each")
        answers = {key: bot.answers(key) for key in keys}
        assert all(len(said) == 1 for said in answers.values()), answers
        interrupted = [k for k, [said] in answers.items() if "restarted its work" in said]
        assert len(interrupted) == TURNS, answers
        outcomes = sorted(str(row["outcome"]) for row in bot.commands())
        assert outcomes == ["interrupted"] * TURNS + ["ok"]


async def test_stopping_serve_finishes_every_command_it_acked(tmp_path: Path) -> None:
    async with serving_bot(tmp_path) as bot:
        [worker] = bot.work_pids()
        bot.sim.inject(slow_lists(1.5, times=6))
        keys = [f"s{n}" for n in range(6)]
        for key in keys:
            assert (await bot.command(key)).status_code == 200
        bot.process.terminate()  # SIGTERM right after the acks: the work is still ahead
        assert await asyncio.wait_for(bot.process.wait(), 60) in (0, -signal.SIGTERM)
        assert all(len(bot.answers(key)) == 1 for key in keys)
        assert [row["outcome"] for row in bot.commands()] == ["ok"] * 6
        assert gone(worker)  # the work process ended with it, after its work


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("setting", ["false"])
async def test_the_work_process_can_be_turned_off(tmp_path: Path, setting: str) -> None:
    """VPSBOT_WORK_PROCESS=false: everything in one process, as before."""
    async with peers() as (_, slack, slack_url, vps_url):
        env = environment(
            tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url, VPSBOT_WORK_PROCESS=setting
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                bot = Served(process, int(env["PORT"]), Simulator(), slack, tmp_path, http)
                for _ in range(1200):
                    try:
                        if (await http.get(f"http://127.0.0.1:{bot.port}/healthz")).is_success:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
                assert bot.work_pids() == []
                assert (await bot.command("o1")).status_code == 200
                await until(lambda: bot.answers("o1"), "the answer")
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 60)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
async def test_serve_starts_as_pid_1_as_in_its_container(tmp_path: Path) -> None:
    """The Dockerfile runs serve as PID 1: its work process's parent is then pid 1 from the
    start, which must not read as "my front died" (found by the review)."""
    probe = await asyncio.create_subprocess_exec("unshare", "--pid", "--fork", "true")
    if await probe.wait() != 0:
        pytest.skip("this machine does not allow a PID namespace")
    async with serving_bot(tmp_path, "unshare", "--pid", "--fork") as bot:
        assert (await bot.command("p1")).status_code == 200
        await until(lambda: bot.answers("p1"), "the answer")
        [front] = children(bot.process.pid)  # serve: pid 1 in its namespace
        workers = work_processes(front)
        assert len(workers) == 1
    await until(lambda: gone(front) and all(gone(w) for w in workers), "the namespace stopped")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
