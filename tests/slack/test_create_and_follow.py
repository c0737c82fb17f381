"""Create, follow to the end, and tell the channel: the whole path through the served app."""

import json

from bot.domain.lifecycle import Status
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import ALICE, BOB, CHANNEL, Stack


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


async def test_create_posts_once_follows_and_reports_completion(stack: Stack) -> None:
    stack.sim.create_delay = 3600  # finishes only when the test says so
    ack, key = await stack.command("create 12345 before-update Snapshot before update")
    assert ack.status_code == 200
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    [create] = stack.sim.calls_to("POST", "/snapshots/")
    assert create.body == {
        "server_id": 12345,
        "name": "before-update",
        "description": "Snapshot before update",
    }
    shown = text_of(post)
    assert f"<@{ALICE}> is creating a snapshot `before-update`" in shown
    assert "*web-server-01* (`12345`)" in shown
    assert "*in progress*" in shown
    assert "This may take 3-10 minutes depending on server size." in shown
    assert stack.slack.responses(key) == []  # nothing ephemeral: the channel sees it

    # Several poll cycles pass while VPS.org is still working: nothing is reported.
    await stack.until(lambda: len(stack.sim.calls_to("GET", "/snapshots/")) >= 5, what="polls")
    assert stack.slack.api_calls("chat.update") == []
    assert stack.posts(thread=True) == []

    stack.sim.finish_all()
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert update.data["ts"] == post.data.get("ts") or update.data["ts"].startswith("1700000000.")
    assert "*complete*" in text_of(update)
    assert "*complete*: 2." in text_of(update)  # the size VPS.org reports, in GB
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="thread reply")
    assert reply.data["thread_ts"] == update.data["ts"]
    assert reply.data["text"].startswith(":white_check_mark: done in ")  # the card says the rest
    [dm] = await stack.until(stack.dms, what="the DM")
    assert stack.slack.api_calls("conversations.open")[0].data["users"] == ALICE
    assert "`before-update`" in text_of(dm)
    assert "is ready (took " in text_of(dm)
    assert len(stack.sim.calls_to("POST")) == 1


async def test_a_backup_create_without_description(stack: Stack) -> None:
    stack.sim.create_delay = 3600  # still in progress when the post goes out, however slow
    await stack.command("create 23456", command="/backup")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert "is creating a manual backup of *db-server-01* (`23456`)" in text_of(post)
    [create] = stack.sim.calls_to("POST", "/backups/")
    assert create.body == {"server_id": 23456}


async def test_at_the_snapshot_limit_nothing_is_posted(stack: Stack) -> None:
    for i in range(3):
        stack.sim.add_snapshot(12345, f"extra-{i}")
    reply = await stack.ask("create 12345 one-too-many")
    shown = text_of(reply)
    assert reply.data["response_type"] == "ephemeral"
    assert "already has 5 snapshots; VPS.org allows at most 5 per server" in shown
    assert "pre-migration-snapshot (801)" in shown
    assert stack.sim.calls_to("POST") == []
    assert stack.posts() == []


async def test_at_the_manual_backup_limit_nothing_is_posted(stack: Stack) -> None:
    for i in range(9):
        stack.sim.add_backup(12345, "manual", f"m{i}")
    reply = await stack.ask("create 12345 one more", command="/backup")
    assert "already has 10 manual backups; VPS.org allows at most 10" in text_of(reply)
    assert stack.sim.calls_to("POST") == []


async def test_an_unknown_server_gets_a_clear_reply_and_no_post(stack: Stack) -> None:
    reply = await stack.ask("create 99 nope")
    assert "Server 99 does not exist on VPS.org." in text_of(reply)
    assert stack.sim.calls_to("POST") == []


async def test_a_create_the_api_refuses_is_recorded_as_failed(stack: Stack) -> None:
    # The limit is checked against a list first; VPS.org stays the final authority.
    detail = "Snapshot limit reached: at most 5 per server."
    stack.sim.inject(Fault("POST", "/snapshots/", status=400, body={"detail": detail}))
    reply = await stack.ask("create 12345 raced")
    assert f"VPS.org refused: {detail} (HTTP 400). Nothing was created." in text_of(reply)
    assert len(stack.sim.calls_to("POST")) == 1
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [request] = await uow.requests.in_status(*Status)
    assert request.status is Status.FAILED
    assert request.outcome.failure is not None
    assert request.outcome.failure.http_status == 400
    assert stack.posts() == []


async def test_a_failed_operation_is_reported_with_the_raw_status(stack: Stack) -> None:
    stack.sim.create_delay = 0.3
    await stack.command("create 12345 doomed")
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    [created] = [o for o in stack.sim.objects["snapshots"].values() if o.name == "doomed"]
    created.final_status = "failed"
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="thread reply")
    assert reply.data["text"] == ":x: failed: status: failed"
    assert "*failed*: status: failed" in text_of(stack.slack.api_calls("chat.update")[-1])
    assert await stack.until(stack.dms, what="the DM")


async def test_an_operation_that_disappears_is_reported(stack: Stack) -> None:
    stack.sim.create_delay = 3600
    await stack.command("create 12345 vanishing")
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    [created] = [o for o in stack.sim.objects["snapshots"].values() if o.name == "vanishing"]
    del stack.sim.objects["snapshots"][created.id]
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="thread reply")
    assert reply.data["text"] == ":x: failed: no longer listed by VPS.org"
    card = stack.slack.api_calls("chat.update")[-1]
    assert "*failed*: no longer listed by VPS.org" in text_of(card)


async def test_every_step_is_in_the_audit_log(stack: Stack) -> None:
    stack.sim.create_delay = 0.2
    await stack.command("create 12345 audited", user=BOB)
    await stack.until(lambda: stack.posts(thread=True), what="thread reply")
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        events = [
            (e.event, e.detail.get("to") or e.detail.get("status"))
            for e in await uow.audit.events()
        ]
        [request] = await uow.requests.in_status(*Status)
    assert ("request", None) in events
    assert ("api_call", 201) in events
    assert ("transition", "succeeded") in events
    assert request.requester_id == BOB
    assert request.channel_id == CHANNEL
