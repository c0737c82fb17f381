"""Two-person restores through the served app, with signed clicks built from Slack's recorded
block_actions payload: no restore without a second person, and never twice."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import ALICE, BOB, Stack, running_stack
from tests.slack.modals import deny

CAROL = "U0000CARL"
DAVE = "U0000DAVE"


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def restore_calls(where: Stack | Simulator) -> list[object]:
    sim = where.sim if isinstance(where, Stack) else where
    return [c for c in sim.calls_to("POST") if c.path.endswith("/restore/")]


async def ask_restore(
    stack: Stack, text: str = "restore 801 rolling back a bad deploy", command: str = "/snapshot"
) -> tuple[str, object]:
    ack, _ = await stack.command(text, command=command)
    assert ack.status_code == 200
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the approval request")
    actions = next(b for b in post.data["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], post


async def request_status(stack: Stack, request_id: str) -> Status:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(int(request_id))
    assert request is not None
    return request.status


async def test_the_whole_flow_self_approval_refused_then_one_restore(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id, post = await ask_restore(stack)
    shown = text_of(post)
    assert f"*Restore requested* by <@{ALICE}>: restore *web-server-01* (`12345`)" in shown
    assert "snapshot `pre-migration-snapshot` (id `801`, taken <!date^1736965800^" in shown
    assert "2025-01-15 18:30 UTC>, 5.0 GB)" in shown
    assert "*Everything written on the server since then (" in shown
    assert "*Reason:* rolling back a bad deploy" in shown
    assert "Needs *1 more approval*" in shown
    assert "expires in 29 minutes" in shown or "expires in 30 minutes" in shown
    actions = next(b for b in post.data["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        ids.RESTORE_APPROVE,
        ids.RESTORE_DENY,
        ids.RESTORE_CANCEL,
    ]
    assert restore_calls(stack) == []

    ack, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=ALICE)
    assert ack.status_code == 200
    refusal = await stack.reply(key)
    assert refusal.data["response_type"] == "ephemeral"
    assert "a second person has to approve it" in text_of(refusal)
    assert restore_calls(stack) == []
    assert await request_status(stack, request_id) is Status.PENDING_APPROVAL

    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    [call] = restore_calls(stack)
    assert (call.path, call.body) == ("/snapshots/801/restore/", None)  # type: ignore[attr-defined]
    running = await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the running update",
    )
    assert f"approved by <@{BOB}>" in text_of(running[-1])
    assert "actions" not in [b["type"] for b in running[-1].data["blocks"]]

    # the server is restoring: polls go on, nothing is reported
    await stack.until(lambda: len(stack.sim.calls_to("GET", "/servers/12345/")) >= 5, what="polls")
    assert stack.posts(thread=True) == []
    stack.sim.finish_all()
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the completion")
    assert stack.sim.servers[12345].status == "running"
    assert reply.data["text"].startswith(":white_check_mark: done in ")
    card = stack.slack.api_calls("chat.update")[-1]
    assert "was *restored* from snapshot `pre-migration-snapshot`" in text_of(card)
    assert "is running again" in text_of(card)
    dms = await stack.until(lambda: len(stack.dms()) >= 2 and stack.dms(), what="two DMs")
    opened = {c.data["users"] for c in stack.slack.api_calls("conversations.open")}
    assert opened == {ALICE, BOB}
    assert len(dms) == 2
    assert len(restore_calls(stack)) == 1
    assert await request_status(stack, request_id) is Status.SUCCEEDED


async def test_a_backup_restore_posts_the_backup_id_to_its_server(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack, "restore 501", command="/backup")
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    [call] = restore_calls(stack)
    assert (call.path, call.body) == ("/servers/12345/restore/", {"backup_id": 501})  # type: ignore[attr-defined]


async def test_deny_ends_it_and_nothing_is_called(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    await deny(stack, request_id, BOB)  # Deny asks for a reason (none given here)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert f"<@{BOB}> denied the restore" in text_of(update)
    assert await stack.until(stack.dms, what="the requester's DM")
    # a click on the stale message after the decision
    _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=CAROL)
    assert "already denied" in text_of(await stack.reply(key))
    assert restore_calls(stack) == []


async def test_the_requesters_own_deny_counts_as_cancel(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    await stack.click(ids.RESTORE_DENY, request_id, user=ALICE)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert f"<@{ALICE}> cancelled the restore" in text_of(update)
    assert await request_status(stack, request_id) is Status.CANCELLED


async def test_only_the_requester_may_cancel(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    _, key = await stack.click(ids.RESTORE_CANCEL, request_id, user=BOB)
    assert f"Only <@{ALICE}>, who asked" in text_of(await stack.reply(key))
    await stack.click(ids.RESTORE_CANCEL, request_id, user=ALICE)
    await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    assert "already cancelled" in text_of(await stack.reply(key))
    assert restore_calls(stack) == []


async def test_an_approval_after_the_expiry_is_refused_at_the_click(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    later = datetime.now(UTC) + timedelta(minutes=31)
    # The whole check stays 31 minutes ahead: the clock never runs back by half an hour, and the
    # message update queued at the click is due at the click's time.
    with freeze_time(later, real_asyncio=True, tick=True):
        _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
        refusal = text_of(await stack.reply(key))
        assert "expired" in refusal
        assert restore_calls(stack) == []
        assert await request_status(stack, request_id) is Status.EXPIRED
        [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert "expired without enough approvals. Nothing was restored." in text_of(update)


async def test_a_missing_target_gets_a_clear_reply_and_no_request(stack: Stack) -> None:
    reply = await stack.ask("restore 4242")
    assert "Snapshot 4242 does not exist on VPS.org." in text_of(reply)
    assert stack.posts() == []
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert await uow.requests.in_status(*Status) == []


async def test_a_server_already_restoring_is_not_restored_again(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    stack.sim.servers[12345].status = "restoring"
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the failure")
    assert reply.data["text"] == ":x: failed: the server is already being restored"
    card = stack.slack.api_calls("chat.update")[-1]
    assert "already being restored; nothing was restored" in text_of(card)
    assert restore_calls(stack) == []


async def test_a_restore_whose_reply_is_lost_is_read_back_never_resent(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id, _ = await ask_restore(stack)
    stack.sim.inject(Fault("POST", "/snapshots/801/restore/", kind="lost_reply", status=502))
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the running update",
    )
    assert len(restore_calls(stack)) == 1
    assert await request_status(stack, request_id) is Status.RUNNING


async def test_a_refused_call_that_did_not_happen_needs_attention(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack)
    stack.sim.inject(Fault("POST", "/snapshots/801/restore/", status=503))
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="the report")
    assert reply.data["text"].startswith(":warning: needs attention: ")
    card = stack.slack.api_calls("chat.update")[-1]
    assert "*needs attention*" in text_of(card)
    assert "did not send the restore again" in text_of(card)
    await asyncio.sleep(0.5)
    assert len(restore_calls(stack)) == 1
    assert await request_status(stack, request_id) is Status.NEEDS_ATTENTION


# -- configured approvers, quorum, reasons, expiry sweeper ------------------------------------


@pytest.fixture
async def strict_stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        vpsbot_poll_interval=0.2,
        vpsbot_approvers="U0000CARL,S0000OPS,U0000TEST",
        vpsbot_required_approvals=2,
        vpsbot_require_reason=True,
    ) as built:
        built.slack.groups["S0000OPS"] = [DAVE]
        yield built


async def test_only_configured_approvers_count_and_each_votes_once(strict_stack: Stack) -> None:
    stack = strict_stack
    request_id, post = await ask_restore(stack)
    assert "Needs *2 more approvals*" in text_of(post)
    _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    assert "not one of the approvers" in text_of(await stack.reply(key))
    _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=ALICE)  # listed, but asked
    assert "a second person has to approve it" in text_of(await stack.reply(key))

    await stack.click(ids.RESTORE_APPROVE, request_id, user=CAROL)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="vote update")
    assert "Needs *1 more approval*" in text_of(update)
    assert f"Approved so far by <@{CAROL}>" in text_of(update)
    _, key = await stack.click(ids.RESTORE_APPROVE, request_id, user=CAROL)
    assert "already voted" in text_of(await stack.reply(key))
    assert restore_calls(stack) == []

    await stack.click(ids.RESTORE_APPROVE, request_id, user=DAVE)  # through the user group
    await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the running update",
    )
    assert len(restore_calls(stack)) == 1
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(int(request_id))
        votes = await uow.approvals.votes(int(request_id))
        events = await uow.audit.events(request_id=int(request_id))
    assert request is not None
    assert request.outcome.approvers == (CAROL, DAVE)
    assert [(v.voter_id, v.decision) for v in votes] == [(CAROL, "approve"), (DAVE, "approve")]
    running = next(e for e in events if e.event == "transition" and e.detail.get("to") == "running")
    assert running.detail["requester"] == ALICE
    assert running.detail["approvers"] == [CAROL, DAVE]
    assert running.detail["target_id"] == 801
    api = [e.detail for e in events if e.event == "api_call"]
    assert api == [{"method": "POST", "path": "/snapshots/801/restore/", "status": 200}]
    assert [e.actor_id for e in events if e.event == "vote"] == [CAROL, DAVE]


async def test_a_reason_is_required_when_configured(strict_stack: Stack) -> None:
    reply = await strict_stack.ask("restore 801")
    assert "A restore needs a reason here" in text_of(reply)
    assert strict_stack.posts() == []


async def test_the_sweeper_expires_a_forgotten_request(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.1, vpsbot_approval_ttl=0.01
    ) as stack:
        request_id, _ = await ask_restore(stack)
        [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="expiry")
        assert "expired without enough approvals" in text_of(update)
        assert await request_status(stack, request_id) is Status.EXPIRED
        assert restore_calls(stack) == []


async def test_a_pending_request_survives_a_restart(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as first:
        request_id, _ = await ask_restore(first)
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as second:
        await second.click(ids.RESTORE_APPROVE, request_id, user=BOB)
        await second.until(lambda: restore_calls(simulator), what="the restore call")
        assert len(restore_calls(simulator)) == 1
