"""`python -m bot demo`: the bot in a terminal. In process (`run_demo` with a typed script and a
transcript), and once as the real process (log lines, the working directory)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import console
from bot.config import ConfigError, Settings
from bot.console import database_line, render_text, run_demo
from bot.slack import ids

WAIT = 30.0  # seconds a step waits for what it expects in the transcript
LOG_LINE = re.compile(r"ts=\S+ \S+ level=[A-Z]+ ")


class Transcript(io.StringIO):
    """What the demo prints; a reader in another thread can wait for a text to appear."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
            return written

    def wait_for(self, text: str, timeout: float = WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.getvalue(), timeout)


class Typist(io.StringIO):
    """The demo's stdin: each line is typed once the transcript shows what it waits for."""

    def __init__(
        self,
        transcript: Transcript,
        steps: list[str | tuple[str, str]],
        on_read: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.transcript = transcript
        self.steps = [(None, s) if isinstance(s, str) else s for s in steps]
        self.on_read = on_read

    def readline(self, size: int | None = -1, /) -> str:
        if self.on_read is not None:
            self.on_read()
        if not self.steps:
            return ""  # the end of the input
        wait, line = self.steps.pop(0)
        if wait is not None and not self.transcript.wait_for(wait):
            raise AssertionError(f"never saw {wait!r}:\n{self.transcript.getvalue()}")
        return line + "\n"


async def chat(
    steps: list[str | tuple[str, str]],
    *,
    settings: Settings | None = None,
    database_url: str | None = None,
    on_read: Callable[[], None] | None = None,
) -> str:
    out = Transcript()
    stdin = Typist(out, steps, on_read)
    await run_demo(settings or Settings(), stdin, out, database_url=database_url)
    return out.getvalue()


def after(text: str, transcript: str) -> str:
    """The transcript from the first `text` on."""
    assert text in transcript, transcript
    return transcript[transcript.index(text) :]


# Files are looked at only after the demo has ended: plain blocking calls, kept out of the
# async tests' bodies.
def exists(path: Path) -> bool:
    return path.exists()


def files_in(path: Path) -> list[Path]:
    return sorted(path.iterdir())


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def make_directory(path: Path) -> None:
    path.mkdir()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is tmp_path, with DATABASE_URL's default (./vpsbot.db) unset."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_a_session_reads_as_a_chat(in_tmp: Path) -> None:
    out = await chat(
        [
            "/snapshot list 12345",
            "/snapshot create 12345 before-update Snapshot before update",
            "/snapshot delete 798",
            "press delete 2",
            "/snapshot restore 801 broken update",
            "press approve 3",
            "as U0000BOB",
            "press approve 3",
            "quit",
        ]
    )
    assert "U0000DEMO> /snapshot list 12345\n" in out  # piped input is echoed
    listing = after("[vpsbot · only @U0000DEMO sees this]", out)
    assert "*Snapshots* of *web-server-01* (`12345`): 2 items\n\n*pre-migration" in listing
    assert "· id `801` · ✅ completed" in listing
    assert ":white_check_mark:" not in out
    created = after("[vpsbot · #demo]\n⏳ @U0000DEMO is creating a snapshot `before-update`", out)
    assert "request #1" in created
    card = after("[vpsbot · #demo]\n🗑️ @U0000DEMO wants to delete snapshot", out)
    assert "[ Delete snapshot ] [ Cancel ]   type: press delete|cancel 2" in card
    assert "[vpsbot · #demo, message updated]\n🗑️ @U0000DEMO deleted snapshot" in card
    restore = after("🚨 *Restore requested* by @U0000DEMO", out)
    assert "[ Approve ] [ Deny ] [ Cancel ]   type: press approve|deny|cancel 3" in restore
    assert "[vpsbot · only @U0000DEMO sees this]\n⛔ You asked for this restore" in restore
    assert "U0000DEMO> as U0000BOB\n(now typing as U0000BOB)\nU0000BOB> press approve 3" in out
    assert "[vpsbot · #demo, message updated]\n⏳ Approved by @U0000BOB." in restore
    assert "(no reply" not in out
    assert not LOG_LINE.search(out)
    assert out.rstrip().endswith("bye")
    assert not exists(in_tmp / "vpsbot.db")


async def test_as_takes_only_a_user_id(in_tmp: Path) -> None:
    out = await chat(
        [
            "as bob",
            "as",
            "as u0000bob",
            "as U1",
            "as <@U0000BOB>",
            "/snapshot list 12345",
            "as W0000ANN",
            "/snapshot list 12345",
            "quit",
        ]
    )
    refusal = "`as` takes a Slack user id such as U0000BOB; still typing as U0000DEMO."
    assert out.count(refusal) == 5, out
    assert "U0000DEMO> as bob\n" + refusal + "\nU0000DEMO> " in out
    assert "[vpsbot · only @U0000DEMO sees this]" in out
    assert "(now typing as W0000ANN)\nW0000ANN> /snapshot list 12345" in out
    assert "[vpsbot · only @W0000ANN sees this]" in out
    assert "bob>" not in out


async def test_a_line_not_understood_shows_the_help(in_tmp: Path) -> None:
    out = await chat(["hello", "press approve", "press frobnicate 3", "", "help", "quit"])
    assert out.count("Not understood:") == 3
    assert "Not understood: hello\nType a slash command" in out
    assert "Not understood: press approve\n" in out
    # the start, three lines not understood, and `help`; an empty line is only skipped
    assert out.count(console.DEMO_HELP) == 5
    assert out.rstrip().endswith("bye")


async def test_a_dm_says_whose_it_is(in_tmp: Path) -> None:
    out = await chat(
        [
            "/snapshot restore 801 broken update",
            "as U0000BOB",
            "press deny 1",
            ("[vpsbot · direct message to @U0000DEMO]", "quit"),
        ]
    )
    dm = after("[vpsbot · direct message to @U0000DEMO]\n", out).splitlines()[1]
    assert dm.startswith("⛔ "), dm
    assert "denied" in dm, dm
    assert "@U0000BOB" in dm, dm
    assert "direct message D" not in out


async def test_cancel_presses_the_cancel_of_the_card_shown(in_tmp: Path) -> None:
    out = await chat(["/snapshot restore 801", "press cancel 1", "quit"])
    cancelled = after("[vpsbot · #demo, message updated]\n", out).splitlines()[1]
    assert cancelled.startswith("↩️ @U0000DEMO cancelled the restore"), out


async def test_a_button_the_card_does_not_have_is_named_with_those_it_has(in_tmp: Path) -> None:
    out = await chat(["/snapshot restore 801", "press delete 1", "quit"])
    assert "Request #1's card has no “delete” button; type press approve|deny|cancel 1" in out
    assert "[vpsbot · #demo, message updated]" not in out  # nothing was pressed


async def test_the_demo_keeps_to_a_database_of_its_own(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serving_db = in_tmp / "serve.db"
    settings = Settings(database_url=f"sqlite:///{serving_db}")
    out = await chat(["/snapshot list 12345", "quit"], settings=settings)
    first = out.splitlines()[0]
    found = re.fullmatch(r"vpsbot demo: database sqlite:///(/\S+) \(new, removed at exit\)", first)
    assert found, first
    assert not exists(Path(found.group(1)))  # removed at exit
    assert not exists(serving_db)
    assert not exists(in_tmp / "vpsbot.db")
    assert files_in(in_tmp) == []
    captured = capsys.readouterr()
    assert not LOG_LINE.search(captured.out + captured.err)


async def test_a_database_given_is_used_and_the_log_goes_beside_it(
    in_tmp: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    database = in_tmp / "mine" / "demo.db"
    make_directory(database.parent)
    url = f"sqlite:///{database}"
    out = await chat(["/snapshot list 12345", "quit"], database_url=url)
    log = database.parent / console.LOG_FILE
    assert out.splitlines()[:2] == [
        f"vpsbot demo: database {url}",
        f"vpsbot demo: log lines go to {log}",
    ]
    assert exists(database)
    logged = read(log)
    assert "level=INFO logger=bot.slack" in logged
    assert "installed in Slack workspace T0000DEMO" in logged
    assert not LOG_LINE.search(out)
    captured = capsys.readouterr()
    assert not LOG_LINE.search(captured.out + captured.err)
    # a second demo on the same database: its commands are not taken for replays
    again = await chat(["/snapshot list 12345", "quit"], database_url=url)
    assert "2 items" in again, again


def test_a_password_is_never_shown() -> None:
    line = database_line("postgresql://bot:s3cret@db.example:5432/vpsbot", fresh=False)
    assert line == "vpsbot demo: database postgresql://bot:***@db.example:5432/vpsbot"
    unescaped = database_line("postgresql://bot:s3c@ret@db.example/vpsbot", fresh=False)
    assert "s3c" not in unescaped
    assert "ret" not in unescaped.replace("vpsbot", "")


async def test_an_unusable_database_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="database URL is not usable"):
        await run_demo(Settings(), io.StringIO(), io.StringIO(), database_url="mysql://x/y")


def logging_state() -> list[tuple[str, list[logging.Handler], bool]]:
    """The handlers of the root logger and of uvicorn's, and whether these propagate."""
    loggers = [logging.getLogger(), *map(logging.getLogger, console.UVICORN_LOGGERS)]
    return [(lg.name, lg.handlers[:], lg.propagate) for lg in loggers]


async def test_logging_goes_to_the_file_while_the_demo_runs_and_is_put_back(
    in_tmp: Path,
) -> None:
    seen: list[list[tuple[str, list[logging.Handler], bool]]] = []
    before = logging_state()
    await chat(["quit"], on_read=lambda: seen.append(logging_state()))
    assert logging_state() == before
    (_, root, _), *uvicorn = seen[0]
    assert [type(h) for h in root] == [logging.FileHandler, logging.StreamHandler]
    assert Path(root[0].baseFilename).name == console.LOG_FILE  # type: ignore[attr-defined]
    assert root[1].level == logging.ERROR  # only an error reaches the terminal
    for name, handlers, propagate in uvicorn:
        assert (name, handlers, propagate) == (name, [], True)  # through the root: the file


def test_render_text_for_the_terminal() -> None:
    message = {
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": ":warning: see <#C0000DEMO>"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "<@U0000BOB> &lt;b&gt; 10:18:30"},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://x.y|the docs>"}]},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "action_id": ids.RESTORE_APPROVE,
                        "value": "7",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Cancel"},
                        "action_id": ids.RESTORE_CANCEL,
                        "value": "7",
                    },
                ],
            },
        ]
    }
    assert render_text(message) == (
        "⚠️ see #demo\n"
        "\n"
        "@U0000BOB <b> 10:18:30\n"
        "  the docs (https://x.y)\n"
        "[ Approve ] [ Cancel ]   type: press approve|cancel 7"
    )
    # sent form-encoded, the blocks arrive as JSON text
    assert render_text({"blocks": json.dumps(message["blocks"][:1])}) == "⚠️ see #demo"
    assert render_text({"text": ":unknown_emoji: <!here>"}) == ":unknown_emoji: @here"


# -- the real process -----------------------------------------------------------------------------


class Demo:
    """`python -m bot demo` with its stdin a pipe; its stdout read as it comes."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "demo"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        self.out = Transcript()
        self.err: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._copy, args=(self.process.stdout, self.out.write)),
            threading.Thread(target=self._copy, args=(self.process.stderr, self.err.append)),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _copy(stream: io.TextIOBase, to: Callable[[str], object]) -> None:
        for line in stream:
            to(line)

    def type(self, line: str, after: str | None = None) -> None:
        if after is not None and not self.out.wait_for(after):
            raise AssertionError(f"never saw {after!r}:\n{self.out.getvalue()}{self.err}")
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end(self) -> tuple[int, str, str]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self.readers:
                reader.join(timeout=10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        return code, self.out.getvalue(), "".join(self.err)


def test_the_demo_process_keeps_logs_and_its_database_out_of_the_way(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "VPS_", "VPSBOT_")) and key not in ("DATABASE_URL", "PORT")
    }
    env |= {"LOG_LEVEL": "INFO", "PYTHONIOENCODING": "utf-8"}
    demo = Demo(tmp_path, env)
    try:
        demo.type("/snapshot restore 801 broken update")
        demo.type("as bob", after="type: press approve|deny|cancel 1")
        demo.type("as U0000BOB")
        demo.type("press deny 1", after="(now typing as U0000BOB)")
        demo.type("quit", after="[vpsbot · direct message to @U0000DEMO]")
    finally:
        code, out, err = demo.end()
    assert code == 0, err
    assert "`as` takes a Slack user id such as U0000BOB; still typing as U0000DEMO." in out
    assert "bob>" not in out
    dm = after("[vpsbot · direct message to @U0000DEMO]\n", out).splitlines()[1]
    assert "denied" in dm, dm
    assert "@U0000BOB" in dm, dm
    assert not LOG_LINE.search(out), out
    assert not LOG_LINE.search(err), err
    assert "level=INFO" not in out + err
    assert "Uvicorn" not in out + err
    assert "INFO:" not in out + err
    assert out.rstrip().endswith("bye")
    # no ./vpsbot.db (DATABASE_URL's default, the one `serve` uses), nothing left in the cwd
    assert files_in(tmp_path) == []
    log = re.search(r"^vpsbot demo: log lines go to (\S+) \(removed at exit\)$", out, re.M)
    assert log, out
    assert not Path(log.group(1)).exists()
