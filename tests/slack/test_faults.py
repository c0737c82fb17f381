"""Every command and button under every VPS.org fault: the ack comes at once, the person hears
what failed and whether anything changed, nothing is sent twice, and the bot works again as
soon as VPS.org does."""

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from typing import Any

import pytest

from bot.domain.lifecycle import Status
from bot.services import tracking
from bot.serving import serving
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault, Simulator
from tests.conftest import ALICE, BOB, VPS_TOKEN, Stack, running_stack
from tests.fakes.slack import SlackCall


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
    "502": "not answering properly (HTTP 502).",  # said once: not "(HTTP 502 (HTTP 502))"
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


@pytest.fixture
def tracker_cycles(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each tracker cycle ended, so a test can wait for the tracker to have looked again
    (instead of sleeping) before it checks that nothing was sent again."""
    ended: list[float] = []
    cycle = tracking.cycle

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await cycle(*args, **kwargs)
        finally:
            ended.append(time.monotonic())

    monkeypatch.setattr(tracking, "cycle", counted)
    return ended


async def requests_in(stack: Stack) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return await uow.requests.in_status(*Status)


async def pending_messages(stack: Stack) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return list(await uow.outbox.items("pending"))


async def eventually(
    check: Callable[[], Awaitable[Any]], wait: float = 15.0, what: str = ""
) -> Any:
    """Await `check` until it gives something truthy; fail after `wait` seconds."""
    deadline = time.monotonic() + wait
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.02)
    return value


async def settled(stack: Stack, cycles: list[float]) -> None:
    """Every message the bot queued is sent and the tracker has run two more cycles: whatever
    the bot would send again on its own, it would have sent by now."""

    async def drained() -> bool:
        return not await pending_messages(stack)

    await eventually(drained, what="the outbox to be sent")
    after = len(cycles) + 2
    await stack.until(lambda: len(cycles) >= after, what="two tracker cycles")


async def status_is(stack: Stack, status: Status) -> None:
    async def reached() -> bool:
        return [r.status for r in await requests_in(stack)] == [status]

    await eventually(reached, what=f"the request to be {status.value}")


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
    stack: Stack, caplog: pytest.LogCaptureFixture, tracker_cycles: list[float]
) -> None:
    stack.sim.token = "rotated"
    for _ in range(3):
        await stack.ask("list")
    notices = await stack.until(lambda: stack.posts(thread=False), what="the channel notice")
    await settled(stack, tracker_cycles)
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
async def test_a_create_whose_post_fails_is_sent_once(
    stack: Stack, fault: str, tracker_cycles: list[float]
) -> None:
    stack.sim.inject(Fault("POST", "/snapshots/", **FAULTS[fault]))
    ack, key = await stack.command("create 12345 fault-test")
    assert ack.status_code == 200
    says, ends = CREATE_OUTCOMES[fault]
    assert says in text_of(await stack.reply(key, wait=15))
    await status_is(stack, ends)
    stack.sim.release_hangs()  # a hung POST is answered now: still it is not sent again
    await settled(stack, tracker_cycles)
    assert len(stack.sim.calls_to("POST", "/snapshots/")) == 1
    [request] = await requests_in(stack)
    assert request.status is ends


async def test_a_create_whose_answer_is_lost_but_happened_is_followed(stack: Stack) -> None:
    stack.sim.inject(Fault("POST", "/snapshots/", kind="lost_reply", status=502))
    stack.sim.create_delay = 3600  # still in progress when the post goes out, however slow
    await stack.command("create 12345 lost-answer")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert "*in progress*" in text_of(post)
    stack.sim.finish_all()
    [reply] = await stack.until(lambda: stack.posts(thread=True), what="completion")
    assert ":white_check_mark: done in" in text_of(reply)
    assert "*complete*" in text_of(updates_to(stack, reply.data["thread_ts"])[-1])
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
    stack: Stack,
    fault: dict[str, Any],
    says: str,
    ends: Status,
    deleted: bool,
    tracker_cycles: list[float],
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
    await status_is(stack, ends)
    stack.sim.release_hangs()  # a hung DELETE is carried out late: it is still sent only once
    await stack.until(
        lambda: (798 not in stack.sim.objects["snapshots"]) is deleted, what="the late DELETE"
    )
    await settled(stack, tracker_cycles)
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
    stack: Stack, fault: dict[str, Any], ends: Status, tracker_cycles: list[float]
) -> None:
    await stack.command("restore 801 fault test")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the request")
    request_id = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    stack.sim.inject(Fault("POST", "/snapshots/801/restore/", **fault))
    await stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)
    await stack.until(lambda: stack.posts(thread=True), wait=15, what="the report")
    await status_is(stack, ends)
    stack.sim.release_hangs()  # a hung restore is carried out late: it is still sent only once
    await settled(stack, tracker_cycles)
    assert len(stack.sim.calls_to("POST", "/snapshots/801/restore/")) == 1
    [request] = await requests_in(stack)
    assert request.status is ends


def port_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:`port` (0: a free one), not listening, that shares its
    port (SO_REUSEPORT) with the others made here. While one of them is open the port stays
    this test's (no other socket can take it), and it refuses connections whenever none of
    them is being served."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def buttons_of(post: SlackCall) -> dict[str, str]:
    """A card's buttons: action_id -> value (the request's id)."""
    [actions] = [b for b in post.data["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e["value"] for e in actions["elements"]}


def updates_to(stack: Stack, ts: str | None) -> list[SlackCall]:
    return [c for c in stack.slack.api_calls("chat.update") if c.data.get("ts") == ts]


RESTORE_FAILED = (
    "*failed*: could not check the snapshot before restoring (could not connect to VPS.org); "
    "nothing was restored."
)
# said short in the thread and the DMs (the card says it all)
RESTORE_FAILED_SHORT = (
    "failed: could not check the snapshot before restoring (could not connect to VPS.org)"
)
DELETE_UNCONFIRMED = (
    "VPS.org did not confirm the delete of snapshot `weekly-snapshot-2025-01-08` (id `798`) of "
    "*web-server-01* (`12345`) (could not connect to VPS.org; reading it back failed too (could "
    "not connect to VPS.org). It may or may not be deleted, and the delete was not sent again)"
)


async def test_buttons_when_vps_org_refuses_connections(
    sqlite_url: str, tracker_cycles: list[float]
) -> None:
    sim = Simulator(token=VPS_TOKEN, create_delay=0.3, restore_delay=0.3)
    with closing(port_socket()) as reserved:  # VPS.org's address, refusing connections
        port = reserved.getsockname()[1]
        async with running_stack(
            sim,
            f"http://127.0.0.1:{port}/api/v1",
            sqlite_url,
            vpsbot_poll_interval=0.2,
            vpsbot_api_timeout=1.0,
        ) as stack:
            async with serving(sim.app, sock=port_socket(port)):  # VPS.org is up: the cards
                await stack.command("restore 801 refused connections")
                await stack.command("delete 798")
                cards = await stack.until(
                    lambda: len(stack.posts(thread=False)) == 2 and stack.posts(thread=False),
                    what="the restore and delete cards",
                )
            # VPS.org is gone: nothing listens on its port
            [restore_card] = [c for c in cards if "Restore requested" in text_of(c)]
            [delete_card] = [c for c in cards if "wants to delete" in text_of(c)]
            requests = {r.action.value: r for r in await requests_in(stack)}
            reply = await stack.ask("list 12345")
            assert "could not connect to VPS.org" in text_of(reply)
            assert "Nothing was changed" in text_of(reply)

            # Approve: the restore fails before anything is sent, and everyone hears so
            _ack, approve_key = await stack.click(
                ids.RESTORE_APPROVE, buttons_of(restore_card)[ids.RESTORE_APPROVE], user=BOB
            )
            [report] = await stack.until(
                lambda: stack.posts(thread=True), wait=15, what="the restore's report"
            )
            assert report.data["text"] == f":x: {RESTORE_FAILED_SHORT}"
            assert report.data["thread_ts"] == requests["restore"].message_ts
            dms = await stack.until(lambda: len(stack.dms()) == 2 and stack.dms(), what="DMs")
            assert {c.data["channel"] for c in dms} == {"D" + ALICE[1:], "D" + BOB[1:]}
            assert all(RESTORE_FAILED_SHORT in text_of(c) for c in dms)
            card = updates_to(stack, requests["restore"].message_ts)[-1]
            assert RESTORE_FAILED in text_of(card)
            assert all(b["type"] != "actions" for b in card.data["blocks"])  # no buttons left
            assert stack.slack.responses(approve_key) == []  # told in the thread and by DM

            # Delete: the person who confirms hears at once that VPS.org could not be reached
            _ack, delete_key = await stack.click(
                ids.DELETE_CONFIRM, buttons_of(delete_card)[ids.DELETE_CONFIRM]
            )
            told = await stack.reply(delete_key, wait=15)
            assert told.data["response_type"] == "ephemeral"
            # Conservative: a refused connection sent nothing, yet it reads as unconfirmed.
            assert text_of(told).endswith(
                ":warning: VPS.org did not confirm the request (could not connect to VPS.org). "
                "It may or may not have happened: check with `list` before trying again."
            )
            [card] = await stack.until(
                lambda: updates_to(stack, requests["delete"].message_ts),
                what="the delete card updated",
            )
            assert DELETE_UNCONFIRMED in text_of(card)
            assert all(b["type"] != "actions" for b in card.data["blocks"])

            assert mutations(stack) == []  # VPS.org heard nothing
            now = {r.action.value: r for r in await requests_in(stack)}
            assert now["restore"].status is Status.FAILED
            assert now["restore"].outcome.approvers == (BOB,)
            assert now["delete"].status is Status.NEEDS_ATTENTION

            async with serving(sim.app, sock=port_socket(port)):  # VPS.org is back
                assert "pre-migration-snapshot" in text_of(await stack.ask("list 12345"))
                await settled(stack, tracker_cycles)
                assert mutations(stack) == []  # and nothing is sent again on its own
            assert 798 in sim.objects["snapshots"]
            assert {r.action.value: r.status for r in await requests_in(stack)} == {
                "restore": Status.FAILED,
                "delete": Status.NEEDS_ATTENTION,
            }
