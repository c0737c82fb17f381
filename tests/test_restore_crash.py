"""Crashes around the restore call: kill the bot after the `executing` commit and before the call,
or after the call and before its answer is recorded. On restart it never calls again, and the
request ends `running` (the restore did start) or `needs_attention` (a person must look)."""

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest

from bot.serving import serving
from bot.slack import ids
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import ALICE, BOB, BOT_TOKEN, CHANNEL, SIGNING_SECRET, VPS_TOKEN, fixture
from tests.fakes.slack import SlackStandIn
from tests.test_restart import _free_port, _start, _until

_triggers = itertools.count(1)


def next_trigger_id() -> str:
    """A fresh trigger_id: a repeated body is a replay, and the bot acts on it once."""
    return f"{next(_triggers)}.{os.getpid()}.{time.time_ns():x}"


@dataclass
class Deployment:
    sim: Simulator
    slack: SlackStandIn
    env: dict[str, str]
    port: int
    process: asyncio.subprocess.Process | None = None

    async def start(self, output: Path | None = None) -> None:
        self.process = await _start(self.env, self.port, output)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()

    async def post(self, body: str, secret: str | None = None) -> int:
        secret = secret or self.env["SLACK_SIGNING_SECRET"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as http:
            answer = await http.post(
                "/slack/events", content=body, headers=signed_headers(secret, body)
            )
        return answer.status_code

    async def command(self, text: str, command: str = "/snapshot", user: str = ALICE) -> None:
        fields = fixture("slash-command.json") | {
            "command": command,
            "text": text,
            "user_id": user,
            "channel_id": CHANNEL,
            "response_url": self.slack.response_url(text.replace(" ", "-")),
            "trigger_id": next_trigger_id(),  # as Slack does: each command its own
        }
        assert await self.post(urlencode(fields)) == 200

    async def click(self, action_id: str, request_id: str, user: str) -> None:
        payload = fixture("block-actions.json")
        payload["user"]["id"] = user
        payload["response_url"] = self.slack.response_url(f"{action_id}-{request_id}")
        payload["actions"][0].update(action_id=action_id, value=request_id)
        payload["trigger_id"] = next_trigger_id()
        assert await self.post("payload=" + quote(json.dumps(payload))) == 200

    async def ask_restore(self) -> str:
        await self.command("restore 801 crash test")
        await _until(lambda: self.slack.api_calls("chat.postMessage"))
        blocks = self.slack.api_calls("chat.postMessage")[0].data["blocks"]
        return next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"]

    async def approve(self, request_id: str) -> None:
        await self.click(ids.RESTORE_APPROVE, request_id, BOB)

    def restore_calls(self) -> int:
        return len(self.sim.calls_to("POST", "/snapshots/801/restore/"))

    def said(self, words: str) -> bool:
        return any(
            words in json.dumps(c.data.get("blocks", []))
            for c in self.slack.calls
            if c.method in ("chat.update", "chat.postMessage")
        )


@asynccontextmanager
async def deployment(tmp_path: Path, **overrides: str) -> AsyncIterator[Deployment]:
    """A real `python -m bot serve` process, with the simulator and a fake Slack on loopback."""
    sim = Simulator(token=overrides.get("VPS_API_TOKEN", VPS_TOKEN), restore_delay=3600)
    slack = SlackStandIn()
    async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
        slack.base_url = slack_url
        port = _free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS", "DATABASE"))
        }
        env |= {
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'crash.db'}",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
            "VPS_API_TOKEN": VPS_TOKEN,
            "VPS_API_URL": f"{vps_url}/api/v1",
            "VPSBOT_POLL_INTERVAL": "0.2",
            "VPSBOT_SAFETY_SNAPSHOT": "false",  # on where a test says so
        }
        env |= overrides
        bot = Deployment(sim, slack, env, port)
        try:
            yield bot
        finally:
            await bot.stop()


@pytest.mark.parametrize("moment", ["before_the_call", "after_the_call"])
async def test_a_crash_around_the_restore_call_never_calls_twice(
    tmp_path: Path, moment: str
) -> None:
    async with deployment(tmp_path) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        if moment == "before_the_call":
            # the last check before the call hangs: the request is `executing`, nothing sent
            bot.sim.inject(Fault("GET", "/servers/12345/", kind="hang", delay=6))
            await bot.approve(request_id)
            await _until(lambda: bot.sim.calls_to("GET", "/servers/12345/")[1:])
        else:
            # the call reaches VPS.org, which starts the restore, but the answer never arrives
            bot.sim.inject(
                Fault("POST", "/snapshots/801/restore/", kind="lost_reply", delay=2, status=504)
            )
            await bot.approve(request_id)
            await _until(lambda: bot.restore_calls() == 1)
        await bot.kill()
        await asyncio.sleep(2.5)  # the simulator finishes what it was doing
        await bot.start()
        if moment == "before_the_call":
            await _until(lambda: bot.said("needs attention"))
            assert bot.said("did not send the restore again")
            assert bot.restore_calls() == 0
            assert bot.sim.servers[12345].status == "running"
        else:
            assert bot.sim.servers[12345].status == "restoring"
            await _until(lambda: bot.said("*Restoring*"))
            bot.sim.finish_all()
            await _until(lambda: bot.said("was *restored*"))
            assert bot.restore_calls() == 1
        await asyncio.sleep(1.0)
        assert bot.restore_calls() == (0 if moment == "before_the_call" else 1)
