"""Crashes around the restore call: kill the bot after the `executing` commit and before the call,
or after the call and before its answer is recorded. On restart it never calls again, and the
request ends `running` (the restore did start) or `needs_attention` (a person must look).

With safety snapshots on (the product default), kill -9 at each recorded step of the snapshot
taken before the restore, on SQLite and on PostgreSQL (TEST_DATABASE_URL): on restart the bot
never sends a second `POST /snapshots/` nor a second restore, and never restores a server
whose safety snapshot it cannot vouch for."""

import asyncio
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
from sqlalchemy import select

from bot.config import async_database_url
from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest, safety_name
from bot.domain.outcomes import SafetyStep, Why
from bot.serving import serving
from bot.slack import ids
from bot.slack.signing import signed_headers
from bot.storage.database import Database
from bot.storage.tables import RequestRecord
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, SimCall, Simulator
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
    database: Database | None = None  # the bot's database, read by the test

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
        return str(next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"])

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

    # -- what VPS.org received ---------------------------------------------------------------

    def snapshot_posts(self) -> list[SimCall]:
        """Every `POST /snapshots/` VPS.org received: the safety snapshot's, here."""
        return self.sim.calls_to("POST", "/snapshots/")

    def any_restore_calls(self) -> int:
        """Restore calls of any kind (from a snapshot or a backup), on any server."""
        return len([c for c in self.sim.calls_to("POST") if c.path.endswith("/restore/")])

    def reads(self, path: str) -> int:
        return len(self.sim.calls_to("GET", path))

    def looks_since(self, moment: float) -> int:
        """Listings of snapshots after `moment` (monotonic): each a look at the safety
        snapshot being made, once it was posted."""
        return len([c for c in self.sim.calls_to("GET", "/snapshots/") if c.at > moment])

    def safety_snapshots(self, request_id: str) -> list[str]:
        """The statuses of the snapshots named after the request that VPS.org holds."""
        return [
            o.status
            for o in self.sim.objects["snapshots"].values()
            if o.name == safety_name(int(request_id))
        ]

    # -- what the channel was told -----------------------------------------------------------

    def thread_replies(self, since: int = 0) -> list[str]:
        """The bot's replies in the card's thread among its Slack calls from index `since` on
        (their blocks as JSON, lower case)."""
        return [
            json.dumps(c.data.get("blocks", [])).lower()
            for c in self.slack.calls[since:]
            if c.method == "chat.postMessage"
            and c.data.get("channel") == CHANNEL
            and c.data.get("thread_ts")
        ]

    def told(self, words: str, since: int = 0) -> bool:
        """The channel was told `words` (any case) from Slack call `since` on: in an update
        of the card and in a reply in its thread, which notifies its readers. Wait for it
        with `_until`: a message the killed bot was delivering holds back the request's later
        ones until its outbox lease (30 s) lapses."""
        updates = [
            json.dumps(c.data.get("blocks", [])).lower()
            for c in self.slack.calls[since:]
            if c.method == "chat.update" and c.data.get("channel") == CHANNEL
        ]
        return bool(self.thread_replies(since)) and any(words in text for text in updates)

    # -- what the database holds -------------------------------------------------------------

    async def request(self, request_id: str) -> OperationRequest:
        assert self.database is not None
        async with SqlUnitOfWork(self.database.sessions) as uow:
            found = await uow.requests.get(int(request_id))
        assert found is not None
        return found

    async def safety_steps(self, request_id: str) -> list[dict[str, object]]:
        """The details of the request's `safety_snapshot` audit rows, oldest first."""
        assert self.database is not None
        async with SqlUnitOfWork(self.database.sessions) as uow:
            rows = await uow.audit.events("safety_snapshot", int(request_id))
        return [dict(row.detail) for row in rows]

    async def leased(self, request_id: str) -> bool:
        """Some instance holds the request's lease (it is working on it right now)."""
        assert self.database is not None
        async with self.database.sessions() as session:
            owner = await session.scalar(
                select(RequestRecord.lease_owner).where(RequestRecord.id == int(request_id))
            )
        return owner is not None

    async def delivered(self) -> bool:
        """Every message queued so far was delivered to Slack: a kill now holds none back."""
        assert self.database is not None
        async with SqlUnitOfWork(self.database.sessions) as uow:
            return not await uow.outbox.items("pending")

    async def step_is(self, request_id: str, step: SafetyStep) -> bool:
        request = await self.request(request_id)
        return request.status is Status.EXECUTING and request.outcome.safety_step is step

    async def status_is(self, request_id: str, status: Status) -> bool:
        return (await self.request(request_id)).status is status


async def _eventually(check: Callable[[], Awaitable[bool]], wait: float = 40.0) -> None:
    """`_until` for a check that reads the database."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


@asynccontextmanager
async def deployment(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    create_delay: float = 5.0,
    **overrides: str,
) -> AsyncIterator[Deployment]:
    """A real `python -m bot serve` process, with the simulator and a fake Slack on loopback;
    its database is `database_url` (SQLite or PostgreSQL; default a SQLite file in tmp_path),
    which the test reads too (`Deployment.database`)."""
    database_url = database_url or f"sqlite:///{tmp_path / 'crash.db'}"
    sim = Simulator(
        token=overrides.get("VPS_API_TOKEN", VPS_TOKEN),
        create_delay=create_delay,
        restore_delay=3600,
    )
    slack = SlackStandIn()
    async with serving(sim.app) as vps_url, serving(slack.app) as slack_url:
        slack.base_url = slack_url
        port = _free_port()
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VPS", "DATABASE"))
        }
        env |= {
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
            "VPS_API_TOKEN": VPS_TOKEN,
            "VPS_API_URL": f"{vps_url}/api/v1",
            "VPSBOT_POLL_INTERVAL": "0.2",
            "VPSBOT_SAFETY_SNAPSHOT": "false",  # on where a test says so
        }
        env |= overrides
        bot = Deployment(sim, slack, env, port, database=Database(async_database_url(database_url)))
        try:
            yield bot
        finally:
            await bot.stop()
            sim.release_hangs()  # no request of a killed bot left hanging in the simulator
            assert bot.database is not None
            await bot.database.dispose()


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


# -- kill -9 at each step of the safety snapshot ------------------------------------------------

SERVER = "/servers/12345/"
SAFETY_ON = {"VPSBOT_SAFETY_SNAPSHOT": "true"}
SLOW = 3600.0  # the safety snapshot is made until the test says (`sim.finish_all()`)


async def _restores_once_the_snapshot_is_complete(
    bot: Deployment, request_id: str, restarted: float
) -> None:
    """After a restart (at `restarted`, monotonic): the restarted bot follows the one safety
    snapshot (no restore while it is made), restores once it is complete, and the request
    succeeds once the server runs again."""
    await _eventually(lambda: bot.step_is(request_id, SafetyStep.FOLLOWING))
    since = max(restarted, bot.snapshot_posts()[-1].at)
    await _until(lambda: bot.looks_since(since) >= 3)  # a few ticks' looks at it being made
    assert bot.safety_snapshots(request_id) == ["in_progress"]
    assert bot.any_restore_calls() == 0
    assert bot.sim.servers[12345].status == "running"

    bot.sim.finish_all()  # the snapshot is complete: the one restore call
    await _until(lambda: bot.any_restore_calls() >= 1)
    assert bot.sim.servers[12345].status == "restoring"
    await _eventually(lambda: bot.status_is(request_id, Status.RUNNING))
    bot.sim.finish_all()  # the server runs again: the restore is over
    await _eventually(lambda: bot.status_is(request_id, Status.SUCCEEDED))
    steps = [step["step"] for step in await bot.safety_steps(request_id)]
    assert steps[-2:] == ["following", "ready"], steps
    await asyncio.sleep(1.0)  # room for any duplicate
    assert len(bot.snapshot_posts()) == 1
    assert bot.restore_calls() == bot.any_restore_calls() == 1
    assert (await bot.request(request_id)).status is Status.SUCCEEDED


def _the_safety_post(bot: Deployment, request_id: str) -> None:
    """The one POST /snapshots/ asks for the server's snapshot under the request's name."""
    (post,) = bot.snapshot_posts()
    assert isinstance(post.body, dict)
    assert post.body["server_id"] == 12345
    assert post.body["name"] == f"pre-restore-{request_id}"


@pytest.mark.parametrize("hanging", ["server_read", "snapshot_listing"])
async def test_killed_before_the_safety_snapshot_post_takes_it_once_then_restores_once(
    tmp_path: Path, database_url: str, hanging: str
) -> None:
    """Killed after quorum with nothing sent (no step recorded): on restart the bot goes on as
    if it had just been approved: one POST, one restore once the snapshot is complete."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        if hanging == "server_read":  # the pre-check's read of the server
            path, reads = SERVER, 1
            bot.sim.inject(Fault("GET", SERVER, kind="hang", delay=60))
        else:  # the pre-check's listing answers; the safety snapshot's own listing hangs
            path, reads = "/snapshots/", 2
            bot.sim.inject(Fault("GET", "/snapshots/", kind="hang", delay=0))
            bot.sim.inject(Fault("GET", "/snapshots/", kind="hang", delay=60))
        before = bot.reads(path)
        await bot.approve(request_id)
        await _until(lambda: bot.reads(path) == before + reads)
        request = await bot.request(request_id)
        assert request.status is Status.EXECUTING
        assert request.outcome.safety_step is None  # nothing recorded: nothing sent
        await _eventually(bot.delivered)
        await bot.kill()
        bot.sim.release_hangs()
        assert bot.snapshot_posts() == []

        mark, restarted = len(bot.slack.calls), time.monotonic()
        await bot.start()
        await _until(lambda: len(bot.snapshot_posts()) == 1)
        _the_safety_post(bot, request_id)
        await _restores_once_the_snapshot_is_complete(bot, request_id, restarted)
        await _until(lambda: bot.told("restored", since=mark))


async def test_killed_while_the_safety_post_is_unanswered_reads_it_back_never_posts_again(
    tmp_path: Path, database_url: str
) -> None:
    """Killed after the POST reached VPS.org, which made the snapshot, but before its answer
    arrived (step `posting`): on restart the bot finds the snapshot by its name, follows it
    and restores once; it never sends the POST again."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        bot.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", delay=4, status=504))
        await bot.approve(request_id)
        await _until(lambda: len(bot.snapshot_posts()) == 1)
        assert await bot.step_is(request_id, SafetyStep.POSTING)  # committed before the POST
        await _eventually(bot.delivered)
        await bot.kill()
        assert await bot.step_is(request_id, SafetyStep.POSTING)  # killed before any answer
        await _until(lambda: bot.safety_snapshots(request_id) == ["in_progress"])  # VPS.org made it

        mark, restarted = len(bot.slack.calls), time.monotonic()
        await bot.start()
        await _eventually(lambda: bot.step_is(request_id, SafetyStep.FOLLOWING))
        _the_safety_post(bot, request_id)  # the only one: not posted again
        following = (await bot.safety_steps(request_id))[-1]
        assert following["step"] == "following"
        assert following["how"] == "read_back"  # found by its name
        await _restores_once_the_snapshot_is_complete(bot, request_id, restarted)
        await _until(lambda: bot.told("restored", since=mark))


async def test_killed_while_the_safety_post_is_unanswered_and_not_listed_restores_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """Killed with the POST sent but not yet acted on by VPS.org (step `posting`): on restart
    no snapshot by that name is listed, so the bot cannot vouch for one. It does not POST
    again and does not restore: the request needs attention and the channel is told. The
    snapshot VPS.org makes late changes nothing."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        bot.sim.inject(Fault("POST", "/snapshots/", kind="hang", delay=60))  # in the network
        await bot.approve(request_id)
        await _until(lambda: len(bot.snapshot_posts()) == 1)
        assert await bot.step_is(request_id, SafetyStep.POSTING)
        await _eventually(bot.delivered)
        await bot.kill()

        mark = len(bot.slack.calls)
        await bot.start()

        async def decided() -> bool:  # handed to a person, or (wrongly) posted again
            posted_again = len(bot.snapshot_posts()) > 1
            return posted_again or await bot.status_is(request_id, Status.NEEDS_ATTENTION)

        await _eventually(decided)
        _the_safety_post(bot, request_id)  # the only one: not posted again
        request = await bot.request(request_id)
        assert request.status is Status.NEEDS_ATTENTION
        assert request.outcome.failure is not None
        assert request.outcome.failure.why is Why.SAFETY_UNCONFIRMED
        await _until(lambda: bot.told("attention", since=mark))
        assert bot.safety_snapshots(request_id) == []
        bot.sim.release_hangs()  # the delayed POST reaches VPS.org now: the snapshot is made
        await _until(lambda: bot.safety_snapshots(request_id) == ["in_progress"])
        bot.sim.finish_all()
        await asyncio.sleep(1.0)  # several ticks: room for a late POST or restore
        assert len(bot.snapshot_posts()) == 1
        assert bot.any_restore_calls() == 0
        assert bot.sim.servers[12345].status == "running"
        assert (await bot.request(request_id)).status is Status.NEEDS_ATTENTION


@pytest.mark.parametrize("moment", ["between_looks", "during_a_look"])
async def test_killed_while_following_the_safety_snapshot_goes_on_following(
    tmp_path: Path, database_url: str, moment: str
) -> None:
    """Killed while the tracker follows the snapshot being made (step `following`), between
    two looks (lease handed back) or during one (its lease lapses): the restarted bot goes on
    following it, and restores once, when it is complete."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        await bot.approve(request_id)
        await _eventually(lambda: bot.step_is(request_id, SafetyStep.FOLLOWING))
        posted = bot.snapshot_posts()[0].at
        await _until(lambda: bot.looks_since(posted) >= 2)  # the tracker looks at it each tick
        if moment == "between_looks":

            async def handed_back() -> bool:  # the look is over: nobody holds the request
                return await bot.delivered() and not await bot.leased(request_id)

            await _eventually(handed_back)
        else:
            bot.sim.inject(Fault("GET", "/snapshots/", kind="hang", delay=60))
            seen = bot.looks_since(posted)
            await _until(lambda: bot.looks_since(posted) > seen)
            assert await bot.leased(request_id)
            await _eventually(bot.delivered)
        await bot.kill()
        bot.sim.release_hangs()
        assert bot.safety_snapshots(request_id) == ["in_progress"]
        assert bot.any_restore_calls() == 0

        mark, restarted = len(bot.slack.calls), time.monotonic()
        await bot.start()
        await _restores_once_the_snapshot_is_complete(bot, request_id, restarted)
        _the_safety_post(bot, request_id)
        await _until(lambda: bot.told("restored", since=mark))


async def test_killed_before_the_restore_call_after_the_snapshot_never_calls_it(
    tmp_path: Path, database_url: str
) -> None:
    """Killed once the snapshot is seen complete (step `ready` committed) while the restore's
    last pre-check hangs, so the restore call was never sent: the restarted bot cannot know
    that, so it reads the server (not `restoring`) and hands the request to a person. It
    never calls the restore, and the channel is told."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        await bot.start()
        request_id = await bot.ask_restore()
        await bot.approve(request_id)
        await _eventually(lambda: bot.step_is(request_id, SafetyStep.FOLLOWING))
        # the next read of the server is the restore's pre-check, once the snapshot is complete
        bot.sim.inject(Fault("GET", SERVER, kind="hang", delay=60))
        before = bot.reads(SERVER)
        bot.sim.finish_all()
        await _until(lambda: bot.reads(SERVER) == before + 1)
        assert await bot.step_is(request_id, SafetyStep.READY)
        assert bot.any_restore_calls() == 0
        await _eventually(bot.delivered)
        await bot.kill()
        bot.sim.release_hangs()

        mark = len(bot.slack.calls)
        await bot.start()

        async def decided() -> bool:  # handed to a person, or (wrongly) restored
            restored = bot.any_restore_calls() > 0
            return restored or await bot.status_is(request_id, Status.NEEDS_ATTENTION)

        await _eventually(decided)
        assert bot.any_restore_calls() == 0
        request = await bot.request(request_id)
        assert request.status is Status.NEEDS_ATTENTION
        assert request.outcome.failure is not None
        assert request.outcome.failure.why is Why.BOT_STOPPED  # the server read: not restoring
        await _until(lambda: bot.told("attention", since=mark))
        await asyncio.sleep(1.0)  # several ticks: room for a late restore
        assert bot.any_restore_calls() == 0
        assert bot.sim.servers[12345].status == "running"
        assert len(bot.snapshot_posts()) == 1
        assert bot.safety_snapshots(request_id) == ["completed"]  # kept for the person to use
        assert (await bot.request(request_id)).status is Status.NEEDS_ATTENTION
