"""Deny through its reason modal, as Slack does it: the click (views.open with its trigger_id),
then the modal's view_submission carrying the view the bot opened, with what was typed."""

from __future__ import annotations

import json
from typing import Any

from bot.slack import ids
from tests.conftest import CHANNEL, Stack
from tests.fakes.slack import FIXTURES_TEAM, SlackCall


def opened_views(stack: Stack) -> list[SlackCall]:
    return stack.slack.api_calls("views.open")


def view_of(call: SlackCall) -> dict[str, Any]:
    """The view a views.open call carried (a JSON string when sent form-encoded)."""
    view = call.data["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


def submission(view: dict[str, Any], user: str, reason: str | None) -> dict[str, Any]:
    """Slack's view_submission payload for `view` (as the bot opened it), typed by `user`."""
    block = next(b for b in view["blocks"] if b["type"] == "input")
    action_id = block["element"]["action_id"]
    return {
        "type": "view_submission",
        "team": {"id": FIXTURES_TEAM, "domain": "vpsbot-test"},
        "user": {"id": user, "username": "someone", "name": "someone", "team_id": FIXTURES_TEAM},
        "api_app_id": "A0000TEST",
        "token": "verification-token-not-used",
        "trigger_id": "1000000000005.1000000000002.0123456789abcdef0123456789abcdef",
        "view": {
            "id": "V0000DENY",
            "team_id": FIXTURES_TEAM,
            "type": "modal",
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view["callback_id"],
            "state": {
                "values": {
                    block["block_id"]: {action_id: {"type": "plain_text_input", "value": reason}}
                }
            },
            "hash": "1700000000.abcdefgh",
            "title": view["title"],
            "clear_on_close": False,
            "notify_on_close": False,
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": "V0000DENY",
            "app_id": "A0000TEST",
            "external_id": "",
            "app_installed_team_id": FIXTURES_TEAM,
            "bot_id": "B0000TEST",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


async def click_deny(stack: Stack, request_id: str, user: str, channel: str = CHANNEL) -> str:
    """Press Deny; return the response_url key of the click."""
    ack, key = await stack.click(ids.RESTORE_DENY, request_id, user=user, channel=channel)
    assert ack.status_code == 200, ack.text
    return key


async def deny(stack: Stack, request_id: str, user: str, reason: str | None = None) -> None:
    """An approver denies: the click opens the modal, which is submitted with `reason`."""
    before = len(opened_views(stack))
    await click_deny(stack, request_id, user)
    calls = await stack.until(
        lambda: len(opened_views(stack)) > before and opened_views(stack), what="views.open"
    )
    ack = await stack.action(submission(view_of(calls[-1]), user, reason))
    assert ack.status_code == 200, ack.text
