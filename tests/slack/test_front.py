"""The HTTP front acks without bolt's dispatch (`_hand_over`): it must give each request to the
very listener bolt would have run. Every kind of payload is sent through bolt (an app built with
`build_app`, whose listeners hand their work to a recorder) and through `route`, and the two
must name the same work; a payload no listener takes is a 404 on both."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.slack import (
    ACTIONS,
    COMMANDS,
    EVENTS,
    UNKNOWN_ACTION,
    VIEWS,
    Parts,
    _parts,
    build_app,
    identify,
    route,
    works,
)
from bot.slack.actions import DENY_VIEW
from bot.slack.commands import Arrival
from bot.slack.inflight import InFlight
from bot.slack.signing import signed_headers
from tests.conftest import SIGNING_SECRET, Stack, fixture


class Recorder:
    def __init__(self) -> None:
        self.handed: list[tuple[str, dict[str, Any]]] = []

    def hand(self, name: str, body: dict[str, Any], arrival: Arrival) -> None:
        self.handed.append((name, body))


def command(name: str) -> str:
    return urlencode(fixture("slash-command.json") | {"command": name, "text": "help"})


def click(action_id: str) -> str:
    payload = fixture("block-actions.json")
    payload["actions"][0].update(action_id=action_id, value="7")
    return "payload=" + quote(json.dumps(payload))


def interactive(kind: str, **fields: Any) -> str:
    payload = {"type": kind, "team": {"id": fixture("block-actions.json")["team"]["id"]}}
    payload["user"] = {"id": "U1", "team_id": payload["team"]["id"]}
    return "payload=" + quote(json.dumps(payload | fields))


def event(kind: str) -> str:
    team = fixture("block-actions.json")["team"]["id"]
    body = {"type": "event_callback", "team_id": team, "event_id": "Ev1"}
    return json.dumps(body | {"event": {"type": kind, "user": "U1", "tab": "home"}})


PAYLOADS: dict[str, tuple[str, str | None]] = {
    # a payload, and the work it goes to (None: no listener, a 404)
    **{f"command {c}": (command(c), c) for c in COMMANDS},
    "command /other": (command("/other"), None),
    **{f"click {a}": (click(a), a) for a in ACTIONS},
    "click unknown": (click("made_up"), UNKNOWN_ACTION),
    "deny modal": (
        interactive(
            "view_submission", view={"callback_id": DENY_VIEW, "id": "V1", "type": "modal"}
        ),
        DENY_VIEW,
    ),
    "other modal": (
        interactive("view_submission", view={"callback_id": "x", "id": "V1", "type": "modal"}),
        None,
    ),
    "legacy dialog": (interactive("dialog_submission", callback_id="x"), UNKNOWN_ACTION),
    "shortcut": (interactive("shortcut", callback_id="x"), None),
    **{f"event {e}": (event(e), e) for e in EVENTS},
    "event other": (event("message"), None),
}


@pytest.fixture
async def bolt_app(stack: Stack) -> tuple[AsyncApp, Recorder]:
    recorder = Recorder()
    app = build_app(
        stack.bot.services,
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_url=f"{stack.slack.base_url}/api/",
        handoff=recorder,
    )
    await identify(app)
    return app, recorder


@pytest.mark.parametrize("what", list(PAYLOADS))
async def test_the_front_hands_each_payload_to_the_listener_bolt_would_run(
    what: str, bolt_app: tuple[AsyncApp, Recorder], stack: Stack
) -> None:
    raw, expected = PAYLOADS[what]
    app, recorder = bolt_app
    answer = await app.async_dispatch(
        AsyncBoltRequest(body=raw, headers=signed_headers(SIGNING_SECRET, raw))
    )
    assert (answer.status, [name for name, _ in recorder.handed]) == (
        (200, [expected]) if expected else (404, [])
    )
    # the front: its route, and its answer at the wire (through `_hand_over`)
    body = json.loads(raw) if raw.startswith("{") else None
    if body is None:
        from slack_bolt.request.internals import parse_body

        body = parse_body(raw, None)
    assert route(body) == expected
    headers = signed_headers(SIGNING_SECRET, raw)
    if raw.startswith("{"):
        headers["Content-Type"] = "application/json"
    wire = await stack.http.post("/slack/events", content=raw, headers=headers)
    assert wire.status_code == (200 if expected else 404)
    assert wire.text == ""


def test_every_listener_has_a_route_and_every_route_a_listener() -> None:
    named = set(works(object(), InFlight()))  # type: ignore[arg-type]
    assert named == set(COMMANDS + VIEWS + EVENTS + ACTIONS) | {UNKNOWN_ACTION}


def test_the_front_and_the_work_process_share_one_table(stack: Stack) -> None:
    parts: Parts = _parts[stack.bot.slack]
    assert set(parts.works) == set(COMMANDS + VIEWS + EVENTS + ACTIONS) | {UNKNOWN_ACTION}
