"""Command line: `python -m bot serve | socket | worker | check | demo | simulator | db upgrade |
audit`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator

from pydantic import ValidationError

from bot.config import EXIT_CONFIG, ConfigError, Mode, Settings, StartupError, load_settings

log = logging.getLogger("bot")


def _settings(mode: Mode | None) -> Settings:
    """The settings, every problem with them reported at once; logging at their level."""
    from bot.logs import configure

    settings = load_settings(mode)
    configure(settings.log_level, settings.log_format)
    return settings


@contextlib.contextmanager
def _shared_metrics(settings: Settings) -> Iterator[None]:
    """With a work process, its counters and this process's are one set for `/metrics`:
    prometheus-client's multiprocess mode, in a directory of this run's own (named before
    prometheus_client is imported, inherited by the work process, removed at exit)."""
    chosen = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_client" in sys.modules
    if not settings.vpsbot_work_process or chosen:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vpsbot-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def serve(settings: Settings) -> None:
    """HTTP: Slack calls `/slack/events` on $PORT. The port is taken and the database, Slack
    and VPS.org are checked before the first connection is accepted."""
    import uvicorn

    from bot.bootstrap import checked
    from bot.preflight import bind_port

    async def run() -> None:
        sock = bind_port(settings.port)
        try:
            bot = await checked(settings, hand_off=True)
            server = uvicorn.Server(
                uvicorn.Config(
                    bot.web,
                    lifespan="on",
                    log_config=None,  # keep our structured lines
                    timeout_graceful_shutdown=30,
                )
            )
            try:
                await bot.start()
                gc.freeze()  # what start-up made lives as long as the process: never scanned
                await server.serve(sockets=[sock])
            finally:
                await bot.stop()
        finally:
            sock.close()

    asyncio.run(run())


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

    async def run() -> None:
        await run_socket_mode(settings, await _stop_signal())

    asyncio.run(run())


def worker(settings: Settings) -> None:
    """The tracker and the outbox sender alone, for a team that runs them as their own process;
    `GET /healthz` and `GET /metrics` on `$PORT`."""
    from bot.bootstrap import run_worker_process

    async def run() -> None:
        await run_worker_process(settings, await _stop_signal())

    asyncio.run(run())


def work(settings: Settings, fd: int, front: int) -> None:
    """The work process of `serve` or `socket` (started by them, never by hand): the work after
    each ack, handed over on the socket `fd`, and the tracker and outbox sender."""
    from bot.bootstrap import run_work_process

    asyncio.run(run_work_process(settings, fd, front))


def demo(settings: Settings, database_url: str | None) -> None:
    """The demo keeps a database of its own (a temporary file unless `database_url`), never
    the one `serve` uses."""
    from bot.console import run_demo
    from bot.preflight import check_database
    from bot.storage.database import Database

    async def run() -> None:
        if database_url is not None:  # a database of the operator's: one line if it is not usable
            chosen = load_settings(None, database_url=database_url)
            database = Database(chosen.async_database_url)
            try:
                finding = await check_database(chosen, database, upgrade=True)
            finally:
                await database.dispose()
            if not finding.ok:
                raise finding.error()
        await run_demo(settings, database_url=database_url)

    asyncio.run(run())


def simulator(port: int, token: str | None, page_size: int) -> None:
    import uvicorn

    from bot.vpsorg.simulator import Simulator

    app = Simulator(token=token, page_size=page_size).app
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")


def db_upgrade(settings: Settings) -> None:
    """Bring the schema up to date and say what was done, on which database."""
    from bot.preflight import check_database
    from bot.storage.database import Database

    async def upgrade() -> str:
        database = Database(settings.async_database_url)
        try:
            finding = await check_database(settings, database, upgrade=True)
        finally:
            await database.dispose()
        if not finding.ok:
            raise finding.error()
        return finding.detail

    print(f"database {asyncio.run(upgrade())}")


def audit(settings: Settings, since: str, server: str | None, form: str) -> int:
    """The audit trail since a day (UTC midnight), as CSV or JSON lines on stdout: the rows
    `/vpsbot audit` uploads, for auditors without Slack. Reads only; the schema must be there."""
    from datetime import UTC, datetime

    from bot.domain.operations import parse_id
    from bot.preflight import check_database
    from bot.services import reports
    from bot.storage.database import Database, head_revision
    from bot.storage.unit_of_work import SqlUnitOfWork

    try:
        start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        print(f"vpsbot: --since {since[:40]!r} is not a date: expected YYYY-MM-DD", file=sys.stderr)
        return 2
    server_id = parse_id(server) if server is not None else None
    if server is not None and server_id is None:
        print(f"vpsbot: --server {server[:40]!r} is not a server id (a number)", file=sys.stderr)
        return 2

    async def read() -> list[reports.AuditRow]:
        database = Database(settings.async_database_url)
        try:
            finding = await check_database(settings, database, upgrade=False)
            if not finding.ok:
                raise finding.error()
            if not finding.detail.endswith(f"schema at {head_revision()} (current)"):
                raise StartupError(f"nothing to export: {finding.detail}")  # no file, no schema
            return await reports.audit_rows(
                lambda: SqlUnitOfWork(database.sessions), since=start, server_id=server_id
            )
        finally:
            await database.dispose()

    rows = asyncio.run(read())
    sys.stdout.write(reports.to_csv(rows) if form == "csv" else reports.to_jsonl(rows))
    sys.stdout.flush()
    return 0


def check() -> int:
    """Every check, as a short table; 0 only when all pass."""
    from bot.preflight import Finding, check_all, table

    broken: list[str] = []
    rows: list[Finding] = []
    try:
        settings = _settings("check")
    except ConfigError as error:
        # still check what the other variables allow, with the broken ones at their defaults
        rows.append(Finding("configuration", "refused", str(error)))
        broken = [problem.split()[0] for problem in error.problems]
        fields = Settings.model_fields
        defaults = {
            name.lower(): fields[name.lower()].default for name in broken if name.lower() in fields
        }
        try:
            settings = Settings(**defaults)
        except ValidationError:  # cannot happen with defaults; say so rather than guess
            print(table(rows))
            return EXIT_CONFIG
    rows.extend(asyncio.run(check_all(settings, broken)))
    print(table(rows))
    return max(row.exit_code for row in rows)


def _one_line(error: BaseException) -> str:
    """An unexpected error in one line: its type and the first line of its message, without
    anything that looks like a URL with credentials."""
    first = (str(error).strip().splitlines() or [""])[0]
    if "://" in first or "token" in first.lower() or "secret" in first.lower():
        first = ""
    return f"{type(error).__name__}: {first[:160]}" if first else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve Slack over HTTP on $PORT")
    commands.add_parser("socket", help="connect to Slack over Socket Mode (SLACK_APP_TOKEN)")
    commands.add_parser("worker", help="only follow operations and deliver messages")
    handed = commands.add_parser("work", help="(started by serve and socket) their work process")
    handed.add_argument("--fd", type=int, required=True, help="the socket requests arrive on")
    handed.add_argument("--front", type=int, required=True, help="the pid of the front")
    commands.add_parser(
        "check", help="check the configuration, database, Slack and VPS.org, then exit"
    )
    demo_command = commands.add_parser(
        "demo", help="the whole bot in this terminal (simulator, a database of its own)"
    )
    demo_command.add_argument(
        "--database",
        metavar="URL",
        help="keep the demo's data in this database (default: a temporary SQLite file)",
    )
    sim = commands.add_parser("simulator", help="serve the VPS.org simulator alone")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--token", default=os.environ.get("VPS_API_TOKEN"))
    sim.add_argument(
        "--page-size", type=int, default=100, help="items a list page holds (default 100)"
    )
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    trail = commands.add_parser(
        "audit", help="write the audit trail since a day to stdout (CSV or JSON lines)"
    )
    trail.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="from this day (UTC)")
    trail.add_argument("--server", metavar="ID", help="only the requests of this server")
    trail.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    args = parser.parse_args(argv)

    from bot.logs import configure

    configure()
    try:
        if args.command == "simulator":
            simulator(args.port, args.token, max(1, args.page_size))
        elif args.command == "check":
            return check()
        elif args.command == "demo":
            demo(_settings(None), args.database)
        elif args.command == "db":
            db_upgrade(_settings(None))
        elif args.command == "audit":
            return audit(_settings(None), args.since, args.server, args.format)
        elif args.command == "serve":
            settings = _settings("serve")
            with _shared_metrics(settings):  # before prometheus_client is imported
                serve(settings)
        elif args.command == "socket":
            settings = _settings("socket")
            with _shared_metrics(settings):
                socket_mode(settings)
        elif args.command == "worker":
            worker(_settings("worker"))
        elif args.command == "work":
            work(_settings("worker"), args.fd, args.front)
    except ConfigError as error:
        print(f"vpsbot: configuration error: {error}", file=sys.stderr)
        return error.exit_code
    except StartupError as error:
        print(f"vpsbot: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.exception("stopped by an unexpected error")
        hint = "" if debug else "; LOG_LEVEL=DEBUG shows the traceback"
        print(f"vpsbot: stopped by an unexpected error ({_one_line(error)}){hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
