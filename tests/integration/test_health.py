"""Backup health and its alerts, against the simulator and a real database, on an injected
clock: what a check reads (two listings, whatever the number of servers), how each server is
judged, and that every change of state is told once, across cycles, restarts and instances."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.domain.errors import NotFound
from bot.domain.model import Kind
from bot.domain.operations import AddSchedule
from bot.domain.schedules import parse_when
from bot.services import health, schedules, tracking
from bot.services.health import State
from bot.services.lifecycle import Lifecycle
from bot.vpsorg.simulator import Fault
from tests.integration.conftest import OPS, SERVER, World

ALERTS = "C0000ALRT"
ALERTING = {"alert_channel": ALERTS, "health_interval": timedelta(minutes=15)}
DB_SERVER = 23456


def iso(world: World, hours_ago: float) -> str:
    return (world.clock.now - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def fresh(world: World, server_id: int = SERVER, hours_ago: float = 1) -> None:
    world.sim.add_backup(
        server_id, "automatic", "Automatic daily backup", None, iso(world, hours_ago)
    )


async def alerts(world: World) -> list[dict[str, Any]]:
    return [payload for kind, payload, _ in await world.outbox() if kind == "alert"]


async def test_a_server_is_stale_failed_or_ok_from_its_newest_completed_backup(
    world: World,
) -> None:
    report = await health.check(world.vps, world.life)
    assert {h.server.id: h.state for h in report.servers} == {
        SERVER: State.STALE,  # newest backup: January 2025
        DB_SERVER: State.STALE,
    }
    fresh(world, SERVER, hours_ago=25)
    world.sim.add_backup(DB_SERVER, "manual", "x", None, iso(world, 2), status="failed")
    report = await health.check(world.vps, world.life)
    web, db = (next(h for h in report.servers if h.server.id == sid) for sid in (SERVER, DB_SERVER))
    assert web.state is State.OK
    assert web.newest_backup is not None
    assert web.newest_automatic == web.newest_backup
    assert web.newest_manual is not None
    assert web.newest_manual.id == 499
    assert web.newest_snapshot is not None
    assert web.newest_snapshot.id == 801
    assert (web.snapshots, web.manual_backups) == (2, 1)
    assert db.state is State.FAILED
    assert [f.status for f in db.failures] == ["failed"]
    assert report.servers[0].server.id == DB_SERVER  # the failed first
    # a backup completed after the failure: recovered
    fresh(world, DB_SERVER, hours_ago=1)
    report = await health.check(world.vps, world.life, DB_SERVER)
    [db] = report.servers
    assert db.state is State.OK
    assert len(db.failures) == 1  # still shown: within the last 7 days


async def test_one_check_reads_two_listings_for_a_hundred_servers(world: World) -> None:
    for n in range(100):
        sid = 50_000 + n
        world.sim.add_server(sid, f"srv-{n:03}")
        fresh(world, sid, hours_ago=n)  # 0-99 hours old: 27 fresh enough, the rest stale
        world.sim.add_snapshot(sid, f"snap-{n}")
    world.sim.page_size = 100
    before = len(world.sim.calls)
    report = await health.check(world.vps, world.life)
    calls = world.sim.calls[before:]
    # two listings, each of two pages (of 100)
    assert sorted((c.method, c.path, c.query.get("page", "1")) for c in calls) == [
        ("GET", "/backups/", "1"),
        ("GET", "/backups/", "2"),
        ("GET", "/snapshots/", "1"),
        ("GET", "/snapshots/", "2"),
    ]
    assert len(report.servers) == 102
    assert sum(h.state is State.OK for h in report.servers) == 27


async def test_status_of_an_unknown_server_says_it_does_not_exist(world: World) -> None:
    with pytest.raises(NotFound, match="Server 999 does not exist"):
        await health.check(world.vps, world.life, 999)


async def test_a_schedules_failed_run_shows_in_its_servers_health(world: World) -> None:
    intent = AddSchedule(Kind.SNAPSHOT, SERVER, parse_when("hourly"), 1)
    schedule = await schedules.add(world.vps, world.life, OPS, intent)
    for snapshot in range(3):
        world.sim.add_snapshot(SERVER, f"person-{snapshot}")  # 5 of 5, none the schedule's
    world.clock.now = schedule.next_run_at
    await world.tick(1)
    report = await health.check(world.vps, world.life, SERVER)
    [web] = report.servers
    assert [s.id for s in web.schedules] == [schedule.id]
    assert [r.asked.schedule_id for r in web.failed_runs] == [schedule.id]


@pytest.mark.parametrize("world", [ALERTING], indirect=True)
async def test_each_change_of_state_is_alerted_once_across_restarts_and_instances(
    world: World,
) -> None:
    await world.tick(1)
    first = await alerts(world)
    assert sorted((a["server_id"], a["previous"], a["state"]) for a in first) == [
        (SERVER, None, "stale"),
        (DB_SERVER, None, "stale"),
    ]
    assert first[0]["channel"] == ALERTS
    web = next(a for a in first if a["server_id"] == SERVER)
    assert web["server_name"] == "web-server-01"
    assert web["newest_backup"] == {
        "id": 501,
        "type": "automatic",
        "created_at": "2025-01-16T03:00:00+00:00",
    }

    # every cycle, and every check after the interval: nothing new to say
    for _ in range(3):
        await world.tick(15)
    world.clock.now += timedelta(minutes=16)
    await world.tick(1)
    assert len(await alerts(world)) == 2
    before = len(world.sim.calls)
    await world.tick(15)  # not its turn: no VPS.org call at all
    assert len(world.sim.calls) == before

    # a fresh backup: recovered, told once; a "restarted" instance and a second one agree
    fresh(world, SERVER)
    world.clock.now += timedelta(minutes=16)
    restarted = Lifecycle(world.life.uow, world.clock, world.life.policy, owner="restarted")
    other = Lifecycle(world.life.uow, world.clock, world.life.policy, owner="other")
    await asyncio.gather(
        tracking.cycle(world.vps, restarted, world.commands, "restarted"),
        tracking.cycle(world.vps, other, world.commands, "other"),
    )
    recovered = (await alerts(world))[2:]
    assert [(a["server_id"], a["previous"], a["state"]) for a in recovered] == [
        (SERVER, "stale", "ok")
    ]

    # a failed backup: told once, with the failure
    world.sim.add_backup(SERVER, "manual", "x", None, iso(world, 0), status="failed")
    for _ in range(3):
        world.clock.now += timedelta(minutes=16)
        await world.tick(1)
    failed = (await alerts(world))[3:]
    assert [(a["previous"], a["state"]) for a in failed] == [("ok", "failed")]
    assert failed[0]["failure"]["kind"] == "backup"
    assert failed[0]["failure"]["status"] == "failed"
    async with world.life.uow() as uow:
        audited = await uow.audit.events("health_alert")
    assert len(audited) == 4


@pytest.mark.parametrize("world", [ALERTING], indirect=True)
async def test_a_server_first_seen_healthy_is_not_announced(world: World) -> None:
    fresh(world, SERVER)
    fresh(world, DB_SERVER)
    await world.tick(1)
    assert await alerts(world) == []


@pytest.mark.parametrize("world", [ALERTING], indirect=True)
async def test_no_alert_changes_while_vpsorg_cannot_be_read(world: World) -> None:
    world.sim.inject(Fault("GET", "/backups/", status=500, times=None))
    await world.tick(1)
    assert await alerts(world) == []
    async with world.life.uow() as uow:
        assert await uow.health.states() == {}


@pytest.mark.parametrize("world", [ALERTING], indirect=True)
async def test_a_server_deleted_at_vpsorg_is_forgotten_not_alerted_stale(world: World) -> None:
    world.sim.add_server(777, "gone-soon")
    now = world.clock.now
    world.sim.add_backup(777, "automatic", "x", None, (now - timedelta(hours=1)).isoformat())
    await health.alert_due(world.vps, world.life)
    # the server is deleted at VPS.org, with its backups
    del world.sim.servers[777]
    for key in [k for k, o in world.sim.objects["backups"].items() if o.server_id == 777]:
        del world.sim.objects["backups"][key]
    world.clock.now += timedelta(minutes=16)
    await health.alert_due(world.vps, world.life)
    report = await health.check(world.vps, world.life)
    assert 777 not in {h.server.id for h in report.servers}
    assert sorted(a["server_id"] for a in await alerts(world)) == [SERVER, DB_SERVER]
    async with world.life.uow() as uow:
        assert 777 not in await uow.health.states()
