"""Kill the bot with operations in flight, start it again: every completion is reported, once."""

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOT_TOKEN, CHANNEL, SIGNING_SECRET, VPS_TOKEN, fixture
from tests.fakes.slack import SlackStandIn

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start(
    env: dict[str, str], port: int, output: Path | None = None
) -> asyncio.subprocess.Process:
    """`python -m bot serve` with `env`, once its /healthz answers 200 (output appended to
    `output` when given)."""
    if output is None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    else:
        with output.open("ab") as sink:  # the child keeps its own copy of the descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env, stdout=sink, stderr=sink
            )
    async with httpx.AsyncClient() as http:
        for _ in range(400):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("serve did not come up")


async def _until(check, wait: float = 40.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(wait / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_operations_in_flight_survive_a_kill(tmp_path: Path) -> None:
    sim = Simulator(token=VPS_TOKEN, create_delay=3600)
    slack = SlackStandIn()
    port = _free_port()
    async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
        slack.base_url = slack_url
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS", "DATABASE"))
        }
        env |= {
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'restart.db'}",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
            "VPS_API_TOKEN": VPS_TOKEN,
            "VPS_API_URL": f"{vps_url}/api/v1",
            "VPSBOT_POLL_INTERVAL": "0.2",
            "VPSBOT_SAFETY_SNAPSHOT": "false",  # on where a test says so
        }
        process = await _start(env, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for command, text in [
                ("/snapshot", "create 12345 before-crash"),
                ("/backup", "create 23456 before crash"),
                ("/snapshot", "create 23456 runs-across-restart"),
            ]:
                fields = fixture("slash-command.json") | {
                    "command": command,
                    "text": text,
                    "user_id": ALICE,
                    "channel_id": CHANNEL,
                    "response_url": slack.response_url(text.replace(" ", "-")),
                }
                body = urlencode(fields)
                ack = await http.post(
                    "/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body)
                )
                assert ack.status_code == 200
        await _until(lambda: len(slack.api_calls("chat.postMessage")) == 3)
        await asyncio.sleep(0.5)  # let it record the posts as sent: kill it between polls

        process.send_signal(signal.SIGKILL)
        await process.wait()
        created = {
            o.name or o.description: o
            for c in sim.objects.values()
            for o in c.values()
            if o.status == "in_progress"
        }
        assert set(created) == {"before-crash", "before crash", "runs-across-restart"}
        for name in ("before-crash", "before crash"):  # these finish while the bot is down
            created[name].done_at = sim.clock()
        sim.advance()

        process = await _start(env, port)
        try:
            await _until(lambda: len(slack.api_calls("chat.update")) == 2)
            created["runs-across-restart"].done_at = sim.clock()
            await _until(lambda: len(slack.api_calls("chat.update")) == 3)
            await asyncio.sleep(1.0)  # room for any duplicate
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()

    updates = Counter(c.data["ts"] for c in slack.api_calls("chat.update"))
    replies = Counter(
        c.data["thread_ts"] for c in slack.api_calls("chat.postMessage") if c.data.get("thread_ts")
    )
    dms = [c for c in slack.api_calls("chat.postMessage") if str(c.data["channel"]).startswith("D")]
    assert len(updates) == 3
    assert set(updates.values()) == {1}
    assert len(replies) == 3
    assert set(replies.values()) == {1}
    assert len(dms) == 3
    assert len(sim.calls_to("POST")) == 3
