"""The command line as a user runs it: `serve`, `demo`, `db upgrade`, and configuration errors."""

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bot.storage.database import head_revision

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "VPS_", "VPSBOT_")) and key not in ("DATABASE_URL", "PORT")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    # one process, as the tests of start-up, crashes and shutdown have always run it (each
    # work process adds seconds to a start); tests/test_work_process.py runs the default
    env["VPSBOT_WORK_PROCESS"] = "false"
    env.update(extra)
    return env


def _free_port() -> int:
    """A port free when asked, for a process that must be told its port ($PORT). Another
    process (another test worker) may take it before that one binds it: such a test starts
    the process again on another port when it stops with `address_in_use`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def address_in_use(output: str) -> bool:
    """The process stopped because its port was taken (uvicorn's or Python's own words)."""
    return "address already in use" in output.lower()


ATTEMPTS = 3  # ports tried before a test gives up on finding a free one


def test_serve_answers_healthz_soon_after_start(tmp_path: Path) -> None:
    for _ in range(ATTEMPTS):
        port = _free_port()
        env = _env(
            tmp_path,
            PORT=str(port),
            SLACK_BOT_TOKEN="xoxb-cli-secret",
            SLACK_SIGNING_SECRET="cli-signing-secret",
            VPS_API_TOKEN="cli-vps-secret",
            VPS_API_URL="http://127.0.0.1:9/api/v1",
            SLACK_API_URL="http://127.0.0.1:9/api/",  # nothing answers: auth.test fails at start
        )
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            status = None
            while time.monotonic() - started < 20 and status != 200 and process.poll() is None:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                except httpx.TransportError:
                    time.sleep(0.05)
            ours = process.poll() is None  # the answer came while it ran, not from another
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=10)
        if not address_in_use(output):
            break
    assert (status, ours) == (200, True), output
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal.
    assert process.returncode in (0, -15), output
    assert "Application shutdown complete." in output
    for secret in ("xoxb-cli-secret", "cli-signing-secret", "cli-vps-secret"):
        assert secret not in output


def test_serve_without_credentials_names_the_missing_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=_env(tmp_path, SLACK_BOT_TOKEN="xoxb-only-this"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    # every missing variable at once, in one line
    assert result.stderr.strip().splitlines() == [
        "vpsbot: configuration error: SLACK_SIGNING_SECRET is required but not set; "
        "VPS_API_TOKEN is required but not set"
    ]
    assert "xoxb-only-this" not in result.stderr


def test_a_bad_value_is_named_without_echoing_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env=_env(tmp_path, VPSBOT_REQUIRED_APPROVALS="s3cr3t"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "VPSBOT_REQUIRED_APPROVALS is invalid" in result.stderr
    assert "s3cr3t" not in result.stderr


def test_db_upgrade_says_what_it_did_on_which_database(tmp_path: Path) -> None:
    def upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"],
            cwd=ROOT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    head = head_revision()
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    first = upgrade()
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"database {database}: schema upgraded from nothing to {head}\n"
    assert (tmp_path / "cli.db").exists()
    again = upgrade()
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"database {database}: schema already at {head} (current)\n"


def test_demo_answers_typed_commands_as_text(tmp_path: Path) -> None:
    typed = "/snapshot list 12345\n/backup list 12345 manual\n/snapshot list <!channel>\nquit\n"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=ROOT,
        env=_env(tmp_path),
        input=typed,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Snapshots* of *web-server-01* (`12345`): 2 items" in out
    assert "*pre-migration-snapshot* · id `801` · ✅ completed" in out
    assert "Manual backups* of *web-server-01*" in out
    assert "not a server id" in out
    assert "(no reply" not in out
    assert out.rstrip().endswith("bye")


def reported_url(
    process: subprocess.Popen[str], wait: float = 20.0
) -> tuple[str, threading.Thread]:
    """The URL uvicorn reports it serves on, read from the process's stderr (given port 0,
    it picks a free port itself). The rest of stderr is read by the thread returned, which
    ends when the process does."""
    assert process.stderr is not None
    stderr = process.stderr
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stderr:
            lines.put(line)
        lines.put("")  # the end

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + wait
    seen = []
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"no URL reported within {wait} s: {seen}") from None
        assert line, f"stopped without reporting a URL: {seen}"
        seen.append(line)
        found = re.search(r"Uvicorn running on (http://\S+)", line)
        if found:
            return found.group(1), reader


def test_simulator_serves_the_api_alone(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "simulator",
            "--port",
            "0",
            "--token",
            "t0k",
            "--page-size",
            "1",
        ],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = None
    try:
        base, reader = reported_url(process)
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", base), base
        url = f"{base}/api/v1/snapshots/?server_id=12345"
        answer = httpx.get(url, headers={"Authorization": "Bearer t0k"}, timeout=5)
        assert answer.status_code == 200
        page = answer.json()
        assert ([s["id"] for s in page["results"]], page["count"]) == ([801], 2)
        following = httpx.get(page["next"], headers={"Authorization": "Bearer t0k"}, timeout=5)
        assert [s["id"] for s in following.json()["results"]] == [798]
        assert httpx.get(url, headers={"Authorization": "Bearer x"}).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
        if reader is not None:
            reader.join(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) made read-only: by its mode and, for root, whom modes do
    not stop, by making it immutable (chattr +i); skipped where neither is possible."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    try:
        if os.geteuid() == 0:
            changed = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            immutable = changed.returncode == 0
            if not immutable:
                pytest.skip("running as root, and chattr +i is not available here")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve"]], ids=["db-upgrade", "serve"])
@pytest.mark.parametrize("where", ["read-only-file", "read-only-directory", "a-directory"])
def test_an_unwritable_sqlite_database_is_one_line_not_a_traceback(
    tmp_path: Path, command: list[str], where: str
) -> None:
    if where == "read-only-file":
        target = tmp_path / "read-only.db"
        target.touch()
        database = target
    elif where == "read-only-directory":
        target = tmp_path / "read-only"
        target.mkdir()
        database = target / "vpsbot.db"
    else:
        target = database = tmp_path / "a-directory"
        target.mkdir()
    env = _env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{database}",
        PORT=str(_free_port()),  # never bound: the check of the database comes first
        SLACK_BOT_TOKEN="xoxb-cli-secret",
        SLACK_SIGNING_SECRET="cli-signing-secret",
        VPS_API_TOKEN="cli-vps-secret",
        VPS_API_URL="http://127.0.0.1:9/api/v1",
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )
    with read_only(target):
        result = subprocess.run(
            [sys.executable, "-m", "bot", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode in (2, 3), result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert line.startswith("vpsbot: cannot write the SQLite database")
    assert str(database) in line
    assert "DATABASE_URL" in line
    assert "writable" in line  # what to do


# -- python -m bot audit --------------------------------------------------------------------------


async def _audited_database(tmp_path: Path) -> None:
    """Two restores (of two servers) and a command, written in March and in May 2025."""
    from datetime import UTC, datetime

    from bot.config import async_database_url
    from bot.domain.lifecycle import Status
    from bot.domain.model import Action, Kind, ServerRef
    from bot.storage.database import Database
    from bot.storage.unit_of_work import SqlUnitOfWork

    database = Database(async_database_url(f"sqlite:///{tmp_path / 'cli.db'}"))
    await database.upgrade()
    march, may = datetime(2025, 3, 4, 9, 15, tzinfo=UTC), datetime(2025, 5, 6, 10, 30, tzinfo=UTC)
    async with SqlUnitOfWork(database.sessions) as uow:
        for at, server, target in (
            (march, ServerRef(12345, "web-server-01"), 801),
            (may, ServerRef(67890, "=db-01"), 802),
        ):
            request = await uow.requests.add(
                kind=Kind.SNAPSHOT,
                action=Action.RESTORE,
                status=Status.PENDING_APPROVAL,
                requester_id="U0000ALIC",
                channel_id="C0000TEST",
                at=at,
                server=server,
                target_id=target,
                reason="bad deploy",
            )
            uow.audit.record(
                "request",
                at=at,
                actor_id="U0000ALIC",
                channel_id="C0000TEST",
                request_id=request.id,
                detail={"action": "restore", "reason": 'bad deploy, "quoted"'},
            )
            uow.audit.record(
                "vote",
                at=at,
                actor_id="U0000BOBB",
                channel_id="C0000TEST",
                request_id=request.id,
                detail={"decision": "approve"},
            )
        uow.audit.record("command", at=may, actor_id="U0000CARL", detail={"outcome": "ok"})
        await uow.commit()
    await database.dispose()


def _audit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_audit_writes_the_trail_since_a_day_as_csv(tmp_path: Path) -> None:
    import csv
    import io
    import json

    await _audited_database(tmp_path)
    result = _audit(tmp_path, "--since", "2025-03-01")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["time"], r["event"], r["actor"], r["server_name"], r["outcome"]) for r in rows] == [
        ("2025-03-04T09:15:00Z", "request", "U0000ALIC", "web-server-01", "restore"),
        ("2025-03-04T09:15:00Z", "vote", "U0000BOBB", "web-server-01", "approve"),
        ("2025-05-06T10:30:00Z", "request", "U0000ALIC", "'=db-01", "restore"),  # no formula
        ("2025-05-06T10:30:00Z", "vote", "U0000BOBB", "'=db-01", "approve"),
        ("2025-05-06T10:30:00Z", "command", "U0000CARL", "", "ok"),
    ]
    assert rows[0]["request"] == "1"
    assert rows[0]["server_id"] == "12345"
    assert (rows[0]["kind"], rows[0]["target_id"]) == ("snapshot", "801")
    assert json.loads(rows[0]["detail"]) == {"action": "restore", "reason": 'bad deploy, "quoted"'}

    later = _audit(tmp_path, "--since", "2025-04-01")
    assert [r["time"][:7] for r in csv.DictReader(io.StringIO(later.stdout))] == ["2025-05"] * 3


async def test_audit_of_one_server_as_json_lines(tmp_path: Path) -> None:
    import json

    await _audited_database(tmp_path)
    result = _audit(tmp_path, "--since", "2025-01-01", "--server", "12345", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["event"], r["actor"], r["server_id"]) for r in lines] == [
        ("request", "U0000ALIC", 12345),
        ("vote", "U0000BOBB", 12345),
    ]
    assert lines[1]["detail"] == {"decision": "approve"}
    assert lines[1]["server_name"] == "web-server-01"


@pytest.mark.parametrize("since", ["2025-13-01", "yesterday", "2025-3-4x"])
def test_audit_with_a_bad_date_is_one_line_and_exit_2(tmp_path: Path, since: str) -> None:
    result = _audit(tmp_path, "--since", since)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("vpsbot: --since")
    assert "expected YYYY-MM-DD" in line
    assert result.stdout == ""


def test_audit_without_a_database_says_so_and_creates_none(tmp_path: Path) -> None:
    result = _audit(tmp_path, "--since", "2025-01-01")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("vpsbot: nothing to export")
    assert "no file yet" in line
    assert not (tmp_path / "cli.db").exists()
