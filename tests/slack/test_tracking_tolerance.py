"""Following operations through VPS.org's bad moments: "still working" statuses other than
`in_progress` do not fail a create, and one 404 or error reading a restoring server does not
fail the restore (several in a row, over a bound, need a person)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import BOB, Stack


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


async def only_request(stack: Stack) -> Any:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [request] = await uow.requests.in_status(*Status)
    return request


@pytest.mark.parametrize("working", ["pending", "queued", "creating"])
async def test_a_create_that_vpsorg_calls_working_is_followed_to_the_end(
    stack: Stack, working: str
) -> None:
    stack.sim.create_delay = 3600
    ack, _ = await stack.command("create 12345 nightly")
    assert ack.status_code == 200
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    [created] = [o for o in stack.sim.objects["snapshots"].values() if o.name == "nightly"]
    created.status = working
    polls = len(stack.sim.calls_to("GET", "/snapshots/"))
    await stack.until(
        lambda: len(stack.sim.calls_to("GET", "/snapshots/")) >= polls + 3, what="three polls"
    )
    assert (await only_request(stack)).status is Status.RUNNING
    assert stack.posts(thread=True) == []
    created.status, created.size_mb = "completed", 2048
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the completion")
    assert (await only_request(stack)).status is Status.SUCCEEDED
    assert "failed" not in text_of(reply)


async def approve_restore(stack: Stack) -> int:
    stack.sim.restore_delay = 3600
    await stack.command("restore 801 rolling back")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    request_id = int(
        next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    )
    await stack.click(ids.RESTORE_APPROVE, str(request_id), user=BOB)
    await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the running update",
    )
    return request_id


@pytest.mark.parametrize("status", [404, 500])
async def test_one_bad_read_of_a_restoring_server_does_not_fail_it(
    stack: Stack, status: int
) -> None:
    await approve_restore(stack)
    stack.sim.inject(Fault("GET", "/servers/12345/", status=status, body={"detail": "Not found."}))
    await stack.until(lambda: not stack.sim.faults, what="the bad read")
    reads = len(stack.sim.calls_to("GET", "/servers/12345/"))
    await stack.until(
        lambda: len(stack.sim.calls_to("GET", "/servers/12345/")) > reads, what="a good read"
    )
    assert (await only_request(stack)).status is Status.RUNNING
    stack.sim.finish_all()
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the completion")
    assert reply.data["text"].startswith(":white_check_mark: done in ")
    assert "was *restored*" in text_of(stack.slack.api_calls("chat.update")[-1])  # the card
    assert (await only_request(stack)).status is Status.SUCCEEDED


async def test_a_server_unreadable_for_minutes_needs_attention(stack: Stack) -> None:
    await approve_restore(stack)
    stack.sim.inject(Fault("GET", "/servers/12345/", status=404, body={}, times=None))
    start = datetime.now(UTC)
    # the tracker backs off after each bad read; walk the clock through the bound
    for minutes in (1, 2, 4, 8):
        with freeze_time(start + timedelta(minutes=minutes), real_asyncio=True, tick=True):
            before = len(stack.sim.calls_to("GET", "/servers/12345/"))
            await stack.until(
                lambda n=before: (
                    len(stack.sim.calls_to("GET", "/servers/12345/")) > n
                    or stack.posts(thread=True)
                ),
                what="another read",
            )
            if (await only_request(stack)).status is not Status.RUNNING:
                [reply] = await stack.until(lambda: stack.posts(thread=True), what="the report")
                break
    else:
        raise AssertionError("the restore was followed for ever without being read")
    request = await only_request(stack)
    assert request.status is Status.NEEDS_ATTENTION
    assert "could not be read" in text_of(reply)
    card = stack.slack.api_calls("chat.update")[-1]  # the whole story is on the card
    assert "may still be running" in text_of(card)
