"""Socket Mode end to end: a fake Slack hands out a ws:// URL on loopback, slash commands and
button clicks arrive as envelopes over the socket, and the bot acks them and answers them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket as stdlib_socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import bootstrap
from bot.bootstrap import run_socket_mode
from bot.config import ConfigError, Unreachable
from bot.preflight import bind_port
from bot.serving import serving
from bot.slack import ids, socket_mode
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, BOT_TOKEN, CHANNEL, VPS_TOKEN, fixture, make_settings
from tests.fakes.slack import SlackCall, SlackStandIn
from tests.fakes.socket_mode import Envelope, SocketModeServer
from tests.test_cli import ATTEMPTS, ROOT, _free_port, address_in_use
from tests.test_work_process import work_processes

APP_TOKEN = "xapp-1-A0000TEST-socket-mode-test-token"


@pytest.fixture
def health_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`run_socket_mode` in this process serves /healthz on a port the system picks (port 0,
    whatever $PORT says, so no two tests can want one port): the URLs it served, in order."""
    served: list[str] = []

    def on_a_free_port(port: int, host: str = "127.0.0.1") -> stdlib_socket.socket:
        sock = bind_port(0, "127.0.0.1")
        served.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        return sock

    monkeypatch.setattr(bootstrap, "bind_port", on_a_free_port)
    return served


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 bound for the test and never listening: it refuses connections,
    and no other socket can take it meanwhile."""
    with closing(stdlib_socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@dataclass
class SocketStack:
    sim: Simulator
    slack: SlackStandIn
    socket: SocketModeServer
    health_url: str
    _keys: int = 0

    def _key(self, prefix: str) -> str:
        self._keys += 1
        return f"{prefix}{self._keys}"

    async def command(self, text: str, user: str = ALICE) -> tuple[Envelope, str]:
        key = self._key("sock-cmd")
        payload = fixture("slash-command.json") | {
            "text": text,
            "user_id": user,
            "channel_id": CHANNEL,
            "response_url": self.slack.response_url(key),
        }
        return await self.socket.send("slash_commands", payload), key

    async def click(self, action_id: str, value: str, user: str) -> tuple[Envelope, str]:
        key = self._key("sock-act")
        payload = fixture("block-actions.json")
        payload["user"]["id"] = user
        payload["response_url"] = self.slack.response_url(key)
        payload["actions"][0].update(action_id=action_id, value=value)
        return await self.socket.send("interactive", payload), key

    async def reply(self, key: str, wait: float = 10.0) -> SlackCall:
        return await until(
            lambda: self.slack.responses(key) and self.slack.responses(key)[-1], wait
        )


async def until(check: Any, wait: float = 10.0) -> Any:
    for _ in range(int(wait / 0.02)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {check}")


@asynccontextmanager
async def peers(
    app_token: str = APP_TOKEN,
) -> AsyncIterator[tuple[Simulator, SlackStandIn, SocketModeServer, str]]:
    """The simulator, the fake Slack Web API, and its Socket Mode server, all on loopback."""
    sim = Simulator(token=VPS_TOKEN, create_delay=0.3, restore_delay=0.3)
    slack = SlackStandIn()
    socket = SocketModeServer(app_token)
    await socket.start()
    slack.open_connection = socket.open_connection
    try:
        async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
            slack.base_url = slack_url
            yield sim, slack, socket, f"{vps_url}/api/v1"
    finally:
        await socket.stop()


@pytest.fixture
async def socket_stack(tmp_path: Path, health_urls: list[str]) -> AsyncIterator[SocketStack]:
    async with socket_mode_served(tmp_path, health_urls) as stack:
        yield stack


@asynccontextmanager
async def socket_mode_served(
    tmp_path: Path,
    health_urls: list[str],
    environ: pytest.MonkeyPatch | None = None,
    **more: Any,
) -> AsyncIterator[SocketStack]:
    """With `environ`, what a work process needs is in the environment too (it reads its
    settings from there)."""
    async with peers() as (sim, slack, socket, vps_url):
        settings = make_settings(
            slack_signing_secret=None,  # Socket Mode needs no signing secret
            slack_app_token=APP_TOKEN,
            slack_api_url=f"{slack.base_url}/api/",
            vps_api_url=vps_url,
            database_url=f"sqlite:///{tmp_path / 'socket.db'}",
            vpsbot_poll_interval=0.2,
            **more,
        )
        if environ is not None:
            for name, value in {
                "SLACK_BOT_TOKEN": BOT_TOKEN, "VPS_API_TOKEN": VPS_TOKEN, "VPS_API_URL": vps_url,
                "SLACK_API_URL": f"{slack.base_url}/api/", "DATABASE_URL": settings.database_url,
            }.items():  # fmt: skip
                environ.setenv(name, value)
        stopping = asyncio.Event()
        running = asyncio.create_task(run_socket_mode(settings, stopping, host="127.0.0.1"))
        try:
            await until(lambda: socket.connected or running.done())
            if running.done():
                running.result()  # raises what stopped it
            [health_url] = health_urls
            # at start, the bot read VPS.org once with its token (and nothing else)
            assert [(c.method, c.path) for c in sim.calls] == [("GET", "/servers/")]
            sim.calls.clear()
            yield SocketStack(sim, slack, socket, health_url)
        finally:
            stopping.set()
            await asyncio.wait_for(running, timeout=30)


def text_of(call: SlackCall) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(call.data.get("text"))


async def test_socket_mode_hands_its_work_to_a_work_process(
    tmp_path: Path, health_urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """VPSBOT_WORK_PROCESS (the product's default): the envelope is acked here and the command
    carried out by `python -m bot work`, which reads its settings from the environment."""
    async with socket_mode_served(
        tmp_path, health_urls, monkeypatch, vpsbot_work_process=True
    ) as stack:
        assert len(work_processes(os.getpid())) == 1
        envelope, key = await stack.command("list 12345")
        await stack.socket.acked(envelope, wait=3.0)
        reply = await stack.reply(key, wait=30)
        assert "pre-migration-snapshot" in text_of(reply)


async def test_a_slash_command_over_the_socket_is_acked_and_answered(
    socket_stack: SocketStack,
) -> None:
    opened = socket_stack.slack.api_calls("apps.connections.open")
    assert len(opened) == 1  # one ticket, used for the one connection
    envelope, key = await socket_stack.command("list 12345")
    ack = await socket_stack.socket.acked(envelope, wait=3.0)
    assert ack["envelope_id"] == envelope.envelope_id
    assert envelope.acked_at is not None
    assert envelope.acked_at - envelope.sent_at < 3.0
    reply = await socket_stack.reply(key)
    assert reply.data["response_type"] == "ephemeral"
    assert "pre-migration-snapshot" in text_of(reply)
    [read] = socket_stack.sim.calls_to("GET")
    assert (read.path, read.query) == ("/snapshots/", {"server_id": "12345"})


async def test_bad_input_over_the_socket_gets_the_usage_and_reaches_no_api(
    socket_stack: SocketStack,
) -> None:
    envelope, key = await socket_stack.command("restore <!channel>")
    await socket_stack.socket.acked(envelope, wait=3.0)
    reply = await socket_stack.reply(key)
    assert "/snapshot restore &lt;snapshot_id&gt;" in text_of(reply)
    assert "<!channel>" not in text_of(reply)
    assert socket_stack.sim.calls == []


async def test_a_restore_approved_by_a_click_over_the_socket_calls_the_api_once(
    socket_stack: SocketStack,
) -> None:
    envelope, _ = await socket_stack.command("restore 801 over the socket")
    await socket_stack.socket.acked(envelope, wait=3.0)
    [post] = await until(lambda: socket_stack.slack.api_calls("chat.postMessage"))
    actions = next(b for b in post.data["blocks"] if b["type"] == "actions")
    request_id = actions["elements"][0]["value"]

    click, key = await socket_stack.click(ids.RESTORE_APPROVE, request_id, user=ALICE)
    assert (await socket_stack.socket.acked(click, wait=3.0))["envelope_id"] == click.envelope_id
    assert "a second person has to approve it" in text_of(await socket_stack.reply(key))

    click, _ = await socket_stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await socket_stack.socket.acked(click, wait=3.0)
    sim = socket_stack.sim
    await until(lambda: sim.calls_to("POST", "/snapshots/801/restore/"))
    completion = await until(
        lambda: [
            c
            for c in socket_stack.slack.api_calls("chat.postMessage")
            if c.data.get("thread_ts") and ":white_check_mark: done" in text_of(c)
        ]
    )
    assert len(completion) == 1  # the tracker runs beside the socket
    assert "is running again" in text_of(socket_stack.slack.api_calls("chat.update")[-1])
    assert len(sim.calls_to("POST", "/snapshots/801/restore/")) == 1


async def test_slacks_refresh_request_reconnects_and_commands_still_arrive(
    socket_stack: SocketStack,
) -> None:
    socket = socket_stack.socket
    await socket.ask_to_reconnect()
    await until(lambda: socket.connections == 2 and socket.connected)
    assert len(socket_stack.slack.api_calls("apps.connections.open")) == 2
    envelope, key = await socket_stack.command("list 12345")
    await socket.acked(envelope, wait=3.0)
    assert "pre-migration-snapshot" in text_of(await socket_stack.reply(key))


async def test_socket_mode_serves_healthz_and_no_http_endpoint_for_slack(
    socket_stack: SocketStack,
) -> None:
    async with httpx.AsyncClient(base_url=socket_stack.health_url) as http:
        health = await http.get("/healthz")
        events = await http.post("/slack/events", content="payload=%7B%7D")
    assert (health.status_code, health.json()["database"]) == (200, "ok")
    assert events.status_code == 404  # nothing unsigned can come in this way


async def test_a_refused_app_token_stops_with_one_line_naming_the_variable(
    tmp_path: Path, health_urls: list[str]
) -> None:
    async with peers(app_token="xapp-the-right-one") as (_, slack, _, vps_url):
        settings = make_settings(
            slack_signing_secret=None,
            slack_app_token=APP_TOKEN,
            slack_api_url=f"{slack.base_url}/api/",
            vps_api_url=vps_url,
            database_url=f"sqlite:///{tmp_path / 'socket.db'}",
        )
        with pytest.raises(ConfigError) as refused:
            await asyncio.wait_for(
                run_socket_mode(settings, asyncio.Event(), host="127.0.0.1"), timeout=20
            )
    assert str(refused.value) == "SLACK_APP_TOKEN was refused by Slack (invalid_auth)"
    assert APP_TOKEN not in str(refused.value)


async def test_slack_unreachable_at_start_stops_with_one_line_naming_the_url(
    tmp_path: Path, health_urls: list[str], refusing_port: int
) -> None:
    settings = make_settings(
        slack_signing_secret=None,
        slack_app_token=APP_TOKEN,
        slack_api_url=f"http://127.0.0.1:{refusing_port}/api/",  # nothing listens there
        database_url=f"sqlite:///{tmp_path / 'socket.db'}",
    )
    with pytest.raises(Unreachable) as unreachable:
        await asyncio.wait_for(
            run_socket_mode(settings, asyncio.Event(), host="127.0.0.1"), timeout=30
        )
    assert "cannot reach Slack at SLACK_API_URL" in str(unreachable.value)


def offering_a_dead_websocket(
    slack: SlackStandIn, vps_url: str, tmp_path: Path, refusing_port: int
) -> Any:
    """Socket Mode settings against a Slack that hands out a WebSocket URL nothing answers."""
    slack.open_connection = lambda _token: {"ok": True, "url": f"ws://127.0.0.1:{refusing_port}/"}
    return make_settings(
        slack_signing_secret=None,
        slack_app_token=APP_TOKEN,
        slack_api_url=f"{slack.base_url}/api/",
        vps_api_url=vps_url,
        database_url=f"sqlite:///{tmp_path / 'socket.db'}",
    )


async def test_a_websocket_that_never_opens_stops_with_one_line_not_retries_for_ever(
    tmp_path: Path,
    health_urls: list[str],
    refusing_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slack hands out a WebSocket URL nothing answers at: slack_sdk would retry every 10 s
    for ever (a traceback each time); the bot gives up after CONNECT_TIMEOUT with one line."""
    monkeypatch.setattr(socket_mode, "CONNECT_TIMEOUT", 1.0)
    async with peers() as (_, slack, _, vps_url):
        settings = offering_a_dead_websocket(slack, vps_url, tmp_path, refusing_port)
        with pytest.raises(Unreachable) as unreachable:
            await asyncio.wait_for(
                run_socket_mode(settings, asyncio.Event(), host="127.0.0.1"), timeout=30
            )
    assert "could not open the Socket Mode connection" in str(unreachable.value)
    assert not any(record.exc_info for record in caplog.records)  # no traceback in the log


async def test_sigterm_while_the_websocket_will_not_open_stops_the_bot(
    tmp_path: Path, health_urls: list[str], refusing_port: int
) -> None:
    async with peers() as (_, slack, _, vps_url):
        settings = offering_a_dead_websocket(slack, vps_url, tmp_path, refusing_port)
        stopping = asyncio.Event()
        running = asyncio.create_task(run_socket_mode(settings, stopping, host="127.0.0.1"))
        await until(lambda: slack.api_calls("apps.connections.open") or running.done())
        stopping.set()  # what SIGTERM does
        await asyncio.wait_for(running, timeout=10)  # returns, well before CONNECT_TIMEOUT


async def test_python_m_bot_socket_answers_over_the_socket_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    async with peers() as (sim, slack, socket, vps_url):
        for _ in range(ATTEMPTS):  # $PORT (for /healthz) must be given: another may take it
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS"))}
            env |= {
                "PORT": str(_free_port()),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'socket.db'}",
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_APP_TOKEN": APP_TOKEN,
                "SLACK_API_URL": f"{slack.base_url}/api/",
                "VPS_API_TOKEN": VPS_TOKEN,
                "VPS_API_URL": vps_url,
                "LOG_LEVEL": "DEBUG",  # the chattiest the bot and slack_sdk get
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "socket", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                await until(lambda p=process: socket.connected or p.returncode is not None, 30)
                if process.returncode is not None:  # it stopped at start
                    output, _ = await process.communicate()
                    if address_in_use(output.decode()):
                        continue
                    raise AssertionError(output.decode())
                stack = SocketStack(sim, slack, socket, "")
                envelope, key = await stack.command("list 12345")
                await socket.acked(envelope, wait=3.0)
                assert "pre-migration-snapshot" in text_of(await stack.reply(key))
                process.send_signal(signal.SIGTERM)
                output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
                break
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    assert process.returncode == 0, output.decode()
    logged = output.decode()
    assert "connected to Slack over Socket Mode" in logged
    for secret in (APP_TOKEN, BOT_TOKEN, VPS_TOKEN):
        assert secret not in logged
