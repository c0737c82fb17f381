"""Slash commands end to end: signed requests to the served app, the simulator behind it, and a
fake Slack on loopback receiving the replies."""

import json
import time

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bot.slack import inflight_of
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Fault
from tests.conftest import ALICE, CHANNEL, VPS_TOKEN, Stack


def shown(call: object) -> str:
    data = call.data  # type: ignore[attr-defined]
    return json.dumps(data.get("blocks", []), ensure_ascii=False) + data.get("text", "")


async def audit_rows(stack: Stack) -> list[dict[str, object]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        rows = await uow.audit.events("command")
    return [{"actor": r.actor_id, "channel": r.channel_id, **r.detail} for r in rows]


async def test_snapshot_list_replies_ephemerally_with_the_servers_snapshots(stack: Stack) -> None:
    started = time.monotonic()
    ack, key = await stack.command("list 12345")
    ack_seconds = time.monotonic() - started
    assert ack.status_code == 200
    assert ack_seconds < 3
    reply = await stack.reply(key)
    assert reply.data["response_type"] == "ephemeral"
    text = shown(reply)
    assert "*web-server-01* (`12345`)" in text
    assert "*pre-migration-snapshot* · id `801`" in text
    assert "*weekly-snapshot-2025-01-08* · id `798`" in text
    assert "5.0 GB" in text
    [call] = stack.sim.calls
    assert (call.method, call.path, call.query) == ("GET", "/snapshots/", {"server_id": "12345"})
    assert call.authorization == f"Bearer {VPS_TOKEN}"
    assert await audit_rows(stack) == [
        {
            "actor": ALICE,
            "channel": CHANNEL,
            "command": "/snapshot",
            "text": "list 12345",
            "outcome": "ok",
        }
    ]


async def test_backup_list_filters_by_type(stack: Stack) -> None:
    reply = await stack.ask("list 12345 manual", command="/backup")
    text = shown(reply)
    assert "*Manual backups* of *web-server-01*" in text
    assert "id `499`" in text
    assert "id `501`" not in text
    assert stack.sim.calls[0].query == {"server_id": "12345", "backup_type": "manual"}


async def test_list_of_every_server_groups_by_server(stack: Stack) -> None:
    text = shown(await stack.ask("list"))
    assert text.index("web-server-01") < text.index("pre-migration-snapshot")
    assert text.index("db-server-01") < text.index("before-pg-upgrade")


async def test_help_and_empty_text_show_usage(stack: Stack) -> None:
    for text in ("help", ""):
        reply = await stack.ask(text, command="/backup")
        assert "`/backup create <server_id> [description…]`" in shown(reply)
    assert stack.sim.calls == []


async def test_a_missing_server_gets_a_clear_reply(stack: Stack) -> None:
    reply = await stack.ask("list 99")
    assert "Server 99 does not exist on VPS.org." in shown(reply)
    assert reply.data["response_type"] == "ephemeral"


async def test_bad_input_gets_usage_reaches_no_api_and_is_never_echoed_live(stack: Stack) -> None:
    hostile = [
        "list <!channel>",
        "create 12345 <script>alert(1)</script>",
        "x" * 5000,
        "list 12345 <@U1>",
    ]
    for text in hostile:
        reply = await stack.ask(text)
        body = shown(reply)
        assert reply.data["response_type"] == "ephemeral"
        assert ":warning:" in body
        assert "`/snapshot" in body
        for live in ("<!channel>", "<script>", "<@U1>"):
            assert live not in body
        assert len(body) < 4000
    assert stack.sim.calls == []
    assert [row["outcome"] for row in await audit_rows(stack)] == ["usage_error"] * len(hostile)


async def test_an_unavailable_api_gets_a_clear_reply_and_the_bot_stays_up(stack: Stack) -> None:
    stack.sim.inject(
        Fault("GET", "/snapshots/", status=503, body={"detail": "maintenance"}, times=None)
    )
    reply = await stack.ask("list 12345")
    assert (
        "VPS.org is not answering properly (maintenance (HTTP 503)). Nothing was changed."
        in shown(reply)
    )
    assert len(stack.sim.calls) == 3  # the read and its two retries
    assert (await stack.http.get("/healthz")).status_code == 200
    stack.sim.faults.clear()
    assert "pre-migration-snapshot" in shown(await stack.ask("list 12345"))
    assert [row["outcome"] for row in await audit_rows(stack)] == ["api_error", "ok"]


async def test_a_rejected_token_is_reported_as_configuration(stack: Stack) -> None:
    stack.sim.token = "rotated-token"
    reply = await stack.ask("list", command="/backup")
    text = shown(reply)
    assert "rejected the bot's credentials" in text
    assert "`VPS_API_TOKEN`" in text
    assert VPS_TOKEN not in text


async def test_malformed_api_json_is_an_error_not_an_empty_list(stack: Stack) -> None:
    stack.sim.inject(Fault("GET", "/snapshots/", kind="malformed"))
    text = shown(await stack.ask("list 12345"))
    assert "unexpected response from VPS.org" in text
    assert "0 items" not in text


async def test_healthz_answers_200_with_the_database_up(stack: Stack) -> None:
    answer = await stack.http.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}


async def test_healthz_answers_503_when_the_database_is_unreachable(stack: Stack) -> None:
    database = stack.bot.database
    working = database.engine
    database.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        answer = await stack.http.get("/healthz")
    finally:
        await database.engine.dispose()
        database.engine = working
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "database": "unreachable"}
    assert (await stack.http.get("/healthz")).status_code == 200


async def test_unknown_paths_are_not_served(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        assert (await http.get("/slack/events")).status_code == 405
        assert (await http.get("/admin")).status_code == 404


async def test_beyond_the_backlog_a_command_is_answered_busy_at_once_and_audited(
    stack: Stack,
) -> None:
    inflight = inflight_of(stack.bot.slack)
    inflight.backlog = 4  # as many as there are turns: all four are taken by hanging reads
    stack.sim.inject(Fault("GET", "/snapshots/", kind="hang", delay=2.0, times=None))
    keys = [(await stack.command("list 12345"))[1] for _ in range(4)]
    await stack.until(lambda: len(stack.sim.calls_to("GET")) == 4, what="four reads")
    started = time.monotonic()
    ack, busy_key = await stack.command("list 12345")
    assert ack.status_code == 200
    busy = await stack.reply(busy_key)
    assert time.monotonic() - started < 1.0  # not queued behind the hanging reads
    assert "did not start this one. Nothing was changed" in shown(busy)
    assert len(stack.sim.calls_to("GET")) == 4  # the busy one reached no API
    for key in keys:
        assert "pre-migration-snapshot" in shown(await stack.reply(key))
    outcomes = sorted(str(row["outcome"]) for row in await audit_rows(stack))
    assert outcomes == ["busy", "ok", "ok", "ok", "ok"]
