"""manifest.yml declares what the bot serves: both commands, interactivity, the scopes it uses."""

from pathlib import Path

import yaml

MANIFEST = yaml.safe_load((Path(__file__).resolve().parents[1] / "manifest.yml").read_text())


def test_both_commands_point_at_the_events_endpoint() -> None:
    commands = {c["command"]: c for c in MANIFEST["features"]["slash_commands"]}
    assert set(commands) == {"/snapshot", "/backup"}
    for command in commands.values():
        assert command["url"].endswith("/slack/events")
        assert 0 < len(command["description"]) <= 2000
        assert len(command["usage_hint"]) <= 1000
        assert command["should_escape"] is False


def test_interactivity_and_socket_mode_switch() -> None:
    settings = MANIFEST["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["socket_mode_enabled"] is False


def test_scopes_cover_what_the_bot_calls() -> None:
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "im:write", "usergroups:read"} <= scopes
