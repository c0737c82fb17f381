"""Malformed and tampered requests, authorisation and Slack's own faults: a refusal, no stack
trace, no state change; messages still arrive."""

import asyncio
import gc
import json
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Kind
from bot.slack import actions, ids
from bot.slack.parsing import GRAMMAR
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, Stack, fixture, running_stack
from tests.fakes.slack import WebFault


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


async def state(stack: Stack) -> tuple[list[Any], list[Any]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status), list(await uow.outbox.items())


async def outbox_drained(stack: Stack, wait: float = 10.0) -> None:
    """Wait until every message the bot queued for Slack has been sent (or given up)."""
    deadline = time.monotonic() + wait
    while True:
        async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
            if not await uow.outbox.items("pending"):
                return
        assert time.monotonic() < deadline, "the outbox was not sent"
        await asyncio.sleep(0.02)


async def test_unknown_action_ids_are_refused_without_change(stack: Stack) -> None:
    ack, key = await stack.click("drop_all_tables", "1")
    assert ack.status_code == 200
    assert "not one vpsbot knows" in text_of(await stack.reply(key))
    assert await state(stack) == ([], [])


NAMES_NO_REQUEST = ":no_entry: That button does not name a request."
TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], object], int, str | None]] = {
    # what is done to a genuine Confirm click: (the HTTP answer, the refusal the person reads)
    "no-actions": (lambda p: p.pop("actions"), 404, None),  # no listener: bolt's 404, no reply
    "no-user": (lambda p: p.pop("user"), 200, NAMES_NO_REQUEST),
    "no-value": (lambda p: p["actions"][0].pop("value"), 200, NAMES_NO_REQUEST),
    "sql-value": (lambda p: p["actions"][0].update(value="1 OR 1=1"), 200, NAMES_NO_REQUEST),
    "long-value": (lambda p: p["actions"][0].update(value="9" * 40), 200, NAMES_NO_REQUEST),
    "no-channel": (
        lambda p: p.update(channel=None, container=None),
        200,
        ":no_entry: That button belongs to a request this bot does not know.",
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
async def test_tampered_button_payloads_are_refused(stack: Stack, tamper: str) -> None:
    mutate, status, refusal = TAMPERED[tamper]
    _ack, _ = await stack.command("delete 801")
    [card] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    value = next(b for b in card.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    await outbox_drained(stack)
    before = await state(stack)
    sent = len(stack.slack.calls)
    payload = fixture("block-actions.json")
    payload["user"]["id"] = ALICE  # the requester, who may confirm it
    payload["response_url"] = stack.slack.response_url("tampered")
    payload["actions"][0].update(action_id=ids.DELETE_CONFIRM, value=value)
    mutate(payload)
    answer = await stack.action(payload)
    assert answer.status_code == status
    assert "Traceback" not in answer.text
    if refusal is not None:
        reply = await stack.reply("tampered")
        assert reply.data["response_type"] == "ephemeral"
        assert text_of(reply).endswith(refusal)
    # nothing changed: no call to VPS.org but the delete's own read (two pages of snapshots),
    # the request still waits for its confirmation, its card is as it was, and nothing else
    # went to Slack
    assert [(c.method, c.path) for c in stack.sim.calls] == [("GET", "/snapshots/")] * 2
    after = await state(stack)
    assert after[0] == before[0]
    [request] = after[0]
    assert request.status is Status.PENDING_CONFIRMATION
    assert [(o.id, o.status) for o in after[1]] == [(o.id, o.status) for o in before[1]]
    assert [c.method for c in stack.slack.calls[sent:]] == (["response"] if refusal else [])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"command": "/snapshot", "text": "list"}', "application/json"),
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("\x00\x01\x02", "application/octet-stream"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
async def test_bodies_that_are_not_slack_forms_get_no_stack_trace(
    stack: Stack, body: str, content_type: str
) -> None:
    answer = await stack.post_signed(body, **{"Content-Type": content_type})
    assert answer.status_code < 500
    assert "Traceback" not in answer.text
    assert stack.sim.calls == []
    assert await state(stack) == ([], [])


async def test_an_oversized_body_is_refused_unread(stack: Stack) -> None:
    body = urlencode({"text": "x" * (2 * 1024 * 1024)})
    answer = await stack.post_signed(body)
    assert answer.status_code == 413
    assert stack.sim.calls == []


@pytest.fixture
async def guarded(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        vpsbot_poll_interval=0.2,
        vpsbot_channels=CHANNEL,
        vpsbot_operators=f"{ALICE},S0000OPS",
    ) as built:
        built.slack.groups["S0000OPS"] = ["U0000DAVE"]
        yield built


async def test_commands_are_accepted_only_in_the_configured_channels(guarded: Stack) -> None:
    _ack, key = await guarded.command("list 12345", channel="C0000ELSE")
    assert "does not take commands in this channel" in text_of(await guarded.reply(key))
    assert guarded.sim.calls == []
    assert "pre-migration-snapshot" in text_of(await guarded.ask("list 12345"))


async def test_only_operators_create_and_delete_and_refusals_are_audited(guarded: Stack) -> None:
    reply = await guarded.ask("create 12345 not-allowed", user=BOB)
    assert "Only operators can create or delete" in text_of(reply)
    reply = await guarded.ask("delete 801", user=BOB)
    assert "Only operators can create or delete" in text_of(reply)
    assert guarded.sim.calls_to("POST") == []
    await guarded.command("create 12345 via-group", user="U0000DAVE")
    await guarded.until(lambda: guarded.posts(thread=False), what="the group member's create")
    async with SqlUnitOfWork(guarded.bot.database.sessions) as uow:
        rows = await uow.audit.events("command")
    outcomes = [(r.actor_id, r.detail["outcome"]) for r in rows]
    assert outcomes[:2] == [(BOB, "refused"), (BOB, "refused")]


async def test_refused_clicks_are_audited(stack: Stack) -> None:
    await stack.command("delete 801")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    value = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    _, key = await stack.click(ids.DELETE_CONFIRM, value, user=BOB)
    await stack.reply(key)
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [row] = await uow.audit.events("refused")
    assert (row.actor_id, row.detail) == (
        BOB,
        {"action": ids.DELETE_CONFIRM, "error": "NotRequester"},
    )


# -- Slack's own faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        WebFault(
            "chat.postMessage", status=500, body={"ok": False, "error": "internal_error"}, times=3
        ),
        WebFault(
            "chat.postMessage", status=200, body={"ok": False, "error": "fatal_error"}, times=2
        ),
        WebFault("chat.postMessage", status=429, headers={"Retry-After": "0"}, times=6),
    ],
)
async def test_slack_failing_delays_the_channel_message_but_it_arrives_once(
    stack: Stack, fault: WebFault
) -> None:
    stack.slack.faults.append(fault)
    started = time.monotonic()
    await stack.command("create 12345 slack-trouble")
    [post] = await stack.until(lambda: stack.posts(thread=False), wait=20, what="the post")
    assert "slack-trouble" in text_of(post)
    assert fault.times == 0
    await outbox_drained(stack, wait=20)  # the message is sent: it is not sent again
    assert len(stack.posts(thread=False)) == 1
    assert time.monotonic() - started < 15


async def test_an_expired_response_url_falls_back_to_an_ephemeral_message(stack: Stack) -> None:
    fields = fixture("slash-command.json") | {
        "text": "list 12345",
        "response_url": f"{stack.slack.base_url}/expired/hook",  # answers 404, like a dead URL
    }
    ack = await stack.post_signed(urlencode(fields))
    assert ack.status_code == 200
    [ephemeral] = await stack.until(
        lambda: stack.slack.api_calls("chat.postEphemeral"), what="fallback"
    )
    assert ephemeral.data["user"] == "U0000TEST"
    assert ephemeral.data["channel"] == CHANNEL
    assert "pre-migration-snapshot" in text_of(ephemeral)


async def test_a_slash_command_with_a_quoted_payload_is_not_a_button(stack: Stack) -> None:
    body = "payload=" + quote(json.dumps({"type": "nonsense"}))
    answer = await stack.post_signed(body)
    assert answer.status_code < 500


# -- payloads of the wrong shape -----------------------------------------------------------------


def _click_payload(stack: Stack, key: str) -> dict[str, Any]:
    payload = fixture("block-actions.json")
    payload["response_url"] = stack.slack.response_url(key)
    payload["actions"][0].update(action_id=ids.RESTORE_APPROVE, value="1")
    return payload


@pytest.mark.parametrize(
    "malformed",
    [
        lambda p: p.update(user="U0000APPR"),
        lambda p: p.update(actions=[None]),
        lambda p: p.update(actions="restore_approve"),
        lambda p: p.update(actions=[]),
        lambda p: p.update(actions=[{"value": "1"}]),
        lambda p: p.update(channel=["C0000TEST"]),
        lambda p: p.update(container="C0000TEST"),
        lambda p: p.update(team=["T0000TEST"]),
        lambda p: p.update(response_url={"url": "https://example.com"}),
        lambda p: p["user"].update(id=["U0000APPR"]),
    ],
    ids=[
        "user-string",
        "actions-null",
        "actions-string",
        "actions-empty",
        "action-without-id",
        "channel-list",
        "container-string",
        "team-list",
        "response-url-object",
        "user-id-list",
    ],
)
async def test_a_click_payload_of_the_wrong_shape_is_a_400(
    stack: Stack, malformed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sent = len(stack.slack.calls)
    payload = _click_payload(stack, "malformed")
    malformed(payload)
    answer = await stack.action(payload)
    assert answer.status_code == 400
    assert answer.text == "malformed Slack request"
    await _nothing_went_wrong(stack, sent, caplog)


@pytest.mark.parametrize("payload", ["[1, 2]", '"block_actions"', "null", "5", "true"])
async def test_a_payload_that_is_json_but_not_an_object_is_a_400(
    stack: Stack, payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sent = len(stack.slack.calls)
    answer = await stack.post_signed("payload=" + quote(payload))
    assert answer.status_code == 400
    await _nothing_went_wrong(stack, sent, caplog)


async def _nothing_went_wrong(stack: Stack, sent: int, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing was sent anywhere and nothing failed: after a well-formed click (an unknown
    button, refused with a reply) has been handled, Slack has received only that reply, and no
    error was logged (a listener failing in its own task logs "Task exception was never
    retrieved" once the task is collected)."""
    _ack, key = await stack.click("no_such_button", "1")
    await stack.reply(key)
    # Collect now so a failed task's "never retrieved" is logged here; objects that earlier
    # tests on this worker left for the collector (ResourceWarnings) are not this test's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert [c.key for c in stack.slack.calls[sent:] if c.method == "response"] == [key]
    assert not [c for c in stack.slack.calls[sent:] if c.method not in ("response", "auth.test")]
    assert stack.sim.calls == []
    assert await state(stack) == ([], [])
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], [r.getMessage() for r in failures]
    assert "Task exception was never retrieved" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        {"user": "U1", "channel": [], "container": "C1", "actions": "x", "response_url": {}},
        {"user": ["id"], "channel": {"id": 5}, "actions": [None, {}]},
        {},
    ],
)
def test_the_button_listeners_read_any_shape_without_raising(body: dict[str, Any]) -> None:
    """Behind the 400: what the listeners read from a payload never raises on a wrong shape."""
    assert (actions._user(body), actions._response_url(body)) == ("", None)
    assert actions._channel(body) in ("", "5")
    assert actions._first_action(body) == {}


# -- hostile words in usage errors ---------------------------------------------------------------

HOSTILE_WORDS = [
    "<!channel>",
    "<!here|everyone>",
    "<@U0000BOSS>",
    "<#C0000TEST>",
    "<https://evil.example|click>",
    "```",
    "`x`<!everyone>",
    "&lt;!channel&gt;",
    "\u202ereversed",
    "zero\u200bwidth",
]
HOSTILE_POSITIONS = [
    # where the word goes, and the start of the sentence that quotes it
    ("{}", "is not a /snapshot subcommand"),
    ("list {}", "is not a server id"),
    ("create {} name", "is not a server id"),
    ("create 12345 {}", "is not a snapshot name"),
    ("restore {}", "is not a snapshot id"),
    ("delete 801 {}", "is one word too many"),
]


@pytest.mark.parametrize("word", HOSTILE_WORDS)
async def test_a_hostile_word_in_a_usage_error_is_shown_as_text(stack: Stack, word: str) -> None:
    """Wherever it was typed, the wrong word is quoted back escaped: no mention, link or
    broadcast comes alive, no code span opens or closes, no invisible character hides."""
    for template, says in HOSTILE_POSITIONS:
        reply = await stack.ask(template.format(word))
        sentence = reply.data["blocks"][0]["text"]["text"]
        assert says in sentence, (template, sentence)
        for text in (sentence, reply.data["text"]):
            for live in ("<", ">", "`", "\u202e", "\u200b"):
                assert live not in text
        escaped = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for typed, shown in (("`", "\u02cb"), ("\u202e", "\ufffd"), ("\u200b", "\ufffd")):
            escaped = escaped.replace(typed, shown)
        assert f":warning: “{escaped}” {says}" in sentence
        assert len(reply.data["blocks"]) == 2
        usages = reply.data["blocks"][1]["elements"][0]["text"].count("`/snapshot ")
        assert usages in (1, len(GRAMMAR[Kind.SNAPSHOT]))
    assert stack.sim.calls == []
    assert await state(stack) == ([], [])
