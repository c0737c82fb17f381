"""Schedules with retention, against the VPS.org simulator over HTTP and a real database
(SQLite, and PostgreSQL when TEST_DATABASE_URL is set), on an injected clock: the tracker's
cycle is run tick by tick, as the worker runs it. What VPS.org receives, what the database
holds, what the channel would be told (the outbox)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Kind
from bot.domain.operations import AddSchedule, RemoveSchedule
from bot.domain.outcomes import Why
from bot.domain.schedules import parse_when
from bot.services import reports, schedules, tracking
from bot.services.lifecycle import Lifecycle
from bot.slack.blocks import history_message
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.integration.conftest import OPS, SERVER, START, World


async def add(world: World, text: str, keep: int, kind: Kind = Kind.SNAPSHOT) -> int:
    intent = AddSchedule(kind, SERVER, parse_when(text), keep)
    return (await schedules.add(world.vps, world.life, OPS, intent)).id


async def test_a_daily_snapshot_runs_at_its_time_is_followed_and_keeps_its_newest_n(
    world: World,
) -> None:
    schedule_id = await add(world, "daily 03:00", keep=2)
    await world.tick(60)  # 02:31: not yet
    assert world.sim.calls_to("POST", "/snapshots/") == []

    made = []
    for day in range(4):
        world.clock.now = START.replace(hour=3) + timedelta(days=day) - timedelta(seconds=5)
        await world.tick(10)  # 03:00:05: the run starts
        [post] = world.sim.calls_to("POST", "/snapshots/")[day:]
        stamp = (START + timedelta(days=day)).strftime("%Y%m%d")
        assert post.body == {
            "server_id": SERVER,
            "name": f"auto-{schedule_id}-{stamp}-0300",
            "description": f"Scheduled snapshot by vpsbot, schedule #{schedule_id}, run "
            f"{stamp}-0300",
        }
        made.append(post.body["name"])
        await world.tick(60)  # VPS.org completes it; the tracker sees it
        await world.tick(15)  # retention after the completion

    runs = await world.runs(schedule_id)
    assert [r.status for r in runs] == [Status.SUCCEEDED] * 4
    # the seeded two snapshots (a person's) are untouched; only the newest 2 of its own remain
    assert world.snapshot_names() == sorted(
        ["weekly-snapshot-2025-01-08", "pre-migration-snapshot", *made[-2:]]
    )
    deletes = world.sim.calls_to("DELETE")
    assert [c.path for c in deletes] == [f"/snapshots/{runs[i].target_id}/" for i in (0, 1)]
    # the run that caused each deletion says so on its card
    assert runs[2].outcome.pruned_names == (made[0],)
    assert runs[3].outcome.pruned_names == (made[1],)
    assert runs[3].outcome.kept == 2
    async with SqlUnitOfWork(world.database.sessions) as uow:
        pruned = await uow.audit.events("pruned")
    assert [(e.request_id, e.detail["how"]) for e in pruned] == [
        (runs[0].id, "deleted"),
        (runs[1].id, "deleted"),
    ]
    # each run is one message, updated in place: updates only, never a thread reply or a DM
    kinds = {kind for kind, _, rid in await world.outbox() if rid in {r.id for r in runs}}
    assert kinds == {"update"}


async def test_at_the_limit_the_schedules_own_oldest_is_pruned_first(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=3)
    for hour in range(3):  # three of its own, all completed
        world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=hour)
        await world.tick(5)
        await world.tick(61)
    assert len(world.snapshot_names()) == 5  # the seeded 2 + 3: VPS.org's limit
    first = (await world.runs(schedule_id))[0]

    world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=3)
    await world.tick(5)
    # the oldest on the server is a person's (2025): not this schedule's, so the run is skipped
    last = (await world.runs(schedule_id))[-1]
    assert last.status is Status.FAILED
    assert last.outcome.failure is not None
    assert last.outcome.failure.why is Why.SCHEDULE_SKIPPED
    assert last.outcome.failure.count == 5
    assert last.outcome.failure.detail == "weekly-snapshot-2025-01-08"
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 3
    assert world.sim.calls_to("DELETE") == []

    # the people's snapshots go: now the schedule's own are the oldest there
    for snapshot_id in (798, 801):
        del world.sim.objects["snapshots"][snapshot_id]
    world.sim.add_snapshot(SERVER, "person-later", created_at="2030-01-01T00:00:00Z")
    world.sim.add_snapshot(SERVER, "person-later-2", created_at="2030-01-01T00:00:00Z")
    world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=4)
    await world.tick(5)
    [delete] = world.sim.calls_to("DELETE")
    assert delete.path == f"/snapshots/{first.target_id}/"  # its own oldest, before the POST
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 4
    newest = (await world.runs(schedule_id))[-1]
    assert newest.outcome.pruned_ids == (first.target_id,)


async def test_never_deletes_what_it_did_not_make(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=1)
    world.clock.now = START.replace(minute=59, second=58)
    await world.tick(5)
    await world.tick(61)
    [run] = await world.runs(schedule_id)
    # a person deletes its snapshot and VPS.org hands the id to another snapshot with another name
    snapshot = world.sim.objects["snapshots"].pop(run.target_id)
    world.sim.add_snapshot(SERVER, "someone-elses", snapshot_id=snapshot.id)
    world.clock.now += timedelta(hours=1)
    await world.tick(5)
    await world.tick(61)
    await world.tick(15)
    assert world.sim.calls_to("DELETE") == []
    assert "someone-elses" in world.snapshot_names()
    async with SqlUnitOfWork(world.database.sessions) as uow:
        [pruned] = await uow.audit.events("pruned")
    assert (pruned.request_id, pruned.detail["how"]) == (run.id, "not_ours")


async def test_a_bot_that_was_down_runs_once_for_what_it_missed(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=2)
    world.clock.now = START + timedelta(hours=10, minutes=17)  # ten runs missed
    await world.tick(1)
    await world.tick(15)
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 1
    [run] = await world.runs(schedule_id)
    assert run.asked.name == f"auto-{schedule_id}-20261205-1200"  # the latest missed run
    async with SqlUnitOfWork(world.database.sessions) as uow:
        schedule = await uow.schedules.get(schedule_id)
    assert schedule is not None
    assert schedule.next_run_at == datetime(2026, 12, 5, 13, 0, tzinfo=UTC)


async def test_two_instances_run_each_run_once(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=4)
    other = Lifecycle(world.life.uow, world.clock, world.life.policy, owner="two")
    for hour in range(3):
        world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=hour)
        world.clock.now += timedelta(seconds=5)
        world.sim.advance()
        await asyncio.gather(
            tracking.cycle(world.vps, world.life, world.commands, "one"),
            tracking.cycle(world.vps, other, world.commands, "two"),
        )
        await world.tick(61)
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 3
    assert len(await world.runs(schedule_id)) == 3


async def test_a_refused_create_is_told_on_the_runs_card_and_the_next_run_goes_on(
    world: World,
) -> None:
    schedule_id = await add(world, "hourly", keep=2)
    world.sim.inject(Fault("POST", "/snapshots/", status=400, times=1))
    world.clock.now = START.replace(minute=59, second=58)
    await world.tick(5)
    [run] = await world.runs(schedule_id)
    assert run.status is Status.FAILED
    assert run.outcome.failure is not None
    assert run.outcome.failure.why is Why.API_REFUSED
    world.clock.now += timedelta(hours=1)
    await world.tick(5)
    assert [r.status for r in await world.runs(schedule_id)] == [Status.FAILED, Status.RUNNING]


async def test_unschedule_stops_runs_and_retention(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=1)
    await schedules.remove(world.life, OPS, RemoveSchedule(Kind.SNAPSHOT, schedule_id))
    world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=5)
    await world.tick(5)
    assert world.sim.calls_to("POST") == []
    with pytest.raises(schedules.UnknownSchedule):
        await schedules.remove(world.life, OPS, RemoveSchedule(Kind.SNAPSHOT, schedule_id))


async def test_a_schedule_more_frequent_than_the_minimum_is_refused(world: World) -> None:
    with pytest.raises(schedules.TooFrequent, match="at most every hour"):
        await add(world, "every 30m", keep=1)
    with pytest.raises(schedules.TooFrequent, match="every 5 minutes"):
        await add(world, "cron */5 * * * *", keep=1)
    await add(world, "every 2h", keep=1)


async def test_schedules_of_one_server_keep_at_most_what_the_limit_leaves_free(
    world: World,
) -> None:
    await add(world, "daily 03:00", keep=3)
    with pytest.raises(schedules.TooManyKept, match="would keep 5"):
        await add(world, "weekly mon 04:00", keep=2)
    await add(world, "weekly mon 04:00", keep=1)
    await add(world, "daily 05:00", keep=9, kind=Kind.BACKUP)


async def test_backups_are_made_and_pruned_by_their_description(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=1, kind=Kind.BACKUP)
    for hour in range(2):
        world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=hour)
        await world.tick(5)
        await world.tick(61)
        await world.tick(15)
    posts = world.sim.calls_to("POST", "/backups/")
    assert [p.body["description"] for p in posts] == [
        f"Scheduled backup by vpsbot, schedule #{schedule_id}, run 20261205-0300",
        f"Scheduled backup by vpsbot, schedule #{schedule_id}, run 20261205-0400",
    ]
    first, second = await world.runs(schedule_id)
    assert [c.path for c in world.sim.calls_to("DELETE")] == [f"/backups/{first.target_id}/"]
    assert second.outcome.pruned_ids == (first.target_id,)
    # the people's manual backup (499) is still there
    assert 499 in world.sim.objects["backups"]


async def test_a_run_whose_bot_died_before_the_post_is_never_posted_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run was recorded, then the process died before (or while) sending its POST: the
    restarted tracker reads it back by name, finds nothing, and hands it to a person; the POST
    is not sent on its own, and the next run goes on."""
    schedule_id = await add(world, "hourly", keep=2)

    async def died(*_: object) -> None:
        raise asyncio.CancelledError  # the process is gone: nothing after this runs

    monkeypatch.setattr(schedules, "send_create", died)
    world.clock.now = START.replace(minute=59, second=58)
    with pytest.raises(asyncio.CancelledError):
        await world.tick(5)
    monkeypatch.undo()
    await world.tick(30)  # the lease has lapsed: reconciled
    [run] = await world.runs(schedule_id)
    assert run.status is Status.NEEDS_ATTENTION
    assert run.outcome.failure is not None
    assert run.outcome.failure.why is Why.BOT_STOPPED
    assert world.sim.calls_to("POST") == []
    world.clock.now += timedelta(hours=1)
    await world.tick(5)
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 1


async def test_a_lost_answer_to_the_post_is_read_back_not_resent(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=2)
    world.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", status=502))
    world.clock.now = START.replace(minute=59, second=58)
    await world.tick(5)
    await world.tick(61)
    [run] = await world.runs(schedule_id)
    assert run.status is Status.SUCCEEDED
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 1
    assert run.target_id is not None


async def test_a_lost_answer_to_a_retention_delete_is_read_back(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=1)
    world.clock.now = START.replace(minute=59, second=58)
    await world.tick(5)
    await world.tick(61)
    world.sim.inject(Fault("DELETE", "/snapshots/.*", kind="lost_reply", status=502))
    world.clock.now += timedelta(hours=1)
    await world.tick(5)
    await world.tick(61)
    await world.tick(15)
    first, second = await world.runs(schedule_id)
    assert len(world.sim.calls_to("DELETE")) == 1
    assert first.target_id not in world.sim.objects["snapshots"]
    assert second.outcome.pruned_ids == (first.target_id,)
    async with SqlUnitOfWork(world.database.sessions) as uow:
        [pruned] = await uow.audit.events("pruned")
    assert (pruned.request_id, pruned.detail["how"]) == (first.id, "deleted")


async def test_a_run_whose_lease_lapsed_deletes_nothing_and_creates_nothing(
    world: World,
) -> None:
    """Instance A leased the schedule, then stalled past its lease; B ran it (at VPS.org's
    limit: its own oldest deleted first, then the POST). When A gets to it, its lease is gone:
    it deletes nothing (each DELETE renews the lease first) and creates nothing (the run is
    recorded only while the lease is held). The schedule keeps its 4. (Found by review.)"""
    for snapshot_id in (798, 801):  # the people's old ones go; one newer person's snapshot
        del world.sim.objects["snapshots"][snapshot_id]
    world.sim.add_snapshot(SERVER, "person-later", created_at="2030-01-01T00:00:00Z")
    schedule_id = await add(world, "hourly", keep=4)
    for hour in range(4):
        world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=hour)
        await world.tick(5)
        await world.tick(61)
        await world.tick(15)
    assert len(world.snapshot_names()) == 5  # 4 of its own + the person's: the limit

    world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=4, seconds=5)
    async with world.life.uow() as uow:
        [stale] = await uow.schedules.claim(now=world.clock.now, owner="a", lease=schedules.LEASE)
        await uow.commit()
    await world.tick(6 * 60, owner="b")  # A's lease lapsed; B runs it: prunes 1, creates 1
    assert len(world.sim.calls_to("DELETE")) == 1
    await schedules._run(world.vps, world.life, "a", stale)  # A gets to it now
    await world.tick(61, owner="b")
    await world.tick(15, owner="b")
    ours = [n for n in world.snapshot_names() if n.startswith(f"auto-{schedule_id}-")]
    assert len(world.sim.calls_to("POST", "/snapshots/")) == 5  # no double create: sound
    assert len(world.sim.calls_to("DELETE")) == 1, "A deleted one of the 4 the schedule keeps"
    assert len(ours) == 4


async def test_unscheduled_during_a_runs_checks_nothing_is_created(world: World) -> None:
    """A person unschedules while the tracker is in the run's checks: nothing is recorded or
    POSTed (the run is recorded only while the schedule is active). (Found by review.)"""
    await add(world, "hourly", keep=2)
    world.clock.now = START.replace(minute=59, second=58) + timedelta(seconds=5)
    async with world.life.uow() as uow:
        [claimed] = await uow.schedules.claim(
            now=world.clock.now, owner="one", lease=schedules.LEASE
        )
        await uow.commit()
    await schedules.remove(world.life, OPS, RemoveSchedule(Kind.SNAPSHOT, claimed.id))
    await schedules._run(world.vps, world.life, "one", claimed)
    assert world.sim.calls_to("POST", "/snapshots/") == [], "created after unschedule"


@pytest.mark.parametrize("world", [{"timezone": ZoneInfo("Europe/Tallinn")}], indirect=True)
async def test_runs_are_named_in_utc_so_the_repeated_hour_gives_two_names(world: World) -> None:
    for snapshot_id in (798, 801):
        del world.sim.objects["snapshots"][snapshot_id]
    world.clock.now = datetime(2026, 10, 24, 23, 10, tzinfo=UTC)
    await add(world, "hourly", keep=4)
    for hour in (0, 1):  # 03:00 EEST and 03:00 EET
        world.clock.now = datetime(2026, 10, 25, hour, 0, tzinfo=UTC) - timedelta(seconds=2)
        await world.tick(5)
        await world.tick(61)
    names = [c.body["name"] for c in world.sim.calls_to("POST", "/snapshots/")]
    assert names == ["auto-1-20261025-0000", "auto-1-20261025-0100"]  # both 03:00 in Tallinn


async def test_two_schedules_added_at_once_cannot_keep_more_than_the_limit_leaves(
    world: World,
) -> None:
    results = await asyncio.gather(
        add(world, "daily 03:00", keep=3),
        add(world, "daily 04:00", keep=3),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["TooManyKept", "int"]
    async with SqlUnitOfWork(world.database.sessions) as uow:
        assert [s.keep for s in await uow.schedules.active()] == [3]


async def test_a_cron_too_long_to_keep_is_refused_in_words(world: World) -> None:
    days = ",".join(str(d) for d in range(1, 32))
    months = ",".join(str(m) for m in range(1, 13))
    with pytest.raises(schedules.TooLong, match="at most 200"):
        await add(world, f"cron 0 3 {days},{days},{days} {months} *", keep=1)


async def test_retention_is_in_the_runs_history_and_the_audit_file(world: World) -> None:
    schedule_id = await add(world, "hourly", keep=1)
    for hour in range(2):
        world.clock.now = START.replace(minute=59, second=58) + timedelta(hours=hour)
        await world.tick(5)
        await world.tick(61)
        await world.tick(15)
    first, _ = await world.runs(schedule_id)
    history = await reports.request_history(world.life.uow, first.id)
    said = history_message(history, world.clock.now).text + json.dumps(
        history_message(history, world.clock.now).blocks
    )
    assert f"schedule #{schedule_id} (of <@{OPS.user_id}>) ran a create" in said
    assert f"schedule #{schedule_id}'s retention: `{first.asked.name}` deleted" in said
    rows = await reports.audit_rows(world.life.uow, since=START)
    pruned = [r for r in rows if r.event == "pruned"]
    assert [(r.request, r.outcome, r.target_id) for r in pruned] == [
        (first.id, "deleted", first.target_id)
    ]
