"""Shared fixtures: settings, databases (SQLite; PostgreSQL when TEST_DATABASE_URL), the served
bot with the VPS.org simulator and a fake Slack, all on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.bootstrap import Bot, build
from bot.config import Settings, async_database_url
from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.vpsorg.simulator import Simulator
from tests.fakes.slack import SlackCall, SlackStandIn, every_message_valid

# Slack's recorded artefacts: ../shared/fixtures/slack beside the checkout when it is there,
# else the copy kept in tests/fixtures/slack (tests/test_fixtures.py checks they agree).
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "slack"
LOCAL_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"
FIXTURES = SHARED_FIXTURES if SHARED_FIXTURES.exists() else LOCAL_FIXTURES

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token"
VPS_TOKEN = "test-vps-token"
CHANNEL = "C0000TEST"
ALICE = "U0000TEST"
BOB = "U0000APPR"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _every_message_valid() -> Iterator[None]:
    """Every message the bot sends the fake Slack in any test is valid Block Kit (slack_sdk's
    models validate each block and element); a test that made the bot send an invalid one
    fails."""
    with every_message_valid():
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real tokens or settings."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "VPS_", "VPSBOT_")) or name in ("DATABASE_URL", "PORT"):
            monkeypatch.delenv(name)


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(async_database_url(url))
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set"
        ),
    ),
]


async def _worker_database(url: str, worker: str) -> str:
    """Under pytest-xdist each worker gets a database of its own (test_gw0, test_gw1, …)."""
    if worker in ("", "master"):
        return url
    base, _, name = url.rpartition("/")
    own = f"{name}_{worker}"
    engine = create_async_engine(async_database_url(url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own})
        if not found:
            await conn.execute(text(f'CREATE DATABASE "{own}"'))
    await engine.dispose()
    return f"{base}/{own}"


@pytest.fixture(params=DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: SQLite in tmp_path, and PostgreSQL when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vpsbot.db'}"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = await _worker_database(os.environ["TEST_DATABASE_URL"], worker)
    await _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vpsbot.db'}"


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test stack. Safety snapshots are off unless asked for: the tests of the
    restore call itself count its calls alone; tests/slack/test_safety_snapshots.py and the
    crash tests cover them on, as the default is."""
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "vps_api_token": VPS_TOKEN,
        "vpsbot_safety_snapshot": False,
        # in this process: a work process reads its settings from the environment, and the
        # tests give theirs here (tests/test_work_process.py runs the real processes)
        "vpsbot_work_process": False,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Stack:
    """The served bot, with the simulator and the fake Slack it talks to."""

    url: str
    bot: Bot
    sim: Simulator
    slack: SlackStandIn
    http: httpx.AsyncClient
    secret: str = SIGNING_SECRET
    _keys: int = 0

    async def post_signed(self, body: str, **header_overrides: str) -> httpx.Response:
        headers = signed_headers(self.secret, body) | header_overrides
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def command(
        self, text: str, command: str = "/snapshot", user: str = ALICE, channel: str = CHANNEL
    ) -> tuple[httpx.Response, str]:
        """Send a signed slash command; return the ack and the response_url key it carries."""
        self._keys += 1
        key = f"cmd{self._keys}"
        fields = fixture("slash-command.json") | {
            "command": command,
            "text": text,
            "user_id": user,
            "channel_id": channel,
            "response_url": self.slack.response_url(key),
        }
        return await self.post_signed(urlencode(fields)), key

    async def action(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.post_signed("payload=" + quote(json.dumps(payload)))

    async def click(
        self, action_id: str, value: str, user: str = ALICE, channel: str = CHANNEL
    ) -> tuple[httpx.Response, str]:
        """Press a button: Slack's recorded block_actions payload with this action, user, value."""
        self._keys += 1
        key = f"act{self._keys}"
        payload = fixture("block-actions.json")
        payload["user"]["id"] = user
        payload["channel"]["id"] = channel
        payload["container"]["channel_id"] = channel
        payload["response_url"] = self.slack.response_url(key)
        payload["actions"][0].update(action_id=action_id, value=value)
        return await self.action(payload), key

    async def reply(self, key: str, wait: float = 10.0) -> SlackCall:
        """Wait for the bot's response_url post for `key`."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = self.slack.responses(key)
            if found:
                return found[-1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reply for {key} within {wait} s; Slack saw {self.slack.calls}")

    async def until(self, check: Callable[[], Any], wait: float = 10.0, what: str = "") -> Any:
        """Poll `check` until it returns something truthy; fail after `wait` seconds."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what or check}; Slack saw {self.slack.calls}")

    def posts(self, channel: str = CHANNEL, thread: bool | None = None) -> list[SlackCall]:
        """chat.postMessage calls to `channel`: top-level (thread=False), replies (True) or all."""
        return [
            c
            for c in self.slack.api_calls("chat.postMessage")
            if c.data.get("channel") == channel
            and (thread is None or bool(c.data.get("thread_ts")) == thread)
        ]

    def dms(self) -> list[SlackCall]:
        return [
            c
            for c in self.slack.api_calls("chat.postMessage")
            if str(c.data.get("channel")).startswith("D")
        ]

    async def ask(self, text: str, command: str = "/snapshot", user: str = ALICE) -> SlackCall:
        ack, key = await self.command(text, command, user)
        assert ack.status_code == 200, ack.text
        return await self.reply(key)


# The seeded lists (3 snapshots, 4 backups, 2 servers) come in pages of this many: every test on
# the `simulator` fixture reads VPS.org's lists page by page, as the bot must.
PAGE_SIZE = 2


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(token=VPS_TOKEN, create_delay=0.3, restore_delay=0.3, page_size=PAGE_SIZE)


@pytest.fixture
async def served_simulator(simulator: Simulator) -> AsyncIterator[str]:
    async with serving(simulator.app) as url:
        yield f"{url}/api/v1"


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as built:
        yield built


@asynccontextmanager
async def running_stack(
    simulator: Simulator, vps_url: str, db_url: str, **settings: Any
) -> AsyncIterator[Stack]:
    """The bot built from `settings` and served, with a fresh fake Slack, until the block ends."""
    slack = SlackStandIn()
    async with serving(slack.app) as slack_url:
        slack.base_url = slack_url
        config = make_settings(
            slack_api_url=f"{slack_url}/api/", vps_api_url=vps_url, database_url=db_url, **settings
        )
        bot = build(config)
        async with (
            serving(bot.web, lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=15) as http,
        ):
            yield Stack(url, bot, simulator, slack, http)
