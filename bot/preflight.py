"""What the bot checks before it starts, and `python -m bot check`.

Each check gives one `Finding`: a line that names the variable or resource at fault and what
to do about it, never a secret. A refused credential or a bad setting is fatal (exit 2); a
database or port that cannot be had is fatal too (exit 3); Slack or VPS.org out of reach is
only a warning when serving: a VPS.org outage must not stop the bot from saying so in Slack.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sqlite3
from collections.abc import Collection, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import make_url

from bot.config import (
    EXIT_CONFIG,
    EXIT_UNREACHABLE,
    ConfigError,
    Settings,
    Unreachable,
    reveal,
)
from bot.domain.errors import NotFound, Unauthorized, VpsApiError
from bot.slack import web_client
from bot.slack.notifier import is_retryable, slack_error_code
from bot.storage.database import Database, head_revision, known_revision
from bot.vpsorg.client import VpsClient, httpx_timeout

log = logging.getLogger(__name__)

DATABASE_TIMEOUT = 15.0  # seconds to connect to the database and read its revision
PEER_TIMEOUT = 15.0  # seconds for auth.test or the VPS.org read, retries included

Verdict = Literal["ok", "refused", "unreachable", "skipped"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result: `detail` is a single line, safe to print."""

    name: str
    verdict: Verdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def exit_code(self) -> int:
        codes = {"ok": 0, "skipped": 0, "refused": EXIT_CONFIG, "unreachable": EXIT_UNREACHABLE}
        return codes[self.verdict]

    def error(self) -> ConfigError | Unreachable:
        return ConfigError(self.detail) if self.verdict == "refused" else Unreachable(self.detail)


def shown(database_url: str) -> str:
    """The database URL as it may be printed: the password masked, all of it even when it
    holds an unescaped `@` (which the URL parser takes for the end of the password)."""
    try:
        url = make_url(database_url)
        if url.host and "@" in url.host:
            url = url.set(host=url.host.rsplit("@", 1)[-1])
        hidden = {key: "***" for key in url.query if key.lower() in SECRET_PARAMETERS}
        return url.update_query_dict(hidden).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: print nothing of it
        return "(DATABASE_URL)"


# query parameters of a database URL that carry a secret (libpq / asyncpg spellings)
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "passfile"})


def _scrub(text: str, settings: Settings) -> str:
    """One line of `text`, with every secret the settings hold masked."""
    line = " ".join(text.split())
    url = make_url(settings.database_url)
    in_query = [str(v) for k, v in url.query.items() if k.lower() in SECRET_PARAMETERS]
    secrets = [
        *in_query,
        reveal(settings.slack_bot_token),
        reveal(settings.slack_signing_secret),
        reveal(settings.slack_app_token),
        reveal(settings.vps_api_token),
        str(url.password or ""),
    ]
    for secret in secrets:
        if len(secret) >= 4:
            line = line.replace(secret, "***")
    return line[:200]


# -- the port ----------------------------------------------------------------------------------


def bind_port(port: int, host: str = "0.0.0.0") -> socket.socket:  # noqa: S104 - a server
    """The listening socket for $PORT, bound now, so that a port in use is one clear line."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise Unreachable(
                f"PORT {port} is already in use by another process: stop that process, or set "
                "PORT to a free port"
            ) from None
        if error.errno == errno.EACCES:
            raise ConfigError(
                f"PORT {port} needs privileges this user does not have: set PORT to 1024 or above"
            ) from None
        raise Unreachable(f"PORT {port} cannot be used ({error.strerror})") from None
    return sock


# -- the database ------------------------------------------------------------------------------


def _sqlite_path(settings: Settings) -> str | None:
    """The file of a SQLite database (None: another database, or one in memory)."""
    url = make_url(settings.database_url)
    path = url.database
    if not url.drivername.startswith("sqlite") or not path or path == ":memory:" or url.query:
        return None
    return path


def _no_file_yet(settings: Settings, head: str) -> Finding | None:
    """For `check` (which makes nothing), a SQLite database whose file does not exist yet:
    whether the bot can create it when it starts. None: another case."""
    path = _sqlite_path(settings)
    if path is None or os.path.exists(path):
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        return Finding(
            "database",
            "unreachable",
            f"cannot create the SQLite database {path} (DATABASE_URL): {folder} is not writable. "
            "Make it writable by the user the bot runs as, or set DATABASE_URL elsewhere",
        )
    return Finding(
        "database",
        "ok",
        f"{shown(settings.database_url)}: no file yet; the bot creates it and its schema ({head}) "
        "when it starts",
    )


def _sqlite_unwritable(settings: Settings) -> Finding | None:
    """For a SQLite database, why the bot cannot write it (a read-only file, or a directory it
    cannot create the file, journal or WAL in), or None. Tried with a write that is rolled
    back."""
    path = _sqlite_path(settings)
    if path is None:
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
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error):  # not a permission problem: another file entirely
            return Finding(
                "database",
                "refused",
                f"{path} (DATABASE_URL) is not a SQLite database: point DATABASE_URL at the "
                "bot's database, or at a new file",
            )
        return _unwritable(path, error)
    except sqlite3.Error as error:
        return _unwritable(path, error)
    return None


def _unwritable(path: str, error: sqlite3.Error) -> Finding:
    return Finding(
        "database",
        "unreachable",
        f"cannot write the SQLite database {path} (DATABASE_URL): {error}. Make the file and "
        "its directory writable by the user the bot runs as, or set DATABASE_URL elsewhere",
    )


# asyncpg's refusals that mean the settings are wrong, not that the server is away
_REFUSALS = (
    "InvalidPasswordError",
    "InvalidAuthorizationSpecificationError",
    "InvalidCatalogNameError",
)


def _root(error: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrapping."""
    seen = error
    while True:
        inner = getattr(seen, "orig", None) or seen.__cause__
        if inner is None or inner is seen:
            return seen
        seen = inner


def _database_failure(error: BaseException, settings: Settings) -> Finding:
    where = f"the database {shown(settings.database_url)} (DATABASE_URL)"
    root = _root(error)
    name = type(root).__name__
    if name == "InsufficientPrivilegeError":
        return Finding(
            "database",
            "refused",
            f"the user in DATABASE_URL may not create or change the bot's tables in {where} "
            f"({_scrub(str(root), settings)}): grant it CREATE on the schema, or run "
            "`python -m bot db upgrade` once as a user who may",
        )
    if name in _REFUSALS:
        return Finding(
            "database",
            "refused",
            f"{where} refused the connection: {_scrub(str(root), settings)}. "
            "Fix the user, password or database name in DATABASE_URL",
        )
    if isinstance(root, TimeoutError):
        why = f"no answer within {DATABASE_TIMEOUT:.0f} s"
    elif isinstance(root, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(root, OSError) and root.strerror:
        why = root.strerror
    else:
        why = _scrub(str(root), settings) or name
    return Finding(
        "database",
        "unreachable",
        f"cannot reach {where}: {why}. Check that the database server is running and that "
        "DATABASE_URL names it",
    )


def _schema(before: str | None, after: str | None, head: str, upgraded: bool) -> str:
    if not upgraded:
        if before == head:
            return f"schema at {head} (current)"
        if before is None:
            return f"empty: the bot creates the schema ({head}) when it starts"
        return f"schema at {before}; the bot upgrades it to {head} when it starts"
    if before == after:
        return f"schema already at {after} (current)"
    return f"schema upgraded from {before or 'nothing'} to {after}"


async def check_database(settings: Settings, database: Database, *, upgrade: bool) -> Finding:
    """Can the bot use its database? `upgrade`: bring the schema up to date as well (what the
    bot does at start; safe with several instances), else only read its revision."""
    head = head_revision()
    if not upgrade and (absent := _no_file_yet(settings, head)):
        return absent
    if problem := await asyncio.to_thread(_sqlite_unwritable, settings):
        return problem
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            found = await database.inspect()
            before = after = found.revision
            if before is not None and not known_revision(before):
                return Finding(
                    "database",
                    "refused",
                    f"{shown(settings.database_url)}: schema at {before}, which this version of "
                    "vpsbot does not know (a newer version upgraded it): run that version",
                )
            if found.read_only:
                return Finding(
                    "database",
                    "unreachable",
                    f"the database {shown(settings.database_url)} (DATABASE_URL) takes no writes "
                    "(a standby, or default_transaction_read_only): point DATABASE_URL at the "
                    "primary",
                )
            if before != head and not found.may_create_tables:
                return Finding(
                    "database",
                    "refused",
                    f"the user in DATABASE_URL may not create the bot's tables in "
                    f"{shown(settings.database_url)} (no CREATE on its schema): grant it, or run "
                    "`python -m bot db upgrade` once as a user who may",
                )
            if upgrade:
                before, after = await database.upgrade()
    except Exception as error:
        return _database_failure(error, settings)
    return Finding(
        "database", "ok", f"{shown(settings.database_url)}: {_schema(before, after, head, upgrade)}"
    )


# -- Slack and VPS.org ---------------------------------------------------------------------------


async def check_slack(settings: Settings) -> Finding:
    """auth.test with SLACK_BOT_TOKEN."""
    # one attempt: at start this only warns (the bot asks again with retries as requests come)
    client = web_client(reveal(settings.slack_bot_token), settings.slack_api_url, retries=False)
    where = f"Slack at SLACK_API_URL ({settings.slack_api_url})"
    try:
        async with asyncio.timeout(PEER_TIMEOUT):
            answer = await client.auth_test()
    except SlackApiError as error:
        code = slack_error_code(error) or f"HTTP {error.response.status_code}"
        if is_retryable(error) or not slack_error_code(error):  # no Slack answer (a 404 page…)
            return Finding("Slack", "unreachable", f"{where} is not answering properly ({code})")
        return Finding(
            "Slack",
            "refused",
            f"Slack refused SLACK_BOT_TOKEN ({_scrub(code, settings)}): set it to the app's "
            "Bot User OAuth Token (xoxb-…, on the app's OAuth & Permissions page)",
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return Finding("Slack", "unreachable", f"cannot reach {where}: {type(error).__name__}")
    team = _scrub(str(answer.get("team") or answer.get("team_id") or "?"), settings)
    bot = _scrub(str(answer.get("user") or answer.get("user_id") or "?"), settings)
    return Finding("Slack", "ok", f"workspace {team} as @{bot}")


async def check_vps(settings: Settings) -> Finding:
    """One read of VPS.org with VPS_API_TOKEN."""
    where = f"VPS.org at VPS_API_URL ({settings.vps_api_url})"
    async with VpsClient(
        settings.vps_api_url,
        reveal(settings.vps_api_token),
        timeout=httpx_timeout(min(settings.vpsbot_api_timeout, PEER_TIMEOUT)),
    ) as client:
        try:
            count = await client.probe()
        except Unauthorized:
            return Finding(
                "VPS.org",
                "refused",
                "VPS.org refused VPS_API_TOKEN (HTTP 401): set it to a valid API token from "
                "the VPS.org control panel",
            )
        except NotFound:
            return Finding(
                "VPS.org",
                "refused",
                f"{where} has no /servers/ (HTTP 404): VPS_API_URL should end in /api/v1",
            )
        except VpsApiError as error:
            if error.status == 403:
                return Finding(
                    "VPS.org",
                    "refused",
                    "VPS.org refused VPS_API_TOKEN (HTTP 403): give the token access to the "
                    "servers",
                )
            why = f"HTTP {error.status}" if error.status else error.detail
            return Finding("VPS.org", "unreachable", f"cannot use {where}: {why}")
    servers = f"{count} server{'s' if count != 1 else ''}" if count is not None else "answering"
    return Finding("VPS.org", "ok", f"{settings.vps_api_url}: {servers}")


# -- at start, and `python -m bot check` -----------------------------------------------------------


async def before_start(settings: Settings, *, slack_required: bool = False) -> Database:
    """What `serve`, `socket` and `worker` check before they start: the database (brought up
    to date, and returned for the bot to use), then Slack and VPS.org. Raises StartupError for
    what the bot cannot run without or what is refused; logs a warning for a peer that is out
    of reach, and goes on (but for Slack when `slack_required`: Socket Mode)."""
    database = Database(settings.async_database_url)
    try:
        await _before_start(settings, database, slack_required)
    except BaseException:
        await database.dispose()
        raise
    return database


async def _before_start(settings: Settings, database: Database, slack_required: bool) -> None:
    finding = await check_database(settings, database, upgrade=True)
    if not finding.ok:
        raise finding.error()
    log.info("database %s", finding.detail)
    for peer in await asyncio.gather(check_slack(settings), check_vps(settings)):
        # Socket Mode has nothing to serve without Slack: there, out of reach is fatal too
        if peer.verdict == "refused" or (peer.name == "Slack" and slack_required and not peer.ok):
            raise peer.error()
        if peer.verdict == "unreachable":
            log.warning("%s; starting anyway, and trying again as requests come", peer.detail)
        else:
            log.info("%s: %s", peer.name, peer.detail)


def _configuration(settings: Settings) -> Finding:
    modes = []
    if reveal(settings.slack_signing_secret):
        modes.append("serve (HTTP)")
    if reveal(settings.slack_app_token):
        modes.append("socket (Socket Mode)")
    if not modes:
        return Finding(
            "configuration",
            "refused",
            "set SLACK_SIGNING_SECRET (for serve) or SLACK_APP_TOKEN (for socket)",
        )
    return Finding("configuration", "ok", "ready for " + " and ".join(modes))


def check_port(settings: Settings) -> Finding:
    """Whether $PORT can be bound now (it is released again at once)."""
    try:
        bind_port(settings.port).close()
    except (ConfigError, Unreachable) as error:
        return Finding(
            "PORT", "refused" if isinstance(error, ConfigError) else "unreachable", str(error)
        )
    return Finding("PORT", "ok", f"{settings.port} is free")


# What each check reads: a check is skipped while one of these is missing or invalid.
DEPENDS_ON = {
    "PORT": ("PORT",),
    "database": ("DATABASE_URL",),
    "Slack": ("SLACK_BOT_TOKEN", "SLACK_API_URL"),
    "VPS.org": ("VPS_API_TOKEN", "VPS_API_URL", "VPSBOT_API_TIMEOUT"),
}


async def _database_check(settings: Settings) -> Finding:
    database = Database(settings.async_database_url)
    try:
        return await check_database(settings, database, upgrade=False)
    finally:
        await database.dispose()


async def check_all(settings: Settings, broken: Collection[str] = ()) -> list[Finding]:
    """Every check, none of them changing anything. `broken`: variables that are missing or
    invalid (the configuration row names them); the checks that read them are skipped, the
    others still run, on `settings` with those variables at their defaults."""

    def blocked(name: str) -> str:
        return next((v for v in DEPENDS_ON[name] if v in broken), "")

    async def run(name: str, check: Coroutine[Any, Any, Finding]) -> Finding:
        if variable := blocked(name):
            check.close()
            return Finding(name, "skipped", f"not checked: fix {variable} first")
        return await check

    async def port() -> Finding:
        return check_port(settings)

    found = await asyncio.gather(
        run("PORT", port()),
        run("database", _database_check(settings)),
        run("Slack", check_slack(settings)),
        run("VPS.org", check_vps(settings)),
    )
    configuration = _configuration(settings) if not broken else None
    return [f for f in (configuration, *found) if f is not None]


def table(findings: list[Finding]) -> str:
    width = max(len(f.name) for f in findings)
    marks = {"ok": "ok", "refused": "FAILED", "unreachable": "FAILED", "skipped": "-"}
    return "\n".join(f"{f.name:<{width}}  {marks[f.verdict]:<6}  {f.detail}" for f in findings)
