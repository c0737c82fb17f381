"""Migrations upgrade a live database with its rows kept (SQLite, and PostgreSQL when set)."""

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.config import async_database_url
from bot.domain.errors import RestoreUnderWay
from bot.domain.model import Action, Kind, ServerRef, Status
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
    async with SqlUnitOfWork(db.sessions) as uow:
        assert await uow.requests.transition(1, Status.PENDING_APPROVAL, Status.EXECUTING, at=AT)
        await uow.commit()
    async with SqlUnitOfWork(db.sessions) as uow:
        with pytest.raises(RestoreUnderWay):
            await uow.requests.transition(2, Status.PENDING_APPROVAL, Status.EXECUTING, at=AT)
    async with SqlUnitOfWork(db.sessions) as uow:  # once the first has ended, the next may go
        assert await uow.requests.transition(1, Status.EXECUTING, Status.SUCCEEDED, at=AT)
        assert await uow.requests.transition(2, Status.PENDING_APPROVAL, Status.EXECUTING, at=AT)
        await uow.commit()
    await db.dispose()
