"""The parts of Slack's app manifest schema (version 1) that vpsbot's manifest uses, as JSON Schema.

The fields, types and limits are the ones Slack documents in its app manifest reference and
publishes in slackapi/manifest-schema; unknown keys are refused as Slack refuses them.
"""

from __future__ import annotations

from typing import Any

HTTP_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 3500}


def _text(low: int, high: int) -> dict[str, Any]:
    return {"type": "string", "minLength": low, "maxLength": high}


def _strict(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(required),
        "properties": properties,
    }


SCOPES = {"type": "array", "maxItems": 255, "items": _text(1, 50), "uniqueItems": True}

SLASH_COMMAND = _strict(
    {
        # Slack: a leading slash, at most 32 characters, lowercase, no spaces
        "command": {
            "type": "string",
            "minLength": 2,
            "maxLength": 32,
            "pattern": r"^/[a-z0-9_\-]+$",
        },
        "url": {"type": "string", "pattern": r"^https?://", "maxLength": 3000},
        "description": _text(1, 2000),
        "usage_hint": _text(1, 1000),
        "should_escape": {"type": "boolean"},
    },
    required=("command", "description"),
)

MANIFEST_SCHEMA: dict[str, Any] = _strict(
    {
        "_metadata": _strict(
            {"major_version": {"type": "integer"}, "minor_version": {"type": "integer"}}
        ),
        "display_information": _strict(
            {
                "name": _text(1, 35),
                "description": _text(1, 140),
                "background_color": {"type": "string", "pattern": r"^#([0-9a-fA-F]{3}){1,2}$"},
                "long_description": _text(175, 4000),
            },
            required=("name",),
        ),
        "features": _strict(
            {
                "app_home": _strict(
                    {
                        "home_tab_enabled": {"type": "boolean"},
                        "messages_tab_enabled": {"type": "boolean"},
                        "messages_tab_read_only_enabled": {"type": "boolean"},
                    }
                ),
                "bot_user": _strict(
                    {"display_name": _text(1, 80), "always_online": {"type": "boolean"}},
                    required=("display_name",),
                ),
                "slash_commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": SLASH_COMMAND,
                },
            }
        ),
        "oauth_config": _strict(
            {
                "redirect_urls": {"type": "array", "maxItems": 1000, "items": _text(1, 2500)},
                "scopes": _strict({"bot": SCOPES, "user": SCOPES}),
                "token_management_enabled": {"type": "boolean"},
            }
        ),
        "settings": _strict(
            {
                "event_subscriptions": _strict(
                    {
                        "request_url": HTTP_URL,
                        "bot_events": {"type": "array", "maxItems": 100, "items": _text(1, 50)},
                    }
                ),
                "interactivity": _strict(
                    {
                        "is_enabled": {"type": "boolean"},
                        "request_url": HTTP_URL,
                        "message_menu_options_url": HTTP_URL,
                    },
                    required=("is_enabled",),
                ),
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
            }
        ),
    },
    required=("display_information",),
)
