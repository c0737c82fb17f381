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
        assert "`/backup create &lt;server_id&gt; [description…]`" in shown(reply)
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


def usage_reply(call: object) -> tuple[str, str]:
    """A usage error as the person sees it: (the sentence, the usage under it)."""
    data = call.data  # type: ignore[attr-defined]
    assert data["response_type"] == "ephemeral"
    section, under = data["blocks"]
    assert (section["type"], under["type"]) == ("section", "context")
    return section["text"]["text"], under["elements"][0]["text"]


CREATE_USAGE = (
    "`/snapshot create &lt;server_id&gt; &lt;name&gt; [description…]`: "
    "take a snapshot; name: 1-64 letters, digits, - or _"
)
USAGE_REPLIES = [
    # (command, text) -> the sentence and the usage the person reads
    (
        ("/snapshot", "crate 12345 pre-deploy"),
        ":warning: “crate” is not a /snapshot subcommand. Did you mean “create”?",
        CREATE_USAGE,
    ),
    (
        ("/backup", "rm 499"),
        ":warning: “rm” is not a /backup subcommand. Did you mean “delete”?",
        "`/backup delete &lt;backup_id&gt;`: delete a backup (you confirm with a button)",
    ),
    (
        ("/snapshot", "rollback 801"),
        ":warning: “rollback” is not a /snapshot subcommand. Did you mean “restore”?",
        "`/snapshot restore &lt;snapshot_id&gt; [reason…]`: "
        "restore the snapshot's server from it, after a second person approves",
    ),
    (
        ("/snapshot", "frobnicate"),
        ":warning: “frobnicate” is not a /snapshot subcommand: expected one of “list”, "
        "“create”, “restore”, “delete”, “schedule”, “schedules”, “unschedule”, “help”.",
        "`/snapshot list [server_id]`\n"
        "`/snapshot create &lt;server_id&gt; &lt;name&gt; [description…]`\n"
        "`/snapshot restore &lt;snapshot_id&gt; [reason…]`\n"
        "`/snapshot delete &lt;snapshot_id&gt;`\n"
        "`/snapshot schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;`\n"
        "`/snapshot schedules [server_id]`\n"
        "`/snapshot unschedule &lt;schedule_id&gt;`\n"
        "`/snapshot help`",
    ),
    (
        ("/backup", "list abc"),
        ":warning: “abc” is not a server id or a backup type: expected a server id "
        "(a number), “manual” or “automatic”.",
        "`/backup list [server_id] [manual|automatic]`: "
        "list backups, of every server or of one, optionally by type",
    ),
    (
        ("/backup", "list 12345 2"),
        ":warning: “2” is not a backup type: expected “manual” or “automatic” after the server id.",
        "`/backup list [server_id] [manual|automatic]`: "
        "list backups, of every server or of one, optionally by type",
    ),
    (
        ("/snapshot", "create abc name"),
        ":warning: “abc” is not a server id: expected a server id (a number) after “create”.",
        CREATE_USAGE,
    ),
    (
        ("/snapshot", "create 12345 bad/name"),
        ":warning: “bad/name” is not a snapshot name: expected 1-64 letters, digits, - or _.",
        CREATE_USAGE,
    ),
    (
        ("/snapshot", "delete 801 extra"),
        ":warning: “extra” is one word too many: “delete” takes only the snapshot id.",
        "`/snapshot delete &lt;snapshot_id&gt;`: delete a snapshot (you confirm with a button)",
    ),
    (
        ("/snapshot", "list 99999999999"),
        ":warning: “99999999999” is not a server id: ids are 1 to 9999999999.",
        "`/snapshot list [server_id]`: list snapshots, of every server or of one",
    ),
]


async def test_usage_errors_quote_the_word_say_what_was_expected_and_show_one_usage(
    stack: Stack,
) -> None:
    for (command, text), sentence, usage_text in USAGE_REPLIES:
        reply = await stack.ask(text, command=command)
        assert usage_reply(reply) == (sentence, usage_text), text
        assert reply.data["text"] == sentence  # the notification says it too
    assert stack.sim.calls == []
    assert [row["outcome"] for row in await audit_rows(stack)] == ["usage_error"] * len(
        USAGE_REPLIES
    )


async def test_a_hostile_word_is_quoted_as_text_and_pings_nobody(stack: Stack) -> None:
    sentence, usage_text = usage_reply(await stack.ask("list <!channel>`x`"))
    assert sentence == (
        ":warning: “&lt;!channel&gt;\u02cbx\u02cb” is not a server id: expected a server id "
        "(a number), or nothing for every server."
    )
    assert usage_text == "`/snapshot list [server_id]`: list snapshots, of every server or of one"
    sentence, _ = usage_reply(await stack.ask("d\u202eel <@U1>", command="/backup"))
    assert sentence == ":warning: “d\ufffdel” is not a /backup subcommand. Did you mean “delete”?"


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
