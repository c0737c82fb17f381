"""`python -m bot demo`: the whole bot in a terminal, against the simulator and SQLite.

The same app and services as `serve`: each typed line becomes a slash command, signed as Slack
signs it and POSTed to the bot's own `/slack/events` on loopback. A small Slack stand-in (also on
loopback) receives the bot's replies and Web API calls and prints them as text.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bootstrap import build
from bot.config import Settings
from bot.serving import serving
from bot.slack import ids
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator

DEMO_TEAM = "T0000DEMO"
DEMO_CHANNEL = "C0000DEMO"
DEMO_VPS_TOKEN = "demo-vps-token"  # noqa: S105 - the simulator's, never a real one
# Each run's trigger ids differ, so a restarted demo's commands are never taken for replays.
DEMO_RUN = secrets.token_hex(4)


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
            return {"ok": True, "channel": {"id": "D" + str(data.get("users", "U"))[1:]}}
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
_MENTION = re.compile(r"<@([A-Z0-9]+)>")


def _plain(mrkdwn: str) -> str:
    text = _DATE.sub(r"\1", mrkdwn)
    text = _MENTION.sub(r"@\1", text)
    return html.unescape(text)


def render_text(message: dict[str, Any]) -> str:
    """A Block Kit message as terminal text."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind in ("section", "header") and block.get("text"):
            lines.append(_plain(block["text"]["text"]))
        for fieldtext in block.get("fields", []):
            lines.append(_plain(fieldtext["text"]))
        if kind == "context":
            lines.extend("  " + _plain(e.get("text", "")) for e in block["elements"])
        if kind == "actions":
            lines.append(" ".join(f"[ {e['text']['text']} ]" for e in block["elements"]))
        if kind == "divider":
            lines.append("-" * 40)
    if not lines:
        lines.append(_plain(str(message.get("text", ""))))
    return "\n".join(lines)


# -- the demo ------------------------------------------------------------------------------------

DEMO_HELP = """Type a slash command as you would in Slack, for example:
  /snapshot list 12345
  /snapshot create 12345 before-update Snapshot before update
  /backup list 12345 manual
  /snapshot delete 798          then: press delete <request #>
`press <button> <request #>` clicks a button (delete, cancel, approve, deny);
`as U0000BOB` switches the user you type as; `quit` (or Ctrl-D) leaves."""

BUTTONS = {
    "delete": ids.DELETE_CONFIRM,
    "cancel": ids.DELETE_CANCEL,
    "approve": ids.RESTORE_APPROVE,
    "deny": ids.RESTORE_DENY,
}


async def run_demo(settings: Settings, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    def show(call: SlackCall) -> None:
        if call.method not in ("response", "chat.postMessage", "chat.update"):
            return
        channel = str(call.data.get("channel", ""))
        if call.data.get("response_type") == "ephemeral":
            where = "only you see this"
        elif channel.startswith("D"):
            where = "direct message"
        elif call.data.get("thread_ts"):
            where = "#demo, in the thread"
        elif call.method == "chat.update":
            where = "#demo, message updated"
        else:
            where = "#demo"
        print(f"\n[vpsbot · {where}]\n{render_text(call.data)}\n", file=out)
        replied.set()

    replied = asyncio.Event()
    stand_in = SlackStandIn(on_call=show)
    simulator = Simulator(token=DEMO_VPS_TOKEN, create_delay=20, restore_delay=30)
    secret = secrets.token_hex(16)
    async with serving(stand_in.app) as slack_url, serving(simulator.app) as vps_url:
        stand_in.base_url = slack_url
        values = {name: _raw(value) for name, value in settings.model_dump().items()}
        values |= {
            "slack_api_url": f"{slack_url}/api/",
            "slack_bot_token": "xoxb-demo",
            "slack_signing_secret": secret,
            "vps_api_url": f"{vps_url}/api/v1",
            "vps_api_token": DEMO_VPS_TOKEN,
            "vpsbot_poll_interval": min(settings.vpsbot_poll_interval, 2.0),
        }
        bot = build(Settings(**values))
        async with (
            serving(bot.web, lifespan="on") as bot_url,
            httpx.AsyncClient(base_url=bot_url) as http,
        ):
            print(
                f"vpsbot demo: VPS.org simulator and Slack stand-in on loopback.\n{DEMO_HELP}",
                file=out,
            )
            user = "U0000DEMO"
            for number in itertools.count(1):
                print(f"{user}> ", end="", file=out, flush=True)
                line = (await asyncio.to_thread(stdin.readline)).strip()
                if not line or line in ("quit", "exit"):
                    break
                if line.startswith("as "):
                    user = line.removeprefix("as ").strip() or user
                    continue
                body = _request_body(line, user, stand_in.response_url(str(number)), number)
                if body is None:
                    print(DEMO_HELP, file=out)
                    continue
                replied.clear()
                answer = await http.post(
                    "/slack/events", content=body, headers=signed_headers(secret, body)
                )
                if answer.status_code != 200:
                    print(f"(the bot answered HTTP {answer.status_code})", file=out)
                    continue
                try:
                    await asyncio.wait_for(replied.wait(), timeout=20)
                except TimeoutError:
                    print("(no reply within 20 s)", file=out)
            print("bye", file=out)


def _request_body(line: str, user: str, response_url: str, number: int) -> str | None:
    """The form body Slack would send for a typed command or a `press` of a button."""
    command, _, text = line.partition(" ")
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
                "trigger_id": f"demo.{DEMO_RUN}.{number}",
            }
        )
    button, _, request_id = text.strip().partition(" ")
    request_id = request_id.strip().lstrip("#")
    if command != "press" or button not in BUTTONS or not request_id.isdigit():
        return None
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": DEMO_TEAM},
        "team": {"id": DEMO_TEAM, "domain": "demo"},
        "channel": {"id": DEMO_CHANNEL, "name": "demo"},
        "container": {"type": "message", "channel_id": DEMO_CHANNEL},
        "trigger_id": f"demo.{DEMO_RUN}.{number}",
        "response_url": response_url,
        "actions": [{"action_id": BUTTONS[button], "type": "button", "value": request_id}],
    }
    return "payload=" + quote(json.dumps(payload))


def _raw(value: Any) -> Any:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else value
