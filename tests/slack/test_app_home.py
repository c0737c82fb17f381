"""The Events API and the App Home tab, through the served app: JSON events signed like the
rest (url_verification answered, a retried event handled once), each person's Home tab
published with the requests that concern them, and its buttons doing what the card's do."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, OperationRequest, ServerRef
from bot.services.views import Home
from bot.slack import ids
from bot.slack.blocks.home import MAX_VIEW_BLOCKS, home_view
from bot.slack.signing import signed_headers
from bot.storage.unit_of_work import SqlUnitOfWork
from bot.vpsorg.simulator import Simulator
from tests.conftest import ALICE, BOB, CHANNEL, Stack, fixture, running_stack
from tests.fakes.slack import FIXTURES_TEAM, SlackCall, block_kit_errors
from tests.slack import test_socket_mode as socket_mode_tests
from tests.slack.modals import opened_views, submission, view_of

CAROL = "U0000CARL"
JSON_TYPE = {"Content-Type": "application/json"}


# -- what Slack sends ----------------------------------------------------------------------------


def home_opened(user: str, event_id: str = "Ev0000HOME1", tab: str = "home") -> str:
    """An `app_home_opened` event_callback, as the Events API delivers it."""
    return json.dumps(
        {
            "token": "verification-token-not-used",
            "team_id": FIXTURES_TEAM,
            "api_app_id": "A0000TEST",
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D0000HOME",
                "tab": tab,
                "event_ts": "1700000000.000200",
            },
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1700000000,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": FIXTURES_TEAM,
                    "user_id": "U0000BOT1",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def home_click(action_id: str, value: str, user: str, n: int) -> dict[str, Any]:
    """Slack's block_actions payload for a button in a Home tab: the recorded click, with a
    view container and the view instead of a channel, a message and a response_url."""
    payload = fixture("block-actions.json")
    for field in ("channel", "message", "response_url"):
        payload.pop(field, None)
    payload["user"]["id"] = user
    payload["trigger_id"] = f"1000000000003.1000000000002.home{n:028d}"
    payload["container"] = {"type": "view", "view_id": "V0000HOME"}
    payload["view"] = {
        "id": "V0000HOME",
        "team_id": FIXTURES_TEAM,
        "type": "home",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": "1700000000.abcdef",
        "app_id": "A0000TEST",
        "bot_id": "B0000TEST",
    }
    payload["actions"] = [
        {
            "action_id": action_id,
            "block_id": f"home_decision_{value}",
            "text": {"type": "plain_text", "text": "Approve", "emoji": True},
            "value": value,
            "type": "button",
            "action_ts": "1700000000.000300",
        }
    ]
    return payload


async def open_home(stack: Stack, user: str, event_id: str = "Ev0000HOME1", **headers: str) -> Any:
    answer = await stack.post_signed(home_opened(user, event_id), **JSON_TYPE, **headers)
    assert answer.status_code == 200, answer.text
    return answer


# -- what the bot sent ----------------------------------------------------------------------------


def publishes(stack: Stack, user: str | None = None) -> list[SlackCall]:
    return [
        c
        for c in stack.slack.api_calls("views.publish")
        if user is None or c.data.get("user_id") == user
    ]


def sections(view: dict[str, Any]) -> dict[str, str]:
    """The view's text under each header: header -> the JSON of the blocks up to the next."""
    found: dict[str, str] = {}
    current = ""
    for block in view["blocks"]:
        if block["type"] == "header":
            current = block["text"]["text"]
            found[current] = ""
        else:
            found[current] = found.get(current, "") + json.dumps(block)
    return found


def buttons(view: dict[str, Any]) -> list[tuple[str, str]]:
    """(action_id, value) of every button in the view, in order."""
    found = []
    for block in view["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        if block.get("accessory"):
            elements = [block["accessory"]]
        found += [(e["action_id"], e["value"]) for e in elements if e["type"] == "button"]
    return found


async def published(stack: Stack, user: str, count: int = 1) -> dict[str, Any]:
    """The `count`-th Home tab published for `user` (waited for)."""
    calls = await stack.until(
        lambda: len(publishes(stack, user)) >= count and publishes(stack, user),
        what=f"Home tab #{count} for {user}",
    )
    view = view_of(calls[count - 1])
    assert view["type"] == "home"
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    View(**view).validate_json()  # slack_sdk's own checks of a view
    assert block_kit_errors(view["blocks"][:50]) == []
    assert block_kit_errors(view["blocks"][50:]) == []
    return view


def restore_calls(stack: Stack) -> list[Any]:
    return [c for c in stack.sim.calls_to("POST") if c.path.endswith("/restore/")]


def text_of(call: SlackCall) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + str(call.data.get("text"))


async def ask_restore(stack: Stack, text: str = "restore 801 bad deploy", user: str = ALICE) -> str:
    before = len(stack.posts(thread=False))
    ack, _ = await stack.command(text, user=user)
    assert ack.status_code == 200
    posts = await stack.until(
        lambda: len(stack.posts(thread=False)) > before and stack.posts(thread=False),
        what="the card",
    )
    actions = next(b for b in posts[-1].data["blocks"] if b["type"] == "actions")
    return str(actions["elements"][0]["value"])


async def status_of(stack: Stack, request_id: str) -> Status:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        request = await uow.requests.get(int(request_id))
    assert request is not None
    return request.status


async def audit(stack: Stack, event: str) -> list[Any]:
    async with SqlUnitOfWork(stack.bot.database.sessions) as uow:
        return list(await uow.audit.events(event))


async def replays(stack: Stack) -> list[Any]:
    """The `replay` audit rows, once there is one."""
    for _ in range(250):
        found = await audit(stack, "replay")
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("no replay was recorded")


@pytest.fixture
async def stack(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> AsyncIterator[Stack]:
    """Approvers configured (Bob and Carol): only configured approvers vote in the Home tab,
    which is in no channel."""
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2,
        vpsbot_approvers=f"{BOB},{CAROL}",
    ) as built:  # fmt: skip
        yield built


class Clicks:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.n = 0

    async def deny(self, value: str, user: str, reason: str) -> None:
        """Deny in the Home tab: the form asking for a reason opens, and is submitted."""
        before = len(opened_views(self.stack))
        await self.press(ids.HOME_DENY, value, user)
        calls = await self.stack.until(
            lambda: opened_views(self.stack)[before:], what="the Deny form"
        )
        view = view_of(calls[0])
        assert json.loads(view["private_metadata"])["channel"] == CHANNEL  # the card's
        answer = await self.stack.action(submission(view, user, reason))
        assert answer.status_code == 200, answer.text

    async def press(self, action_id: str, value: str, user: str) -> dict[str, Any]:
        self.n += 1
        payload = home_click(action_id, value, user, self.n)
        answer = await self.stack.action(payload)
        assert answer.status_code == 200, answer.text
        return payload


# -- the Events API at the door -----------------------------------------------------------------


async def test_a_signed_url_verification_is_answered_with_its_challenge(stack: Stack) -> None:
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
         "type": "url_verification"}
    )  # fmt: skip
    answer = await stack.post_signed(body, **JSON_TYPE)
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}

    unsigned = await stack.http.post("/slack/events", content=body, headers=JSON_TYPE)
    assert unsigned.status_code == 401
    assert "3eZbrw1a" not in unsigned.text
    forged = signed_headers("not-the-signing-secret", body) | JSON_TYPE
    answer = await stack.http.post("/slack/events", content=body, headers=forged)
    assert answer.status_code == 401
    assert "3eZbrw1a" not in answer.text


@pytest.mark.parametrize("how", ["unsigned", "wrong secret", "tampered", "stale"])
async def test_an_event_not_signed_by_slack_is_refused_and_nothing_is_sent(
    stack: Stack, how: str
) -> None:
    await stack.until(lambda: stack.slack.api_calls("auth.test"), what="the bot's auth.test")
    body = home_opened(BOB)
    headers = signed_headers(stack.secret, body) | JSON_TYPE
    if how == "unsigned":
        headers = dict(JSON_TYPE)
    elif how == "wrong secret":
        headers = signed_headers("not-the-signing-secret", body) | JSON_TYPE
    elif how == "tampered":
        body = body.replace(BOB, CAROL)
    else:  # older than Slack's five minutes
        headers = signed_headers(stack.secret, body, timestamp=1_700_000_000) | JSON_TYPE
    sent = len(stack.slack.calls)
    answer = await stack.http.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 401
    await asyncio.sleep(0.3)
    assert stack.slack.calls[sent:] == []
    assert await audit(stack, "replay") == []


@pytest.mark.parametrize(
    "body",
    ['["not", "an", "object"]', "{not json", '{"type": "block_actions"}', '{"type": "x"}'],
)
async def test_a_signed_json_body_that_is_not_an_event_is_a_400(stack: Stack, body: str) -> None:
    answer = await stack.post_signed(body, **JSON_TYPE)
    assert answer.status_code == 400
    assert "Traceback" not in answer.text
    assert publishes(stack) == []


async def test_other_content_types_are_still_refused(stack: Stack) -> None:
    answer = await stack.post_signed(home_opened(BOB), **{"Content-Type": "text/plain"})
    assert answer.status_code == 415


async def test_an_event_from_another_workspace_is_refused(stack: Stack) -> None:
    body = home_opened(BOB).replace(FIXTURES_TEAM, "T0000ELSE")
    answer = await stack.post_signed(body, **JSON_TYPE)
    assert answer.status_code == 403
    await asyncio.sleep(0.3)
    assert publishes(stack) == []


async def test_a_retried_event_is_handled_once(stack: Stack) -> None:
    await open_home(stack, BOB, "Ev0000ONCE")
    await published(stack, BOB)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    await open_home(stack, BOB, "Ev0000ONCE", **retry)
    [replay] = await replays(stack)
    assert replay.detail["what"] == "app_home_opened"
    assert len(publishes(stack, BOB)) == 1
    # a new opening (a new event_id) is published again
    await open_home(stack, BOB, "Ev0000TWICE")
    await published(stack, BOB, count=2)


async def test_the_messages_tab_publishes_nothing(stack: Stack) -> None:
    answer = await stack.post_signed(home_opened(BOB, tab="messages"), **JSON_TYPE)
    assert answer.status_code == 200
    await asyncio.sleep(0.3)
    assert publishes(stack) == []


# -- what the Home tab shows ----------------------------------------------------------------------


async def test_the_home_tab_shows_each_person_what_concerns_them(stack: Stack) -> None:
    request_id = await ask_restore(stack)
    await open_home(stack, BOB, "Ev0000BOB")
    view = await published(stack, BOB)
    shown = sections(view)
    waiting = shown["Restores waiting for your approval"]
    assert f"*#{request_id}* Restore *web-server-01* (`12345`)" in waiting
    assert f"Asked by <@{ALICE}>" in waiting
    assert "*Reason:* bad deploy" in waiting
    assert "1 more approval" in waiting
    assert buttons(view) == [(ids.HOME_APPROVE, request_id), (ids.HOME_DENY, request_id)]
    assert "None of your requests is waiting." in shown["Your requests waiting"]

    # the requester does not see their own request as waiting for their approval
    await open_home(stack, ALICE, "Ev0000ALICE")
    view = await published(stack, ALICE)
    shown = sections(view)
    assert "Nothing is waiting for your approval." in shown["Restores waiting for your approval"]
    assert f"*#{request_id}* You asked to restore *web-server-01*" in shown["Your requests waiting"]
    assert buttons(view) == [(ids.HOME_CANCEL, request_id)]


async def test_only_the_configured_approvers_see_a_restore_waiting_for_them(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_approvers=f"{CAROL},S0000APPR"
    ) as stack:
        stack.slack.groups["S0000APPR"] = ["U0000DAVE"]
        request_id = await ask_restore(stack)
        for n, person in enumerate((BOB, CAROL, "U0000DAVE")):
            await open_home(stack, person, f"Ev0000APPR{n}")
        for person, sees in ((BOB, False), (CAROL, True), ("U0000DAVE", True)):
            view = await published(stack, person)
            assert ((ids.HOME_APPROVE, request_id) in buttons(view)) is sees, person


async def test_in_flight_and_finished_requests_are_listed(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    clicks = Clicks(stack)
    running = await ask_restore(stack)
    await clicks.press(ids.HOME_APPROVE, running, BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    denied = await ask_restore(stack, "restore 805 wrong server")
    await clicks.deny(denied, BOB, "wrong server")
    await stack.until(
        lambda: any(
            "denied the restore" in text_of(u) for u in stack.slack.api_calls("chat.update")
        ),
        what="the denied card",
    )  # fmt: skip
    await open_home(stack, CAROL, "Ev0000CAROL")
    shown = sections(await published(stack, CAROL))
    assert f"*#{running}* restore *web-server-01*" in shown["In flight at VPS.org"]
    assert f"*#{denied}* restore *db-server-01*" in shown["Recently finished"]
    assert "*denied*" in shown["Recently finished"]
    assert "Nothing is waiting for your approval." in shown["Restores waiting for your approval"]


# -- its buttons ----------------------------------------------------------------------------------


async def test_approve_from_the_home_tab_restores_once_and_updates_the_card(stack: Stack) -> None:
    stack.sim.restore_delay = 3600
    request_id = await ask_restore(stack)
    await open_home(stack, BOB, "Ev0000BOB")
    await published(stack, BOB)
    clicks = Clicks(stack)
    payload = await clicks.press(ids.HOME_APPROVE, request_id, BOB)
    await stack.until(lambda: restore_calls(stack), what="the restore call")
    # the card in the channel says so, through the outbox, as for a click on the card
    updated = await stack.until(
        lambda: [u for u in stack.slack.api_calls("chat.update") if "*Restoring*" in text_of(u)],
        what="the card updated",
    )
    assert updated[-1].data["channel"] == CHANNEL
    assert f"approved by <@{BOB}>" in text_of(updated[-1])
    # the Home tab is published again: nothing left to approve, the restore in flight
    view = await published(stack, BOB, count=2)
    shown = sections(view)
    assert "Nothing is waiting for your approval." in shown["Restores waiting for your approval"]
    assert f"*#{request_id}* restore *web-server-01*" in shown["In flight at VPS.org"]
    # the same click again (Slack's retry, or a replay): acted on once
    answer = await stack.action(payload)
    assert answer.status_code == 200
    assert len(await replays(stack)) == 1
    await asyncio.sleep(0.3)
    assert len(restore_calls(stack)) == 1
    [call] = restore_calls(stack)
    assert call.path == "/snapshots/801/restore/"
    assert await status_of(stack, request_id) is Status.RUNNING
    assert stack.slack.responses() == []  # no response_url to answer on


async def test_a_refused_click_is_told_by_dm_and_on_the_republished_tab(stack: Stack) -> None:
    request_id = await ask_restore(stack)
    await Clicks(stack).press(ids.HOME_APPROVE, request_id, ALICE)
    dms = await stack.until(stack.dms, what="the DM")
    assert [c.data["users"] for c in stack.slack.api_calls("conversations.open")] == [ALICE]
    assert "a second person has to approve it" in text_of(dms[-1])
    view = await published(stack, ALICE)
    assert "a second person has to approve it" in json.dumps(view["blocks"][0])
    assert restore_calls(stack) == []
    assert await status_of(stack, request_id) is Status.PENDING_APPROVAL
    [refused] = await audit(stack, "refused")
    assert refused.detail["action"] == ids.HOME_APPROVE
    assert refused.channel_id == CHANNEL


async def test_a_click_on_an_unknown_request_changes_nothing(stack: Stack) -> None:
    await Clicks(stack).press(ids.HOME_APPROVE, "424242", BOB)
    dms = await stack.until(stack.dms, what="the DM")
    assert "does not know" in text_of(dms[-1])
    await published(stack, BOB)
    assert restore_calls(stack) == []


async def test_deny_and_cancel_from_the_home_tab_update_the_card(stack: Stack) -> None:
    clicks = Clicks(stack)
    first = await ask_restore(stack)
    await clicks.deny(first, BOB, "not now")
    await stack.until(
        lambda: any(f"<@{BOB}> denied the restore" in text_of(u)
                    for u in stack.slack.api_calls("chat.update")),
        what="the denied card",
    )  # fmt: skip
    assert await status_of(stack, first) is Status.DENIED
    second = await ask_restore(stack, "restore 805 another one")
    await clicks.press(ids.HOME_CANCEL, second, ALICE)
    await stack.until(
        lambda: any("cancelled the restore" in text_of(u)
                    for u in stack.slack.api_calls("chat.update")),
        what="the cancelled card",
    )  # fmt: skip
    assert await status_of(stack, second) is Status.CANCELLED
    await published(stack, ALICE)
    assert restore_calls(stack) == []


async def test_cancel_from_the_home_tab_withdraws_a_delete(stack: Stack) -> None:
    ack, _ = await stack.command("delete 798")
    assert ack.status_code == 200
    [card] = await stack.until(lambda: stack.posts(thread=False), what="the delete card")
    request_id = next(b for b in card.data["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    await open_home(stack, ALICE, "Ev0000DEL")
    view = await published(stack, ALICE)
    assert (
        "waiting for your confirmation in <#C0000TEST>" in sections(view)["Your requests waiting"]
    )
    assert buttons(view) == [(ids.HOME_CANCEL, request_id)]
    await Clicks(stack).press(ids.HOME_CANCEL, request_id, ALICE)
    await stack.until(
        lambda: any("cancelled the delete" in text_of(u)
                    for u in stack.slack.api_calls("chat.update")),
        what="the cancelled card",
    )  # fmt: skip
    assert await status_of(stack, request_id) is Status.CANCELLED
    assert stack.sim.calls_to("DELETE") == []


# -- within Slack's limits --------------------------------------------------------------------


def _request(n: int, status: Status, requester: str, action: Action = Action.RESTORE) -> Any:
    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    return OperationRequest(
        id=n, kind=Kind.SNAPSHOT, action=action, status=status, requester_id=requester,
        channel_id=CHANNEL, server=ServerRef(1000 + n, "s" * 200), target_id=n,
        target_name="n" * 200, reason="r" * 1000, created_at=at, updated_at=at,
        expires_at=at + timedelta(minutes=30), required_approvals=1,
    )  # fmt: skip


def test_a_crowded_home_tab_is_clipped_within_slacks_limits() -> None:
    now = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    home = Home(
        user_id=BOB,
        at=now,
        to_approve=[_request(n, Status.PENDING_APPROVAL, ALICE) for n in range(100)],
        own=[_request(n, Status.PENDING_APPROVAL, BOB) for n in range(100, 200)],
        in_flight=[_request(n, Status.RUNNING, ALICE) for n in range(200, 300)],
        recent=[_request(n, Status.SUCCEEDED, ALICE) for n in range(300, 310)],
    )
    view = home_view(home, notice=":no_entry: " + "x" * 5000)
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    View(**view).validate_json()
    assert block_kit_errors(view["blocks"][:50]) == []
    assert block_kit_errors(view["blocks"][50:]) == []
    text = json.dumps(view)
    assert "and 75 more (oldest first" in text
    assert "and 85 more of yours" in text
    assert "and 70 more in flight" in text
    assert len(re.findall(r"\*#30\d\*", text)) == 10  # the ten finished, all there


# -- Socket Mode delivers the same events ------------------------------------------------------

socket_stack = socket_mode_tests.socket_stack  # the Socket Mode bot of tests/slack/test_socket_mode
health_urls = socket_mode_tests.health_urls


async def test_socket_mode_delivers_app_home_opened_once_per_event(
    socket_stack: socket_mode_tests.SocketStack,
) -> None:
    slack, socket = socket_stack.slack, socket_stack.socket
    envelope, _ = await socket_stack.command("restore 801 over the socket")
    await socket.acked(envelope, wait=3.0)
    await socket_mode_tests.until(lambda: slack.api_calls("chat.postMessage"))
    event = json.loads(home_opened(BOB, "Ev0000SOCK"))
    first = await socket.send("events_api", event)
    again = await socket.send("events_api", event)  # Slack's retry: the same event_id
    for envelope in (first, again):
        assert (await socket.acked(envelope, wait=3.0))["envelope_id"] == envelope.envelope_id
    [call] = await socket_mode_tests.until(lambda: slack.api_calls("views.publish"))
    assert call.data["user_id"] == BOB
    assert "Restores waiting for your approval" in json.dumps(view_of(call))
    await asyncio.sleep(0.5)
    assert len(slack.api_calls("views.publish")) == 1


async def test_with_no_approvers_configured_the_home_tab_takes_no_votes(
    simulator: Simulator, served_simulator: str, sqlite_url: str
) -> None:
    """Anyone but the requester may approve when no approvers are configured, which means
    anyone in the request's channel: the Home tab (in no channel) lists nothing to approve,
    refuses a forged Approve, and shows another person's requests to nobody else."""
    async with running_stack(
        simulator, served_simulator, sqlite_url, vpsbot_poll_interval=0.2
    ) as open_stack:
        request_id = await ask_restore(open_stack)
        await open_home(open_stack, "U0000EVE1", "Ev0000EVE1")
        shown = sections(await published(open_stack, "U0000EVE1"))
        assert "vote on its card there" in shown["Restores waiting for your approval"]
        assert buttons(await published(open_stack, "U0000EVE1")) == []
        await Clicks(open_stack).press(ids.HOME_APPROVE, request_id, "U0000EVE1")
        dms = await open_stack.until(open_stack.dms, what="the refusal")
        assert "votes are taken on the request's card" in text_of(dms[-1])
        assert restore_calls(open_stack) == []
        await open_stack.click(ids.RESTORE_APPROVE, request_id, user=BOB)  # on the card
        await open_stack.until(lambda: restore_calls(open_stack), what="the restore call")
        await open_home(open_stack, "U0000EVE1", "Ev0000EVE2")
        shown = sections(await published(open_stack, "U0000EVE1"))
        assert "Nothing is in flight." in shown["In flight at VPS.org"]  # not hers
        await open_home(open_stack, BOB, "Ev0000BOB9")
        shown = sections(await published(open_stack, BOB))
        assert f"*#{request_id}*" in shown["In flight at VPS.org"]  # he approved it
