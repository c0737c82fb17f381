"""`python -m bot demo`: the whole bot in a terminal, against the simulator and SQLite.

The same app and services as `serve`: each typed line becomes a slash command (or a button's
click), signed as Slack signs it and POSTed to the bot's own `/slack/events` on loopback. A
small Slack stand-in (also on loopback) receives the bot's replies and Web API calls and prints
them as text. The demo has a database of its own (a temporary SQLite file unless one is given),
never the one `serve` uses, and its log lines go to a file, not into the chat.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import logging
import re
import secrets
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import build
from bot.config import ConfigError, Settings, async_database_url
from bot.logs import FORMAT, RequestIdFilter
from bot.preflight import shown
from bot.serving import serving
from bot.slack import ids
from bot.slack.blocks.requests import DENY_REASON_BLOCK, DENY_REASON_INPUT
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator

DEMO_TEAM = "T0000DEMO"
DEMO_CHANNEL = "C0000DEMO"
DEMO_VPS_TOKEN = "demo-vps-token"  # noqa: S105 - the simulator's, never a real one


@dataclass
class SlackCall:
    """One thing the bot sent to Slack: a Web API method or a response_url post."""

    method: str  # e.g. "chat.postMessage", or "response" for a response_url post
    data: dict[str, Any]
    key: str = ""  # the response_url key, for "response"


@dataclass
class WebFault:
    method: str
    status: int = 429
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"ok": False, "error": "ratelimited"})
    times: int = 1
    channel: str | None = None  # only calls to this channel (None: every call to `method`)

    def matches(self, method: str, data: dict[str, Any]) -> bool:
        if self.method != method or self.times <= 0:
            return False
        return self.channel is None or str(data.get("channel", "")) == self.channel


class SlackStandIn:
    """Answers the Slack Web API and response_url posts on loopback, recording every call."""

    # the workspace (and Enterprise Grid organisation) auth.test names: requests from any
    # other are refused by the bot
    team_id: str = DEMO_TEAM
    enterprise_id: str | None = None

    def __init__(self, on_call: Callable[[SlackCall], None] | None = None) -> None:
        self.calls: list[SlackCall] = []
        self.faults: list[WebFault] = []
        self.groups: dict[str, list[str]] = {}  # user group id -> member ids
        self.direct: dict[str, str] = {}  # DM channel id (conversations.open) -> the user's id
        self.record = True  # False: answer only (long load runs)
        self.on_call = on_call
        self.base_url = ""
        # Socket Mode: answers `apps.connections.open` given the bearer token (tests set it)
        self.open_connection: Callable[[str], dict[str, Any]] | None = None
        self._ts = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["POST", "GET"]),
                Route("/response/{key}", self._response, methods=["POST"]),
            ]
        )

    def response_url(self, key: str) -> str:
        return f"{self.base_url}/response/{key}"

    def api_calls(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def responses(self, key: str | None = None) -> list[SlackCall]:
        return [c for c in self.calls if c.method == "response" and key in (None, c.key)]

    def _record(self, call: SlackCall) -> None:
        if self.record:
            self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    async def _response(self, request: Request) -> Response:
        self._record(
            SlackCall("response", json.loads(await request.body()), request.path_params["key"])
        )
        return Response("ok")

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = (await request.body()).decode()
        if request.headers.get("content-type", "").startswith("application/json"):
            data = json.loads(raw or "{}")
        else:
            data = dict(parse_qsl(raw)) | dict(request.query_params)
        for fault in self.faults:
            if fault.matches(method, data):
                fault.times -= 1
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        self._record(SlackCall(method, data))
        if method == "apps.connections.open" and self.open_connection is not None:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            return JSONResponse(self.open_connection(token))
        return JSONResponse(self._answer(method, data))

    def _answer(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            answer = {"ok": True, "user_id": "U0000BOT1", "bot_id": "B0000BOT1"}
            return answer | {"team_id": self.team_id, "enterprise_id": self.enterprise_id}
        if method == "usergroups.users.list":
            group = str(data.get("usergroup", ""))
            if group not in self.groups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.groups[group]}
        if method == "conversations.open":
            users = str(data.get("users", "U"))
            channel = "D" + users[1:]
            self.direct[channel] = users
            return {"ok": True, "channel": {"id": channel}}
        if method == "chat.getPermalink":
            channel, ts = str(data.get("channel", "")), str(data.get("message_ts", ""))
            link = f"https://demo.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            return {"ok": True, "channel": channel, "permalink": link}
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            ts = data.get("ts") or f"1700000000.{next(self._ts):06d}"
            return {"ok": True, "channel": data.get("channel"), "ts": ts, "message": data}
        return {"ok": True}


# -- rendering for the terminal ------------------------------------------------------------------

_DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
# Slack's own markup: <@U…>, <#C…|name>, <!subteam^S…|@name>, <!here>, <https://…|label>.
# Text from people and from VPS.org reaches the message escaped (&lt; &gt;), never as markup.
_MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")
# The shortcodes the bot's messages use, as the terminal can show them; any other stays as typed.
EMOJI = {
    "arrows_counterclockwise": "🔄",
    "boom": "💥",
    "camera_with_flash": "📸",
    "closed_lock_with_key": "🔐",
    "desktop_computer": "🖥️",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "information_source": "ℹ️",
    "leftwards_arrow_with_hook": "↩️",
    "mag": "🔍",
    "no_entry": "⛔",
    "rotating_light": "🚨",
    "warning": "⚠️",
    "wastebasket": "🗑️",
    "white_check_mark": "✅",
    "x": "❌",
}

# The word typed after `press` for each button the bot's cards carry.
PRESS = {
    ids.DELETE_CONFIRM: "delete",
    ids.DELETE_CANCEL: "cancel",
    ids.RESTORE_APPROVE: "approve",
    ids.RESTORE_DENY: "deny",
    ids.RESTORE_CANCEL: "cancel",
    ids.RESTORE_UNDO: "undo",
}
# `press <word> N` for a request whose card this demo has not shown: the button it most likely
# means (a card shown since the demo started tells which `cancel` it is).
BUTTONS = {
    "delete": ids.DELETE_CONFIRM,
    "cancel": ids.DELETE_CANCEL,
    "approve": ids.RESTORE_APPROVE,
    "deny": ids.RESTORE_DENY,
    "undo": ids.RESTORE_UNDO,
}


def channel_name(channel: str) -> str:
    return "#demo" if channel == DEMO_CHANNEL else f"#{channel}"


def _markup(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if target.startswith("@"):
        return target  # a user: their id, as everywhere else in the demo
    if target.startswith("#"):
        return f"#{label}" if label else channel_name(target[1:])
    if target.startswith("!subteam^"):
        return label or "@" + target.removeprefix("!subteam^")
    if target.startswith("!"):
        return "@" + target[1:]  # <!here>, <!channel>, <!everyone>
    return f"{label} ({target})" if label and label != target else target


def _emoji(match: re.Match[str]) -> str:
    return EMOJI.get(match.group(1), match.group(0))


def _plain(mrkdwn: str) -> str:
    text = _DATE.sub(r"\1", mrkdwn)
    text = _MARKUP.sub(_markup, text)
    text = _EMOJI_CODE.sub(_emoji, text)
    return html.unescape(text)


def _buttons(elements: list[dict[str, Any]]) -> str:
    """A row of buttons, and what to type to press them: `press approve|deny|cancel 7`."""
    labels = " ".join(f"[ {_plain(e.get('text', {}).get('text', ''))} ]" for e in elements)
    words = [PRESS[e["action_id"]] for e in elements if e.get("action_id") in PRESS]
    values = {str(e.get("value", "")) for e in elements if e.get("action_id") in PRESS}
    if not words or len(values) != 1:
        return labels
    return f"{labels}   type: press {'|'.join(words)} {values.pop()}"


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's blocks (sent form-encoded, they arrive as JSON text)."""
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return []
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def render_text(message: dict[str, Any]) -> str:
    """A Block Kit message as terminal text: sections apart by a blank line, as Slack spaces
    them, context indented, buttons as `[ Label ]` with the `press` line that clicks them."""
    lines: list[str] = []
    previous = None
    for block in _blocks(message):
        kind = block.get("type")
        if kind == "section" and previous == "section":
            lines.append("")
        if kind in ("section", "header") and block.get("text"):
            lines.append(_plain(block["text"]["text"]))
        for fieldtext in block.get("fields") or []:
            lines.append(_plain(fieldtext["text"]))
        if kind == "context":
            lines.extend("  " + _plain(e.get("text", "")) for e in block.get("elements", []))
        if kind == "actions":
            lines.append(_buttons(block.get("elements", [])))
        if kind == "divider":
            lines.append("-" * 40)
        previous = kind
    if not lines:
        lines.append(_plain(str(message.get("text", ""))))
    return "\n".join(lines)


# -- the demo ------------------------------------------------------------------------------------

DEMO_HELP = """Type a slash command as you would in Slack, for example:
  /snapshot list 12345
  /snapshot create 12345 before-update Snapshot before update
  /backup list 12345 manual
  /snapshot delete 798              then: press delete <request #>
  /snapshot restore 801 bad update  then: as U0000BOB, press approve <request #>
                                    (a safety snapshot first; once done: press undo <request #>)
`press <button> <request #>` clicks a button (delete, cancel, approve, deny, undo);
`press deny <request #> <reason…>` fills in the Deny form with that reason;
`as <user id>` types as another person (a Slack user id such as U0000BOB);
`help` shows this; `quit` (or Ctrl-D) leaves."""

DEMO_USER = "U0000DEMO"
# A Slack user id: U (or W, on Enterprise Grid) and upper-case letters and digits.
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
AS_REFUSED = "`as` takes a Slack user id such as U0000BOB"
LOG_FILE = "vpsbot-demo.log"
DATABASE_FILE = "vpsbot-demo.db"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
REPLY_WAIT = 20.0  # seconds the prompt waits for the bot's first answer to a line
FORM_WAIT = 3.0  # seconds a press waits for the form it may open (Slack's trigger window)


async def run_demo(
    settings: Settings,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    *,
    database_url: str | None = None,
) -> None:
    """Chat with the bot in this terminal until `quit` or the end of `stdin`.

    The demo keeps to itself: its database is `database_url` or, when None, a new SQLite file
    in a temporary directory removed at exit (never `settings.database_url`, which `serve`
    uses); log lines go to a file (in that directory, or beside a given SQLite file), and
    only a one-line note of an error reaches the terminal."""
    if database_url is not None:
        try:
            async_database_url(database_url)
            make_url(database_url)
        except (ValueError, ArgumentError) as error:
            raise ConfigError(f"the demo's database URL is not usable: {error}") from None
    with tempfile.TemporaryDirectory(prefix="vpsbot-demo-", ignore_cleanup_errors=True) as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / DATABASE_FILE}"
        log_path = _log_path(database_url, Path(scratch))
        print(database_line(url, fresh=database_url is None), file=out)
        removed = " (removed at exit)" if log_path.parent == Path(scratch) else ""
        print(f"vpsbot demo: log lines go to {log_path}{removed}", file=out, flush=True)
        with _logging_to(log_path):
            await _Chat(settings, url, stdin, out).run()


def database_line(url: str, *, fresh: bool) -> str:
    """Which database the demo uses, its password hidden."""
    return f"vpsbot demo: database {shown(url)}{' (new, removed at exit)' if fresh else ''}"


def _log_path(database_url: str | None, scratch: Path) -> Path:
    """Beside a given SQLite file, else in the demo's temporary directory."""
    if database_url is not None:
        url = make_url(database_url)
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            return Path(str(url.database)).absolute().parent / LOG_FILE
    return scratch / LOG_FILE


class _ErrorNote(logging.Formatter):
    """An error as one line on the terminal; the details are in the log file."""

    def __init__(self, log_path: Path) -> None:
        super().__init__()
        self.log_path = log_path

    def format(self, record: logging.LogRecord) -> str:
        message = (record.getMessage().splitlines() or [""])[0]
        return f"(vpsbot {record.levelname.lower()}: {message}; details in {self.log_path})"


@contextmanager
def _logging_to(log_path: Path) -> Iterator[None]:
    """While the demo runs, log lines go to `log_path` (bot.logs' format), errors also to
    stderr as one line, and nothing else reaches the terminal; then the logging set up
    before is put back."""
    root = logging.getLogger()
    before = root.handlers[:]
    uvicorn_before = [
        (lg, lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, UVICORN_LOGGERS)
    ]
    to_file = logging.FileHandler(log_path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(FORMAT))
    to_file.addFilter(RequestIdFilter())
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(_ErrorNote(log_path))
    root.handlers[:] = [to_file, errors]
    _quiet_uvicorn()
    try:
        yield
    finally:
        root.handlers[:] = before
        for lg, handlers, propagate in uvicorn_before:
            lg.handlers[:] = handlers
            lg.propagate = propagate
        to_file.close()


def _quiet_uvicorn() -> None:
    """uvicorn's loggers through the root logger's handlers (the log file), not their own
    streams. Each server `serving` starts configures them again, so this follows each start."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


@asynccontextmanager
async def _served(app: Any, **options: Any) -> AsyncIterator[str]:
    async with serving(app, **options) as url:
        _quiet_uvicorn()
        yield url


class _Chat:
    """The terminal side: typed lines to the bot, and what it sends Slack back as text."""

    def __init__(self, settings: Settings, database_url: str, stdin: TextIO, out: TextIO) -> None:
        self.settings = settings
        self.database_url = database_url
        self.stdin = stdin
        self.out = out
        self.echo = not _isatty(stdin)  # piped input: show what was typed, as a terminal does
        self.user = DEMO_USER
        self.run_id = secrets.token_hex(4)  # a restarted demo's commands are never replays
        self.replied = asyncio.Event()
        self.reading = False  # at the prompt: a message that arrives shows the prompt again
        self.typed_by: dict[str, str] = {}  # response_url key -> who typed that line
        self.cards: dict[str, dict[str, str]] = {}  # request # -> press word -> action id
        self.stand_in = SlackStandIn(on_call=self.show)

    def say(self, text: str = "", end: str = "\n") -> None:
        try:
            print(text, end=end, file=self.out, flush=True)
        except UnicodeEncodeError:  # a terminal that cannot show emoji or curly quotes
            encoding = getattr(self.out, "encoding", None) or "ascii"
            shown = text.encode(encoding, "replace").decode(encoding)
            print(shown, end=end, file=self.out, flush=True)

    def prompt(self) -> None:
        self.say(f"{self.user}> ", end="")

    def where(self, call: SlackCall) -> str:
        """Where Slack would show this message, and to whom."""
        data = call.data
        channel = str(data.get("channel", ""))
        if call.method == "response":
            if data.get("response_type") == "ephemeral":
                return f"only @{self.typed_by.get(call.key, self.user)} sees this"
            return "#demo"
        if call.method == "chat.postEphemeral":
            return f"only @{data.get('user', '?')} sees this, in {channel_name(channel)}"
        if channel.startswith("D"):
            person = self.stand_in.direct.get(channel)
            return f"direct message to @{person}" if person else f"direct message {channel}"
        if data.get("thread_ts"):
            return f"{channel_name(channel)}, in the thread"
        if call.method == "chat.update":
            return f"{channel_name(channel)}, message updated"
        return channel_name(channel)

    def show(self, call: SlackCall) -> None:
        if call.method not in ("response", "chat.postMessage", "chat.update", "chat.postEphemeral"):
            return
        self._remember_buttons(call.data)
        self.say(f"\n[vpsbot · {self.where(call)}]\n{render_text(call.data)}\n")
        if self.reading:
            self.prompt()
        self.replied.set()

    def _remember_buttons(self, message: dict[str, Any]) -> None:
        for block in _blocks(message):
            if block.get("type") == "actions":
                for element in block.get("elements", []):
                    word = PRESS.get(element.get("action_id", ""))
                    if word:
                        card = self.cards.setdefault(str(element.get("value", "")), {})
                        card[word] = element["action_id"]

    async def run(self) -> None:
        simulator = Simulator(token=DEMO_VPS_TOKEN, create_delay=20, restore_delay=30)
        secret = secrets.token_hex(16)
        async with _served(self.stand_in.app) as slack_url, _served(simulator.app) as vps_url:
            self.stand_in.base_url = slack_url
            values = {name: _raw(value) for name, value in self.settings.model_dump().items()}
            values |= {
                "database_url": self.database_url,
                "slack_api_url": f"{slack_url}/api/",
                "slack_bot_token": "xoxb-demo",
                "slack_signing_secret": secret,
                "vps_api_url": f"{vps_url}/api/v1",
                "vps_api_token": DEMO_VPS_TOKEN,
                "vpsbot_poll_interval": min(self.settings.vpsbot_poll_interval, 2.0),
            }
            bot = build(Settings(**values))
            async with (
                _served(bot.web, lifespan="on") as bot_url,
                httpx.AsyncClient(base_url=bot_url) as http,
            ):
                self.say("vpsbot demo: VPS.org simulator and Slack stand-in on loopback.")
                self.say(DEMO_HELP)
                await self._converse(http, secret)
        self.say("bye")  # after the bot stopped: whatever it sent while stopping came before

    async def _converse(self, http: httpx.AsyncClient, secret: str) -> None:
        for number in itertools.count(1):
            self.prompt()
            self.reading = True
            try:
                raw = await _read_line(self.stdin)
            finally:
                self.reading = False
            if not raw:  # the end of the input (Ctrl-D)
                self.say()
                return
            line = raw.strip()
            if self.echo:
                self.say(line)
            if line in ("quit", "exit"):
                return
            if not line:
                continue
            if line == "help":
                self.say(DEMO_HELP)
                continue
            if line == "as" or line.startswith(("as ", "as\t")):
                self.switch_user(line[2:].strip())
                continue
            key = str(number)
            if mismatch := self.no_such_button(line):
                self.say(mismatch)
                continue
            body = _request_body(line, self.user, self.stand_in.response_url(key), self)
            if body is None:
                self.say(f"Not understood: {line[:60]}")
                self.say(DEMO_HELP)
                continue
            self.typed_by[key] = self.user
            self.replied.clear()
            forms = len(self.stand_in.api_calls("views.open"))
            answer = await http.post(
                "/slack/events", content=body, headers=signed_headers(secret, body)
            )
            if answer.status_code != 200:
                self.say(f"(the bot answered HTTP {answer.status_code})")
                continue
            submission = await self._fill_in_form(line, forms)
            if submission is not None:  # Deny asked for a reason: the one typed after the id
                await http.post(
                    "/slack/events", content=submission, headers=signed_headers(secret, submission)
                )
            try:
                await asyncio.wait_for(self.replied.wait(), timeout=REPLY_WAIT)
            except TimeoutError:
                self.say(f"(no reply within {REPLY_WAIT:.0f} s)")

    async def _fill_in_form(self, line: str, before: int) -> str | None:
        """When the press opened a form (Deny asks for a reason), the form body Slack would
        send on its submission, with the words typed after the request id as the reason."""
        if line.split()[:2] != ["press", "deny"]:
            return None
        for _ in range(int(FORM_WAIT / 0.05)):
            opened = self.stand_in.api_calls("views.open")[before:]
            if opened:
                break
            await asyncio.sleep(0.05)
        else:
            return None
        view = opened[0].data.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not isinstance(view, dict):
            return None
        reason = line.split(maxsplit=3)[3] if len(line.split(maxsplit=3)) > 3 else ""
        self.say(f"(the Deny form asks for a reason; sent: {reason or 'none'})")
        payload = {
            "type": "view_submission",
            "team": {"id": DEMO_TEAM, "domain": "demo"},
            "user": {"id": self.user, "username": self.user.lower(), "team_id": DEMO_TEAM},
            "trigger_id": f"demo.{self.run_id}.form{before}",
            "view": {
                "id": f"V{before:08d}",
                "type": "modal",
                "callback_id": view.get("callback_id"),
                "private_metadata": view.get("private_metadata", ""),
                "state": {
                    "values": {
                        DENY_REASON_BLOCK: {
                            DENY_REASON_INPUT: {"type": "plain_text_input", "value": reason}
                        }
                    }
                },
            },
        }
        return "payload=" + quote(json.dumps(payload))

    def switch_user(self, who: str) -> None:
        if USER_ID.fullmatch(who):
            self.user = who
            self.say(f"(now typing as {who})")
        else:
            self.say(f"{AS_REFUSED}; still typing as {self.user}.")

    def no_such_button(self, line: str) -> str:
        """For `press <word> N` on a card shown here that has no such button: which it has."""
        command, _, text = line.partition(" ")
        word, _, request_id = text.strip().partition(" ")
        buttons = self.cards.get(request_id.strip().lstrip("#"))
        if command != "press" or not buttons or word in buttons:
            return ""
        return f"Request #{request_id.strip().lstrip('#')}'s card has no “{word[:20]}” button; " + (
            f"type press {'|'.join(buttons)} {request_id.strip().lstrip('#')}"
        )

    def button(self, word: str, request_id: str) -> str | None:
        """The action id `press <word> <request #>` clicks: the card's own button when this
        demo has shown the card, else the likeliest one."""
        return self.cards.get(request_id, {}).get(word) or BUTTONS.get(word)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def _read_line(stdin: TextIO) -> str:
    """The next line of `stdin`, read in a daemon thread: a demo stopped by Ctrl-C while it
    waits for a line does not wait for one more line to exit (as a pooled thread would)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(line or "")

    def read() -> None:
        try:
            line, error = stdin.readline(), None
        except Exception as problem:  # handed to the reader, never lost in the thread
            line, error = None, problem
        with suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="vpsbot-demo-stdin", daemon=True).start()
    return await done


def _request_body(line: str, user: str, response_url: str, chat: _Chat) -> str | None:
    """The form body Slack would send for a typed command or a `press` of a button."""
    command, _, text = line.partition(" ")
    trigger_id = f"demo.{chat.run_id}.{response_url.rsplit('/', 1)[-1]}"
    if command in ("/snapshot", "/backup"):
        return urlencode(
            {
                "team_id": DEMO_TEAM,
                "channel_id": DEMO_CHANNEL,
                "channel_name": "demo",
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "response_url": response_url,
                "trigger_id": trigger_id,
            }
        )
    word, _, rest = text.strip().partition(" ")
    request_id, _, _reason = rest.strip().partition(" ")  # `press deny 7 <reason…>`
    request_id = request_id.strip().lstrip("#")
    action_id = chat.button(word, request_id)
    if command != "press" or action_id is None or not request_id.isdigit():
        return None
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": DEMO_TEAM},
        "team": {"id": DEMO_TEAM, "domain": "demo"},
        "channel": {"id": DEMO_CHANNEL, "name": "demo"},
        "container": {"type": "message", "channel_id": DEMO_CHANNEL},
        "trigger_id": trigger_id,
        "response_url": response_url,
        "actions": [{"action_id": action_id, "type": "button", "value": request_id}],
    }
    return "payload=" + quote(json.dumps(payload))


def _raw(value: Any) -> Any:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else value
