"""A restore of a server that already has one waiting for approval, executing or running is
refused when asked, through the served app: the person gets an ephemeral refusal naming the
request in the way (#N), the database holds no new request, the channel gets nothing and
VPS.org gets no restore. Once that request is cancelled or denied, a new one is accepted."""

import asyncio
import json

from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import ALICE, BOB, Stack
from tests.slack.modals import deny

CAROL = "U0000CARL"


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def restore_calls(stack: Stack) -> list[object]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


async def ask_restore(stack: Stack, text: str = "restore 801 bad deploy") -> int:
    """Alice asks; returns the id of the request on the card posted for it."""
    before = len(stack.posts(thread=False))
    ack, _ = await stack.command(text)
    assert ack.status_code == 200
    posts = await stack.until(
        lambda: len(stack.posts(thread=False)) > before and stack.posts(thread=False),
        what="the approval request",
    )
    actions = next(b for b in posts[-1].data["blocks"] if b["type"] == "actions")
    return int(actions["elements"][0]["value"])


async def requests(stack: Stack) -> list[OperationRequest]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status)


async def status_of(stack: Stack, request_id: int) -> Status:
    return next(r.status for r in await requests(stack) if r.id == request_id)


async def until_status(stack: Stack, request_id: int, status: Status) -> None:
    for _ in range(500):
        if await status_of(stack, request_id) is status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"request #{request_id} never reached {status}")


async def refused_second(stack: Stack, first: int, says: str) -> None:
    """Ask for a restore of the same server from another object (CAROL, a backup): refused,
    ephemerally, naming `first`; nothing created, posted or sent."""
    cards, calls = stack.posts(thread=False), len(restore_calls(stack))
    ack, key = await stack.command("restore 501 me too", command="/backup", user=CAROL)
    assert ack.status_code == 200
    reply = await stack.reply(key)
    assert reply.data["response_type"] == "ephemeral"
    said = text_of(reply)
    assert f"*web-server-01* (`12345`) {says}: request #{first} (" in said
    # the request in the way (not the one asked for), as its card names it, and who asked
    assert "restore from snapshot `pre-migration-snapshot` (id `801`" in said
    assert f"asked by <@{ALICE}>)" in said
    assert "Nothing was asked" in said
    assert [r.id for r in await requests(stack)] == [first]  # nothing created
    # the reply came after the handler's transaction: nothing of this request was queued
    # (checked in the outbox below), so nothing can reach the channel later
    assert stack.posts(thread=False) == cards  # nothing new in the channel
    [card] = [r.message_ts for r in await requests(stack)]
    assert {u.data["ts"] for u in stack.slack.api_calls("chat.update")} <= {card}
    assert stack.dms() == []
    assert len(restore_calls(stack)) == calls  # nothing sent to VPS.org
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        commands = await uow.audit.events("command")
        queued = {item.request_id for item in await uow.outbox.items()}
    assert queued == {first}  # only the first request's own messages
    assert commands[-1].actor_id == CAROL
    assert commands[-1].detail["outcome"] == "refused"
    assert commands[-1].detail["error"] == "ConflictingRestore"


async def test_refused_while_one_waits_for_approval(stack: Stack) -> None:
    first = await ask_restore(stack)
    await refused_second(stack, first, "already has a restore waiting for approval")
    assert "cancel or deny that one first, or wait for it to expire" in text_of(
        stack.slack.calls[-1]
    )
    # the first is untouched and still restores once approved
    await stack.click(ids.RESTORE_APPROVE, str(first), user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    assert [c.path for c in restore_calls(stack)] == ["/snapshots/801/restore/"]  # type: ignore[attr-defined]


async def test_refused_while_one_is_executing(stack: Stack) -> None:
    first = await ask_restore(stack)
    # the pre-check's read of the snapshots hangs: the request stays `executing`, nothing sent
    stack.sim.inject(Fault("GET", "/snapshots/", kind="hang", delay=8))
    await stack.click(ids.RESTORE_APPROVE, str(first), user=BOB)
    await until_status(stack, first, Status.EXECUTING)
    try:
        await refused_second(stack, first, "is already being restored")
        assert await status_of(stack, first) is Status.EXECUTING
    finally:
        stack.sim.release_hangs()
    await stack.until(lambda: restore_calls(stack), what="the first restore's call")
    assert len(restore_calls(stack)) == 1


async def test_refused_while_one_is_running(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    first = await ask_restore(stack)
    await stack.click(ids.RESTORE_APPROVE, str(first), user=BOB)
    await until_status(stack, first, Status.RUNNING)
    await refused_second(stack, first, "is already being restored")
    assert len(restore_calls(stack)) == 1


async def test_accepted_once_the_first_is_cancelled(stack: Stack) -> None:
    first = await ask_restore(stack)
    await stack.click(ids.RESTORE_CANCEL, str(first), user=ALICE)
    await until_status(stack, first, Status.CANCELLED)
    second = await ask_restore(stack, "restore 798 the older one then")
    assert second != first
    assert await status_of(stack, second) is Status.PENDING_APPROVAL
    assert len(stack.posts(thread=False)) == 2
    assert restore_calls(stack) == []


async def test_accepted_once_the_first_is_denied(stack: Stack) -> None:
    first = await ask_restore(stack)
    await deny(stack, str(first), BOB)
    await until_status(stack, first, Status.DENIED)
    second = await ask_restore(stack)
    assert await status_of(stack, second) is Status.PENDING_APPROVAL
    # and that one goes through as any other
    await stack.click(ids.RESTORE_APPROVE, str(second), user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    assert len(restore_calls(stack)) == 1
