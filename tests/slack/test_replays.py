"""Replays act once: the same signed request POSTed again (a load balancer or client retry,
Slack's own retry with X-Slack-Retry-Num, anyone holding a copy) is acknowledged and not acted
on again, on any instance."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from bot.domain.lifecycle import Status
from bot.serving import serving
from bot.slack import ids
from bot.slack.signing import signed_headers
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, VPS_TOKEN, Stack, fixture, running_stack


def command_body(stack: Stack, text: str, command: str = "/snapshot", key: str = "r1") -> str:
    fields = fixture("slash-command.json") | {
        "command": command,
        "text": text,
        "user_id": ALICE,
        "channel_id": CHANNEL,
        "response_url": stack.slack.response_url(key),
    }
    return urlencode(fields)


async def twice(stack: Stack, body: str, **retry: str) -> None:
    """POST one signed body twice, the second with the same signature (or Slack's retry
    header), as close together as the client allows."""
    headers = signed_headers(stack.secret, body)
    first, second = await asyncio.gather(
        stack.http.post("/slack/events", content=body, headers=headers),
        stack.http.post("/slack/events", content=body, headers=headers | retry),
    )
    assert (first.status_code, second.status_code) == (200, 200)


async def audit(stack: Stack, event: str) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return list(await uow.audit.events(event))


async def settle(stack: Stack, replays: int = 1) -> None:
    """Both deliveries handled: the first recorded as a command, the second as a replay."""
    for _ in range(500):
        if len(await audit(stack, "replay")) >= replays and await audit(stack, "command"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the two deliveries were not both handled")


@pytest.mark.parametrize(
    "retry", [{}, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}]
)
async def test_a_replayed_snapshot_create_makes_one_snapshot(
    stack: Stack, retry: dict[str, str]
) -> None:
    await twice(stack, command_body(stack, "create 12345 nightly"), **retry)
    await settle(stack)
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1
    assert len([o for o in stack.sim.objects["snapshots"].values() if o.name == "nightly"]) == 1
    assert len(await audit(stack, "command")) == 1
    [replay] = await audit(stack, "replay")
    assert (replay.actor_id, replay.detail["what"]) == (ALICE, "/snapshot")
    assert len(stack.posts(thread=False)) == 1


async def test_a_replayed_backup_create_makes_one_backup(stack: Stack) -> None:
    await twice(stack, command_body(stack, "create 12345 before upgrade", "/backup"))
    await settle(stack)
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert len(stack.sim.calls_to("POST", "/backups/")) == 1


async def test_a_replayed_restore_request_posts_one_card(stack: Stack) -> None:
    await twice(stack, command_body(stack, "restore 801 bad deploy"))
    await settle(stack)
    await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert len(await uow.requests.in_status(Status.PENDING_APPROVAL)) == 1
    assert len(stack.posts(thread=False)) == 1


async def test_a_replayed_list_is_answered_once(stack: Stack) -> None:
    await twice(stack, command_body(stack, "list 12345", key="list"))
    await settle(stack)
    await stack.reply("list")
    assert len(stack.slack.responses("list")) == 1


async def test_a_replayed_approval_click_votes_once(stack: Stack) -> None:
    ack, _ = await stack.command("restore 801 bad deploy")
    assert ack.status_code == 200
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]
    payload = fixture("block-actions.json")
    payload["user"]["id"] = BOB
    payload["channel"]["id"] = payload["container"]["channel_id"] = CHANNEL
    payload["response_url"] = stack.slack.response_url("click")
    payload["actions"][0].update(action_id=ids.RESTORE_APPROVE, value=request_id["value"])
    await twice(stack, "payload=" + quote(json.dumps(payload)))
    await stack.until(
        lambda: [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")],
        what="the restore call",
    )
    for _ in range(500):
        if await audit(stack, "replay"):
            break
        await asyncio.sleep(0.02)
    [replay] = await audit(stack, "replay")
    assert replay.actor_id == BOB
    assert stack.slack.responses("click") == []  # no "already voted" for the copy
    assert len([c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]) == 1


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    sim = Simulator(token=VPS_TOKEN, create_delay=3600)
    async with AsyncExitStack() as stack, serving(sim.app) as vps_url:
        first, second = [
            await stack.enter_async_context(
                running_stack(sim, f"{vps_url}/api/v1", database_url, vpsbot_poll_interval=5)
            )
            for _ in range(2)
        ]
        yield first, second


async def test_a_replay_to_another_instance_is_not_acted_on(
    two_instances: tuple[Stack, Stack],
) -> None:
    first, second = two_instances
    body = command_body(first, "create 12345 across")
    headers = signed_headers(first.secret, body)
    answers = await asyncio.gather(
        first.http.post("/slack/events", content=body, headers=headers),
        second.http.post("/slack/events", content=body, headers=headers),
    )
    assert [a.status_code for a in answers] == [200, 200]
    await settle(first)
    assert len(first.sim.calls_to("POST", "/snapshots/")) == 1
