"""Requests from another Slack workspace (or Enterprise Grid organisation) than the one the bot
is installed in (auth.test at start) are a 403: nothing is sent to Slack, not even to their
response_url, nothing reaches VPS.org, and an audit row `refused` names the workspace. While the
installation is unknown (Slack unreachable at start) every request is refused."""

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.bootstrap import build, run_socket_mode
from bot.domain.lifecycle import Status
from bot.serving import serving
from bot.slack import ids
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, CHANNEL, Stack, fixture, make_settings
from tests.fakes.slack import FIXTURES_TEAM, SlackStandIn, WebFault
from tests.slack.test_socket_mode import APP_TOKEN, peers, until

OTHER_TEAM = "T0000ELSE"


def command_body(
    stack: Stack, key: str, text: str = "create 12345 from-elsewhere", **extra: str
) -> str:
    fields = fixture("slash-command.json") | {
        "text": text,
        "response_url": stack.slack.response_url(key),
    }
    return urlencode(fields | extra)


async def refusals(stack: Stack) -> list[tuple[str | None, str | None, dict[str, Any]]]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return [(r.actor_id, r.channel_id, r.detail) for r in await uow.audit.events("refused")]


async def commands_recorded(stack: Stack) -> int:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return len(await uow.audit.events("command"))


async def test_a_slash_command_from_another_workspace_is_refused_and_nothing_is_sent(
    stack: Stack,
) -> None:
    sent = len(stack.slack.calls)
    answer = await stack.post_signed(command_body(stack, "foreign", team_id=OTHER_TEAM))
    assert answer.status_code == 403
    assert stack.slack.calls[sent:] == []  # no response_url post, no Web API call
    assert stack.sim.calls == []
    assert await refusals(stack) == [
        (
            ALICE,
            CHANNEL,
            {
                "action": "/snapshot",
                "error": "ForeignWorkspace",
                "team_id": OTHER_TEAM,
                "enterprise_id": "",
            },
        )
    ]
    assert await commands_recorded(stack) == 0
    # the bot's own workspace is served as before
    assert "pre-migration-snapshot" in json.dumps((await stack.ask("list 12345")).data)
    assert stack.slack.responses("foreign") == []


def _other_team(p: dict[str, Any]) -> None:
    p["team"]["id"] = OTHER_TEAM
    p["user"]["team_id"] = OTHER_TEAM


def _other_users_team(p: dict[str, Any]) -> None:
    p["user"]["team_id"] = OTHER_TEAM  # e.g. a guest from a connected workspace


def _other_enterprise(p: dict[str, Any]) -> None:
    p["enterprise"] = {"id": "E0000ELSE", "name": "elsewhere"}


def _no_team(p: dict[str, Any]) -> None:
    p["team"] = None
    p["user"].pop("team_id")


@pytest.mark.parametrize(
    "foreign",
    [_other_team, _other_users_team, _other_enterprise, _no_team],
    ids=["team", "user-team", "enterprise", "no-team"],
)
async def test_a_click_from_another_workspace_is_refused_and_changes_nothing(
    stack: Stack, foreign: Callable[[dict[str, Any]], None]
) -> None:
    await stack.command("delete 801")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the confirmation")
    value = next(b for b in post.data["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    sent = len(stack.slack.calls)
    payload = fixture("block-actions.json")
    payload["user"]["id"] = ALICE  # the requester: from the bot's own workspace, this deletes
    payload["response_url"] = stack.slack.response_url("foreign")
    payload["actions"][0].update(action_id=ids.DELETE_CONFIRM, value=value)
    foreign(payload)
    answer = await stack.action(payload)
    assert answer.status_code == 403
    assert stack.slack.calls[sent:] == []
    assert stack.sim.calls_to("DELETE") == []
    [(actor, channel, detail)] = await refusals(stack)
    assert (actor, channel) == (ALICE, CHANNEL)
    assert (detail["action"], detail["error"]) == (ids.DELETE_CONFIRM, "ForeignWorkspace")
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        [request] = await uow.requests.in_status(*Status)
    assert request.status is Status.PENDING_CONFIRMATION
    # the same click from the bot's own workspace goes through
    ack, _ = await stack.click(ids.DELETE_CONFIRM, value)
    assert ack.status_code == 200
    await stack.until(lambda: stack.sim.calls_to("DELETE"), what="the DELETE")
    assert stack.slack.responses("foreign") == []


@asynccontextmanager
async def served(
    slack: SlackStandIn, simulator: Simulator, vps_url: str, db_url: str
) -> AsyncIterator[Stack]:
    """The bot against `slack`, prepared (faults, team) before the bot starts."""
    async with serving(slack.app) as slack_url:
        slack.base_url = slack_url
        config = make_settings(
            slack_api_url=f"{slack_url}/api/", vps_api_url=vps_url, database_url=db_url
        )
        bot = build(config)
        async with (
            serving(bot.web, lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=15) as http,
        ):
            yield Stack(url, bot, simulator, slack, http)


async def test_while_slack_has_not_named_the_workspace_every_request_is_refused(
    simulator: Simulator,
    served_simulator: str,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """auth.test fails at start and on the first request (fail closed, logged); the next
    request asks again, and is served."""
    slack = SlackStandIn()
    down = WebFault("auth.test", status=200, body={"ok": False, "error": "fatal_error"}, times=2)
    slack.faults.append(down)
    caplog.set_level(logging.INFO)
    async with served(slack, simulator, served_simulator, sqlite_url) as stack:
        assert down.times == 1  # asked at start, which did not stop the bot
        assert "Slack is not answering auth.test properly (fatal_error)" in caplog.text
        refused = await stack.post_signed(command_body(stack, "early", text="list 12345"))
        assert refused.status_code == 503
        assert down.times == 0  # asked again for this request
        assert "the bot's own workspace is not known yet" in caplog.text
        assert stack.slack.calls == []  # faulted calls are not recorded: nothing else was sent
        assert stack.sim.calls == []
        [(_, _, detail)] = await refusals(stack)
        assert detail["error"] == "WorkspaceUnknown"

        reply = await stack.ask("list 12345")  # auth.test answers now
        assert "pre-migration-snapshot" in json.dumps(reply.data)
        assert stack.slack.responses("early") == []


async def test_an_enterprise_grid_installation_refuses_other_organisations(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    slack = SlackStandIn()
    slack.enterprise_id = "E0000ORG"
    async with served(slack, simulator, served_simulator, sqlite_url) as stack:
        sent = len(stack.slack.calls)
        other = command_body(stack, "other-org", enterprise_id="E0000ELSE")
        assert (await stack.post_signed(other)).status_code == 403
        assert stack.slack.calls[sent:] == []
        own = command_body(stack, "own-org", text="list 12345", enterprise_id="E0000ORG")
        assert (await stack.post_signed(own)).status_code == 200
        assert "pre-migration-snapshot" in json.dumps((await stack.reply("own-org")).data)
        [(_, _, detail)] = await refusals(stack)
        assert (detail["error"], detail["enterprise_id"]) == ("ForeignWorkspace", "E0000ELSE")


def _socket_refusals(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT detail FROM audit_events WHERE event = 'refused'").fetchall()
    return [json.loads(detail) for (detail,) in rows]


async def test_over_socket_mode_another_workspace_is_refused_too(tmp_path: Path) -> None:
    async with peers() as (sim, slack, socket, vps_url):
        database = tmp_path / "socket.db"
        settings = make_settings(
            slack_signing_secret=None,  # Socket Mode needs no signing secret
            slack_app_token=APP_TOKEN,
            slack_api_url=f"{slack.base_url}/api/",
            vps_api_url=vps_url,
            database_url=f"sqlite:///{database}",
        )
        stopping = asyncio.Event()
        running = asyncio.create_task(run_socket_mode(settings, stopping, host="127.0.0.1"))
        try:
            await until(lambda: socket.connected or running.done())
            sent = len(slack.calls)
            payload = fixture("slash-command.json") | {
                "team_id": OTHER_TEAM,
                "response_url": slack.response_url("foreign"),
            }
            foreign = await socket.send("slash_commands", payload)
            [refusal] = await until(lambda: _socket_refusals(database))
            assert (refusal["error"], refusal["team_id"]) == ("ForeignWorkspace", OTHER_TEAM)
            own = fixture("slash-command.json") | {
                "text": "list 12345",
                "response_url": slack.response_url("own"),
            }
            await socket.acked(await socket.send("slash_commands", own), wait=3.0)
            await until(lambda: slack.responses("own"))
            assert foreign.ack is None  # never acknowledged: Slack tells the person it failed
            assert [c.key for c in slack.calls[sent:] if c.method == "response"] == ["own"]
            assert sim.calls_to("POST") == []
        finally:
            stopping.set()
            await asyncio.wait_for(running, timeout=30)


def test_the_fake_slack_is_installed_in_the_fixtures_workspace() -> None:
    """The recorded payloads the tests send all come from the workspace the fake names."""
    command, click = fixture("slash-command.json"), fixture("block-actions.json")
    teams = {command["team_id"], click["team"]["id"], click["user"]["team_id"]}
    assert teams == {FIXTURES_TEAM}
