"""Clicks do not wait behind slow commands: an Approve pressed while ten slow lists hold every
command slot runs at once, and a click is judged at the moment it arrived."""

from dataclasses import replace
from datetime import timedelta

from bot.domain.lifecycle import Status
from bot.services import restores
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import ALICE, BOB, CHANNEL, Stack


def restore_calls(stack: Stack) -> list[object]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


async def test_an_approval_does_not_wait_behind_ten_slow_lists(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    await stack.command("restore 801 rolling back")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")
    stack.sim.inject(Fault("GET", "/backups/", kind="hang", delay=8.0, times=10))
    keys = [(await stack.command("list 12345", command="/backup"))[1] for _ in range(10)]
    await stack.until(lambda: len(stack.sim.calls_to("GET", "/backups/")) >= 4, what="lists")
    await stack.click(ids.RESTORE_APPROVE, request_id["elements"][0]["value"], user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    assert [k for k in keys if stack.slack.responses(k)] == []  # every list is still waiting
    assert len(restore_calls(stack)) == 1
    stack.sim.faults.clear()  # the lists are answered now, so the stack stops without waiting
    stack.sim.release_hangs()
    for key in keys:
        await stack.reply(key)


async def test_a_click_that_arrived_before_the_expiry_counts(stack: Stack) -> None:
    await stack.command("restore 801 rolling back")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = int(
        next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    )
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(request_id)
    assert request is not None
    assert request.expires_at is not None
    services = stack.bot.services
    # its turn came after the expiry; it arrived a second before it
    arrived = request.expires_at - timedelta(seconds=1)
    late = request.expires_at + timedelta(seconds=5)
    late_life = replace(services.life, clock=lambda: late)
    await restores.approve(
        services.vps, late_life, services.directory, BOB, request_id, CHANNEL, arrived
    )
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        decided = await uow.requests.get(request_id)
    assert decided is not None
    assert decided.status in (Status.EXECUTING, Status.RUNNING, Status.SUCCEEDED)
    assert decided.requester_id == ALICE
