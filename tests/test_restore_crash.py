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


# Five restores of five servers, each brought to another step before one kill -9: one lease
# to wait for after the restart, for all of them.
STEPS = {
    "before_the_post": 31001,  # approved; its pre-check hangs: nothing recorded, nothing sent
    "post_answer_lost": 31002,  # `posting`; VPS.org makes it, its answer never arrives
    "post_not_listed": 31003,  # `posting`; the POST is still in the network at the kill
    "following": 31004,  # `following`, between two looks (lease handed back)
    "before_the_restore_call": 31005,  # `ready`; the restore's last pre-check hangs
}


def _target(server: int) -> int:
    return server + 10_000


async def _ask(bot: Deployment, server: int) -> str:
    """Alice asks to restore `server` from its snapshot; returns the request id."""
    cards = [c for c in bot.slack.api_calls("chat.postMessage") if not c.data.get("thread_ts")]
    await bot.command(f"restore {_target(server)} crash test")
    await _until(
        lambda: (
            len([c for c in bot.slack.api_calls("chat.postMessage") if not c.data.get("thread_ts")])
            > len(cards)
        )
    )
    card = [c for c in bot.slack.api_calls("chat.postMessage") if not c.data.get("thread_ts")][-1]
    actions = next(b for b in card.data["blocks"] if b["type"] == "actions")
    return str(actions["elements"][0]["value"])


def _posts_for(bot: Deployment, request_id: str) -> int:
    """The `POST /snapshots/` VPS.org received for this request's safety snapshot."""
    name = safety_name(int(request_id))
    return len(
        [c for c in bot.snapshot_posts() if isinstance(c.body, dict) and c.body.get("name") == name]
    )


def _restores_of(bot: Deployment, server: int) -> int:
    return len(bot.sim.calls_to("POST", f"/snapshots/{_target(server)}/restore/"))


async def _replied(bot: Deployment, request_id: str, words: str) -> bool:
    """The request's thread got a reply saying `words` (any case)."""
    ts = (await bot.request(request_id)).message_ts
    return any(
        words in json.dumps(c.data.get("blocks", [])).lower()
        for c in bot.slack.api_calls("chat.postMessage")
        if ts and c.data.get("thread_ts") == ts
    )


async def test_killed_at_every_step_of_the_safety_snapshot(
    tmp_path: Path, database_url: str
) -> None:
    """kill -9 with one restore at each step of its safety snapshot, then a restart: no second
    `POST /snapshots/` for any request, no second restore for any server, and no restore of a
    server whose snapshot the bot cannot vouch for. Nothing sent yet: it goes on (one POST).
    The POST's answer lost: found by name and followed. The POST not listed: needs attention.
    Following: goes on following. Ready, the restore call perhaps sent: read the server, never
    call it; needs attention. The three that go on restore once their snapshot is complete."""
    async with deployment(
        tmp_path, database_url=database_url, create_delay=SLOW, **SAFETY_ON
    ) as bot:
        for step, server in STEPS.items():
            bot.sim.add_server(server, f"crash-{step.replace('_', '-')}")
            bot.sim.add_snapshot(server, f"good-{server}", snapshot_id=_target(server))
        await bot.start()
        ids_ = {step: await _ask(bot, server) for step, server in STEPS.items()}

        async def approved_until(step: str, check: Callable[[], Awaitable[bool]]) -> None:
            await bot.approve(ids_[step])
            await _eventually(check)

        def server_reads(step: str) -> int:
            return bot.reads(f"/servers/{STEPS[step]}/")

        # following, and ready: their snapshots are made first
        await approved_until(
            "following", lambda: bot.step_is(ids_["following"], SafetyStep.FOLLOWING)
        )
        ready = ids_["before_the_restore_call"]
        await approved_until(
            "before_the_restore_call", lambda: bot.step_is(ready, SafetyStep.FOLLOWING)
        )
        bot.sim.inject(
            Fault("GET", f"/servers/{STEPS['before_the_restore_call']}/", kind="hang", delay=60)
        )
        made = next(
            o for o in bot.sim.objects["snapshots"].values() if o.name == safety_name(int(ready))
        )
        made.done_at = bot.sim.clock()  # this one only is complete: the restore's pre-check hangs
        reads = server_reads("before_the_restore_call")
        await _until(lambda: server_reads("before_the_restore_call") > reads)
        assert await bot.step_is(ready, SafetyStep.READY)

        # before the POST: the pre-check's read of the server hangs
        bot.sim.inject(Fault("GET", f"/servers/{STEPS['before_the_post']}/", kind="hang", delay=60))
        reads = server_reads("before_the_post")
        await bot.approve(ids_["before_the_post"])
        await _until(lambda: server_reads("before_the_post") > reads)

        # the POST still in the network at the kill: VPS.org makes nothing before the restart
        bot.sim.inject(Fault("POST", "/snapshots/", kind="hang", delay=60))
        unlisted = ids_["post_not_listed"]
        await approved_until("post_not_listed", lambda: bot.step_is(unlisted, SafetyStep.POSTING))
        await _until(lambda: _posts_for(bot, unlisted) == 1)

        # last, the POST VPS.org acts on while its answer is lost: killed before the answer
        bot.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", delay=6, status=504))
        lost = ids_["post_answer_lost"]
        await bot.approve(lost)
        await _until(lambda: _posts_for(bot, lost) == 1)
        await _eventually(lambda: bot.step_is(lost, SafetyStep.POSTING))
        await _eventually(bot.delivered)
        await bot.kill()

        assert await bot.step_is(lost, SafetyStep.POSTING)  # killed before any answer
        assert (await bot.request(ids_["before_the_post"])).outcome.safety_step is None
        assert await bot.step_is(ids_["following"], SafetyStep.FOLLOWING)
        assert await bot.step_is(ready, SafetyStep.READY)
        assert bot.any_restore_calls() == 0
        await _until(lambda: bot.safety_snapshots(lost) == ["in_progress"])  # VPS.org made it
        assert bot.safety_snapshots(unlisted) == []

        await bot.start()

        async def settled() -> bool:
            return (
                await bot.step_is(ids_["before_the_post"], SafetyStep.FOLLOWING)
                and await bot.step_is(lost, SafetyStep.FOLLOWING)
                and await bot.status_is(unlisted, Status.NEEDS_ATTENTION)
                and await bot.status_is(ready, Status.NEEDS_ATTENTION)
            )

        await _eventually(settled)
        assert (await bot.safety_steps(lost))[-1]["how"] == "read_back"  # found by its name
        unconfirmed = (await bot.request(unlisted)).outcome.failure
        assert unconfirmed is not None
        assert unconfirmed.why is Why.SAFETY_UNCONFIRMED
        stopped = (await bot.request(ready)).outcome.failure
        assert stopped is not None
        assert stopped.why is Why.BOT_STOPPED
        for request_id in (unlisted, ready):
            await _eventually(lambda r=request_id: _replied(bot, r, "attention"))
        await _eventually(lambda: bot.step_is(ids_["following"], SafetyStep.FOLLOWING))
        assert bot.any_restore_calls() == 0  # not while the snapshots are being made

        bot.sim.finish_all()  # the snapshots are complete: a restore each for the three
        going_on = ("before_the_post", "post_answer_lost", "following")
        await _until(lambda: all(_restores_of(bot, STEPS[step]) == 1 for step in going_on))
        for step in going_on:
            await _eventually(lambda s=step: bot.status_is(ids_[s], Status.RUNNING))
        bot.sim.finish_all()  # the servers run again
        for step in going_on:
            await _eventually(lambda s=step: bot.status_is(ids_[s], Status.SUCCEEDED))

        bot.sim.release_hangs()  # the delayed POST reaches VPS.org now: a snapshot nobody follows
        await _until(lambda: bot.safety_snapshots(unlisted) == ["in_progress"])
        bot.sim.finish_all()
        await asyncio.sleep(1.0)  # several ticks: room for anything sent twice, or late
        for step, server in STEPS.items():
            assert _posts_for(bot, ids_[step]) == 1, step
            assert _restores_of(bot, server) == (1 if step in going_on else 0), step
        assert bot.sim.servers[STEPS["post_not_listed"]].status == "running"
        assert bot.sim.servers[STEPS["before_the_restore_call"]].status == "running"
        assert (await bot.request(unlisted)).status is Status.NEEDS_ATTENTION


@pytest.mark.parametrize("moment", ["during_a_look"])
async def test_killed_while_following_the_safety_snapshot_goes_on_following(
    tmp_path: Path, database_url: str, moment: str
) -> None:
    """Killed during a look at the snapshot being made (step `following`, its lease held and
    lapsing): the restarted bot goes on following it, and restores once, when it is complete.
    (Between two looks: `test_killed_at_every_step_of_the_safety_snapshot`.) Its lease
    lapsing takes long: on PostgreSQL only when it is there (claims differ most there)."""
    if database_url.startswith("sqlite") and os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("run on PostgreSQL")
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
