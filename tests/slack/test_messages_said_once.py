"""A request's end is said once per place: the card in the channel, updated in place, holds the
whole story; the reply in its thread is one short line; the DM is one line with a link to the
card. Creates echo what the bot understood, and give the new object's id and the commands to
restore or delete it. Expired and incomplete backups are called what they are."""

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import ALICE, BOB, CHANNEL, Stack
from tests.fakes.slack import SlackCall, WebFault
from tests.slack.modals import deny


def text_of(call: Any) -> str:
    data = call.data
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


def sections(call: SlackCall) -> list[str]:
    return [b["text"]["text"] for b in call.data["blocks"] if b["type"] == "section"]


def permalink(ts: str) -> str:
    """What the fake Slack answers chat.getPermalink with for the card at `ts` in CHANNEL."""
    return f"https://demo.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}"


def card(stack: Stack) -> SlackCall:
    """The card as it was last updated in place."""
    return stack.slack.api_calls("chat.update")[-1]


def created(stack: Stack, collection: str, **match: Any) -> int:
    [found] = [
        o.id
        for o in stack.sim.objects[collection].values()
        if all(getattr(o, k) == v for k, v in match.items())
    ]
    return found


async def outbox(stack: Stack) -> list[tuple[str, str]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return [(r.kind, r.status) for r in await uow.outbox.items()]


async def outbox_settles(stack: Stack, expected: list[tuple[str, str]]) -> None:
    """Wait until the outbox rows are `expected` (Slack sees a message before it is marked)."""
    deadline = time.monotonic() + 10
    while (rows := await outbox(stack)) != expected:
        assert time.monotonic() < deadline, f"the outbox stayed at {rows}, not {expected}"
        await asyncio.sleep(0.02)


async def test_a_completion_is_said_once_per_place(stack: Stack) -> None:
    stack.sim.create_delay = 3600  # finishes only when the test says so
    await stack.command("create 12345 before-update Snapshot before update")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the card")
    snapshot_id = created(stack, "snapshots", name="before-update")
    # the card echoes what the bot understood, and the new snapshot's id with its commands
    assert "*Name:* `before-update` · *Description:* “Snapshot before update”" in text_of(post)
    assert (
        f"Snapshot id `{snapshot_id}` · `/snapshot restore {snapshot_id}` (once it is complete)"
        f" · `/snapshot delete {snapshot_id}`"
    ) in text_of(post)

    stack.sim.finish_all()
    [dm] = await stack.until(stack.dms, what="the DM")
    update = card(stack)
    card_ts = update.data["ts"]
    # the card: the full result, updated in place
    shown = text_of(update)
    assert f"<@{ALICE}>'s snapshot `before-update` (id `{snapshot_id}`)" in shown
    assert re.search(r"is \*complete\*: 2\.\d GB, took \d+ s\.", shown), shown
    assert f"`/snapshot restore {snapshot_id}` · `/snapshot delete {snapshot_id}`" in shown
    assert "(once it is complete)" not in shown
    # the thread: one short line, nothing the card already says
    [reply] = stack.posts(thread=True)
    assert reply.data["thread_ts"] == card_ts
    assert re.fullmatch(r":white_check_mark: done in \d+ s", reply.data["text"])
    assert sections(reply) == [reply.data["text"]]
    # the DM: one line, what it was and how it ended, and a link to the card
    [asked] = stack.slack.api_calls("chat.getPermalink")
    assert (asked.data["channel"], asked.data["message_ts"]) == (CHANNEL, card_ts)
    [line] = sections(dm)
    assert "\n" not in line
    assert line.startswith(
        f":white_check_mark: Your snapshot `before-update` (id `{snapshot_id}`) of "
        "*web-server-01* (`12345`) is ready (took "
    )
    assert line.endswith(f" · <{permalink(card_ts)}|see the request>")
    assert f"<#{CHANNEL}>" not in line  # the link says where
    assert "Snapshot before update" not in reply.data["text"] + line  # said once, on the card


async def test_a_backup_create_shows_its_id_and_how_to_restore_or_delete_it(
    stack: Stack,
) -> None:
    stack.sim.create_delay = 3600
    await stack.command("create 12345 Pre-deploy <!here>", command="/backup")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the card")
    backup_id = created(stack, "backups", description="Pre-deploy <!here>")
    assert "*Description:* “Pre-deploy &lt;!here&gt;”" in text_of(post)
    assert f"Backup id `{backup_id}`" in text_of(post)
    stack.sim.finish_all()
    await stack.until(stack.dms, what="the DM")
    assert f"`/backup restore {backup_id}` · `/backup delete {backup_id}`" in text_of(card(stack))


async def test_a_create_echoes_the_name_and_description_it_understood(stack: Stack) -> None:
    stack.sim.create_delay = 3600
    await stack.command("create 12345 before update now")  # a space where a - was meant
    await stack.command("create 23456 nightly-check")
    posts = await stack.until(lambda: len(stack.posts()) == 2 and stack.posts(), what="cards")
    said = " ".join(text_of(p) for p in posts)
    assert "*Name:* `before` · *Description:* “update now”" in said
    assert "*Name:* `nightly-check` · *Description:* _none_" in said


@pytest.mark.parametrize(
    "fault",
    [
        WebFault("chat.getPermalink", status=200, body={"ok": False, "error": "message_not_found"}),
        WebFault("chat.getPermalink", status=500, body={"ok": False, "error": "internal_error"}),
        WebFault("chat.getPermalink", status=429, headers={"Retry-After": "0"}, times=9),
    ],
    ids=["refused", "server-error", "rate-limited"],
)
async def test_the_dm_goes_out_without_its_link_when_slack_gives_none(
    stack: Stack, fault: WebFault
) -> None:
    stack.slack.faults.append(fault)
    await stack.command("create 12345 quick")
    [dm] = await stack.until(stack.dms, what="the DM")
    [line] = sections(dm)
    assert ":white_check_mark: Your snapshot `quick`" in line
    assert line.endswith(f" · in <#{CHANNEL}>")  # no link: the channel is named instead
    assert "see the request" not in line
    # sent once, not failed for want of its link, nor sent again
    await outbox_settles(
        stack, [("post", "sent"), ("update", "sent"), ("reply", "sent"), ("dm", "sent")]
    )
    assert len(stack.dms()) == 1


async def ask_restore(stack: Stack, text: str, command: str = "/snapshot") -> tuple[str, Any]:
    """Ask for a restore; its approval card, and the request id on its buttons."""
    before = len(stack.posts(thread=False))
    await stack.command(text, command=command)
    posts = await stack.until(
        lambda: len(stack.posts(thread=False)) > before and stack.posts(thread=False),
        what="the approval card",
    )
    actions = next(b for b in posts[-1].data["blocks"] if b["type"] == "actions")
    return str(actions["elements"][0]["value"]), posts[-1]


async def test_a_restore_denied_is_dmed_in_one_line_with_a_link(stack: Stack) -> None:
    request_id, _ = await ask_restore(stack, "restore 801 rolling back")
    await deny(stack, request_id, BOB)  # Deny asks for a reason (none given here)
    [dm] = await stack.until(stack.dms, what="the requester's DM")
    card_ts = card(stack).data["ts"]
    assert f"<@{BOB}> denied the restore of *web-server-01*" in text_of(card(stack))
    assert sections(dm) == [
        ":no_entry: The restore of *web-server-01* (`12345`) from snapshot "
        f"`pre-migration-snapshot` (id `801`) was denied by <@{BOB}> · "
        f"<{permalink(card_ts)}|see the request>"
    ]
    assert stack.posts(thread=True) == []  # a denial updates the card and DMs, nothing else


async def test_a_restore_completion_is_one_line_in_the_thread_and_in_each_dm(
    stack: Stack,
) -> None:
    request_id, _ = await ask_restore(stack, "restore 801 rolling back")
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    dms = await stack.until(lambda: len(stack.dms()) == 2 and stack.dms(), what="two DMs")
    card_ts = card(stack).data["ts"]
    assert "was *restored* from snapshot `pre-migration-snapshot`" in text_of(card(stack))
    [reply] = stack.posts(thread=True)
    assert re.fullmatch(r":white_check_mark: done in \d+ s", reply.data["text"])
    assert {d.data["channel"] for d in dms} == {"D" + ALICE[1:], "D" + BOB[1:]}
    for dm in dms:
        [line] = sections(dm)
        assert line.startswith(
            ":white_check_mark: The restore of *web-server-01* (`12345`) from snapshot "
            "`pre-migration-snapshot` (id `801`) is done (took "
        )
        assert line.endswith(f"<{permalink(card_ts)}|see the request>")


async def test_an_expired_automatic_backup_is_listed_as_expired(stack: Stack) -> None:
    now = datetime.now(UTC)
    old = stack.sim.add_backup(
        12345, "automatic", "nightly", created_at=(now - timedelta(days=40)).isoformat()
    )
    fresh = stack.sim.add_backup(
        12345, "automatic", "nightly", created_at=(now - timedelta(days=1)).isoformat()
    )
    reply = await stack.ask("list 12345 automatic", command="/backup")
    lines = {
        backup_id: next(s for s in sections(reply) if f"id `{backup_id}`" in s)
        for backup_id in (old.id, fresh.id)
    }
    assert f"*automatic backup* · id `{old.id}` · :hourglass: expired\n" in lines[old.id]
    assert "· expired 9 days ago" in lines[old.id]
    assert "completed" not in lines[old.id]
    assert f"id `{fresh.id}` · :white_check_mark: completed" in lines[fresh.id]
    assert "taken yesterday, <!date^" in lines[fresh.id]
    assert "expires in 30 days" in lines[fresh.id]


async def test_a_restore_card_from_an_incomplete_backup_says_so(stack: Stack) -> None:
    broken = stack.sim.add_backup(12345, "manual", "half done", status="failed")
    _, post = await ask_restore(stack, f"restore {broken.id}", command="/backup")
    assert (
        ":warning: *This backup is not complete* (status: `failed`): nothing will be restored "
        "unless VPS.org shows it completed when the restore is approved."
    ) in text_of(post)
    sound = stack.sim.add_backup(23456, "manual", "sound")  # completed, never expires
    _, complete = await ask_restore(stack, f"restore {sound.id}", command="/backup")
    assert ":warning:" not in text_of(complete)


async def test_a_restore_card_from_an_expired_backup_says_so(stack: Stack) -> None:
    now = datetime.now(UTC)
    expired = stack.sim.add_backup(
        12345, "automatic", "nightly", created_at=(now - timedelta(days=34)).isoformat()
    )
    _, post = await ask_restore(stack, f"restore {expired.id}", command="/backup")
    assert ":warning: *This backup expired 3 days ago* (<!date^" in text_of(post)
    assert "VPS.org may already have removed it." in text_of(post)
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [request] = await uow.requests.in_status(Status.PENDING_APPROVAL)
    recorded = request.asked.target_expires_at
    assert expired.expires_at is not None
    assert recorded == expired.expires_at.replace(microsecond=0)  # as VPS.org lists it
