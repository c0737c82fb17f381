"""Approvers given as a Slack user group: membership is at most VPSBOT_DIRECTORY_TTL seconds old
when it decides a vote, and when Slack cannot say, the vote is refused (fail closed)."""

import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DirectoryUnavailable
from bot.domain.lifecycle import Status
from bot.serving import serving
from bot.slack import ids
from bot.slack.directory import SlackDirectory
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, running_stack
from tests.fakes.slack import SlackStandIn, WebFault
from tests.slack.modals import deny

DAVE = "U0000DAVE"
GROUP = "S0000OPS"


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


def slack_fails(slack: SlackStandIn) -> None:
    slack.faults.append(
        WebFault(
            "usergroups.users.list", status=200, body={"ok": False, "error": "fatal_error"},
            times=100,
        )
    )  # fmt: skip


async def test_a_removed_approver_cannot_approve_when_slack_stops_answering(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        vpsbot_poll_interval=0.2,
        vpsbot_approvers=GROUP,
        vpsbot_directory_ttl=0,  # every decision asks Slack afresh
    ) as stack:
        stack.slack.groups[GROUP] = [DAVE]
        # Dave is an approver: his Deny of a first request counts (and his membership was seen)
        await stack.command("restore 801 first")
        [first] = await stack.until(lambda: stack.posts(thread=False), what="the first card")
        first_id = next(b for b in first.data["blocks"] if b["type"] == "actions")["elements"][0]
        await deny(stack, first_id["value"], DAVE)
        await stack.until(lambda: stack.slack.api_calls("chat.update"), what="the denial")

        # he leaves the group, and Slack stops answering usergroups.users.list
        stack.slack.groups[GROUP] = []
        slack_fails(stack.slack)
        await stack.command("restore 801 second")
        posts = await stack.until(
            lambda: len(stack.posts(thread=False)) >= 2 and stack.posts(thread=False),
            what="the second card",
        )
        second = next(b for b in posts[1].data["blocks"] if b["type"] == "actions")
        request_id = second["elements"][0]["value"]
        _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=DAVE)
        reply = text_of(await stack.reply(key))
        assert "could not check who may approve; nothing was done" in reply
        assert [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")] == []
        async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
            request = await uow.requests.get(int(request_id))
            refused = await uow.audit.events("refused")
            votes = await uow.approvals.votes(int(request_id))
        assert request is not None
        assert request.status is Status.PENDING_APPROVAL
        assert votes == []
        assert [(r.actor_id, r.detail["error"]) for r in refused] == [
            (DAVE, "DirectoryUnavailable")
        ]


async def test_operators_from_a_group_are_refused_when_slack_cannot_answer(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_operators=GROUP
    ) as stack:
        slack_fails(stack.slack)
        reply = await stack.ask("create 12345 nightly", user=ALICE)
        assert "could not check who may create or delete; nothing was done" in text_of(reply)
        assert stack.sim.calls_to("POST") == []


async def test_membership_is_reused_within_the_ttl_and_never_after() -> None:
    slack = SlackStandIn()
    slack.groups[GROUP] = [DAVE]
    now = [1000.0]
    async with serving(slack.app) as url:
        directory = SlackDirectory(
            AsyncWebClient(token="xoxb-t", base_url=f"{url}/api/"), ttl=60, clock=lambda: now[0]
        )
        assert await directory.members(GROUP) == {DAVE}
        slack.groups[GROUP] = []
        slack_fails(slack)
        now[0] += 59.0
        assert await directory.members(GROUP) == {DAVE}  # within the TTL: no call
        assert len(slack.api_calls("usergroups.users.list")) == 1
        now[0] += 2.0
        with pytest.raises(DirectoryUnavailable):
            await directory.members(GROUP)  # too old, and Slack fails: refused, not the cache
        with pytest.raises(DirectoryUnavailable):
            await directory.members(GROUP)  # and the stale entry is gone for good
