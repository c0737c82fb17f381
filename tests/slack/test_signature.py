"""Bolt's signature verification guards every request before any listener runs."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time

from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import Stack, fixture, running_stack
from tests.fakes.slack import SlackStandIn

EXAMPLE = fixture("signing-example.json")
SIGNED_AT = datetime.fromtimestamp(int(EXAMPLE["timestamp"]), UTC)
EXAMPLE_TEAM = "T1DC2JH3J"  # the team_id in the example's body


@pytest.fixture
async def example_stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    """The bot configured with the signing secret from Slack's documentation example, and
    installed in the example's workspace."""
    monkeypatch.setattr(SlackStandIn, "team_id", EXAMPLE_TEAM)
    async with running_stack(
        simulator,
        served_simulator,
        sqlite_url,
        slack_signing_secret=EXAMPLE["signing_secret"],
    ) as built:
        yield built


async def _post(stack: Stack, body: str, signature: str, timestamp: str) -> int:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return (await stack.http.post("/slack/events", content=body, headers=headers)).status_code


async def _nothing_ran(stack: Stack) -> None:
    assert stack.sim.calls == []
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        assert await uow.audit.events() == []


async def test_slacks_own_example_is_accepted_at_its_time(example_stack: Stack) -> None:
    with freeze_time(SIGNED_AT, real_asyncio=True):
        status = await _post(
            example_stack, EXAMPLE["body"], EXAMPLE["signature"], EXAMPLE["timestamp"]
        )
    assert status == 404  # verified; no listener handles /webhook-collect


@pytest.mark.parametrize(
    "tamper",
    ["body", "signature", "late", "real_clock", "missing"],
)
async def test_a_tampered_or_stale_request_is_refused(example_stack: Stack, tamper: str) -> None:
    body, signature, stamp = EXAMPLE["body"], EXAMPLE["signature"], EXAMPLE["timestamp"]
    moment = SIGNED_AT
    if tamper == "body":
        body = body.replace("text=", "text=x", 1)
    elif tamper == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    elif tamper == "late":
        moment = datetime.fromtimestamp(int(stamp) + 301, UTC)
    elif tamper == "missing":
        signature = ""
    if tamper == "real_clock":
        status = await _post(example_stack, body, signature, stamp)
    else:
        with freeze_time(moment, real_asyncio=True):
            status = await _post(example_stack, body, signature, stamp)
    assert status == 401
    await _nothing_ran(example_stack)


async def test_a_request_signed_with_another_secret_runs_no_listener(stack: Stack) -> None:
    stack.secret = "not-the-secret"
    ack, _ = await stack.command("list 12345")
    assert ack.status_code == 401
    await _nothing_ran(stack)
    assert stack.slack.responses() == []
