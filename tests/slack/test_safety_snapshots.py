"""Safety snapshots and Undo at the wire: signed commands and clicks, the VPS.org simulator over
HTTP, the fake Slack. What VPS.org receives and in what order, what the channel is told, and
that nothing is restored when the promised safety snapshot cannot be had."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from bot.domain.lifecycle import Status
from bot.domain.model import OperationRequest
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, SimCall, Simulator
from tests.conftest import BOB, Stack, running_stack

CAROL = "U0000CARL"
SERVER = 12345


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    """The bot as shipped: safety snapshots on. VPS.org finishes nothing until told."""
    simulator.create_delay = simulator.restore_delay = 3600
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        vpsbot_poll_interval=0.2,
        vpsbot_safety_snapshot=True,
    ) as built:
        yield built


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def snapshot_posts(stack: Stack) -> list[SimCall]:
    return stack.sim.calls_to("POST", "/snapshots/")


def restore_calls(stack: Stack) -> list[SimCall]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


def buttons(call: object) -> list[str]:
    data = call.data  # type: ignore[attr-defined]
    return [
        element["action_id"]
        for block in data.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    ]


async def stored(stack: Stack, request_id: str | int) -> OperationRequest:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(int(request_id))
    assert request is not None
    return request


async def ask_restore(stack: Stack, text: str = "restore 801 bad deploy") -> tuple[str, str]:
    """Alice asks; returns the request id and the card's text."""
    before = len(stack.posts(thread=False))
    ack, _ = await stack.command(text)
    assert ack.status_code == 200
    posts = await stack.until(
        lambda: stack.posts(thread=False)[before:], what="the approval request"
    )
    actions = next(b for b in posts[0].data["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], text_of(posts[0])


async def card_says(stack: Stack, words: str) -> str:
    """Wait until the card (an update of it) says `words`; return that text."""

    def said() -> str:
        for call in reversed(stack.slack.api_calls("chat.update")):
            if words in text_of(call):
                return text_of(call)
        return ""

    return await stack.until(said, what=f"the card saying {words!r}")


async def restored(stack: Stack) -> tuple[str, OperationRequest]:
    """A restore of snapshot 801 approved, its safety snapshot complete, the server restored."""
    request_id, _ = await ask_restore(stack)
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: snapshot_posts(stack), what="the safety snapshot's POST")
    stack.sim.finish_all()
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    await card_says(stack, "*Restoring*")  # seen restoring: now it may finish
    stack.sim.finish_all()
    await card_says(stack, "was *restored*")
    return request_id, await stored(stack, request_id)


async def test_the_snapshot_is_posted_and_seen_complete_before_the_one_restore_call(
    stack: Stack,
) -> None:
    request_id, card = await ask_restore(stack)
    assert "A *safety snapshot* of *web-server-01* (`12345`) is taken first" in card
    assert "this restore can be undone" in card

    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    [post] = await stack.until(lambda: snapshot_posts(stack), what="the safety snapshot's POST")
    assert post.body["server_id"] == SERVER
    assert post.body["name"] == f"pre-restore-{request_id}"
    assert f"request #{request_id}" in post.body["description"]
    await card_says(stack, "Taking a *safety snapshot*")
    listings_before = len(stack.sim.calls_to("GET", "/snapshots/"))
    await stack.until(
        lambda: len(stack.sim.calls_to("GET", "/snapshots/")) > listings_before + 2,
        what="the tracker following the snapshot",
    )
    assert restore_calls(stack) == []  # not while it is in progress
    assert (await stored(stack, request_id)).status is Status.EXECUTING

    stack.sim.finish_all()
    [call] = await stack.until(lambda: restore_calls(stack), what="the restore call")
    assert call.path == "/snapshots/801/restore/"
    # the order at VPS.org: the snapshot's POST, a listing (seen completed), the restore call
    calls = stack.sim.calls
    assert calls.index(post) < calls.index(call)
    seen = [c for c in calls[calls.index(post) : calls.index(call)] if c.path == "/snapshots/"]
    assert seen
    assert seen[-1].query["server_id"] == str(SERVER)
    await card_says(stack, "*Restoring*")
    stack.sim.finish_all()
    done = await card_says(stack, "was *restored*")
    assert f"`pre-restore-{request_id}`" in done
    assert "*Undo restore*" in done
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the thread reply")
    assert buttons(reply) == [ids.RESTORE_UNDO]
    assert ids.RESTORE_UNDO in buttons(stack.slack.api_calls("chat.update")[-1])
    assert len(snapshot_posts(stack)) == 1
    assert len(restore_calls(stack)) == 1


async def test_at_the_limit_the_card_says_so_and_the_restore_takes_no_snapshot(
    stack: Stack,
) -> None:
    for n in range(3):  # 798 and 801 are there: five
        stack.sim.add_snapshot(SERVER, f"keep-{n}")
    request_id, card = await ask_restore(stack)
    assert "*No safety snapshot can be taken*" in card
    assert "VPS.org allows 5 snapshots per server and *web-server-01* (`12345`) has 5" in card
    assert "*cannot be undone*" in card

    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    assert snapshot_posts(stack) == []
    await card_says(stack, "*Restoring*")
    stack.sim.finish_all()
    done = await card_says(stack, "was *restored*")
    assert "Undo" not in done


@pytest.mark.parametrize("how", ["limit_meanwhile", "refused", "failed", "disappeared"])
async def test_when_the_promised_snapshot_cannot_be_had_nothing_is_restored(
    stack: Stack, how: str
) -> None:
    request_id, card = await ask_restore(stack)
    assert "*safety snapshot*" in card
    if how == "limit_meanwhile":
        for n in range(3):
            stack.sim.add_snapshot(SERVER, f"meanwhile-{n}")
    elif how == "refused":
        stack.sim.inject(
            Fault("POST", "/snapshots/", status=400, body={"detail": "Server is locked."})
        )
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    if how in ("failed", "disappeared"):
        await stack.until(lambda: snapshot_posts(stack), what="the snapshot's POST")
        made = next(
            o
            for o in stack.sim.objects["snapshots"].values()
            if o.name == f"pre-restore-{request_id}"
        )
        if how == "failed":
            made.final_status = "error"
            stack.sim.finish_all()
        else:
            del stack.sim.objects["snapshots"][made.id]

    done = await card_says(stack, "nothing was restored")
    assert "*failed*" in done
    reply = await stack.until(lambda: stack.posts(thread=True), what="the thread reply")
    assert "nothing was restored" in text_of(reply[0])
    dms = await stack.until(stack.dms, what="the DMs")
    assert any("nothing was restored" in text_of(dm) for dm in dms)
    assert (await stored(stack, request_id)).status is Status.FAILED
    assert restore_calls(stack) == []
    assert stack.sim.servers[SERVER].status == "running"
    assert len(snapshot_posts(stack)) == (0 if how == "limit_meanwhile" else 1)
    words = {
        "limit_meanwhile": "the server has 5 snapshots",
        "refused": "VPS.org refused the safety snapshot (Server is locked.)",
        "failed": "the safety snapshot ended error",
        "disappeared": "the safety snapshot disappeared",
    }[how]
    assert words in done


async def test_undo_end_to_end_a_second_approval_then_a_restore_from_the_safety_snapshot(
    stack: Stack,
) -> None:
    request_id, first = await restored(stack)
    safety_id = first.outcome.safety_id
    assert safety_id is not None

    cards = len(stack.posts(thread=False))
    _, key = await stack.click(ids.RESTORE_UNDO, request_id, user=CAROL)
    [undo_card] = await stack.until(
        lambda: stack.posts(thread=False)[cards:], what="the undo's approval request"
    )
    shown = text_of(undo_card)
    assert f"*Undo of request #{request_id}*" in shown
    assert f"<@{CAROL}>" in shown
    assert f"`pre-restore-{request_id}` (id `{safety_id}`" in shown
    assert "*Reason:* undo of request #" in shown
    undo_id = next(b for b in undo_card.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    assert len(restore_calls(stack)) == 1  # nothing until it is approved

    _, key = await stack.click(ids.RESTORE_APPROVE, undo_id, user=CAROL)  # her own: refused
    assert "a second person has to approve it" in text_of(await stack.reply(key))
    await stack.click(ids.RESTORE_APPROVE, undo_id, user=BOB)
    # the undo takes a safety snapshot of its own (the server has 3), then restores
    await stack.until(lambda: len(snapshot_posts(stack)) == 2, what="the undo's safety snapshot")
    assert snapshot_posts(stack)[1].body["name"] == f"pre-restore-{undo_id}"
    stack.sim.finish_all()
    await stack.until(lambda: len(restore_calls(stack)) == 2, what="the undo's restore")
    assert restore_calls(stack)[1].path == f"/snapshots/{safety_id}/restore/"
    undo = await stored(stack, undo_id)
    assert undo.reason == f"undo of request #{request_id}"
    assert undo.outcome.approvers == (BOB,)


async def test_undo_is_refused_in_another_channel_and_for_a_restore_without_snapshot(
    stack: Stack,
) -> None:
    request_id, _ = await restored(stack)
    _, key = await stack.click(ids.RESTORE_UNDO, request_id, user=CAROL, channel="C0OTHER")
    assert "does not know" in text_of(await stack.reply(key))
    _, key = await stack.click(ids.RESTORE_UNDO, "999", user=CAROL)
    assert "does not know" in text_of(await stack.reply(key))


async def test_the_bot_deletes_its_safety_snapshot_after_seven_days_and_undo_says_gone(
    stack: Stack,
) -> None:
    request_id, first = await restored(stack)
    safety_id = first.outcome.safety_id
    assert stack.sim.calls_to("DELETE") == []
    replies = len(stack.posts(thread=True))

    later = datetime.now(UTC) + timedelta(days=7, minutes=1)
    with freeze_time(later, real_asyncio=True, tick=True):
        await stack.until(lambda: stack.sim.calls_to("DELETE"), what="the clean-up")
        [note] = await stack.until(
            lambda: stack.posts(thread=True)[replies:], what="the note in the thread"
        )
        assert f"`pre-restore-{request_id}` (id `{safety_id}`) deleted after 7 days" in text_of(
            note
        )
        await card_says(stack, "was deleted by vpsbot")
        assert ids.RESTORE_UNDO not in buttons(stack.slack.api_calls("chat.update")[-1])
        _, key = await stack.click(ids.RESTORE_UNDO, request_id, user=CAROL)
        assert "can no longer be undone" in text_of(await stack.reply(key))

    [delete] = stack.sim.calls_to("DELETE")
    assert delete.path == f"/snapshots/{safety_id}/"
    assert set(stack.sim.objects["snapshots"]) >= {798, 801, 805}  # never one it did not make
    audited = [
        row.detail for row in await _audit(stack, int(request_id)) if row.event == "safety_snapshot"
    ]
    assert audited[-1] == {"step": "deleted", "snapshot_id": safety_id}


async def _audit(stack: Stack, request_id: int) -> list[object]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return list(await uow.audit.events(request_id=request_id))
