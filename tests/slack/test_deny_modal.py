"""Deny asks for a reason: the click opens a modal with its trigger_id (views.open), the
submission denies with the reason, shown on the card and in the requester's DM; refusals reach
the person who submitted; the requester's own Deny is still a Cancel, without a modal."""

from __future__ import annotations

import json

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, Stack, fixture, running_stack
from tests.slack.modals import click_deny, deny, opened_views, submission, view_of

CAROL = "U0000CARL"


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


async def ask_restore(stack: Stack) -> str:
    await stack.command("restore 801 rolling back a bad deploy")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval card")
    actions = next(b for b in post.data["blocks"] if b["type"] == "actions")
    return str(actions["elements"][0]["value"])


async def stored(stack: Stack, request_id: str) -> object:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.get(int(request_id))


def ephemerals(stack: Stack, user: str) -> list[object]:
    return [c for c in stack.slack.api_calls("chat.postEphemeral") if c.data.get("user") == user]


async def test_the_click_opens_the_modal_with_its_trigger_and_denies_nothing_yet(
    stack: Stack,
) -> None:
    request_id = await ask_restore(stack)
    await click_deny(stack, request_id, BOB)
    [call] = await stack.until(lambda: opened_views(stack), what="views.open")
    assert call.data["trigger_id"] == fixture("block-actions.json")["trigger_id"]
    view = view_of(call)
    assert view["callback_id"] == "restore_deny_reason"
    assert json.loads(view["private_metadata"]) == {
        "request": int(request_id),
        "channel": "C0000TEST",
    }
    assert view["blocks"][1]["element"]["max_length"] == 500
    request = await stored(stack, request_id)
    assert request.status is Status.PENDING_APPROVAL  # type: ignore[attr-defined]
    assert stack.slack.api_calls("chat.update") == []


async def test_the_submission_denies_with_the_reason_on_the_card_and_in_the_dm(
    stack: Stack,
) -> None:
    request_id = await ask_restore(stack)
    await deny(stack, request_id, BOB, "Not during the <!channel> sale, try tonight")
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="the card")
    card = text_of(update)
    assert f"<@{BOB}> denied the restore of *web-server-01*" in card
    assert "Reason: “Not during the &lt;!channel&gt; sale, try tonight”" in card
    [dm] = await stack.until(stack.dms, what="the requester's DM")
    assert dm.data["channel"] == "D" + ALICE[1:]
    assert f"was denied by <@{BOB}>: “Not during the &lt;!channel&gt; sale, try tonight”" in (
        text_of(dm)
    )
    request = await stored(stack, request_id)
    assert request.status is Status.DENIED  # type: ignore[attr-defined]
    assert request.outcome.deny_reason == "Not during the <!channel> sale, try tonight"  # type: ignore[attr-defined]
    assert stack.sim.calls_to("POST") == [] or all(
        not c.path.endswith("/restore/") for c in stack.sim.calls_to("POST")
    )


async def test_a_submission_that_is_refused_is_told_to_the_person(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2, vpsbot_approvers=BOB
    ) as stack:
        request_id = await ask_restore(stack)
        # Carol is not an approver: the modal opens (who may approve is checked when it is
        # submitted), and its submission is refused, ephemerally in the card's channel
        await deny(stack, request_id, CAROL, "no")
        [told] = await stack.until(lambda: ephemerals(stack, CAROL), what="the refusal")
        assert "not one of the approvers" in text_of(told)
        assert told.data["channel"] == "C0000TEST"  # type: ignore[attr-defined]
        request = await stored(stack, request_id)
        assert request.status is Status.PENDING_APPROVAL  # type: ignore[attr-defined]

        # Bob's modal is open while Alice cancels: his submission finds it already handled
        await click_deny(stack, request_id, BOB)
        await stack.until(lambda: len(opened_views(stack)) == 2, what="Bob's modal")
        await stack.click(ids.RESTORE_CANCEL, request_id, user=ALICE)
        await stack.until(lambda: stack.slack.api_calls("chat.update"), what="the cancel")
        ack = await stack.action(submission(view_of(opened_views(stack)[-1]), BOB, "too late"))
        assert ack.status_code == 200
        [late] = await stack.until(lambda: ephemerals(stack, BOB), what="Bob's refusal")
        assert "cancelled" in text_of(late)
        request = await stored(stack, request_id)
        assert request.status is Status.CANCELLED  # type: ignore[attr-defined]
        assert request.outcome.deny_reason == ""  # type: ignore[attr-defined]


async def test_a_deny_on_a_request_already_decided_is_refused_at_once_without_a_modal(
    stack: Stack,
) -> None:
    request_id = await ask_restore(stack)
    await stack.click(ids.RESTORE_CANCEL, request_id, user=ALICE)
    await stack.until(lambda: stack.slack.api_calls("chat.update"), what="the cancel")
    key = await click_deny(stack, request_id, BOB)
    assert "already cancelled" in text_of(await stack.reply(key))
    assert opened_views(stack) == []


async def test_the_requesters_own_deny_cancels_at_once_without_a_modal(stack: Stack) -> None:
    request_id = await ask_restore(stack)
    await click_deny(stack, request_id, ALICE)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert f"<@{ALICE}> cancelled the restore" in text_of(update)
    assert opened_views(stack) == []


async def test_a_replayed_submission_denies_once(stack: Stack) -> None:
    request_id = await ask_restore(stack)
    await click_deny(stack, request_id, BOB)
    [call] = await stack.until(lambda: opened_views(stack), what="views.open")
    body = submission(view_of(call), BOB, "once")
    for _ in range(2):
        assert (await stack.action(body)).status_code == 200
    await stack.until(stack.dms, what="the DM")
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        votes = await uow.approvals.votes(int(request_id))
    assert [v.voter_id for v in votes] == [BOB]
    assert ephemerals(stack, BOB) == []  # the replay says nothing
