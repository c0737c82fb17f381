"""Every command and button under every VPS.org fault: the ack comes at once, the person hears
what failed and whether anything changed, nothing is sent twice, and the bot works again as
soon as VPS.org does."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.domain.model import Status
from bot.serving import serving
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import BOB, CHANNEL, VPS_TOKEN, Stack, running_stack


def text_of(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(
        call.data.get("text", "")
    )


FAULTS: dict[str, dict[str, Any]] = {
    "hang": {"kind": "hang", "delay": 1.4},
    "500": {"status": 500, "body": {"detail": "boom"}},
    "502": {"status": 502, "body": "<html>Bad Gateway</html>"},
    "503": {"status": 503, "body": {"detail": "maintenance"}},
    "429": {"status": 429, "body": {"detail": "slow down"}, "headers": {"Retry-After": "0"}},
    "malformed": {"kind": "malformed"},
    "401": {"status": 401, "body": {"detail": "Invalid token."}},
}
# What the person reads for a failed read (nothing was changed in every case).
SAYS = {
    "hang": "did not answer in time",
    "500": "not answering properly (boom (HTTP 500))",
    "502": "not answering properly (HTTP 502 (HTTP 502))",
    "503": "not answering properly (maintenance (HTTP 503))",
    "429": "VPS.org is busy (rate limited)",
    "malformed": "unexpected response from VPS.org",
    "401": "This is a configuration problem",
}
COMMANDS = [
    ("/snapshot", "list 12345"),
    ("/backup", "list 12345 manual"),
    ("/snapshot", "create 12345 fault-test"),
    ("/backup", "create 12345 fault test"),
    ("/snapshot", "delete 801"),
    ("/backup", "restore 501 fault test"),
]


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2, vpsbot_api_timeout=1.0
    ) as built:
        yield built


async def requests_in(stack: Stack) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status)


def mutations(stack: Stack) -> list[Any]:
    return [c for c in stack.sim.calls if c.method in ("POST", "DELETE")]


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("command", "text"), COMMANDS)
async def test_a_command_under_a_fault_gets_a_clear_answer_and_changes_nothing(
    stack: Stack, command: str, text: str, fault: str
) -> None:
    stack.sim.inject(Fault("*", ".*", times=None, **FAULTS[fault]))
    started = time.monotonic()
    ack, key = await stack.command(text, command=command)
    assert ack.status_code == 200
    assert time.monotonic() - started < 3
    reply = await stack.reply(key, wait=15)
    shown = text_of(reply)
    assert reply.data["response_type"] == "ephemeral"
    assert SAYS[fault] in shown
    assert "Nothing was changed" in shown or "Nothing was created" in shown
    assert "Traceback" not in shown
    assert mutations(stack) == []
    assert all(r.status is not Status.RUNNING for r in await requests_in(stack))
    assert (await stack.http.get("/healthz")).status_code == 200

    stack.sim.faults.clear()  # VPS.org is back: so is the bot
    assert "pre-migration-snapshot" in text_of(await stack.ask("list 12345"))


async def test_a_401_tells_the_channel_once_and_logs_the_variable(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.sim.token = "rotated"
    for _ in range(3):
        await stack.ask("list")
    notices = await stack.until(lambda: stack.posts(thread=False), what="the channel notice")
    await asyncio.sleep(0.3)
    assert len(stack.posts(thread=False)) == 1
    assert "`VPS_API_TOKEN`" in text_of(notices[0])
    assert any("VPS_API_TOKEN" in r.getMessage() for r in caplog.records)
    assert VPS_TOKEN not in caplog.text


# -- mutations whose answer fails: sent once, then read back ----------------------------------


CREATE_OUTCOMES = {
    # fault on the POST: (reply says, request ends)
    "500": ("may or may not have happened", Status.NEEDS_ATTENTION),
    "hang": ("may or may not have happened", Status.NEEDS_ATTENTION),
    "malformed": ("may or may not have happened", Status.NEEDS_ATTENTION),
    "429": ("VPS.org is busy", Status.FAILED),
    "401": ("configuration problem", Status.FAILED),
}


@pytest.mark.parametrize("fault", list(CREATE_OUTCOMES))
async def test_a_create_whose_post_fails_is_sent_once(stack: Stack, fault: str) -> None:
    stack.sim.inject(Fault("POST", "/snapshots/", **FAULTS[fault]))
    ack, key = await stack.command("create 12345 fault-test")
    assert ack.status_code == 200
    says, ends = CREATE_OUTCOMES[fault]
    assert says in text_of(await stack.reply(key, wait=15))
    await asyncio.sleep(0.3)
    assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1
    [request] = await requests_in(stack)
    assert request.status is ends


async def test_a_create_whose_answer_is_lost_but_happened_is_followed(stack: Stack) -> None:
    stack.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", status=502))
    await stack.command("create 12345 lost-answer")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert "*in progress*" in text_of(post)
    stack.sim.finish_all()
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="completion")
    assert "*complete*" in text_of(reply)
    assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1


@pytest.mark.parametrize(
    ("fault", "says", "ends", "deleted"),
    [
        ({"kind": "lost_reply", "status": 502}, "deleted snapshot", Status.SUCCEEDED, True),
        (
            {"status": 503, "body": {"detail": "down"}},
            "may or may not",
            Status.NEEDS_ATTENTION,
            False,
        ),
        ({"kind": "hang", "delay": 2.5}, "may or may not", Status.NEEDS_ATTENTION, True),
    ],
)
async def test_a_delete_whose_answer_fails_is_read_back(
    stack: Stack, fault: dict[str, Any], says: str, ends: Status, deleted: bool
) -> None:
    _ack, _ = await stack.command("delete 798")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    stack.sim.inject(Fault("DELETE", "/snapshots/798/", **fault))
    await stack.click(ids.DELETE_CONFIRM, request_id)
    [update] = await stack.until(
        lambda: stack.slack.api_calls("chat.update"), wait=15, what="update"
    )
    assert says in text_of(update)
    await asyncio.sleep(2.0)  # a hung DELETE is carried out late: it is still sent only once
    assert len(stack.sim.calls_to("DELETE")) == 1
    assert (798 not in stack.sim.objects["snapshots"]) is deleted
    [request] = await requests_in(stack)
    assert request.status is ends


@pytest.mark.parametrize(
    ("fault", "ends"),
    [
        ({"status": 429, "headers": {"Retry-After": "0"}}, Status.FAILED),
        ({"status": 401, "body": {"detail": "Invalid token."}}, Status.FAILED),
        ({"kind": "malformed"}, Status.NEEDS_ATTENTION),
        ({"kind": "hang", "delay": 2.5}, Status.NEEDS_ATTENTION),
    ],
)
async def test_an_approved_restore_whose_call_fails_is_never_resent(
    stack: Stack, fault: dict[str, Any], ends: Status
) -> None:
    await stack.command("restore 801 fault test")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the request")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    stack.sim.inject(Fault("POST", "/snapshots/801/restore/", **fault))
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: stack.posts(thread=True), wait=15, what="the report")
    await asyncio.sleep(3)
    assert len(stack.sim.calls_to("POST", "/snapshots/801/restore/")) == 1
    [request] = await requests_in(stack)
    assert request.status is ends


async def test_buttons_when_vps_org_refuses_connections(sqlite_url: str) -> None:
    sim = Simulator(token=VPS_TOKEN)
    async with serving(sim.app) as url:
        port = int(url.rsplit(":", 1)[1])
    # the simulator is gone: its port refuses connections
    async with running_stack(
        sim, f"http://127.0.0.1:{port}/api/v1", sqlite_url, vpsbot_api_timeout=1.0
    ) as stack:
        reply = await stack.ask("list 12345")
        assert "could not connect to VPS.org" in text_of(reply)
        assert "Nothing was changed" in text_of(reply)
        async with serving(sim.app, port=port):  # VPS.org comes back on the same address
            assert "pre-migration-snapshot" in text_of(await stack.ask("list 12345"))
        assert CHANNEL
