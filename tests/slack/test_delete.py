"""Delete: a visible confirmation only the requester can press; one DELETE however many clicks."""

import asyncio
import json

from bot.slack import ids
from tests.conftest import ALICE, BOB, Stack


def text_of(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + str(data.get("text", ""))


async def _ask_delete(stack: Stack, text: str = "delete 801") -> tuple[dict[str, object], str]:
    ack, _ = await stack.command(text)
    assert ack.status_code == 200
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    actions = next(b for b in post.data["blocks"] if b["type"] == "actions")
    return actions, actions["elements"][0]["value"]


async def test_the_confirmation_is_visible_with_a_danger_button_and_a_dialog(stack: Stack) -> None:
    actions, _ = await _ask_delete(stack)
    [post] = stack.posts(thread=False)
    shown = text_of(post)
    assert f"<@{ALICE}> wants to delete snapshot `pre-migration-snapshot` (id `801`)" in shown
    assert "cannot be undone" in shown
    delete, cancel = actions["elements"]
    assert (delete["action_id"], delete["style"]) == (ids.DELETE_CONFIRM, "danger")
    assert delete["confirm"]["style"] == "danger"
    assert cancel["action_id"] == ids.DELETE_CANCEL
    assert stack.sim.calls_to("DELETE") == []


async def test_only_the_requester_may_press_delete(stack: Stack) -> None:
    _, request_id = await _ask_delete(stack)
    ack, key = await stack.click(ids.DELETE_CONFIRM, request_id, user=BOB)
    assert ack.status_code == 200
    refusal = await stack.reply(key)
    assert refusal.data["response_type"] == "ephemeral"
    assert f"Only <@{ALICE}>, who asked, can do this." in text_of(refusal)
    assert stack.sim.calls_to("DELETE") == []


async def test_many_fast_clicks_send_one_delete(stack: Stack) -> None:
    _, request_id = await _ask_delete(stack)
    clicks = await asyncio.gather(*(stack.click(ids.DELETE_CONFIRM, request_id) for _ in range(10)))
    assert all(ack.status_code == 200 for ack, _ in clicks)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert f"<@{ALICE}> deleted snapshot `pre-migration-snapshot` (id `801`)" in text_of(update)
    assert "actions" not in [b["type"] for b in update.data["blocks"]]
    assert [c.path for c in stack.sim.calls_to("DELETE")] == ["/snapshots/801/"]
    refusals = await stack.until(
        lambda: len(stack.slack.responses()) >= 9 and stack.slack.responses()
    )
    assert all(r.data["response_type"] == "ephemeral" for r in refusals)
    # and a late click after the decision changes nothing
    _ack, key = await stack.click(ids.DELETE_CONFIRM, request_id)
    assert "already" in text_of(await stack.reply(key))
    assert len(stack.sim.calls_to("DELETE")) == 1


async def test_cancel_deletes_nothing(stack: Stack) -> None:
    _, request_id = await _ask_delete(stack, "delete 798")
    await stack.click(ids.DELETE_CANCEL, request_id)
    [update] = await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert (
        f"<@{ALICE}> cancelled the delete of snapshot `weekly-snapshot-2025-01-08` (id `798`)."
        " No change."
    ) in text_of(update)
    await stack.click(ids.DELETE_CONFIRM, request_id)
    await asyncio.sleep(0.2)
    assert stack.sim.calls_to("DELETE") == []


async def test_a_backup_delete_goes_to_the_backups_endpoint(stack: Stack) -> None:
    _ack, _ = await stack.command("delete 499", command="/backup")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    await stack.click(ids.DELETE_CONFIRM, request_id)
    await stack.until(lambda: stack.slack.api_calls("chat.update"), what="update")
    assert [c.path for c in stack.sim.calls_to("DELETE")] == ["/backups/499/"]


async def test_deleting_something_that_does_not_exist_is_refused_at_once(stack: Stack) -> None:
    reply = await stack.ask("delete 4242")
    assert "Snapshot 4242 does not exist on VPS.org." in text_of(reply)
    assert stack.posts() == []


async def test_a_button_naming_an_unknown_request_changes_nothing(stack: Stack) -> None:
    for value in ("999999", "not-a-number", ""):
        ack, key = await stack.click(ids.DELETE_CONFIRM, value)
        assert ack.status_code == 200
        refusal = text_of(await stack.reply(key))
        assert "this bot does not know" in refusal or "does not name a request" in refusal
    assert stack.sim.calls_to("DELETE") == []


async def test_a_button_from_another_channel_is_refused(stack: Stack) -> None:
    _, request_id = await _ask_delete(stack)
    _ack, key = await stack.click(ids.DELETE_CONFIRM, request_id, channel="C0000ELSE")
    assert "this bot does not know" in text_of(await stack.reply(key))
    assert stack.sim.calls_to("DELETE") == []
