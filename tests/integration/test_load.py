"""A short load run in the suite (the long one is `python -m bench.load`): 200 commands at once
against served instances: no 5xx, every ack under 3 s, exactly one audit row per command."""

import asyncio
import time
from contextlib import AsyncExitStack
from urllib.parse import urlencode

from bot.serving import serving
from bot.slack.signing import signed_headers
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import SIGNING_SECRET, VPS_TOKEN, fixture, running_stack

COMMANDS = 200


async def test_200_commands_at_once_on_two_instances(database_url: str) -> None:
    sim = Simulator(token=VPS_TOKEN)
    async with AsyncExitStack() as stack:
        vps_url = await stack.enter_async_context(serving(sim.app))
        first, second = [
            await stack.enter_async_context(running_stack(sim, f"{vps_url}/api/v1", database_url))
            for _ in range(2)
        ]

        async def one(number: int) -> tuple[int, float]:
            target = (first, second)[number % 2]
            fields = fixture("slash-command.json") | {
                "text": "list 12345" if number % 3 else "help",
                "user_id": f"U{number:08d}",
                "response_url": target.slack.response_url(f"load{number}"),
            }
            body = urlencode(fields)
            started = time.monotonic()
            answer = await target.http.post(
                "/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body)
            )
            return answer.status_code, time.monotonic() - started

        results = await asyncio.gather(*(one(n) for n in range(COMMANDS)))
        assert {status for status, _ in results} == {200}
        assert max(seconds for _, seconds in results) < 3
        for _ in range(300):
            async with SqlUnitOfWork(first.bot.database.sessions) as uow:
                rows = await uow.audit.events("command")
            if len(rows) >= COMMANDS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        async with SqlUnitOfWork(first.bot.database.sessions) as uow:
            rows = await uow.audit.events("command")
        assert len(rows) == COMMANDS
        assert len({r.actor_id for r in rows}) == COMMANDS  # one row for each command, no more
        replies = len(first.slack.responses()) + len(second.slack.responses())
        assert replies == COMMANDS  # everyone heard back ("busy" counts: it is an answer)
