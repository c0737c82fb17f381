"""Start-up as an operator meets it: the real process, its exit code, and at most five lines
that name the variable or resource at fault and never a secret.

Exit codes: 2 for a setting that is missing, invalid or refused; 3 for something the bot
cannot reach or use (its database, its port). Slack or VPS.org out of reach is a warning, and
the bot serves anyway."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from bot.console import WebFault
from bot.domain.errors import Unavailable
from bot.serving import serving
from bot.slack.errors import log_error
from bot.storage.database import head_revision
from bot.vpsorg.simulator import Simulator
from tests.fakes.slack import SlackStandIn
from tests.test_cli import ATTEMPTS, ROOT, _env, _free_port

SLACK_SECRET = "xoxb-startup-secret-1234"
SIGNING = "startup-signing-secret-5678"
VPS_SECRET = "startup-vps-secret-9012"
DB_PASSWORD = "pg-pass-3456"
SECRETS = (SLACK_SECRET, SIGNING, VPS_SECRET, DB_PASSWORD)
NOBODY = "http://127.0.0.1:9"  # nothing listens on the discard port


@dataclass
class Ran:
    code: int | None
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.strip().splitlines()

    def one_line(self, code: int, *names: str) -> str:
        """The process stopped with `code` and one line naming each of `names`, no secret
        and no traceback."""
        assert self.code == code, self.output
        assert len(self.lines) <= 5, self.output
        assert "Traceback" not in self.output
        for secret in SECRETS:
            assert secret not in self.output
        [line] = [text for text in self.lines if text.startswith("vpsbot:")]
        for name in names:
            assert name in line, line
        return line


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    values = {
        "SLACK_BOT_TOKEN": SLACK_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING,
        "VPS_API_TOKEN": VPS_SECRET,
        "SLACK_API_URL": f"{NOBODY}/api/",
        "VPS_API_URL": f"{NOBODY}/api/v1",
        "PORT": str(_free_port()),
    }
    return _env(tmp_path, **(values | extra))


async def run(env: dict[str, str], *args: str, wait: float = 90) -> Ran:
    """`python -m bot <args>` until it exits by itself."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), wait)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Ran(process.returncode, output.decode())


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process listens on, on every address."""
    with closing(socket.socket()) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - as the bot binds it
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound and never listening: connections to it are refused."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- configuration: exit 2, every problem in one line ---------------------------------------------


async def test_every_missing_or_invalid_variable_is_named_in_one_run(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        PORT="http",
        VPSBOT_REQUIRED_APPROVALS=VPS_SECRET,  # a secret pasted into the wrong variable
        LOG_LEVEL="verbose",
        VPSBOT_APROVERS="U1",  # a typo would leave approvals open to anyone
    )
    line = (await run(env, "serve")).one_line(
        2,
        "PORT is invalid",
        "VPSBOT_REQUIRED_APPROVALS is invalid",
        "LOG_LEVEL is invalid",
        "VPSBOT_APROVERS is not a setting vpsbot knows (did you mean VPSBOT_APPROVERS?)",
        "SLACK_BOT_TOKEN is required",
        "SLACK_SIGNING_SECRET is required",
        "VPS_API_TOKEN is required",
    )
    assert line.startswith("vpsbot: configuration error: ")


async def test_a_bad_log_level_is_a_configuration_error_not_a_traceback(tmp_path: Path) -> None:
    line = (await run(environment(tmp_path, LOG_LEVEL="verbose"), "serve")).one_line(2, "LOG_LEVEL")
    assert "DEBUG, INFO, WARNING, ERROR" in line  # what it takes


# -- the database: exit 3 when unreachable, 2 when it refuses the settings ------------------------


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["worker"]])
async def test_an_unreachable_postgresql_is_one_line_without_its_password(
    tmp_path: Path, refusing_port: int, command: list[str]
) -> None:
    url = f"postgresql://vpsbot:{DB_PASSWORD}@127.0.0.1:{refusing_port}/vpsbot"
    line = (await run(environment(tmp_path, DATABASE_URL=url), *command)).one_line(
        3, "DATABASE_URL", "connection refused", f"vpsbot:***@127.0.0.1:{refusing_port}"
    )
    assert "running" in line  # what to do


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="needs the PostgreSQL server (TEST_DATABASE_URL)",
)
async def test_a_postgresql_that_refuses_the_user_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    server = os.environ["TEST_DATABASE_URL"].split("@", 1)[1].split("/", 1)[0]
    url = f"postgresql://nobody_here:{DB_PASSWORD}@{server}/test"
    line = (await run(environment(tmp_path, DATABASE_URL=url), "db", "upgrade")).one_line(
        2, "DATABASE_URL", "nobody_here"
    )
    assert "refused the connection" in line


async def test_a_password_with_an_unescaped_at_sign_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql://vpsbot:pg-pass@3456@127.0.0.1:1/vpsbot"  # the password holds an @
    for command in (["db", "upgrade"], ["serve"]):
        line = (await run(environment(tmp_path, DATABASE_URL=url), *command)).one_line(
            2, "DATABASE_URL", "%40"
        )
        assert "pg-pass" not in line
        assert "3456" not in line


async def test_a_schema_from_a_newer_vpsbot_is_refused_not_called_unreachable(
    tmp_path: Path,
) -> None:
    database = tmp_path / "cli.db"
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('0099')")
        connection.commit()
    for command in (["db", "upgrade"], ["serve"]):
        line = (await run(environment(tmp_path), *command)).one_line(2, "0099")
        assert "a newer version upgraded it" in line
    checked = await run(environment(tmp_path), "check")
    assert checked.code != 0
    [row] = [line for line in checked.lines if line.startswith("database")]
    assert row.split()[1] == "FAILED"
    assert "schema at 0099, which this version of vpsbot does not know" in row


async def test_a_file_that_is_not_a_database_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "cli.db").write_text("notes, not a database\n")
    line = (await run(environment(tmp_path), "db", "upgrade")).one_line(2, "DATABASE_URL")
    assert "is not a SQLite database" in line
    assert (tmp_path / "cli.db").read_text() == "notes, not a database\n"  # left as it was


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="needs the PostgreSQL server (TEST_DATABASE_URL)",
)
async def test_a_postgresql_user_that_may_not_create_tables_is_told_so(tmp_path: Path) -> None:
    admin_url = os.environ["TEST_DATABASE_URL"]
    server = admin_url.split("@", 1)[1].split("/", 1)[0]
    name = f"vpsbot_nocreate_{os.getpid()}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.execute(f"CREATE ROLE {name} LOGIN")
        await admin.execute(f"CREATE DATABASE {name}")
        target = await asyncpg.connect(admin_url.rsplit("/", 1)[0] + f"/{name}")
        try:
            await target.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await target.close()
        url = f"postgresql://{name}@{server}/{name}"
        for command in (["db", "upgrade"], ["check"]):
            ran = await run(environment(tmp_path, DATABASE_URL=url), *command)
            assert ran.code == 2 if command == ["db", "upgrade"] else ran.code != 0
            assert "may not create the bot's tables" in ran.output
            assert "no CREATE on its schema" in ran.output
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()


# -- the port: exit 3, naming PORT ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "socket"])
async def test_a_port_in_use_is_one_line_naming_port(
    tmp_path: Path, taken_port: int, command: str
) -> None:
    env = environment(tmp_path, PORT=str(taken_port), SLACK_APP_TOKEN="xapp-startup-secret")
    line = (await run(env, command)).one_line(3, f"PORT {taken_port} is already in use")
    assert "free port" in line
    assert not (tmp_path / "cli.db").exists()  # nothing was started before the port was had


# -- credentials: checked at start ----------------------------------------------------------------


@asynccontextmanager
async def peers(
    slack_refuses: str | None = None,
) -> AsyncIterator[tuple[Simulator, SlackStandIn, str, str]]:
    """The simulator (token VPS_SECRET) and the fake Slack, on loopback: their URLs."""
    sim = Simulator(token=VPS_SECRET)
    slack = SlackStandIn()
    if slack_refuses:
        slack.faults.append(
            WebFault("auth.test", status=200, body={"ok": False, "error": slack_refuses}, times=9)
        )
    async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
        slack.base_url = slack_url
        yield sim, slack, f"{slack_url}/api/", f"{vps_url}/api/v1"


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
async def test_a_refused_slack_token_stops_the_bot_naming_the_variable(
    tmp_path: Path, code: str
) -> None:
    async with peers(slack_refuses=code) as (_, _, slack_url, vps_url):
        env = environment(tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url)
        line = (await run(env, "serve")).one_line(2, "SLACK_BOT_TOKEN", code)
    assert "Bot User OAuth Token" in line  # where to find the right one


async def test_a_refused_vps_token_stops_the_bot_naming_the_variable(tmp_path: Path) -> None:
    async with peers() as (sim, _, slack_url, vps_url):
        env = environment(
            tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url, VPS_API_TOKEN="wrong-token"
        )
        (await run(env, "serve")).one_line(2, "VPS_API_TOKEN", "401")
        assert [(c.method, c.path, c.authorization) for c in sim.calls] == [
            ("GET", "/servers/", "Bearer wrong-token")
        ]


async def _healthz(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return answer.status_code == 200


async def serve_until_healthy(
    tmp_path: Path, command: str = "serve", scraped: list[str] | None = None, **extra: str
) -> tuple[bool, str]:
    """`python -m bot <command>` until /healthz answers 200 (True) or it stops (False), then
    SIGTERM: whether it served, and all it printed. Another port when $PORT was taken. With
    `scraped`, what `GET /metrics` answered once it was healthy is appended to it."""
    for _ in range(ATTEMPTS):
        env = environment(tmp_path, **extra)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", command, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        healthy = False
        try:
            for _ in range(1200):  # a minute on a loaded machine
                healthy = await _healthz(int(env["PORT"]))
                if healthy or process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            if healthy and scraped is not None:
                async with httpx.AsyncClient() as http:
                    answer = await http.get(f"http://127.0.0.1:{env['PORT']}/metrics", timeout=5)
                scraped.append(answer.text)
        finally:
            if process.returncode is None:
                process.terminate()
            output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
        if "is already in use" not in output:
            return healthy, output
    raise AssertionError("no free port found")


async def test_unreachable_slack_and_vps_are_warnings_and_the_bot_serves(tmp_path: Path) -> None:
    healthy, output = await serve_until_healthy(tmp_path)
    assert healthy, output
    warnings = [line for line in output.splitlines() if "level=WARNING" in line]
    assert any("cannot reach Slack at SLACK_API_URL" in line for line in warnings), output
    assert any("VPS.org at VPS_API_URL" in line for line in warnings), output
    assert "token` will be unused" not in output  # bolt's warning, not for an operator
    assert "A retry handler found" not in output  # slack_sdk's chatter at INFO
    for secret in SECRETS:
        assert secret not in output


async def test_a_bot_with_good_credentials_starts_without_a_single_warning(
    tmp_path: Path,
) -> None:
    async with peers() as (sim, slack, slack_url, vps_url):
        healthy, output = await serve_until_healthy(
            tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url, VPSBOT_WORK_PROCESS="true"
        )  # its work process says nothing either
        assert healthy, output
        assert [c.method for c in slack.calls][:1] == ["auth.test"]
        assert ("GET", "/servers/") in [(c.method, c.path) for c in sim.calls]
    assert "level=WARNING" not in output, output
    assert "level=ERROR" not in output, output
    assert f"schema upgraded from nothing to {head_revision()}" in output


# -- python -m bot check --------------------------------------------------------------------------


async def test_check_prints_a_table_and_passes_only_when_everything_does(tmp_path: Path) -> None:
    async with peers() as (_, _, slack_url, vps_url):
        env = environment(tmp_path, SLACK_API_URL=slack_url, VPS_API_URL=vps_url)
        passed = await run(env, "check")
        assert passed.code == 0, passed.output
        rows = {line.split()[0]: line.split()[1] for line in passed.lines}
        assert rows == {
            "configuration": "ok",
            "PORT": "ok",
            "database": "ok",
            "Slack": "ok",
            "VPS.org": "ok",
        }
        assert "2 servers" in passed.output
        assert f"no file yet; the bot creates it and its schema ({head_revision()})" in (
            passed.output
        )
        assert not (tmp_path / "cli.db").exists()  # `check` changes nothing

        refused = await run(env | {"VPS_API_TOKEN": "wrong-token"}, "check")
        assert refused.code == 2
        assert [line.split()[:2] for line in refused.lines][-1] == ["VPS.org", "FAILED"]
        assert "VPS_API_TOKEN" in refused.output

    unreachable = await run(env, "check")  # the peers are gone
    assert unreachable.code == 3
    failed = {line.split()[0] for line in unreachable.lines if "FAILED" in line}
    assert failed == {"Slack", "VPS.org"}
    for secret in SECRETS:
        assert secret not in passed.output + refused.output + unreachable.output


async def test_check_says_when_port_is_taken(tmp_path: Path, taken_port: int) -> None:
    ran = await run(environment(tmp_path, PORT=str(taken_port)), "check")
    assert ran.code == 3
    [row] = [line for line in ran.lines if line.startswith("PORT")]
    assert row.split()[1] == "FAILED"
    assert f"PORT {taken_port} is already in use" in row


async def test_check_names_the_missing_configuration(tmp_path: Path) -> None:
    ran = await run(_env(tmp_path, PORT=str(_free_port())), "check")
    assert ran.code == 2
    assert ran.lines[0] == (
        "configuration  FAILED  SLACK_BOT_TOKEN is required but not set; "
        "VPS_API_TOKEN is required but not set"
    )
    # what does not read the missing variables is still checked
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in ran.lines[1:]}
    assert rows["Slack"] == ["-", "not checked: fix SLACK_BOT_TOKEN first"]
    assert rows["VPS.org"] == ["-", "not checked: fix VPS_API_TOKEN first"]
    assert rows["PORT"][0] == "ok"
    assert rows["database"][0] == "ok"


# -- the log says what failed ----------------------------------------------------------------


def test_a_vps_error_in_the_log_says_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        log_error(Unavailable("could not connect to VPS.org", method="GET", path="/servers/"))
    assert caplog.messages == [
        "VPS.org GET /servers/ failed: could not connect to VPS.org (check VPS_API_URL)"
    ]


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_metrics_are_served_beside_healthz(tmp_path: Path, command: str) -> None:
    """`serve` on its port, and `worker` (which has no Slack endpoint) on $PORT too."""
    scraped: list[str] = []
    async with peers() as (_, _, slack_url, vps_url):
        healthy, output = await serve_until_healthy(
            tmp_path, command, scraped, SLACK_API_URL=slack_url, VPS_API_URL=vps_url,
            VPSBOT_WORK_PROCESS="true",  # serve's counters and its work process's, together
        )  # fmt: skip
    assert healthy, output
    [text] = scraped
    assert 'vpsbot_requests{status="pending_approval"} 0.0' in text
    assert "vpsbot_outbox_backlog 0.0" in text
    # (a labelled counter shows once counted: serve shares its work process's in
    # prometheus-client's multiprocess mode, which has no sample before the first)
    assert "# TYPE vpsbot_tracker_vpsorg_calls_total counter" in text
    for secret in (SLACK_SECRET, SIGNING, VPS_SECRET):
        assert secret not in text
