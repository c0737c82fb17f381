"""Safety snapshots on Slack: what the approval card promises by plan, the executing card by
step, the Undo restore button (only while the restore can be undone), the failures that stop
a restore before it starts (each says nothing was restored), the notes in the thread, and the
Undo button's handler."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot.domain.errors import NotAllowed
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, OperationRequest, ServerRef
from bot.domain.outcomes import (
    Asked,
    Failure,
    Outcome,
    SafetyPlan,
    SafetyRemoval,
    SafetyStep,
    Why,
)
from bot.services.operations import Actor
from bot.serving import serving
from bot.slack import actions, blocks, ids, web_client
from bot.slack.blocks.requests import SAFETY, short_reason
from bot.slack.notifier import SlackNotifier
from tests.fakes.slack import SlackStandIn

NOW = datetime(2025, 1, 18, 12, 0, tzinfo=UTC)
WEB = ServerRef(12345, "web-server-01")
SERVER = "*web-server-01* (`12345`)"
SAFETY_WHYS = [why for why in Why if why.value.startswith("safety_") or why is Why.RESUMED_LATE]


def restore(status: Status, **kw: Any) -> OperationRequest:
    values: dict[str, Any] = {
        "id": 7,
        "kind": Kind.SNAPSHOT,
        "action": Action.RESTORE,
        "status": status,
        "requester_id": "U1",
        "channel_id": "C1",
        "server": WEB,
        "target_id": 801,
        "target_name": "pre-migration",
        "reason": "rollback",
        "created_at": NOW - timedelta(minutes=10),
        "updated_at": NOW,
        "expires_at": NOW + timedelta(minutes=30) if status is Status.PENDING_APPROVAL else None,
        "message_ts": "1700000000.000001",
        "required_approvals": 1,
        "asked": Asked(
            target_created_at=NOW - timedelta(days=3),
            target_size_mb=5120,
            safety=SafetyPlan.PLANNED,
            server_snapshots=2,
        ),
        "outcome": Outcome(approvers=("U2",), took_seconds=263),
    }
    values.update(kw)
    return OperationRequest(**values)


def with_outcome(request: OperationRequest, **changes: Any) -> OperationRequest:
    return replace(request, outcome=request.outcome.but(**changes))


def with_asked(request: OperationRequest, **changes: Any) -> OperationRequest:
    return replace(request, asked=replace(request.asked, **changes))


READY = {
    "safety_step": SafetyStep.READY,
    "safety_id": 903,
    "safety_taken_at": NOW - timedelta(days=7),
    "safety_ready_at": NOW - timedelta(days=7) + timedelta(minutes=2),
    "safety_keep_until": NOW,
    "started_at": NOW - timedelta(days=7) + timedelta(minutes=3),  # VPS.org took the restore
}


def done(status: Status = Status.SUCCEEDED, **changes: Any) -> OperationRequest:
    return with_outcome(restore(status), **{**READY, **changes})


def card(request: OperationRequest) -> str:
    return blocks.request_message(request, NOW).blocks[0]["text"]["text"]


def everything(message: blocks.Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


def buttons(message: blocks.Message) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def undo_buttons(message: blocks.Message) -> list[dict[str, Any]]:
    return [b for b in buttons(message) if b["action_id"] == ids.RESTORE_UNDO]


def approve_confirmation(request: OperationRequest) -> str:
    [approve] = [
        b
        for b in buttons(blocks.request_message(request, NOW))
        if b["action_id"] == ids.RESTORE_APPROVE
    ]
    return str(approve["confirm"]["text"]["text"])


# -- the approval card: what it promises --------------------------------------------------------


def test_a_planned_safety_snapshot_is_promised_and_the_restore_can_be_undone() -> None:
    pending = restore(Status.PENDING_APPROVAL)
    text = card(pending)
    assert (
        f"A *safety snapshot* of {SERVER} is taken first, so this restore can be undone; if it "
        "cannot be taken, nothing is restored."
    ) in text
    assert "cannot be undone" not in text
    assert approve_confirmation(pending) == (
        f"A safety snapshot is taken first, so this restore can be undone. {SERVER} will be "
        "overwritten."
    )


def test_at_the_limit_the_card_warns_that_no_safety_snapshot_can_be_taken() -> None:
    pending = with_asked(
        restore(Status.PENDING_APPROVAL), safety=SafetyPlan.AT_LIMIT, server_snapshots=5
    )
    text = card(pending)
    assert (
        f":warning: *No safety snapshot can be taken*: VPS.org allows 5 snapshots per server "
        f"and {SERVER} has 5, so this restore *cannot be undone*."
    ) in text
    assert "is taken first" not in text
    assert "cannot be undone" in approve_confirmation(pending)


def test_with_safety_snapshots_off_the_card_says_none_is_taken() -> None:
    pending = with_asked(
        restore(Status.PENDING_APPROVAL), safety=SafetyPlan.OFF, server_snapshots=None
    )
    text = card(pending)
    assert "No safety snapshot is taken (turned off): this cannot be undone." in text
    assert "cannot be undone" in approve_confirmation(pending)


def test_a_request_from_before_safety_snapshots_reads_as_it_always_did() -> None:
    pending = with_asked(restore(Status.PENDING_APPROVAL), safety=None, server_snapshots=None)
    text = card(pending)
    assert (
        "The server is stopped first, all its current data is overwritten, and this cannot be "
        "undone."
    ) in text
    assert "safety snapshot" not in text.lower()
    assert approve_confirmation(pending) == f"This cannot be undone. {SERVER} will be overwritten."


def test_an_undo_says_which_request_it_undoes() -> None:
    pending = with_asked(restore(Status.PENDING_APPROVAL, reason="undo of request #5"), undo_of=5)
    assert card(pending).startswith(":rotating_light: *Undo of request #5*: *Restore requested* by")
    assert (
        "*The server goes back to how it was before the restore of request #5: everything "
        "written on it since then (3 days ago) is lost.*"
    ) in card(pending)
    running = with_outcome(replace(pending, status=Status.RUNNING), **READY)
    message = blocks.request_message(running, NOW)
    assert message.blocks[-1]["elements"][0]["text"] == "request #7 · undo of request #5"


# -- the executing card, step by step -----------------------------------------------------------


@pytest.mark.parametrize("status", [Status.APPROVED, Status.EXECUTING])
def test_before_the_safety_snapshot_the_card_says_one_comes_next(status: Status) -> None:
    assert card(restore(status)).endswith(": checking the target, then taking a safety snapshot…")
    unplanned = with_asked(restore(status), safety=SafetyPlan.OFF)
    assert card(unplanned).endswith(": checking the target, then asking VPS.org…")
    legacy = with_asked(restore(status), safety=None)
    assert card(legacy).endswith(": checking the target, then asking VPS.org…")


def test_while_the_safety_snapshot_is_taken_the_card_names_it() -> None:
    posting = with_outcome(restore(Status.EXECUTING), safety_step=SafetyStep.POSTING)
    assert card(posting).startswith(
        f":camera_with_flash: Approved by <@U2>. Taking a *safety snapshot* (`pre-restore-7`) of "
        f"{SERVER} before restoring it from snapshot `pre-migration` (id `801`"
    )
    following = with_outcome(posting, safety_step=SafetyStep.FOLLOWING, safety_id=903)
    assert "Taking a *safety snapshot* (`pre-restore-7`, id `903`) of" in card(following)
    assert card(following).endswith("…")


def test_once_the_safety_snapshot_is_complete_the_card_says_the_restore_is_asked() -> None:
    ready = with_outcome(restore(Status.EXECUTING), **READY)
    text = card(ready)
    assert text.startswith(
        ":hourglass_flowing_sand: Approved by <@U2>. Safety snapshot `pre-restore-7` (id `903`) "
        f"is complete. Restoring {SERVER} from snapshot `pre-migration`"
    )
    assert text.endswith(": asking VPS.org…")


def test_a_running_restore_mentions_its_safety_snapshot() -> None:
    running = done(Status.RUNNING)
    assert card(running).endswith(
        "\n:camera_with_flash: Safety snapshot `pre-restore-7` (id `903`) was taken first: this "
        "restore can be undone once it is over."
    )
    assert undo_buttons(blocks.request_message(running, NOW)) == []


# -- Undo restore: offered while the restore can be undone ----------------------------------------


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.NEEDS_ATTENTION])
def test_an_undoable_restore_offers_undo_on_its_card_and_in_its_thread(status: Status) -> None:
    request = done(status, safety_keep_until=NOW + timedelta(days=7))
    if status is Status.NEEDS_ATTENTION:
        failure = Failure(Why.UNREADABLE, detail="HTTP 502", count=5, seconds=600)
        request = with_outcome(request, failure=failure, started_at=NOW - timedelta(hours=1))
    assert request.undoable
    message = blocks.request_message(request, NOW)
    assert card(request).endswith(
        "\n:camera_with_flash: Safety snapshot `pre-restore-7` (id `903`) was taken just before "
        "the restore, kept until <!date^1737806400^{date_short_pretty} {time}|2025-01-25 12:00 "
        "UTC>: *Undo restore* puts the server back as it was then."
    )
    reply = blocks.outcome_message(request, NOW)
    for said in (message, reply):
        [button] = undo_buttons(said)
        assert button["text"] == {"type": "plain_text", "text": "Undo restore"}
        assert button["value"] == "7"
        assert "style" not in button
    assert reply.blocks[0]["text"]["text"] == reply.text  # the short line, then the button
    for dm in (
        blocks.outcome_message(request, NOW, direct=True),
        blocks.outcome_message(replace(request, message_ts=None), NOW, direct=True),
    ):
        assert buttons(dm) == []


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (with_asked(done(), safety=None), "legacy, but a snapshot: still undoable"),
        (done(safety_step=None, safety_id=None), "no safety snapshot"),
        (with_asked(done(safety_step=None, safety_id=None), safety=SafetyPlan.OFF), "off"),
        (done(safety_step=SafetyStep.FOLLOWING), "the restore call was never reached"),
        (
            done(Status.FAILED, failure=Failure(Why.API_REFUSED, detail="no"), started_at=None),
            "refused: never restored",
        ),
        (done(Status.RUNNING), "still running"),
        (
            done(Status.NEEDS_ATTENTION, failure=Failure(Why.BOT_STOPPED), started_at=None),
            "perhaps never sent",
        ),
        (
            done(Status.NEEDS_ATTENTION, failure=Failure(Why.UNREADABLE), started_at=NOW),
            "accepted, then lost track of",
        ),
    ],
)
def test_undo_is_offered_only_when_the_restore_is_undoable(
    request_: OperationRequest, why: str
) -> None:
    for message in (blocks.request_message(request_, NOW), blocks.outcome_message(request_, NOW)):
        assert len(undo_buttons(message)) == (1 if request_.undoable else 0), why


@pytest.mark.parametrize(
    ("removal", "said"),
    [
        (
            SafetyRemoval.DELETED,
            ":wastebasket: Safety snapshot `pre-restore-7` (id `903`) was deleted by vpsbot "
            "<!date^1737201600^{date_short_pretty} {time}|2025-01-18 12:00 UTC>, as planned; "
            "this restore can no longer be undone.",
        ),
        (
            SafetyRemoval.GONE,
            ":wastebasket: Safety snapshot `pre-restore-7` (id `903`) was already gone from "
            "VPS.org when vpsbot came to delete it <!date^1737201600^{date_short_pretty} "
            "{time}|2025-01-18 12:00 UTC>; this restore can no longer be undone.",
        ),
        (
            SafetyRemoval.NOT_OURS,
            ":warning: Snapshot id `903` now names another snapshot, not the safety snapshot "
            "`pre-restore-7`, so vpsbot left it alone; this restore can no longer be undone.",
        ),
    ],
)
def test_once_the_safety_snapshot_is_let_go_the_card_says_so_and_undo_is_gone(
    removal: SafetyRemoval, said: str
) -> None:
    request = done(safety_removed=removal, safety_removed_at=NOW)
    assert not request.undoable
    assert card(request).endswith("\n" + said)
    assert undo_buttons(blocks.request_message(request, NOW)) == []
    assert undo_buttons(blocks.outcome_message(request, NOW)) == []


def test_a_failed_restore_says_when_its_safety_snapshot_is_deleted() -> None:
    failed = done(
        Status.FAILED,
        failure=Failure(Why.API_REFUSED, detail="Server is locked"),
        safety_keep_until=NOW + timedelta(days=7),
        started_at=None,
    )
    text = card(failed)
    assert "VPS.org refused: Server is locked; nothing was restored." in text
    assert text.endswith(
        "\nThe safety snapshot `pre-restore-7` (id `903`) is kept until "
        "<!date^1737806400^{date_short_pretty} {time}|2025-01-25 12:00 UTC>, then vpsbot "
        "deletes it."
    )
    deleted = with_outcome(failed, safety_removed=SafetyRemoval.DELETED, safety_removed_at=NOW)
    assert card(deleted).endswith(", as planned.")  # it never was undoable: nothing more said
    vanished = with_outcome(
        failed, failure=Failure(Why.SAFETY_GONE), safety_step=SafetyStep.FOLLOWING
    )
    assert card(vanished).endswith(
        ": the safety snapshot disappeared before the restore; nothing was restored."
    )


# -- failures that stop the restore before it starts ---------------------------------------------


def safety_failure(why: Why, detail: str = "Snapshot service down") -> Failure:
    return Failure(why, detail=detail, status="error", count=5, seconds=1800)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            Failure(Why.SAFETY_LIMIT, count=5),
            "the safety snapshot could not be taken: the server has 5 snapshots, the most "
            "VPS.org allows; nothing was restored",
        ),
        (
            Failure(Why.SAFETY_LIMIT, detail="Snapshot limit reached"),
            "the safety snapshot could not be taken: VPS.org's limit of 5 snapshots per server "
            "is reached (Snapshot limit reached); nothing was restored",
        ),
        (
            Failure(Why.SAFETY_REFUSED, detail="Server is locked", http_status=409),
            "VPS.org refused the safety snapshot (Server is locked); nothing was restored",
        ),
        (
            Failure(Why.SAFETY_FAILED, status="failed"),
            "the safety snapshot ended failed; nothing was restored",
        ),
        (
            Failure(Why.SAFETY_GONE),
            "the safety snapshot disappeared before the restore; nothing was restored",
        ),
        (
            Failure(Why.SAFETY_TIMEOUT, status="in_progress", seconds=1800),
            "the safety snapshot was still not complete after 30 min (it was in_progress); "
            "nothing was restored",
        ),
        (
            Failure(Why.SAFETY_TIMEOUT, detail="HTTP 502", seconds=1800),
            "the safety snapshot was still not complete after 30 min (it could not be read: "
            "HTTP 502); nothing was restored",
        ),
        (
            Failure(Why.SAFETY_UNCONFIRMED, detail="VPS.org did not answer"),
            "VPS.org did not confirm the safety snapshot (VPS.org did not answer) and no "
            "snapshot named pre-restore-7 is listed; nothing was restored. If one appears, it "
            "was made by this request: delete it when no longer needed",
        ),
        (
            Failure(Why.SAFETY_UNCONFIRMED, detail="did not answer", read_detail="HTTP 503"),
            "VPS.org did not confirm the safety snapshot (did not answer) and the server's "
            "snapshots could not be read to look for pre-restore-7 (HTTP 503); nothing was "
            "restored. If one appears, it was made by this request: delete it when no longer "
            "needed",
        ),
    ],
)
def test_each_safety_failure_says_nothing_was_restored(failure: Failure, reason: str) -> None:
    status = Status.NEEDS_ATTENTION if failure.why is Why.SAFETY_UNCONFIRMED else Status.FAILED
    request = with_outcome(restore(status), failure=failure)
    assert f": {reason}." in card(request)
    short = short_reason(request)
    assert short == reason.split(". If one appears")[0]
    assert short.endswith("; nothing was restored")
    assert undo_buttons(blocks.request_message(request, NOW)) == []
    reply = blocks.outcome_message(request, NOW).text
    dm = blocks.outcome_message(request, NOW, direct=True).text
    assert reply.endswith(f": {short}")
    assert f": {short} · in <#C1>" in dm


def test_the_table_has_every_safety_failure() -> None:
    assert set(SAFETY) == set(SAFETY_WHYS)


@pytest.mark.parametrize("why", SAFETY_WHYS)
def test_outside_words_in_a_safety_failure_are_escaped_and_never_push_out_its_end(why: Why) -> None:
    hostile = "<!channel> `x` <https://evil|click> " * 60
    failure = Failure(why, detail=hostile, status=hostile, read_detail=hostile, count=5, seconds=60)
    status = Status.NEEDS_ATTENTION if why is Why.SAFETY_UNCONFIRMED else Status.FAILED
    request = with_outcome(restore(status, id=9_999_999_999), failure=failure)
    for said in (
        card(request),
        short_reason(request),
        blocks.outcome_message(request, NOW).text,
        blocks.outcome_message(request, NOW, direct=True).text,
    ):
        assert "nothing was restored" in said
        assert "<!channel>" not in said
        assert "<https://evil" not in said
    assert card(request).endswith("." if why is not Why.SAFETY_UNCONFIRMED else "needed.")


# -- notes in the thread ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "said"),
    [
        (
            "safety_deleted",
            ":wastebasket: Safety snapshot `pre-restore-7` (id `903`) deleted after 7 days as "
            "planned; this restore can no longer be undone.",
        ),
        (
            "safety_gone",
            ":wastebasket: Safety snapshot `pre-restore-7` (id `903`) was already gone from "
            "VPS.org when vpsbot came to delete it after 7 days; this restore can no longer be "
            "undone.",
        ),
        (
            "safety_not_ours",
            ":warning: Snapshot id `903` now names another snapshot, not the safety snapshot "
            "`pre-restore-7` of this restore, so vpsbot left it alone and no longer offers "
            "*Undo restore*.",
        ),
    ],
)
def test_each_note_says_what_the_bot_did(note: str, said: str) -> None:
    removal = {
        "safety_deleted": SafetyRemoval.DELETED,
        "safety_gone": SafetyRemoval.GONE,
        "safety_not_ours": SafetyRemoval.NOT_OURS,
    }[note]
    request = done(safety_removed=removal, safety_removed_at=NOW)
    message = blocks.note_message(request, note, NOW)
    assert message.text == said
    assert [b["text"]["text"] for b in message.blocks] == [said]


def test_a_note_counts_the_days_kept_or_leaves_them_out() -> None:
    half_day = done(safety_keep_until=NOW - timedelta(days=7) + timedelta(hours=12))
    assert (
        "deleted after 12 h as planned" in blocks.note_message(half_day, "safety_deleted", NOW).text
    )
    nearly = done(safety_keep_until=NOW - timedelta(hours=1))  # 6 days 23 h: rounds to 7
    assert (
        "deleted after 7 days as planned" in blocks.note_message(nearly, "safety_deleted", NOW).text
    )
    one = done(safety_keep_until=NOW - timedelta(days=6))
    assert "deleted after 1 day as planned" in blocks.note_message(one, "safety_deleted", NOW).text
    unknown = done(safety_taken_at=None)
    assert (
        "(id `903`) deleted as planned;" in blocks.note_message(unknown, "safety_deleted", NOW).text
    )


def test_a_note_about_a_restore_that_never_ran_does_not_talk_of_undo() -> None:
    failed = done(Status.FAILED, failure=Failure(Why.API_REFUSED, detail="no"), started_at=None)
    text = blocks.note_message(failed, "safety_deleted", NOW).text
    assert text.endswith("deleted after 7 days as planned.")
    assert "Undo" not in blocks.note_message(failed, "safety_not_ours", NOW).text


@pytest.mark.parametrize("note", ["", "something_new", "<!channel> `x`" * 20])
def test_an_unknown_note_reads_as_a_neutral_line(note: str) -> None:
    message = blocks.note_message(done(), note, NOW)
    assert message.text.startswith(":information_source: An update on request #7")
    assert "<!channel>" not in everything(message)


async def test_the_notifier_posts_a_note_in_the_cards_thread() -> None:
    slack = SlackStandIn()
    request = done(safety_removed=SafetyRemoval.DELETED, safety_removed_at=NOW)
    async with serving(slack.app) as url:
        notifier = SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW)
        delivery = await notifier.deliver("note", {"note": "safety_deleted"}, request)
        cardless = await notifier.deliver(
            "note", {"note": "safety_gone"}, replace(request, message_ts=None)
        )
    threaded, channel = slack.api_calls("chat.postMessage")
    assert threaded.data["channel"] == delivery.channel == "C1"
    assert threaded.data["thread_ts"] == "1700000000.000001"
    assert threaded.data["text"].startswith(":wastebasket: Safety snapshot `pre-restore-7`")
    assert channel.data["channel"] == cardless.channel == "C1"
    assert "thread_ts" not in channel.data
    assert "already gone" in channel.data["text"]
    assert slack.api_calls("chat.update") == []


# -- the Undo button's handler ---------------------------------------------------------------------


def services(channels: tuple[str, ...]) -> Any:
    return SimpleNamespace(policy=SimpleNamespace(channels=channels), vps="vps", life="life")


async def test_undo_asks_for_the_restore_back_where_commands_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    async def undo(*args: Any) -> None:
        calls.append(args)

    monkeypatch.setattr(actions.restores, "undo", undo)
    await actions.undo(services(("C1",)), "U3", 7, "C1", NOW)
    assert calls == [("vps", "life", Actor("U3", "C1"), 7)]
    await actions.undo(services(()), "U3", 8, "C9", NOW)  # no channel list: everywhere
    assert calls[-1] == ("vps", "life", Actor("U3", "C9"), 8)


async def test_undo_is_refused_in_a_channel_that_takes_no_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    async def undo(*args: Any) -> None:
        calls.append(args)

    monkeypatch.setattr(actions.restores, "undo", undo)
    with pytest.raises(NotAllowed):
        await actions.undo(services(("C1",)), "U3", 7, "C2", NOW)
    assert calls == []
