"""`/vpsbot` through the served app: help and usage errors, the restores waiting for approval
with working buttons, one request's history, and the audit trail as a CSV file in the DM."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.domain.lifecycle import Status
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, Stack, running_stack
from tests.fakes.slack import SlackCall, WebFault

CAROL = "U0000CARL"
ELSEWHERE = "C0000ELSE"


def text_of(call: SlackCall) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


def actions_of(call: SlackCall) -> list[dict[str, object]]:
    return [
        element
        for block in call.data.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def restore_calls(stack: Stack) -> list[object]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


async def vpsbot(stack: Stack, text: str, user: str = ALICE, channel: str = CHANNEL) -> SlackCall:
    ack, key = await stack.command(text, command="/vpsbot", user=user, channel=channel)
    assert ack.status_code == 200, ack.text
    answer = await stack.reply(key)
    assert answer.data["response_type"] == "ephemeral"
    return answer


async def ask_restore(stack: Stack, text: str = "restore 801 rolling back a bad deploy") -> int:
    ack, _ = await stack.command(text)
    assert ack.status_code == 200
    before = len(stack.posts(thread=False))
    [*_, post] = await stack.until(
        lambda: len(stack.posts(thread=False)) > before and stack.posts(thread=False),
        what="the approval request",
    )
    return int(actions_of(post)[0]["value"])  # type: ignore[arg-type]


async def status_of(stack: Stack, request_id: int) -> Status:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(request_id)
    assert request is not None
    return request.status


# -- help and usage -------------------------------------------------------------------------------


async def test_help_lists_every_subcommand(stack: Stack) -> None:
    shown = text_of(await vpsbot(stack, "help"))
    for line in ("/vpsbot pending", "/vpsbot request &lt;id&gt;", "/vpsbot audit [days]"):
        assert line in shown
    assert "CSV file in your DM" in shown


async def test_a_typo_is_named_with_the_nearest_subcommand_and_its_usage(stack: Stack) -> None:
    shown = text_of(await vpsbot(stack, "pendng"))
    assert "“pendng” is not a /vpsbot subcommand. Did you mean “pending”?" in shown
    assert "/vpsbot pending" in shown
    assert "/vpsbot audit" not in shown


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("audit 0", "“0” is not a number of days: expected a whole number from 1 to 3650"),
        ("audit 3651", "“3651” is not a number of days"),
        ("audit 7 please", "“please” is one word too many: “audit” takes only a number of days"),
        ("request", "The request id is missing"),
        ("request seven", "“seven” is not a request id"),
    ],
)
async def test_usage_errors_quote_the_word_and_give_one_usage_line(
    stack: Stack, text: str, said: str
) -> None:
    shown = text_of(await vpsbot(stack, text))
    assert said in shown
    assert shown.count("`/vpsbot ") == 1  # the usage of that one subcommand
    assert stack.slack.api_calls("files.getUploadURLExternal") == []


@pytest.fixture
async def channel_bound(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_channels=CHANNEL
    ) as built:
        yield built


async def test_the_channel_rules_are_those_of_the_other_commands(channel_bound: Stack) -> None:
    refused = text_of(await vpsbot(channel_bound, "pending", channel=ELSEWHERE))
    assert "does not take commands in this channel" in refused
    assert "/vpsbot pending" in text_of(await vpsbot(channel_bound, "help", channel=ELSEWHERE))
    assert "Nothing is waiting" in text_of(await vpsbot(channel_bound, "pending"))


# -- pending ------------------------------------------------------------------------------------


async def test_pending_says_so_when_nothing_waits(stack: Stack) -> None:
    shown = await vpsbot(stack, "pending")
    assert "Nothing is waiting for approval." in text_of(shown)
    assert actions_of(shown) == []


async def test_pending_gives_an_approver_buttons_and_the_requester_none(stack: Stack) -> None:
    request_id = await ask_restore(stack)

    mine = await vpsbot(stack, "pending", user=ALICE)
    shown = text_of(mine)
    assert f"*Request #{request_id}*: restore *web-server-01* (`12345`)" in shown
    assert "snapshot `pre-migration-snapshot` (id `801`" in shown
    assert f"Asked by <@{ALICE}> just now" in shown
    assert "expires in 30 minutes" in shown or "expires in 29 minutes" in shown
    assert "*Reason:* rolling back a bad deploy" in shown
    assert "You asked for this restore" in shown
    assert actions_of(mine) == []

    theirs = await vpsbot(stack, "pending", user=BOB)
    buttons = actions_of(theirs)
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (ids.RESTORE_APPROVE, str(request_id)),
        (ids.RESTORE_DENY, str(request_id)),
    ]
    assert "confirm" in buttons[0]  # the card's "Approve this restore?" dialog

    # elsewhere, an approver is sent to the card: a decision is taken in its channel
    other = await vpsbot(stack, "pending", user=BOB, channel=ELSEWHERE)
    assert actions_of(other) == []
    assert f"Vote on its card in <#{CHANNEL}>" in text_of(other)


async def test_approve_from_pending_restores_once_and_updates_the_card(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id = await ask_restore(stack)
    [approve, _] = actions_of(await vpsbot(stack, "pending", user=BOB))

    ack, _ = await stack.click(str(approve["action_id"]), str(approve["value"]), user=BOB)
    assert ack.status_code == 200
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    updated = await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the card's update",
    )
    assert f"approved by <@{BOB}>" in text_of(updated[-1])

    # the same button again, from the stale list: refused, nothing more is called
    _, key = await stack.click(str(approve["action_id"]), str(approve["value"]), user=CAROL)
    assert "already" in text_of(await stack.reply(key))
    assert len(restore_calls(stack)) == 1
    assert await status_of(stack, request_id) in (Status.EXECUTING, Status.RUNNING)
    assert "Nothing is waiting" in text_of(await vpsbot(stack, "pending", user=BOB))


# -- request <id> -------------------------------------------------------------------------------


async def test_request_shows_the_whole_history(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id = await ask_restore(stack)
    await stack.click(ids.RESTORE_APPROVE, str(request_id), user=BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    await stack.until(lambda: len(stack.sim.calls_to("GET", "/servers/12345/")) >= 3, what="polls")
    stack.sim.finish_all()
    await stack.until(lambda: stack.posts(thread=True), what="the completion")
    await stack.until(lambda: len(stack.slack.api_calls("chat.update")) >= 2, what="the final card")

    shown = text_of(await vpsbot(stack, f"request #{request_id}", user=CAROL))
    assert f"*Request #{request_id}*: restore of *web-server-01* (`12345`)" in shown
    assert f"Asked by <@{ALICE}> in <#{CHANNEL}> <!date^" in shown
    assert "*Reason:* rolling back a bad deploy" in shown
    assert "*Now:* `succeeded`" in shown
    assert f"<@{ALICE}> asked for a restore: “rolling back a bad deploy”" in shown
    assert f"<@{BOB}> approved" in shown
    assert "`pending_approval` → `approved` (approve)" in shown
    assert "`executing` → `running`" in shown
    assert "`running` → `succeeded`" in shown
    assert "VPS.org call `POST /snapshots/801/restore/` → HTTP 200" in shown
    # in the order it happened
    order = ["asked for a restore", f"<@{BOB}> approved", "→ `approved`", "POST", "→ `succeeded`"]
    assert [shown.index(step) for step in order] == sorted(shown.index(step) for step in order)


async def test_an_unknown_request_is_a_clear_error(stack: Stack) -> None:
    shown = text_of(await vpsbot(stack, "request 4242"))
    assert "vpsbot has no request #4242" in shown


# -- audit --------------------------------------------------------------------------------------


async def test_audit_puts_a_csv_of_every_event_in_the_callers_dm(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id = await ask_restore(stack)
    await stack.click(ids.RESTORE_APPROVE, str(request_id), user=BOB)
    await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the restore under way",
    )

    answer = await vpsbot(stack, "audit 7", user=CAROL)
    assert "The audit trail of the last 7 days" in text_of(answer)
    assert "is in your DM with vpsbot" in text_of(answer)
    [opened] = stack.slack.api_calls("conversations.open")
    assert opened.data["users"] == CAROL
    [shared] = stack.slack.shared
    assert shared.channel_id == "D" + CAROL[1:]  # the DM conversations.open gave
    assert "events, one row each, times in UTC" in shared.initial_comment

    rows = list(csv.reader(io.StringIO(shared.content.decode("utf-8"))))
    assert rows[0] == [
        "time",
        "request",
        "event",
        "actor",
        "server_id",
        "server_name",
        "kind",
        "target_id",
        "outcome",
        "detail",
    ]
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        stored = list(await uow.audit.events())
    # every audit row written before the export, in order (the export's own `command` row is
    # written after the answer)
    exported = rows[1:]
    assert len(exported) >= 4
    assert exported == [
        [
            e.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(e.request_id or ""),
            e.event,
            e.actor_id or "",
            "12345" if e.request_id else "",
            "web-server-01" if e.request_id else "",
            "snapshot" if e.request_id else "",
            "801" if e.request_id else "",
            row[8],
            json.dumps(e.detail, ensure_ascii=False, sort_keys=True),
        ]
        for e, row in zip(stored, exported, strict=False)
    ]
    by_event = {(row[2], row[8]): row for row in exported}
    assert by_event[("request", "restore")][3] == ALICE  # the requester, named
    assert by_event[("vote", "approve")][3] == BOB  # the approver, named
    assert by_event[("transition", "approved")][1] == str(request_id)
    assert by_event[("api_call", "200")][5] == "web-server-01"
    assert json.loads(by_event[("request", "restore")][9])["reason"] == "rolling back a bad deploy"
    for row in exported:
        datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ")  # UTC ISO 8601


async def test_audit_says_why_when_slack_refuses_the_file(stack: Stack) -> None:
    stack.slack.faults.append(
        WebFault(
            "files.getUploadURLExternal",
            status=200,
            body={"ok": False, "error": "missing_scope"},
        )
    )
    shown = text_of(await vpsbot(stack, "audit"))
    assert "could not put the audit file in your DM (Slack said `missing_scope`)" in shown
    assert stack.slack.shared == []


async def test_with_roles_configured_only_they_export_or_read_another_channels_request(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    """Approvers or operators configured: the audit export, and the history of a request made
    in another channel, are theirs only; anyone may read the history of a request made in the
    channel where they ask."""
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_operators=CAROL
    ) as stack:
        request_id = await ask_restore(stack)
        refused = text_of(await vpsbot(stack, "audit", user="U0000EVE1"))
        assert "Only the configured approvers and operators" in refused
        assert stack.slack.api_calls("files.getUploadURLExternal") == []
        assert "Only the configured" in text_of(
            await vpsbot(stack, f"request {request_id}", user="U0000EVE1", channel=ELSEWHERE)
        )
        here = text_of(await vpsbot(stack, f"request {request_id}", user="U0000EVE1"))
        assert "Only the configured" not in here
        assert f"#{request_id}" in here
        assert "Only the configured" not in text_of(
            await vpsbot(stack, f"request {request_id}", user=CAROL, channel=ELSEWHERE)
        )
        await vpsbot(stack, "audit", user=CAROL)
        await stack.until(lambda: stack.slack.shared, what="Carol's audit file")
