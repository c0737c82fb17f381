"""Pure Block Kit builders: results in, messages out. Nothing here talks to Slack.

`text` holds the helpers and the basic blocks (slack_sdk's models), `listings` the snapshot
and backup lists, `requests` a request's card and everything said about it (a scheduled run's
too), `schedules` the schedules, `health` the backup health and its alerts, `help` the short
answers. Every builder keeps within Slack's limits: 50 blocks, 3,000 characters per section
text, 75 per button label.
"""

from bot.slack.blocks.health import alert_message, status_message
from bot.slack.blocks.help import error_message, help_message, notice_message, vpsbot_help
from bot.slack.blocks.home import home_view
from bot.slack.blocks.listings import backup_list, snapshot_list
from bot.slack.blocks.requests import (
    card_not_posted_message,
    note_message,
    outcome_message,
    request_message,
)
from bot.slack.blocks.schedules import schedule_added, schedule_removed, schedules_list
from bot.slack.blocks.text import Block, Message, ago, escape, safe, size, span, user
from bot.slack.blocks.vpsbot import (
    audit_comment,
    audit_failed_message,
    audit_sent_message,
    history_message,
    pending_message,
)

__all__ = [
    "Block",
    "Message",
    "ago",
    "alert_message",
    "audit_comment",
    "audit_failed_message",
    "audit_sent_message",
    "backup_list",
    "card_not_posted_message",
    "error_message",
    "escape",
    "help_message",
    "history_message",
    "home_view",
    "note_message",
    "notice_message",
    "outcome_message",
    "pending_message",
    "request_message",
    "safe",
    "schedule_added",
    "schedule_removed",
    "schedules_list",
    "size",
    "snapshot_list",
    "span",
    "status_message",
    "user",
    "vpsbot_help",
]
