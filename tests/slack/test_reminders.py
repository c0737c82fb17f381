"""Reminders at the wire: a restore still waiting gets one reminder in its card's thread,
naming who can approve and when it expires; exactly one across tracker cycles and a restart on
the same database; when it expires, its requester gets a DM."""

from __future__ import annotations

import asyncio
import json

from bot.domain.lifecycle import Status
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, Stack, running_stack

GROUP = "S0000OPS1"
# minutes: reminded 1.2 s after it was asked, expired after 9 s; the tracker ticks every 0.2 s
TIMES = {"vpsbot_approval_ttl": 0.15, "vpsbot_reminder_after": 0.02, "vpsbot_poll_interval": 0.2}


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def reminders(stack: Stack) -> list[object]:
    return [c for c in stack.posts(thread=True) if "Reminder" in text_of(c)]


async def test_one_reminder_in_the_thread_across_cycles_and_a_restart_then_a_dm_on_expiry(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    settings = TIMES | {"vpsbot_approvers": f"U0000APPR {GROUP}"}
    async with running_stack(simulator, served_simulator, sqlite_url, **settings) as stack:
        await stack.command("restore 801 rolling back")
        await stack.until(lambda: stack.posts(thread=False), what="the card")
        [reminder] = await stack.until(lambda: reminders(stack), what="the reminder")
        said = text_of(reminder)
        assert "<@U0000APPR>, <!subteam^S0000OPS1> (not <@U0000TEST>)" in said
        assert "still needs *1 more approval*" in said
        assert "It expires in " in said
        assert "<!date^" in said
        await asyncio.sleep(1.0)  # five more tracker cycles
        assert len(reminders(stack)) == 1
        async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
            [request] = await uow.requests.in_status(Status.PENDING_APPROVAL)
        assert request.outcome.reminded_at is not None
        assert request.message_ts  # the card's: the reminder is in its thread
        assert reminder.data["thread_ts"] == request.message_ts  # type: ignore[attr-defined]

    # the bot restarts on the same database: the reminder was sent, not again
    async with running_stack(simulator, served_simulator, sqlite_url, **settings) as again:
        await asyncio.sleep(1.0)
        assert reminders(again) == []
        [dm] = await again.until(again.dms, wait=15, what="the requester's DM on expiry")
        assert dm.data["channel"] == "D" + ALICE[1:]  # type: ignore[attr-defined]
        assert "expired without enough approvals: nothing was restored" in text_of(dm)
        [update] = await again.until(
            lambda: again.slack.api_calls("chat.update"), what="the card, expired"
        )
        assert "expired without enough approvals" in text_of(update)
        assert reminders(again) == []


async def test_no_reminder_when_turned_off(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    settings = TIMES | {"vpsbot_reminder_after": 0}
    async with running_stack(simulator, served_simulator, sqlite_url, **settings) as stack:
        await stack.command("restore 801 rolling back")
        await stack.until(lambda: stack.posts(thread=False), what="the card")
        await asyncio.sleep(2.0)
        assert reminders(stack) == []
