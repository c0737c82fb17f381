"""A restore is reported done only on evidence: the server seen `restoring` after the call, then
`running`. A 200 that changed nothing ends in *needs attention*, never in "restored"."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from freezegun import freeze_time

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import BOB, Stack

CANNED = {  # what VPS.org answers for a restore that started, per its documentation
    "status": "success",
    "message": "Server is being restored from snapshot. This may take 5-15 minutes.",
    "snapshot": {"id": 801, "name": "pre-migration-snapshot", "created_at": "2025-01-15T18:30:00Z"},
    "server": {"id": 12345, "name": "web-server-01", "status": "restoring"},
}


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


async def status_of(stack: Stack, request_id: int) -> Status:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(request_id)
    assert request is not None
    return request.status


def said_restored(stack: Stack) -> list[Any]:
    return [
        c
        for c in stack.slack.calls
        if "was *restored*" in text_of(c) or ":white_check_mark: done" in text_of(c)
    ]


def card(stack: Stack) -> Any:
    """The request's card as it was last updated in place (it holds the whole story)."""
    return stack.slack.api_calls("chat.update")[-1]


async def test_a_restore_answered_200_that_never_happened_needs_attention(stack: Stack) -> None:
    ack, _ = await stack.command("restore 801 rolling back")
    assert ack.status_code == 200
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = int(
        next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    )
    # a proxy (or a broken VPS.org) answers the documented 200 and does nothing
    stack.sim.inject(Fault("POST", "/snapshots/801/restore/", status=200, body=CANNED))
    await stack.click(ids.RESTORE_APPROVE, str(request_id), user=BOB)
    await stack.until(
        lambda: len(stack.sim.calls_to("GET", "/servers/12345/")) >= 5, what="several polls"
    )
    assert stack.sim.servers[12345].status == "running"
    assert await status_of(stack, request_id) is Status.RUNNING  # not "succeeded" on a 200
    assert said_restored(stack) == []

    # stay on the later clock until every message is out: they are due at the verdict's time
    with freeze_time(datetime.now(UTC) + timedelta(minutes=3), real_asyncio=True, tick=True):
        [reply] = await stack.until(lambda: stack.posts(thread=True), what="the report")
        assert await status_of(stack, request_id) is Status.NEEDS_ATTENTION
        await stack.until(lambda: len(stack.dms()) >= 2, what="the DMs")
    assert reply.data["text"].startswith(":warning: needs attention: ")
    assert "never seen restoring" in text_of(reply)
    assert "*needs attention*" in text_of(card(stack))
    assert said_restored(stack) == []
    assert not [c for c in stack.slack.calls if "is running again" in text_of(c)]


async def test_a_real_restore_is_seen_restoring_and_then_reported_done(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    _ack, _ = await stack.command("restore 801 rolling back")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = int(
        next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    )
    await stack.click(ids.RESTORE_APPROVE, str(request_id), user=BOB)
    await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the running update",
    )
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(request_id)
    assert request is not None
    assert request.outcome.seen_restoring is True  # read from the server, not the 200
    stack.sim.finish_all()
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the completion")
    assert reply.data["text"].startswith(":white_check_mark: done in ")
    assert "was *restored*" in text_of(card(stack))
    assert await status_of(stack, request_id) is Status.SUCCEEDED
