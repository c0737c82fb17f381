"""Command line: `python -m bot serve | socket | worker | demo | simulator | db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from bot.config import ConfigError, Settings, load_settings


def _logging() -> None:
    from bot.logs import configure

    configure()


def serve(settings: Settings) -> None:
    import uvicorn

    from bot.bootstrap import build

    settings.require_for("serve")
    bot = build(settings)
    uvicorn.run(
        bot.web,
        host="0.0.0.0",  # noqa: S104 - a server: Slack must reach it
        port=settings.port,
        log_config=None,  # keep our structured lines
        timeout_graceful_shutdown=30,
    )


async def _stop_signal() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so that the caller can stop in good order."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def socket_mode(settings: Settings) -> None:
    """Socket Mode (behind a firewall): the bot opens a WebSocket to Slack; nothing calls in."""
    from bot.bootstrap import run_socket_mode

    settings.require_for("socket")

    async def run() -> None:
        await run_socket_mode(settings, await _stop_signal())

    asyncio.run(run())


def worker(settings: Settings) -> None:
    """The tracker and the outbox sender alone, for a team that runs them as their own process."""
    from bot.bootstrap import build

    settings.require_for("worker")

    async def run() -> None:
        stopping = await _stop_signal()
        bot = build(settings)
        await bot.start()
        try:
            await stopping.wait()
        finally:
            await bot.stop()

    asyncio.run(run())


def demo(settings: Settings) -> None:
    from bot.console import run_demo

    asyncio.run(run_demo(settings))


def simulator(port: int, token: str | None) -> None:
    import uvicorn

    from bot.vpsorg.simulator import Simulator

    uvicorn.run(Simulator(token=token).app, host="127.0.0.1", port=port, log_level="info")


def db_upgrade(settings: Settings) -> None:
    from bot.storage.database import Database

    async def upgrade() -> None:
        database = Database(settings.async_database_url)
        try:
            await database.upgrade()
        finally:
            await database.dispose()

    asyncio.run(upgrade())
    print("database schema is up to date")


def _sqlite_unwritable(database_url: str) -> str | None:
    """For a SQLite DATABASE_URL, why the bot cannot write its database (a read-only file,
    or a directory it cannot create the file, journal or WAL in), or None. Checked before the
    bot starts, with a write that is rolled back, so that this is one line, not a traceback."""
    import sqlite3

    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = url.database
    if not url.drivername.startswith("sqlite") or not path or path == ":memory:" or url.query:
        return None
    try:
        connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            connection.execute(f"PRAGMA user_version = {int(version)}")  # a write, rolled back
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as error:
        return (
            f"vpsbot: cannot write the SQLite database {path} (DATABASE_URL): {error}. "
            "Make the file and its directory writable by the user the bot runs as, "
            "or set DATABASE_URL to a writable place."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve Slack over HTTP on $PORT")
    commands.add_parser("socket", help="connect to Slack over Socket Mode (SLACK_APP_TOKEN)")
    commands.add_parser("worker", help="only follow operations and deliver messages")
    commands.add_parser("demo", help="the whole bot in this terminal (simulator + SQLite)")
    sim = commands.add_parser("simulator", help="serve the VPS.org simulator alone")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--token", default=os.environ.get("VPS_API_TOKEN"))
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    args = parser.parse_args(argv)

    _logging()
    try:
        if args.command == "simulator":
            simulator(args.port, args.token)
            return 0
        settings = load_settings()
        problem = _sqlite_unwritable(settings.database_url)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 3
        if args.command == "serve":
            serve(settings)
        elif args.command == "socket":
            socket_mode(settings)
        elif args.command == "worker":
            worker(settings)
        elif args.command == "demo":
            demo(settings)
        elif args.command == "db":
            db_upgrade(settings)
    except ConfigError as exc:
        print(f"vpsbot: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
