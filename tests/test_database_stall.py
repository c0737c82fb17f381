"""A database that stalls while a VPS.org call is under way: the live process never takes its
own work for a crashed one, the answer is recorded when the database is back, and nobody is
told that nothing changed. And creates whose answer was never recorded are read back by name."""

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, ServerRef
from bot.domain.outcomes import Asked
from bot.services import lifecycle, operations, restores
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import (
    ALICE,
    BOB,
    CHANNEL,
    Stack,
    _reset_postgres,
    _worker_database,
    running_stack,
)
from tests.fakes.tcp_proxy import StallingProxy


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


async def requests(stack: Stack) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status)


async def until_status(stack: Stack, status: Status, wait: float = 15.0) -> Any:
    for _ in range(int(wait / 0.05)):
        found = [r for r in await requests(stack) if r.status is status]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request became {status}: {await requests(stack)}")


def hold_write_lock(path: str, released: threading.Event, taken: threading.Event) -> None:
    """Another process's writer: holds SQLite's write lock until `released` is set."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    connection.execute("BEGIN EXCLUSIVE")
    taken.set()
    released.wait(30)
    connection.execute("COMMIT")
    connection.close()


async def stall_sqlite(path: str, seconds: float) -> None:
    """Hold the database's write lock from another connection for `seconds`."""
    released, taken = threading.Event(), threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, released, taken))
    locker.start()
    await asyncio.to_thread(taken.wait, 5)
    await asyncio.sleep(seconds)  # the stall itself
    released.set()
    await asyncio.to_thread(locker.join, 10)


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of 1 s renewed every 0.3 s (10 s and 3 s in production), so a stall of 2 s
    outlasts one."""
    from datetime import timedelta

    for module in (lifecycle, operations, restores):
        monkeypatch.setattr(module, "EXECUTION_LEASE", timedelta(seconds=1))
    monkeypatch.setattr(lifecycle, "LEASE_RENEWAL", 0.3)


@pytest.mark.usefixtures("short_leases")
async def test_a_restore_answered_while_the_database_is_locked_is_followed_not_reconciled(
    simulator: Simulator, served_simulator: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "stall.db")
    async with running_stack(
        simulator, served_simulator, f"sqlite:///{path}", vpsbot_poll_interval=0.2
    ) as stack:
        stack.sim.restore_delay = 3600
        await stack.command("restore 801 rolling back")
        [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
        request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")
        # the restore call takes 3 s; the database is locked for 2.5 s of it
        stack.sim.inject(Fault("POST", "/snapshots/801/restore/", kind="hang", delay=3.0))
        await stack.click(ids.RESTORE_APPROVE, request_id["elements"][0]["value"], user=BOB)
        await stack.until(
            lambda: [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")],
            what="the restore call",
        )
        await stall_sqlite(path, 2.5)  # the lease lapses meanwhile

        running = await until_status(stack, Status.RUNNING)
        assert running.outcome.seen_restoring is True
        stack.sim.finish_all()
        await until_status(stack, Status.SUCCEEDED)
        [reply] = await stack.until(lambda: stack.posts(thread=True), what="the completion")
        assert reply.data["text"].startswith(":white_check_mark: done in ")
        assert "was *restored*" in text_of(stack.slack.api_calls("chat.update")[-1])  # the card
        said = " ".join(text_of(c) for c in stack.slack.calls)
        assert "needs attention" not in said
        assert "Nothing was changed" not in said
        restores_sent = [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]
        assert len(restores_sent) == 1


@pytest.mark.usefixtures("short_leases")
async def test_a_create_answered_while_the_database_is_locked_keeps_its_snapshot(
    simulator: Simulator, served_simulator: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "stall.db")
    async with running_stack(
        simulator, served_simulator, f"sqlite:///{path}", vpsbot_poll_interval=0.2
    ) as stack:
        stack.sim.create_delay = 3600
        stack.sim.inject(Fault("POST", "/snapshots/", kind="hang", delay=3.0))
        ack, _ = await stack.command("create 12345 during-stall")
        assert ack.status_code == 200
        await stack.until(lambda: stack.sim.calls_to("POST", "/snapshots/"), what="the POST")
        await stall_sqlite(path, 2.5)

        running = await until_status(stack, Status.RUNNING)
        [snapshot] = [
            o for o in stack.sim.objects["snapshots"].values() if o.name == "during-stall"
        ]
        assert running.target_id == snapshot.id  # the new snapshot's id is not lost
        stack.sim.finish_all()
        await until_status(stack, Status.SUCCEEDED)
        said = " ".join(text_of(c) for c in stack.slack.calls)
        assert "Nothing was changed" not in said
        assert "needs attention" not in said
        assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1


async def test_a_create_left_without_its_id_is_read_back_at_start(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as first:
        first.sim.create_delay = 3600
        # the POST's answer is lost, and reading back fails too: needs attention, no id
        first.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", status=502, delay=0.3))
        await first.command("create 12345 lost-answer")
        await first.until(lambda: first.sim.calls_to("POST", "/snapshots/"), what="the POST")
        first.sim.inject(Fault("GET", "/snapshots/", status=500, times=None))
        attention = await until_status(first, Status.NEEDS_ATTENTION)
        assert attention.target_id is None
    simulator.faults.clear()
    [snapshot] = [o for o in simulator.objects["snapshots"].values() if o.name == "lost-answer"]

    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as second:
        running = await until_status(second, Status.RUNNING)
        assert (running.id, running.target_id) == (attention.id, snapshot.id)
        second.sim.finish_all()
        await until_status(second, Status.SUCCEEDED)
        [update] = await second.until(
            lambda: second.slack.api_calls("chat.update") or second.posts(), what="the update"
        )
        assert "lost-answer" in text_of(update)
    assert len(simulator.calls_to("POST", "/snapshots/")) == 1


async def test_a_create_stranded_in_executing_is_read_back_not_resent(stack: Stack) -> None:
    """An instance died mid-POST (its lease lapsed): the snapshot is looked for by name."""
    made = stack.sim.add_snapshot(12345, "stranded", status="in_progress")
    made.done_at = None
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.add(
            kind=Kind.SNAPSHOT,
            action=Action.CREATE,
            status=Status.EXECUTING,
            requester_id=ALICE,
            channel_id=CHANNEL,
            at=made.created_at,
            server=ServerRef(12345, "web-server-01"),
            target_name="stranded",
            asked=Asked(name="stranded", known_ids=(798, 801)),
        )
        await uow.commit()
    running = await until_status(stack, Status.RUNNING)
    assert (running.id, running.target_id) == (request.id, made.id)
    assert stack.sim.calls_to("POST") == []
    made.status, made.size_mb = "completed", 1024
    await until_status(stack, Status.SUCCEEDED)


@pytest.mark.usefixtures("short_leases")
@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")
async def test_a_restore_answered_while_postgresql_refuses_connections_is_recorded(
    simulator: Simulator, served_simulator: str
) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = await _worker_database(os.environ["TEST_DATABASE_URL"], worker)
    await _reset_postgres(url)
    parts = urlsplit(url)
    async with StallingProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxied = url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
        async with running_stack(
            simulator, served_simulator, proxied, vpsbot_poll_interval=0.2
        ) as stack:
            stack.sim.restore_delay = 3600
            await stack.command("restore 801 rolling back")
            [post] = await stack.until(lambda: stack.posts(thread=False), what="the card")
            value = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]
            stack.sim.inject(Fault("POST", "/snapshots/801/restore/", kind="hang", delay=3.0))
            await stack.click(ids.RESTORE_APPROVE, value["value"], user=BOB)
            await stack.until(
                lambda: [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")],
                what="the restore call",
            )
            proxy.refuse()  # renewals and the tracker fail: connections refused
            await asyncio.sleep(2.5)
            proxy.allow()
            running = await until_status(stack, Status.RUNNING)
            assert running.outcome.seen_restoring is True
            stack.sim.finish_all()
            await until_status(stack, Status.SUCCEEDED)
            said = " ".join(text_of(c) for c in stack.slack.calls)
            assert "needs attention" not in said
            assert "Nothing was changed" not in said
            assert "Something went wrong" not in said
            sent = [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]
            assert len(sent) == 1
