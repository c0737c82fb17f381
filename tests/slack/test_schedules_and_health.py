"""Schedules, `/backup status` and health alerts at the wire: signed commands, the simulator over
HTTP, the fake Slack; the served bot's own worker runs the schedules and checks health."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.domain.lifecycle import Status
from bot.storage.tables import ScheduleRecord
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, Stack, running_stack

SERVER = 12345
ALERTS = "C0000ALRT"


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        vpsbot_poll_interval=0.2,
        vpsbot_operators=ALICE,
        vpsbot_alert_channel=ALERTS,
        vpsbot_health_interval=0.01,  # minutes: a check at every tick or so
    ) as built:
        yield built


async def until_async(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 10
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def due_now(stack: Stack, schedule_id: int) -> None:
    """Its next run is now (instead of waiting for 03:00)."""
    async with stack.bot.database.sessions() as session:
        await session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.id == schedule_id)
            .values(next_run_at=stack.bot.services.life.clock() - timedelta(seconds=1))
        )
        await session.commit()


async def test_schedule_list_run_and_unschedule_from_slack(stack: Stack) -> None:
    ack, key = await stack.command("schedule 12345 daily 03:00 keep 2")
    assert ack.status_code == 200
    reply = await stack.reply(key)
    assert reply.data["response_type"] == "in_channel"  # the channel sees it
    said = text_of(reply)
    assert "#1" in said
    assert "daily 03:00" in said
    assert "web-server-01" in said
    assert "/snapshot unschedule 1" in said

    listed = await stack.ask("schedules")
    assert listed.data["response_type"] == "ephemeral"
    assert "#1" in text_of(listed)
    assert "daily 03:00" in text_of(listed)

    await due_now(stack, 1)
    [card] = await stack.until(
        lambda: [p for p in stack.posts(thread=False) if "auto-1-" in text_of(p)],
        what="the run's card",
    )
    [post] = stack.sim.calls_to("POST", "/snapshots/")
    assert post.body["name"].startswith("auto-1-")
    assert post.body["name"] in text_of(card)
    stack.sim.finish_all()

    async def succeeded() -> bool:
        async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
            [run] = await uow.requests.runs([1])
        return run.status is Status.SUCCEEDED

    await until_async(succeeded, "the run to succeed")
    await stack.until(
        lambda: any(post.body["name"] in text_of(u) for u in stack.slack.api_calls("chat.update")),
        what="the card updated in place",
    )
    assert len([p for p in stack.posts(thread=False) if "auto-1-" in text_of(p)]) == 1
    assert stack.posts(thread=True) == []  # no thread replies for a scheduled run
    assert stack.dms() == []

    gone = await stack.ask("unschedule 1")
    assert gone.data["response_type"] == "in_channel"
    assert "unscheduled" in text_of(gone)
    empty = await stack.ask("schedules")
    assert "#1" not in text_of(empty)


async def test_only_operators_schedule_and_bad_input_is_explained(stack: Stack) -> None:
    refused = await stack.ask("schedule 12345 hourly keep 1", user=BOB)
    assert refused.data["response_type"] == "ephemeral"
    assert "operator" in text_of(refused).lower()
    too_many = await stack.ask("schedule 12345 hourly keep 5")
    assert "1" in text_of(too_many)
    assert "4" in text_of(too_many)
    too_often = await stack.ask('schedule 12345 "*/5 * * * *" keep 1')
    assert "VPSBOT_SCHEDULE_MIN_INTERVAL" in text_of(too_often)
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert await uow.schedules.active() == []


async def test_backup_status_for_twenty_servers_fits_one_message(stack: Stack) -> None:
    for n in range(18):
        stack.sim.add_server(40_000 + n, f"app-{n:02}")
        stack.sim.add_backup(40_000 + n, "automatic", "daily")  # made now: healthy
    reply = await stack.ask("status", command="/backup")
    blocks = reply.data["blocks"]
    assert len(blocks) <= 50
    said = text_of(reply)
    assert "web-server-01" in said  # stale: shown on its own
    assert "db-server-01" in said
    assert "18" in said  # the healthy ones, collapsed

    one = await stack.ask("status 12345", command="/backup")
    assert "web-server-01" in text_of(one)
    assert "501" in text_of(one)  # its newest backup


async def test_a_stale_server_is_alerted_once_in_the_alert_channel(stack: Stack) -> None:
    alerts = await stack.until(
        lambda: len(stack.posts(channel=ALERTS)) >= 2 and stack.posts(channel=ALERTS),
        what="the alerts",
    )
    said = " ".join(text_of(a) for a in alerts)
    assert "web-server-01" in said
    assert "db-server-01" in said
    # three more health checks later: still two
    checks = len(stack.sim.calls_to("GET", "/backups/"))
    await stack.until(
        lambda: len(stack.sim.calls_to("GET", "/backups/")) >= checks + 3, what="more checks"
    )
    assert len(stack.posts(channel=ALERTS)) == 2
    stack.sim.add_backup(SERVER, "automatic", "daily")
    recovered = await stack.until(
        lambda: [a for a in stack.posts(channel=ALERTS) if "recovered" in text_of(a)],
        what="the recovery alert",
    )
    assert "web-server-01" in text_of(recovered[0])
    assert len([a for a in stack.posts(channel=ALERTS) if "db-server-01" in text_of(a)]) == 1
    assert CHANNEL not in {a.data["channel"] for a in stack.posts(channel=ALERTS)}
