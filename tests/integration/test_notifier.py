"""The Slack notifier maps Slack's failures to retry-later or give-up, so the outbox keeps a
message until Slack takes it."""

import socket
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Kind, OperationRequest, ServerRef
from bot.services.ports import DeliveryError
from bot.serving import serving
from bot.slack import web_client
from bot.slack.notifier import SlackNotifier
from tests.fakes.slack import SlackStandIn, WebFault

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REQUEST = OperationRequest(
    1, Kind.SNAPSHOT, Action.CREATE, Status.RUNNING, "U1", "C1", ServerRef(1, "web"), 5,
    "snap", "", NOW, NOW,
)  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_slack_unreachable_is_retried_later() -> None:
    client = web_client("xoxb-test", f"http://127.0.0.1:{closed_port()}/api/")
    with pytest.raises(DeliveryError) as caught:
        await SlackNotifier(client, lambda: NOW).deliver("post", {}, REQUEST)
    assert caught.value.retryable
    assert "xoxb-test" not in caught.value.reason


@pytest.mark.parametrize(
    ("fault", "retryable"),
    [
        (
            WebFault("chat.postMessage", status=500, body={"ok": False, "error": "internal_error"}),
            True,
        ),
        (WebFault("chat.postMessage", status=429, headers={"Retry-After": "0"}, times=9), True),
        (
            WebFault(
                "chat.postMessage", status=200, body={"ok": False, "error": "channel_not_found"}
            ),
            False,
        ),
        (
            WebFault("chat.postMessage", status=200, body={"ok": False, "error": "invalid_blocks"}),
            False,
        ),
    ],
)
async def test_slack_errors_are_retryable_or_final(fault: WebFault, retryable: bool) -> None:
    slack = SlackStandIn()
    slack.faults.append(fault)
    async with serving(slack.app) as url:
        with pytest.raises(DeliveryError) as caught:
            await SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW).deliver(
                "post", {}, REQUEST
            )
    assert caught.value.retryable is retryable


DONE = replace(REQUEST, status=Status.SUCCEEDED, message_ts="1700000000.000042")


async def test_the_dm_links_to_the_card() -> None:
    slack = SlackStandIn()
    async with serving(slack.app) as url:
        notifier = SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW)
        delivery = await notifier.deliver("dm", {"user": "U1"}, DONE)
    [asked] = slack.api_calls("chat.getPermalink")
    assert (asked.data["channel"], asked.data["message_ts"]) == ("C1", "1700000000.000042")
    [dm] = slack.api_calls("chat.postMessage")
    assert dm.data["channel"] == delivery.channel == "D1"
    assert dm.data["text"].endswith(
        " · <https://demo.slack.com/archives/C1/p1700000000000042|see the request>"
    )


@pytest.mark.parametrize(
    "fault",
    [
        WebFault("chat.getPermalink", status=200, body={"ok": False, "error": "channel_not_found"}),
        WebFault(
            "chat.getPermalink", status=503, body={"ok": False, "error": "service_unavailable"}
        ),
    ],
)
async def test_the_dm_goes_out_without_a_link_when_slack_gives_none(fault: WebFault) -> None:
    slack = SlackStandIn()
    slack.faults.append(fault)
    async with serving(slack.app) as url:
        notifier = SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW)
        await notifier.deliver("dm", {"user": "U1"}, DONE)
    [dm] = slack.api_calls("chat.postMessage")
    assert dm.data["text"].endswith(" · in <#C1>")


async def test_the_dm_goes_out_without_a_link_when_slack_does_not_answer_for_it() -> None:
    """chat.getPermalink's connection fails (the DM's own calls go through): the DM goes."""
    slack = SlackStandIn()
    async with serving(slack.app) as url:
        client = web_client("xoxb-test", f"{url}/api/")
        unreachable = web_client("xoxb-test", f"http://127.0.0.1:{closed_port()}/api/")
        client.chat_getPermalink = unreachable.chat_getPermalink  # type: ignore[method-assign]
        await SlackNotifier(client, lambda: NOW).deliver("dm", {"user": "U1"}, DONE)
    [dm] = slack.api_calls("chat.postMessage")
    assert dm.data["text"].endswith(" · in <#C1>")


async def test_a_dm_about_a_request_without_a_card_asks_for_no_link() -> None:
    slack = SlackStandIn()
    async with serving(slack.app) as url:
        notifier = SlackNotifier(web_client("xoxb-test", f"{url}/api/"), lambda: NOW)
        await notifier.deliver("dm", {"user": "U1"}, replace(DONE, message_ts=None))
    assert slack.api_calls("chat.getPermalink") == []
    [dm] = slack.api_calls("chat.postMessage")
    assert "(in <#C1>)" in dm.data["text"]
