"""The tracker's cost does not grow with servers: per kind, one listing per server with work in
flight or one account-wide listing (all its pages), whichever is fewer calls. Counted at the
simulator, which pages its lists."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, ServerRef
from bot.services import tracking
from bot.storage.unit_of_work import SqlUnitOfWork
from tests.integration.conftest import World


async def seed(world: World, servers: int, per_kind: int) -> None:
    """`per_kind` snapshots and manual backups in progress on each of `servers` servers, each
    followed by a running create request."""
    for collection in world.sim.objects.values():  # the seeded snapshots and backups
        collection.clear()
    now = world.clock.now
    async with SqlUnitOfWork(world.database.sessions) as uow:
        for s in range(servers):
            server = ServerRef(70_000 + s, f"srv-{s}")
            world.sim.add_server(server.id, server.name)
            for kind in (Kind.SNAPSHOT, Kind.BACKUP):
                for j in range(per_kind):
                    if kind is Kind.SNAPSHOT:
                        made = world.sim.add_snapshot(server.id, f"s{j}", status="in_progress")
                    else:
                        made = world.sim.add_backup(server.id, "manual", f"b{j}", None, None)
                        made.status = "in_progress"
                    request = await uow.requests.add(
                        kind=kind, action=Action.CREATE, status=Status.RUNNING,
                        requester_id="U1", channel_id="C1", at=now, server=server,
                        target_id=made.id, target_name=made.name,
                        expires_at=now + timedelta(hours=6),
                    )  # fmt: skip
                    await uow.requests.change(request.id, next_check_at=now)
        await uow.commit()


async def cycle_calls(world: World) -> list[tuple[str, str, str]]:
    """One tracker cycle's reads of VPS.org: (path, server_id or "", page)."""
    before = len(world.sim.calls)
    await tracking.check_in_flight(world.vps, world.life, "one")
    async with SqlUnitOfWork(world.database.sessions) as uow:  # due again at the next cycle
        for request in await uow.requests.in_status(Status.RUNNING):
            await uow.requests.change(request.id, next_check_at=world.clock.now)
        await uow.commit()
    return [
        (c.path, str(c.query.get("server_id", "")), str(c.query.get("page", "1")))
        for c in world.sim.calls[before:]
    ]


async def test_one_servers_operations_cost_one_call_per_kind(world: World) -> None:
    world.sim.page_size = 100
    await seed(world, servers=1, per_kind=5)
    for _ in range(2):
        calls = await cycle_calls(world)
        assert sorted(calls) == [("/backups/", "70000", "1"), ("/snapshots/", "70000", "1")]


async def test_ten_servers_are_read_account_wide_once_cheaper(world: World) -> None:
    world.sim.page_size = 100
    await seed(world, servers=10, per_kind=5)
    calls = await cycle_calls(world)
    # 50 of each kind: one page each, not ten calls per kind
    assert sorted(calls) == [("/backups/", "", "1"), ("/snapshots/", "", "1")]


@pytest.mark.parametrize(("page_size", "calls_per_kind"), [(250, 2), (100, 5)])
async def test_a_thousand_operations_on_a_hundred_servers(
    world: World, page_size: int, calls_per_kind: int
) -> None:
    """1,000 operations (5 snapshots and 5 backups on each of 100 servers): all the pages of
    each kind's account-wide listing, not 200 calls."""
    world.sim.page_size = page_size
    await seed(world, servers=100, per_kind=5)
    for _ in range(2):  # the first cycle learns the account's size; the second uses it
        calls = await cycle_calls(world)
        assert len(calls) == 2 * calls_per_kind
        assert {path for path, server, _ in calls if not server} == {"/snapshots/", "/backups/"}
    # and what they read is judged: finished creates are seen finished
    world.sim.finish_all()
    await tracking.check_in_flight(world.vps, world.life, "one")
    async with SqlUnitOfWork(world.database.sessions) as uow:
        assert len(await uow.requests.in_status(Status.SUCCEEDED)) == 1000


async def test_the_choice_follows_what_the_account_holds(world: World) -> None:
    """Three servers with work, but an account holding many items: once the account-wide
    listing is seen to cost more pages than three calls, the tracker reads per server."""
    world.sim.page_size = 10
    await seed(world, servers=3, per_kind=1)
    for n in range(60):  # an account with many finished snapshots on other servers
        world.sim.add_server(80_000 + n, f"other-{n}")
        world.sim.add_snapshot(80_000 + n, "old")
    first = await cycle_calls(world)
    assert {(p, s) for p, s, _ in first if p == "/snapshots/"} == {("/snapshots/", "")}
    second = await cycle_calls(world)
    assert sorted({(p, s) for p, s, _ in second if p == "/snapshots/"}) == [
        ("/snapshots/", "70000"),
        ("/snapshots/", "70001"),
        ("/snapshots/", "70002"),
    ]


async def test_an_item_missing_from_a_partial_list_is_not_failed(world: World) -> None:
    world.sim.page_size = 100
    await seed(world, servers=1, per_kind=1)
    # VPS.org says it holds more than it returns: the missing item is unread, not gone
    world.sim.objects["snapshots"].clear()
    world.sim.edit_page = lambda page: page | {"count": page["count"] + 5}
    await tracking.check_in_flight(world.vps, world.life, "one")
    async with SqlUnitOfWork(world.database.sessions) as uow:
        snapshots = [r for r in await uow.requests.in_status(*Status) if r.kind is Kind.SNAPSHOT]
    assert [r.status for r in snapshots] == [Status.RUNNING]
