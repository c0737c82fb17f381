"""Storage on SQLite and (with TEST_DATABASE_URL) PostgreSQL: migrations, audit rows, times."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bot.config import async_database_url
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, ServerRef
from bot.domain.outcomes import Outcome, SafetyStep
from bot.services.commands import CommandLog, Invocation
from bot.storage.database import Database
from bot.storage.tables import metadata
from bot.storage.unit_of_work import SqlUnitOfWork


@pytest.fixture
async def database(database_url: str):  # type: ignore[no-untyped-def]
    db = Database(async_database_url(database_url))
    await db.upgrade()
    yield db
    await db.dispose()


def _diff(connection: Connection) -> list[object]:
    return compare_metadata(MigrationContext.configure(connection), metadata)


async def test_the_migration_matches_the_models(database: Database) -> None:
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"requests", "approvals", "audit_events", "outbox", "alembic_version"} <= tables


async def test_upgrading_again_and_concurrently_is_harmless(database_url: str) -> None:
    first, second = (Database(async_database_url(database_url)) for _ in range(2))
    await asyncio.gather(first.upgrade(), second.upgrade())
    await first.upgrade()
    async with first.engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert versions == [("0005",)]
    await first.dispose()
    await second.dispose()


async def test_audit_rows_round_trip_with_aware_utc_times(database: Database) -> None:
    at = datetime(2025, 1, 16, 15, 45, 0, 123000, tzinfo=UTC)
    async with SqlUnitOfWork(database.sessions) as uow:
        uow.audit.record(
            "command", at=at, actor_id="U1", channel_id="C1", detail={"text": "ü <!x>"}
        )
        await uow.commit()
    async with SqlUnitOfWork(database.sessions) as uow:
        [row] = await uow.audit.events("command")
    assert row.created_at == at
    assert row.created_at.tzinfo is not None
    assert row.detail == {"text": "ü <!x>"}


async def test_leaving_without_commit_writes_nothing(database: Database) -> None:
    async with SqlUnitOfWork(database.sessions) as uow:
        uow.audit.record("command", at=datetime.now(UTC))
    async with SqlUnitOfWork(database.sessions) as uow:
        assert await uow.audit.events() == []


async def test_a_failed_command_is_recorded_once_with_its_outcome(database: Database) -> None:
    log = CommandLog(lambda: SqlUnitOfWork(database.sessions), lambda: datetime.now(UTC))
    invocation = Invocation("U1", "C1", "/snapshot", "list 1")
    with pytest.raises(RuntimeError):
        async with log.recording(invocation):
            raise RuntimeError("boom")
    async with log.recording(invocation):
        pass
    async with SqlUnitOfWork(database.sessions) as uow:
        rows = await uow.audit.events("command")
    assert [(r.actor_id, r.channel_id, r.detail["outcome"]) for r in rows] == [
        ("U1", "C1", "error"),
        ("U1", "C1", "ok"),
    ]


async def test_ping_reports_an_unreachable_database() -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert await db.ping() is False
    await db.dispose()


async def test_a_safety_step_is_taken_only_by_the_holder_of_the_lease(database: Database) -> None:
    """`requests.step` and `requests.renew` act only for the instance holding the lease: one
    that lost it (another took the request over) changes nothing, and writes no audit row."""
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    async with SqlUnitOfWork(database.sessions) as uow:
        request = await uow.requests.add(
            kind=Kind.SNAPSHOT,
            action=Action.RESTORE,
            status=Status.EXECUTING,
            requester_id="U1",
            channel_id="C1",
            at=at,
            server=ServerRef(7, "web"),
            target_id=801,
        )
        await uow.requests.change(request.id, lease_owner="a", lease_until=at)
        await uow.commit()

    posting = Outcome(safety_step=SafetyStep.POSTING)
    for owner, expected in (("b", False), ("a", True)):
        async with SqlUnitOfWork(database.sessions) as uow:
            won = await uow.requests.step(
                request.id, owner, at=at, detail={"step": "posting"}, outcome=posting
            )
            await uow.requests.renew(request.id, owner, at + timedelta(minutes=1 if won else 9))
            await uow.commit()
        assert won is expected

    async with SqlUnitOfWork(database.sessions) as uow:
        stored = await uow.requests.get(request.id)
        audited = await uow.audit.events("safety_snapshot", request_id=request.id)
    async with database.engine.connect() as conn:
        query = text("SELECT lease_until FROM requests WHERE id = :id")
        lease = (await conn.execute(query, {"id": request.id})).scalar()
    assert stored is not None
    assert stored.outcome.safety_step is SafetyStep.POSTING
    assert [row.detail for row in audited] == [{"step": "posting"}]
    assert str(lease).startswith("2026-12-05 12:01")  # renewed by "a" only
