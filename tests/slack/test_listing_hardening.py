"""Listings VPS.org got slightly wrong, through the served bot: one malformed object does not
hide the rest or block a create, and its text cannot break out of the reply's mrkdwn."""

import json
import logging
from typing import Any

import pytest

from tests.conftest import VPS_TOKEN, Stack

STAND_IN = "\u02cb"  # what a backtick from VPS.org is shown as: it reads alike, spans nothing


def shown(call: Any) -> str:
    return json.dumps(call.data.get("blocks", []), ensure_ascii=False) + call.data.get("text", "")


def sections(call: Any) -> list[str]:
    return [b["text"]["text"] for b in call.data.get("blocks", []) if b["type"] == "section"]


def raw_snapshot(snapshot_id: int, *, without: str = "", **fields: Any) -> dict[str, Any]:
    """A snapshot as VPS.org lists it, with `fields` changed and the field `without` left out."""
    data: dict[str, Any] = {
        "id": snapshot_id,
        "server": {"id": 12345, "name": "web-server-01"},
        "name": f"raw-{snapshot_id}",
        "status": "completed",
        "size_mb": 1024,
        "created_at": "2025-01-10T08:00:00Z",
        "description": "",
    }
    data.update(fields)
    data.pop(without, None)
    return data


async def test_a_snapshot_with_a_null_name_is_listed_as_unnamed_beside_the_others(
    stack: Stack,
) -> None:
    stack.sim.add_raw("snapshots", raw_snapshot(777, name=None, description=None))
    reply = await stack.ask("list 12345")
    text = shown(reply)
    assert "Snapshots* of *web-server-01* (`12345`): 3 items" in text
    assert "_unnamed_ · id `777` · :white_check_mark: completed" in text
    assert "*pre-migration-snapshot* · id `801`" in text
    assert "*weekly-snapshot-2025-01-08* · id `798`" in text
    assert "may be incomplete" not in text  # nothing was left out


async def test_a_create_still_works_when_the_listing_holds_a_null_name(stack: Stack) -> None:
    stack.sim.add_raw("snapshots", raw_snapshot(777, name=None))
    stack.sim.create_delay = 3600  # still in progress when the post goes out, however slow
    await stack.command("create 12345 newname")
    [post] = await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert "is creating a snapshot `newname`" in shown(post)
    [create] = stack.sim.calls_to("POST", "/snapshots/")
    assert create.body == {"server_id": 12345, "name": "newname"}


async def test_unusable_objects_are_skipped_logged_once_and_the_rest_listed(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.vpsorg.client")
    # no id (and a name that quotes a credential), and no server: neither can be shown or used
    stack.sim.add_raw("snapshots", raw_snapshot(0, without="id", name=f"Bearer {VPS_TOKEN}"))
    stack.sim.add_raw("snapshots", raw_snapshot(778, without="server"))
    reply = await stack.ask("list 12345")
    text = shown(reply)
    assert "*pre-migration-snapshot* · id `801`" in text
    assert "*weekly-snapshot-2025-01-08* · id `798`" in text
    assert ": 2 items" in text
    assert "778" not in text
    assert VPS_TOKEN not in text
    assert "This list may be incomplete" in text  # the person knows something is missing
    [warning] = [r for r in caplog.records if r.name == "bot.vpsorg.client"]
    assert warning.levelno == logging.WARNING
    assert "2 of 4 snapshots" in warning.getMessage()
    assert VPS_TOKEN not in caplog.text

    stack.sim.calls.clear()
    await stack.command("create 12345 newname")
    await stack.until(lambda: stack.posts(thread=False), what="the channel post")
    assert [c.body["name"] for c in stack.sim.calls_to("POST", "/snapshots/")] == ["newname"]


async def test_backticks_from_vps_org_cannot_break_out_of_the_listing(stack: Stack) -> None:
    stack.sim.add_snapshot(
        12345, "we`ird", "see `rm -rf /` and `<!channel>", snapshot_id=811, size_mb=2048
    )
    reply = await stack.ask("list 12345")
    [line] = [s for s in sections(reply) if "id `811`" in s]
    b = STAND_IN
    assert line.startswith(f"*we{b}ird* · id `811` · ")
    assert line.endswith(f"_see {b}rm -rf /{b} and {b}&lt;!channel&gt;_")
    assert line.count("`") == 2  # only the id's own code span
