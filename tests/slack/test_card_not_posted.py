"""When Slack will not take the bot's card in the channel (the bot was never invited, the channel
is archived…), the requester is told how to fix it, and a request waiting for a decision on that
card is cancelled: nobody can approve or confirm a card nobody sees, and nothing is executed.
A create already under way at VPS.org goes on, and its requester hears about it by DM."""

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, OperationRequest, ServerRef
from bot.domain.outcomes import Failure, Why
from bot.services.ports import DeliveryError
from bot.serving import serving
from bot.slack import ids, web_client
from bot.slack.notifier import SlackNotifier
from bot.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import ALICE, BOB, CHANNEL, Stack
from tests.fakes.slack import SlackStandIn, WebFault

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def text_of(call: Any) -> str:
    data = call.data
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def refusing(method: str, error: str, times: int = 99) -> WebFault:
    """Slack refusing `method` in the team channel only (DMs still go through)."""
    return WebFault(
        method, status=200, body={"ok": False, "error": error}, times=times, channel=CHANNEL
    )


async def the_request(stack: Stack) -> OperationRequest:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [request] = await uow.requests.in_status(*Status)
    return request


async def transitions(stack: Stack, request_id: int) -> list[dict[str, Any]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return [dict(e.detail) for e in await uow.audit.events("transition", request_id)]


async def outbox_rows(stack: Stack) -> list[tuple[str, str]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return [(r.kind, r.status) for r in await uow.outbox.items()]


async def outbox_settles(stack: Stack, expected: list[tuple[str, str]], wait: float = 10) -> None:
    """Wait until the outbox rows are `expected` (Slack sees a message before it is marked sent)."""
    deadline = time.monotonic() + wait
    while (rows := await outbox_rows(stack)) != expected:
        assert time.monotonic() < deadline, f"the outbox stayed at {rows}, not {expected}"
        await asyncio.sleep(0.02)


def restore_calls(stack: Stack) -> list[Any]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


async def test_a_restore_whose_card_is_refused_is_cancelled_and_the_requester_told(
    stack: Stack,
) -> None:
    stack.slack.faults.append(refusing("chat.postMessage", "not_in_channel"))
    ack, _ = await stack.command("restore 801 rolling back a bad deploy")
    assert ack.status_code == 200

    [hint] = await stack.until(
        lambda: stack.slack.api_calls("chat.postEphemeral"), what="the requester's hint"
    )
    assert (hint.data["channel"], hint.data["user"]) == (CHANNEL, ALICE)
    shown = text_of(hint)
    assert (
        ":warning: vpsbot could not post in this channel (not_in_channel). Invite it with "
        "`/invite @vpsbot` and ask again. Nothing was changed" in shown
    )
    assert "restore snapshot `pre-migration-snapshot` (id `801`)" in shown
    assert "*cancelled*" in shown

    request = await the_request(stack)
    assert request.status is Status.CANCELLED
    assert request.message_ts is None
    assert request.outcome.failure is not None
    assert request.outcome.failure == Failure(Why.CARD_NOT_POSTED, detail="not_in_channel")
    [why] = await transitions(stack, request.id)
    assert why == {
        "from": "pending_approval",
        "to": "cancelled",
        "event": "cancel",
        "why": "card_not_posted",
        "detail": "not_in_channel",
    }
    await outbox_settles(stack, [("post", "failed"), ("tell_requester", "sent")])

    # a click on Approve for that request (a forged or stale payload) is refused
    ack, key = await stack.click(ids.RESTORE_APPROVE, str(request.id), user=BOB)
    assert ack.status_code == 200
    assert "already cancelled" in text_of(await stack.reply(key))
    assert restore_calls(stack) == []
    assert stack.posts() == []
    assert (await the_request(stack)).status is Status.CANCELLED


async def test_a_delete_whose_confirmation_is_refused_is_cancelled_and_never_sent(
    stack: Stack,
) -> None:
    stack.slack.faults.append(refusing("chat.postMessage", "not_in_channel"))
    ack, _ = await stack.command("delete 801")
    assert ack.status_code == 200

    [hint] = await stack.until(
        lambda: stack.slack.api_calls("chat.postEphemeral"), what="the requester's hint"
    )
    assert hint.data["user"] == ALICE
    assert "could not post in this channel (not_in_channel)" in text_of(hint)
    assert "delete snapshot `pre-migration-snapshot` (id `801`)" in text_of(hint)
    request = await the_request(stack)
    assert request.status is Status.CANCELLED
    [why] = await transitions(stack, request.id)
    assert (why["from"], why["to"], why["why"], why["detail"]) == (
        "pending_confirmation",
        "cancelled",
        "card_not_posted",
        "not_in_channel",
    )

    ack, key = await stack.click(ids.DELETE_CONFIRM, str(request.id))
    assert ack.status_code == 200
    assert "already cancelled" in text_of(await stack.reply(key))
    assert stack.sim.calls_to("DELETE") == []
    assert 801 in stack.sim.objects["snapshots"]


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("channel_not_found", "Invite it with `/invite @vpsbot` and ask again."),
        ("is_archived", "The channel is archived: ask again in another channel."),
    ],
)
async def test_when_the_ephemeral_is_refused_too_the_requester_gets_a_dm(
    stack: Stack, error: str, fix: str
) -> None:
    stack.slack.faults += [
        refusing("chat.postMessage", error),
        refusing("chat.postEphemeral", error),
    ]
    ack, _ = await stack.command("restore 501", command="/backup")
    assert ack.status_code == 200

    [dm] = await stack.until(stack.dms, what="the requester's DM")
    assert [c.data["users"] for c in stack.slack.api_calls("conversations.open")] == [ALICE]
    shown = text_of(dm)
    assert f":warning: vpsbot could not post in <#{CHANNEL}> ({error}). {fix}" in shown
    assert "Nothing was changed" in shown
    assert stack.slack.api_calls("chat.postEphemeral") == []  # refused, so never recorded
    request = await the_request(stack)
    assert request.status is Status.CANCELLED
    assert request.outcome.failure == Failure(Why.CARD_NOT_POSTED, detail=error)
    assert restore_calls(stack) == []


async def test_a_create_whose_card_is_refused_goes_on_and_the_requester_is_dmed(
    stack: Stack,
) -> None:
    stack.sim.create_delay = 3600  # finishes only when the test says so
    # refused once: had the bot retried the card later (a late post by the completion's
    # update, or a thread reply to nothing), Slack would have taken it
    refused = refusing("chat.postMessage", "not_in_channel", times=1)
    stack.slack.faults.append(refused)
    ack, _ = await stack.command("create 12345 before-update")
    assert ack.status_code == 200

    [told] = await stack.until(stack.dms, what="the requester's DM")
    shown = text_of(told)
    assert f"could not post in <#{CHANNEL}> (not_in_channel)" in shown
    assert "The channel was not told about your request" in shown
    assert "create snapshot `before-update`" in shown
    assert "goes on. You will get a DM when it is done." in shown
    assert "cancelled" not in shown
    request = await the_request(stack)
    assert request.status is Status.RUNNING
    assert [t["to"] for t in await transitions(stack, request.id)] == ["running"]  # not cancelled

    stack.sim.finish_all()
    dms = await stack.until(lambda: len(stack.dms()) >= 2 and stack.dms(), what="completion DM")
    assert "*complete*" in text_of(dms[1])
    assert (await the_request(stack)).status is Status.SUCCEEDED
    assert len(stack.sim.calls_to("POST")) == 1
    assert refused.times == 0  # the card was tried once, and nothing else in the channel
    assert stack.posts() == []
    assert stack.slack.api_calls("chat.update") == []
    await outbox_settles(
        stack,
        [
            ("post", "failed"),
            ("tell_requester", "sent"),
            ("update", "failed"),
            ("reply", "failed"),
            ("dm", "sent"),
        ],
    )


async def test_the_notifier_says_which_slack_error_refused_the_message() -> None:
    slack = SlackStandIn()
    slack.faults.append(refusing("chat.postMessage", "not_in_channel"))
    request = OperationRequest(
        1, Kind.SNAPSHOT, Action.CREATE, Status.RUNNING, ALICE, CHANNEL, ServerRef(1, "web"), 5,
        "snap", "", NOW, NOW,
    )  # fmt: skip
    async with serving(slack.app) as url:
        notifier = SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW)
        with pytest.raises(DeliveryError) as caught:
            await notifier.deliver("post", {}, request)
    assert (caught.value.code, caught.value.retryable) == ("not_in_channel", False)
    assert caught.value.channel_unusable
    assert "xoxb-test" not in caught.value.reason
