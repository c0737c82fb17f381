"""manifest.yml is valid for Slack's app manifest schema and declares what the bot serves: the
three commands, interactivity, the Home tab and the events it listens to, every scope the Web API
methods it calls need, and a Socket Mode switch."""

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.slack import EVENTS
from tests.manifest_schema import MANIFEST_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
MANIFEST: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())

# The bot-token scope each Web API method needs (Slack's method reference pages).
# apps.connections.open is called with the app-level token, whose scope is connections:write.
SCOPE_OF = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "conversations_open": "im:write",
    "usergroups_users_list": "usergroups:read",
    "apps_connections_open": None,
    "auth_test": None,  # the installation's workspace, at start: no scope needed
    "chat_getPermalink": None,  # the link to a card in a DM: Slack lists no scope for it
    "views_publish": None,  # a person's Home tab: Slack lists no scope for it
    "views_open": None,  # a modal, within a click's trigger window: no scope either
    "files_upload_v2": "files:write",  # slack_sdk's external upload (the two calls below)
    "files_getUploadURLExternal": "files:write",
    "files_completeUploadExternal": "files:write",
}


def errors(manifest: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(MANIFEST_SCHEMA)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(manifest)]


def test_the_manifest_is_valid_for_slacks_schema() -> None:
    assert errors(MANIFEST) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("features", "slash_commands", 0, "command"), "/snapshot-with-a-far-too-long-name"),
        (("features", "slash_commands", 0, "command"), "/Snapshot"),
        (("features", "slash_commands", 0, "url"), "vpsbot.example.com/slack/events"),
        (("display_information", "name"), "v" * 36),
        (("display_information", "long_description"), "too short"),
        (("settings", "interactivity", "request_url"), "ftp://example.com"),
        (("settings", "event_subscriptions", "request_url"), "ftp://example.com"),
        (("features", "app_home", "home_tab"), True),  # a misspelt key
        (("settings", "socket_mode"), True),  # a misspelt key
    ],
)
def test_the_schema_refuses_what_slack_refuses(path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(MANIFEST)
    *parents, last = path
    node: Any = broken
    for key in parents:
        node = node[key]
    node[last] = value
    assert errors(broken) != []


def test_the_three_commands_point_at_the_events_endpoint() -> None:
    commands = {c["command"]: c for c in MANIFEST["features"]["slash_commands"]}
    assert set(commands) == {"/snapshot", "/backup", "/vpsbot"}
    for command in commands.values():
        assert command["url"] == "https://vpsbot.example.com/slack/events"
        assert command["should_escape"] is False  # the bot escapes user text itself
    for name in ("/snapshot", "/backup"):
        for verb in ("list", "create", "restore", "delete", "help"):
            assert verb in commands[name]["usage_hint"]
    vpsbot = commands["/vpsbot"]
    assert vpsbot["usage_hint"] == "pending | request <id> | audit [days] | help"
    assert vpsbot["description"] == (
        "See pending restores, a request's history, or export the audit"
    )


def test_the_home_tab_is_enabled_and_every_event_the_bot_listens_to_is_subscribed() -> None:
    app_home = MANIFEST["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    # the bot's DMs show in the Messages tab; it reads nothing typed there
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is True
    events = MANIFEST["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://vpsbot.example.com/slack/events"
    listened = set(EVENTS)  # register() subscribes exactly these with app.event
    assert listened == {"app_home_opened"}
    assert set(events["bot_events"]) == listened


def test_interactivity_goes_to_the_same_endpoint_and_socket_mode_is_a_switch() -> None:
    settings = MANIFEST["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["socket_mode_enabled"] is False
    # behind a firewall: flip the switch and drop the URLs; it is still a valid manifest
    socket = copy.deepcopy(MANIFEST)
    socket["settings"]["socket_mode_enabled"] = True
    del socket["settings"]["interactivity"]["request_url"]
    del socket["settings"]["event_subscriptions"]["request_url"]
    for command in socket["features"]["slash_commands"]:
        del command["url"]
    assert errors(socket) == []


def test_scopes_cover_every_web_api_method_the_bot_calls() -> None:
    called = {
        match
        for source in (ROOT / "bot").rglob("*.py")
        for match in re.findall(r"client\.([a-z]+_[A-Za-z0-9_]+)\(", source.read_text())
    }
    assert called, "found no Web API calls: the scan is broken"
    unknown = called - set(SCOPE_OF)
    assert unknown == set(), f"add the scope these methods need to SCOPE_OF: {unknown}"
    needed = {SCOPE_OF[method] for method in called} - {None}
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert needed | {"commands"} <= scopes
