"""The engine, sessions, health check and schema upgrades (Alembic, run in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every instance of the bot.
_MIGRATION_LOCK = 0x7B5B07
PING_TIMEOUT = 1.5  # seconds: /healthz answers within 2 s whatever holds the database


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code has."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # the migrations ship with the code
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def known_revision(revision: str) -> bool:
    """Whether this code has the migration `revision` (a newer vpsbot may have run others)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for an unknown or malformed revision
        return False


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> tuple[str | None, str | None]:
    before = _current(connection)
    command.upgrade(alembic_config(connection), "head")
    return before, _current(connection)


# Alembic keeps its running context in module globals, so two upgrades in one process must not
# interleave; one lock per event loop (tests run several loops in one process).
_upgrade_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _upgrade_lock() -> asyncio.Lock:
    return _upgrade_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


@dataclass(frozen=True, slots=True)
class Inspection:
    """What the start-up checks read of a database (`Database.inspect`)."""

    revision: str | None  # None: no schema yet
    read_only: bool  # a PostgreSQL standby, or a session read-only by default
    may_create_tables: bool  # CREATE on the schema (needed while an upgrade is due)


class Database:
    """One async engine for the process; `sessions` makes unit-of-work sessions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        # SQLite has one writer at a time: one connection per process makes this process's
        # transactions queue in the pool (no busy-wait sleeps); other processes wait on the lock.
        # PostgreSQL: READ COMMITTED whatever the server's default, which the per-server restore
        # lock relies on (each statement after the lock sees what the previous holder committed)
        pool: dict[str, Any] = (
            {"pool_size": 1, "max_overflow": 0} if sqlite else {"isolation_level": "READ COMMITTED"}
        )
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, pool_pre_ping=True, **pool)
        if sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def upgrade(self) -> tuple[str | None, str | None]:
        """Bring the schema to the newest migration; return the revision before and after
        (None: an empty database). Safe to run from several instances at once: on PostgreSQL
        an advisory lock makes the others wait, and they then find nothing to do; on SQLite
        the write lock taken by BEGIN IMMEDIATE does the same."""
        async with _upgrade_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            return await conn.run_sync(_upgrade)

    async def inspect(self) -> Inspection:
        """The schema's revision and whether the bot may write here, read over one connection;
        raises when the database cannot be reached. SQLite's own file checks are made before
        it is opened, so only PostgreSQL is asked about writes and privileges."""
        async with self.engine.connect() as conn:
            revision = await conn.run_sync(_current)
            if self.dialect != "postgresql":
                return Inspection(revision, read_only=False, may_create_tables=True)
            read_only = await conn.scalar(text("SHOW transaction_read_only"))
            may_create = await conn.scalar(
                text("SELECT has_schema_privilege(current_user, current_schema(), 'CREATE')")
            )
        return Inspection(revision, str(read_only).lower() == "on", bool(may_create))

    _pinging: asyncio.Task[bool] | None = None  # the ping under way, if one is

    async def ping(self) -> bool:
        """Whether the database answers within PING_TIMEOUT seconds, the wait for a pooled
        connection included (SQLite has one, and a lock held by another process is waited
        for up to busy_timeout, 10 s). A ping that has not answered in time goes on in the
        background; the next pings wait for that one instead of starting more."""
        if self._pinging is None or self._pinging.done():
            self._pinging = asyncio.create_task(self._select_one())
        try:
            return await asyncio.wait_for(asyncio.shield(self._pinging), PING_TIMEOUT)
        except TimeoutError:
            return False

    async def _select_one(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not reachable" for /healthz
            return False
        return True

    async def dispose(self) -> None:
        """Close every connection, a ping still waiting for one included."""
        pinging, self._pinging = self._pinging, None
        if pinging is not None and not pinging.done():
            pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinging
        await self.engine.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL + NORMAL: durable across process crashes; a power cut may lose the last commits.
    # (A team that needs more runs PostgreSQL.)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """SQLite's single-writer mode: every transaction takes the write lock when it starts, so
    a read-then-write (a compare-and-set, a lease claim, a migration) can never interleave with
    another writer's; others wait up to busy_timeout instead of failing half-way."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = ["AsyncSession", "Database", "alembic_config"]
