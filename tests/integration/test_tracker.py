"""The tracker and the outbox at scale and under contention, on SQLite and PostgreSQL."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.bootstrap import Bot, build
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, ServerRef
from bot.services import tracking
from bot.serving import serving
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import ALICE, CHANNEL, make_settings
from tests.fakes.slack import SlackStandIn, WebFault


async def seed_in_flight(bot: Bot, sim: Simulator, servers: int, per_kind: int) -> list[int]:
    """`servers` servers with `per_kind` snapshots and manual backups each, all in progress."""
    now = datetime.now(UTC)
    ids: list[int] = []
    async with SqlUnitOfWork(bot.database.sessions) as uow:
        for s in range(servers):
            server = ServerRef(1000 + s, f"srv-{s}")
            sim.add_server(server.id, server.name)
            for kind in (Kind.SNAPSHOT, Kind.BACKUP):
                for j in range(per_kind):
                    if kind is Kind.SNAPSHOT:
                        obj = sim.add_snapshot(
                            server.id, f"s{j}", status="in_progress", size_mb=None
                        )
                    else:
                        obj = sim.add_backup(
                            server.id, "manual", f"b{j}", status="in_progress", size_mb=None
                        )
                    request = await uow.requests.add(
                        kind=kind,
                        action=Action.CREATE,
                        status=Status.RUNNING,
                        requester_id=ALICE,
                        channel_id=CHANNEL,
                        at=now,
                        server=server,
                        target_id=obj.id,
                        target_name=obj.name,
                        expires_at=now + timedelta(hours=6),
                    )
                    await uow.requests.change(
                        request.id, message_ts=f"1700000000.{request.id:06d}", next_check_at=now
                    )
                    ids.append(request.id)
        await uow.commit()
    return ids


class Env:
    def __init__(self, sim: Simulator, slack: SlackStandIn, vps_url: str, slack_url: str) -> None:
        self.sim, self.slack, self.vps_url, self.slack_url = sim, slack, vps_url, slack_url

    def bot(self, database_url: str, *, worker: bool, owner: str, poll: float = 0.1) -> Bot:
        settings = make_settings(
            vps_api_url=self.vps_url,
            slack_api_url=f"{self.slack_url}/api/",
            database_url=database_url,
            vpsbot_poll_interval=poll,
        )
        return build(settings, run_worker=worker, owner=owner)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = Simulator(token="test-vps-token", seed=False)
    slack = SlackStandIn()
    async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
        slack.base_url = slack_url
        yield Env(sim, slack, f"{vps_url}/api/v1", slack_url)


async def test_a_cycle_over_1000_operations_on_100_servers_reads_each_kind_account_wide(
    env: Env, sqlite_url: str
) -> None:
    """500 snapshots and 500 manual backups in progress: per kind, the pages of one
    account-wide listing (100 items a page: 5 each), not one call per server (200)."""
    bot = env.bot(sqlite_url, worker=False, owner="solo")
    await bot.start()
    try:
        await seed_in_flight(bot, env.sim, servers=100, per_kind=5)
        env.sim.calls.clear()
        report = await tracking.check_in_flight(bot.services.vps, bot.services.life, "solo")
        assert report.claimed == 1000
        assert report.api_calls == len(env.sim.calls) == 10
        assert {(c.path, c.query.get("server_id")) for c in env.sim.calls} == {
            ("/snapshots/", None),
            ("/backups/", None),
        }
        assert report.finished == 0

        env.sim.finish_all()
        env.sim.calls.clear()
        # the next cycle is due one poll interval later
        await asyncio.sleep(0.15)
        report = await tracking.check_in_flight(bot.services.vps, bot.services.life, "solo")
        assert (report.api_calls, len(env.sim.calls), report.finished) == (10, 10, 1000)
        async with SqlUnitOfWork(bot.database.sessions) as uow:
            pending = await uow.outbox.items("pending")
        assert Counter(item.kind for item in pending) == {"update": 1000, "reply": 1000, "dm": 1000}
    finally:
        await bot.stop()


async def test_the_tracker_backs_off_while_the_api_fails(env: Env, sqlite_url: str) -> None:
    bot = env.bot(sqlite_url, worker=False, owner="solo", poll=0.2)
    await bot.start()
    try:
        await seed_in_flight(bot, env.sim, servers=2, per_kind=1)
        env.sim.inject(Fault("GET", "/(snapshots|backups)/", status=503, times=None))
        first = await tracking.check_in_flight(bot.services.vps, bot.services.life, "solo")
        assert (first.api_calls, first.failed_calls) == (4, 4)
        # A failed read says nothing about the operations: they stay running, checked later.
        soon = await tracking.check_in_flight(bot.services.vps, bot.services.life, "solo")
        assert soon.claimed == 0
        async with SqlUnitOfWork(bot.database.sessions) as uow:
            running = await uow.requests.in_status(Status.RUNNING)
        assert len(running) == 4
        assert all(r.outcome.poll_failures == 1 for r in running)
        env.sim.faults.clear()
        env.sim.finish_all()
        await asyncio.sleep(0.65)  # backoff: 2 x poll interval, rounded up to a tick
        assert (
            await tracking.check_in_flight(bot.services.vps, bot.services.life, "solo")
        ).finished == 4
    finally:
        await bot.stop()


async def test_two_trackers_on_one_database_notify_each_completion_once(
    env: Env, database_url: str
) -> None:
    first = env.bot(database_url, worker=True, owner="one")
    second = env.bot(database_url, worker=True, owner="two")
    await first.start()
    await second.start()
    try:
        ids = await seed_in_flight(first, env.sim, servers=10, per_kind=3)
        await asyncio.sleep(0.3)
        env.sim.finish_all()
        deadline = asyncio.get_running_loop().time() + 30
        # each completion: an update, a thread reply and a DM
        while len(env.slack.api_calls("chat.postMessage")) < 2 * len(ids):
            assert asyncio.get_running_loop().time() < deadline, "completions not reported"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # time enough for any duplicate to show
    finally:
        await first.stop()
        await second.stop()
    updates = Counter(c.data["ts"] for c in env.slack.api_calls("chat.update"))
    replies = Counter(
        c.data["thread_ts"]
        for c in env.slack.api_calls("chat.postMessage")
        if c.data.get("thread_ts")
    )
    dms = [
        c for c in env.slack.api_calls("chat.postMessage") if str(c.data["channel"]).startswith("D")
    ]
    assert len(updates) == len(ids)
    assert set(updates.values()) == {1}
    assert len(replies) == len(ids)
    assert set(replies.values()) == {1}
    assert len(dms) == len(ids)


async def test_slack_rate_limiting_delays_a_notification_but_it_arrives_once(
    env: Env, sqlite_url: str
) -> None:
    env.slack.faults.append(
        WebFault("chat.update", status=429, headers={"Retry-After": "0"}, times=5)
    )
    bot = env.bot(sqlite_url, worker=True, owner="solo")
    await bot.start()
    try:
        await seed_in_flight(bot, env.sim, servers=1, per_kind=1)
        env.sim.finish_all()
        deadline = asyncio.get_running_loop().time() + 15
        while not env.slack.api_calls("chat.update"):
            assert asyncio.get_running_loop().time() < deadline, "never delivered"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
    finally:
        await bot.stop()
    assert env.slack.faults[0].times == 0  # every 429 was served first
    assert len(env.slack.api_calls("chat.update")) == 2  # one snapshot, one backup
    assert len({c.data["ts"] for c in env.slack.api_calls("chat.update")}) == 2


async def test_claims_are_disjoint_and_a_dead_owners_claims_lapse(
    env: Env, database_url: str
) -> None:
    now = [datetime.now(UTC)]
    settings = make_settings(
        vps_api_url=env.vps_url, slack_api_url=f"{env.slack_url}/api/", database_url=database_url
    )
    one = build(settings, run_worker=False, owner="one", clock=lambda: now[0])
    two = build(settings, run_worker=False, owner="two", clock=lambda: now[0])
    await one.start()
    await two.start()
    try:
        ids = await seed_in_flight(one, env.sim, servers=25, per_kind=2)
        now[0] = datetime.now(UTC)

        async def claim(bot: Bot, owner: str) -> set[int]:
            async with SqlUnitOfWork(bot.database.sessions) as uow:
                claimed = await uow.requests.claim_due(
                    statuses={Status.RUNNING},
                    now=now[0],
                    owner=owner,
                    lease=tracking.LEASE,
                    limit=60,
                )
                await uow.commit()
            return {r.id for r in claimed}

        first, second = await asyncio.gather(claim(one, "one"), claim(two, "two"))
        assert not first & second
        assert first | second == set(ids)

        # Both die holding their claims: nobody polls them again until the leases lapse.
        report = await tracking.check_in_flight(two.services.vps, two.services.life, "two")
        assert report.claimed == 0
        now[0] += tracking.LEASE + timedelta(seconds=1)
        report = await tracking.check_in_flight(two.services.vps, two.services.life, "two")
        assert report.claimed == len(ids)
    finally:
        await one.stop()
        await two.stop()
