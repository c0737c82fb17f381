"""Migrations upgrade a live database with its rows kept (SQLite, and PostgreSQL when set)."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.config import async_database_url
from bot.domain.errors import RestoreUnderWay
from bot.domain.lifecycle import Event, Status, Transition
from bot.domain.model import Action, Kind, ServerRef
from bot.domain.outcomes import Failure, Recovery, Why
from bot.slack.blocks import request_message
from bot.storage.database import Database, alembic_config
from bot.storage.unit_of_work import SqlUnitOfWork

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BIG = 9_999_999_999  # ten digits: past INTEGER's 2**31 - 1


def _to(revision: str):  # type: ignore[no-untyped-def]
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


async def _insert_0001_rows(db: Database) -> None:
    """Rows as the 0001 schema held them: a finished create, and two restores of server 7
    both under way (the state the missing guarantee allowed)."""
    rows = [
        ("snapshot", "create", "succeeded", 7, 801),
        ("snapshot", "restore", "running", 7, 801),
        ("backup", "restore", "executing", 7, 501),
    ]
    async with db.engine.begin() as conn:
        for kind, action, status, server, target in rows:
            await conn.execute(
                text(
                    "INSERT INTO requests (kind, action, status, requester_id, channel_id,"
                    " server_id, server_name, target_id, target_name, reason, params, result,"
                    " required_approvals, created_at, updated_at) VALUES (:kind, :action,"
                    " :status, 'U1', 'C1', :server, 'web', :target, 'x', '', '{}', '{}', 1,"
                    " :at, :at)"
                ),
                {
                    "kind": kind,
                    "action": action,
                    "status": status,
                    "server": server,
                    "target": target,
                    "at": AT.replace(tzinfo=None) if db.dialect == "sqlite" else AT,
                },
            )


async def test_0002_keeps_the_rows_and_takes_ten_digit_ids(database_url: str) -> None:
    db = Database(async_database_url(database_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(_to("0001"))
    await _insert_0001_rows(db)
    await db.upgrade()

    async with SqlUnitOfWork(db.sessions) as uow:
        kept = await uow.requests.in_status(*Status)
        assert [(r.id, r.status, r.target_id) for r in kept] == [
            (1, Status.SUCCEEDED, 801),
            (2, Status.RUNNING, 801),
            (3, Status.NEEDS_ATTENTION, 501),  # the second restore under way needs a person
        ]
        big = await uow.requests.add(
            kind=Kind.SNAPSHOT,
            action=Action.CREATE,
            status=Status.RUNNING,
            requester_id="U1",
            channel_id="C1",
            at=AT,
            server=ServerRef(BIG, "big"),
            target_id=BIG - 1,
        )
        await uow.commit()
    async with SqlUnitOfWork(db.sessions) as uow:
        stored = await uow.requests.get(big.id)
    assert stored is not None
    assert (stored.server, stored.target_id) == (ServerRef(BIG, "big"), BIG - 1)
    await db.dispose()


async def test_a_second_restore_of_a_server_cannot_be_under_way(database_url: str) -> None:
    """The guarantee is the database's: whatever the code above it does."""
    db = Database(async_database_url(database_url))
    await db.upgrade()
    async with SqlUnitOfWork(db.sessions) as uow:
        for target in (902, 903):
            await uow.requests.add(
                kind=Kind.SNAPSHOT,
                action=Action.RESTORE,
                status=Status.PENDING_APPROVAL,
                requester_id="U1",
                channel_id="C1",
                at=AT,
                server=ServerRef(12345, "web"),
                target_id=target,
                expires_at=AT + timedelta(minutes=30),
            )
        await uow.commit()
    approve, claim, done = (
        Transition(request, source, event, target, AT)
        for request, source, event, target in (
            (0, Status.PENDING_APPROVAL, Event.APPROVE, Status.APPROVED),
            (0, Status.APPROVED, Event.CLAIM, Status.EXECUTING),
            (0, Status.EXECUTING, Event.COMPLETE, Status.SUCCEEDED),
        )
    )
    async with SqlUnitOfWork(db.sessions) as uow:
        assert await uow.requests.apply(replace(approve, request_id=1))
        assert await uow.requests.apply(replace(claim, request_id=1))
        await uow.commit()
    async with SqlUnitOfWork(db.sessions) as uow:
        with pytest.raises(RestoreUnderWay):
            await uow.requests.apply(replace(approve, request_id=2))
    async with SqlUnitOfWork(db.sessions) as uow:  # once the first has ended, the next may go
        assert await uow.requests.apply(replace(done, request_id=1))
        assert await uow.requests.apply(replace(approve, request_id=2))
        await uow.commit()
    await db.dispose()


async def _insert_0002_rows(db: Database) -> None:
    """Rows as the code of revision 0002 wrote them: sentences in `result`, the deciders under
    three names, a delete's target date as `created_at`."""
    rows = [
        (
            "delete",
            "succeeded",
            {"created_at": "2025-01-15T18:30:00+00:00", "size_mb": 5120},
            {"deleted_by": "U2", "deleted_at": "2026-11-30T12:05:00+00:00"},
        ),
        (
            "restore",
            "failed",
            {"target_created_at": "2025-01-15T18:30:00+00:00", "target_size_mb": 5120},
            {"approvers": ["U2"], "reason": "the server is already being restored; nothing "
             "was restored", "api_status": 409},
        ),
        ("restore", "denied", {}, {"denied_by": "U3"}),
        ("restore", "cancelled", {}, {"reason": "card_not_posted", "slack_error": "not_in_c"
         "hannel"}),
        (
            "create",
            "running",
            {"name": "n", "description": "d", "known_ids": [798, 801]},
            {"api_message": "Snapshot creation started", "started_at": "2026-11-30T12:00:00+00:00",
             "recovered": "VPS.org did not confirm the create, but lists it: following it",
             "poll_failures": 2},
        ),
    ]  # fmt: skip
    async with db.engine.begin() as conn:
        for action, status, params, result in rows:
            await conn.execute(
                text(
                    "INSERT INTO requests (kind, action, status, requester_id, channel_id,"
                    " server_id, server_name, target_id, target_name, reason, params, result,"
                    " required_approvals, created_at, updated_at) VALUES ('snapshot', :action,"
                    " :status, 'U1', 'C1', 7, 'web', 801, 'x', '', :params, :result, 1, :at, :at)"
                ),
                {
                    "action": action,
                    "status": status,
                    "params": json.dumps(params),
                    "result": json.dumps(result),
                    "at": AT.replace(tzinfo=None) if db.dialect == "sqlite" else AT,
                },
            )


async def test_0003_rewrites_the_outcomes_of_live_rows_as_typed_records(database_url: str) -> None:
    db = Database(async_database_url(database_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(_to("0002"))
    await _insert_0002_rows(db)
    await db.upgrade()

    async with SqlUnitOfWork(db.sessions) as uow:
        deleted, refused, denied, unposted, running = await uow.requests.in_status(*Status)
    taken = datetime(2025, 1, 15, 18, 30, tzinfo=UTC)
    assert (deleted.asked.target_created_at, deleted.asked.target_size_mb) == (taken, 5120)
    assert deleted.outcome.decided_by == "U2"
    assert deleted.outcome.finished_at == datetime(2026, 11, 30, 12, 5, tzinfo=UTC)
    assert refused.outcome.approvers == ("U2",)
    assert refused.outcome.failure == Failure(
        Why.LEGACY,
        detail="the server is already being restored; nothing was restored",
        http_status=409,
    )
    assert denied.outcome.decided_by == "U3"
    assert unposted.outcome.failure == Failure(Why.CARD_NOT_POSTED, detail="not_in_channel")
    assert running.asked.known_ids == (798, 801)
    assert running.outcome.recovered is Recovery.LISTED
    assert running.outcome.poll_failures == 2
    assert running.outcome.api_message == "Snapshot creation started"
    # and they still read as they did: the old sentence is shown as it was written
    card = request_message(refused, AT).text
    assert "*failed*: the server is already being restored; nothing was restored" in card
    await db.dispose()


async def test_0004_keeps_live_restores_which_made_no_safety_snapshot(database_url: str) -> None:
    """A restore under way and one finished, as 0003 held them: after 0004 they read as
    before, take no safety snapshot, offer no Undo, and are never picked by the clean-up."""
    db = Database(async_database_url(database_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(_to("0003"))
    async with db.engine.begin() as conn:
        for status, target in (("running", 801), ("succeeded", 798)):
            await conn.execute(
                text(
                    "INSERT INTO requests (kind, action, status, requester_id, channel_id,"
                    " server_id, server_name, target_id, target_name, reason, params, result,"
                    " required_approvals, created_at, updated_at) VALUES ('snapshot', 'restore',"
                    " :status, 'U1', 'C1', :server, 'web', :target, 'x', '', :params, :result,"
                    " 1, :at, :at)"
                ),
                {
                    "status": status,
                    "server": target,  # one restore under way per server
                    "target": target,
                    "params": json.dumps({"target_status": "completed"}),
                    "result": json.dumps({"approvers": ["U2"], "seen_restoring": True}),
                    "at": AT.replace(tzinfo=None) if db.dialect == "sqlite" else AT,
                },
            )
    await db.upgrade()

    async with SqlUnitOfWork(db.sessions) as uow:
        running, done = await uow.requests.in_status(Status.RUNNING, Status.SUCCEEDED)
        due = await uow.requests.claim_due(
            statuses=set(Status),
            now=AT + timedelta(days=365),
            owner="cleaner",
            lease=timedelta(seconds=10),
            safety_due=True,
        )
    assert (running.status, done.status) == (Status.RUNNING, Status.SUCCEEDED)
    assert running.outcome.approvers == ("U2",)
    assert running.outcome.seen_restoring
    assert running.asked.safety is None
    assert not done.undoable
    assert due == []
    async with db.engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert version == "0005"  # and on to the newest
    await db.dispose()


async def test_0005_keeps_every_request_as_a_persons_and_adds_schedules(database_url: str) -> None:
    """Requests as 0004 held them: after 0005 they belong to no schedule, were never pruned,
    and no retention pass picks them; schedules, health and jobs are there and empty."""
    db = Database(async_database_url(database_url))
    async with db.engine.begin() as conn:
        await conn.run_sync(_to("0004"))
        for status, server, target in (
            ("succeeded", 7, 801),
            ("running", 8, 802),
            ("executing", 9, 501),
        ):
            await conn.execute(
                text(
                    "INSERT INTO requests (kind, action, status, requester_id, channel_id,"
                    " server_id, server_name, target_id, target_name, reason, params, result,"
                    " required_approvals, created_at, updated_at) VALUES ('snapshot',"
                    " :action, :status, 'U1', 'C1', :server, 'web', :target, 'x', '', '{}', '{}',"
                    " 1, :at, :at)"
                ),
                {
                    "action": "create" if status == "succeeded" else "restore",
                    "status": status,
                    "server": server,
                    "target": target,
                    "at": AT.replace(tzinfo=None) if db.dialect == "sqlite" else AT,
                },
            )
    await db.upgrade()

    async with SqlUnitOfWork(db.sessions) as uow:
        rows = await uow.requests.in_status(*Status)
        over = await uow.requests.over_keep(AT + timedelta(days=365))
        active = await uow.schedules.active()
        states = await uow.health.states()
        runs = await uow.requests.runs([1, 2, 3])
    assert [(r.action, r.status, r.target_id) for r in rows] == [
        (Action.CREATE, Status.SUCCEEDED, 801),
        (Action.RESTORE, Status.RUNNING, 802),
        (Action.RESTORE, Status.EXECUTING, 501),
    ]
    assert all(r.asked.schedule_id is None for r in rows)
    assert (over, active, states, runs) == ([], [], {}, [])
    async with db.engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        scheduled = (
            await conn.execute(text("SELECT count(*) FROM requests WHERE schedule_id IS NOT NULL"))
        ).scalar()
    assert (version, scheduled) == ("0005", 0)
    await db.dispose()
