"""A request handed to a new work process after the one before died with it (`handed_again`):
what it had done there decides, from the database, never from memory. Found by the review:
a finished command was told "interrupted" and audited twice, and a command answered "busy"
was carried out after all."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bot.slack import works
from bot.slack.commands import Arrival, handed_again, raw_identity
from bot.slack.inflight import InFlight
from bot.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import ALICE, CHANNEL, Stack, fixture


def command(stack: Stack, text: str, key: str) -> tuple[dict[str, Any], Arrival]:
    raw = urlencode(
        fixture("slash-command.json")
        | {
            "command": "/snapshot", "text": text, "user_id": ALICE, "channel_id": CHANNEL,
            "response_url": stack.slack.response_url(key),
        }
    )  # fmt: skip
    return dict(parse_qsl(raw)), Arrival(raw_identity(raw), stack.bot.services.life.clock())


async def outcomes(stack: Stack) -> list[str]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return [str(e.detail["outcome"]) for e in await uow.audit.events("command")]


def said(stack: Stack, key: str) -> list[str]:
    return [json.dumps(call.data) for call in stack.slack.responses(key)]


async def run_again(stack: Stack, body: dict[str, Any], arrival: Arrival) -> None:
    work = works(stack.bot.services, InFlight())["/snapshot"]
    await handed_again(stack.bot.services)(work, body, stack.bot.slack.client, arrival)


async def test_a_command_that_ended_before_its_work_process_died_is_left_alone(
    stack: Stack,
) -> None:
    body, arrival = command(stack, "create 12345 nightly", "k1")
    await works(stack.bot.services, InFlight())["/snapshot"](body, stack.bot.slack.client, arrival)
    await stack.bot.services.commands.finished([arrival.key])  # as the work process records it
    await run_again(stack, body, arrival)  # its "done" was lost with the process
    assert await outcomes(stack) == ["ok"]
    assert said(stack, "k1") == []  # a create answers in the channel; nothing more is said
    assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1


async def test_a_command_begun_and_not_ended_is_not_done_again_and_is_told(stack: Stack) -> None:
    body, arrival = command(stack, "create 12345 nightly", "k2")
    await stack.bot.services.commands.first_delivery(arrival.key, ALICE, CHANNEL, "/snapshot")
    await run_again(stack, body, arrival)  # begun in the process that died
    assert stack.sim.calls_to("POST", "/snapshots/") == []
    assert await outcomes(stack) == ["interrupted"]
    [answer] = said(stack, "k2")
    assert "restarted its work" in answer
    assert "not done a second time" in answer


async def test_a_command_answered_busy_is_never_carried_out_after_a_restart(
    stack: Stack,
) -> None:
    body, arrival = command(stack, "create 12345 nightly", "k3")
    crowded = InFlight(backlog=-1)  # the first work process was over its backlog: "busy"
    await works(stack.bot.services, crowded)["/snapshot"](body, stack.bot.slack.client, arrival)
    assert "many requests" in said(stack, "k3")[0]
    await run_again(stack, body, arrival)  # it died before saying the busy answer was done
    assert stack.sim.calls_to("POST", "/snapshots/") == []
    assert "busy" in await outcomes(stack)


async def test_a_command_never_begun_is_carried_out(stack: Stack) -> None:
    body, arrival = command(stack, "list 12345", "k4")
    await run_again(stack, body, arrival)
    assert "pre-migration-snapshot" in (await stack.reply("k4")).data["blocks"].__repr__()
    assert await outcomes(stack) == ["ok"]


async def test_a_command_older_than_the_replay_memory_is_not_carried_out(stack: Stack) -> None:
    body, arrival = command(stack, "create 12345 nightly", "k5")
    old = Arrival(arrival.key, arrival.at - timedelta(minutes=11))
    await run_again(stack, body, old)  # its identity may already be forgotten: not done
    assert stack.sim.calls_to("POST", "/snapshots/") == []
    assert await outcomes(stack) == ["interrupted"]
