"""Help, refusals and notices: the short answers a person or a channel gets."""

from __future__ import annotations

from bot.domain.model import Kind
from bot.domain.operations import MAX_MANUAL_BACKUPS_PER_SERVER, MAX_SNAPSHOTS_PER_SERVER
from bot.slack.blocks.text import MAX_FALLBACK, Message, clip, context, plain, safe, section

INTRO = {
    Kind.SNAPSHOT: "Snapshots are quick point-in-time copies "
    f"(at most {MAX_SNAPSHOTS_PER_SERVER} per server).",
    Kind.BACKUP: "Backups are kept for the long term "
    f"(at most {MAX_MANUAL_BACKUPS_PER_SERVER} manual backups per server).",
}


def help_message(kind: Kind, usage_text: str) -> Message:
    blocks = [
        section(f"*`/{kind.value}`*: {INTRO[kind]}"),
        section(usage_text),
        context(
            f"Ids are the numbers `/{kind.value} list` shows (1 to 9999999999). "
            "Restores overwrite the whole server and need a second person's approval."
        ),
    ]
    return Message(f"/{kind.value} help", blocks)


def vpsbot_help(usage_text: str) -> Message:
    blocks = [
        section(
            "*`/vpsbot`*: what vpsbot is waiting for and what it did. Every answer is shown to "
            "you alone; the audit file goes to your DM."
        ),
        section(usage_text),
        context(
            "Request ids are the numbers vpsbot's messages end with (“request #7”). "
            "`/snapshot help` and `/backup help` list what you can ask for."
        ),
    ]
    return Message("/vpsbot help", blocks)


def error_message(text: str, usage_text: str | None = None) -> Message:
    """A problem in a sentence (mrkdwn, ready), then the usage that applies (the bot's own
    text), small, under it."""
    blocks = [section(text)]
    if usage_text:
        blocks.append(context(usage_text))
    return Message(clip(text, MAX_FALLBACK), blocks)


NOTICES = {
    "vps_unauthorized": (
        ":closed_lock_with_key: *vpsbot cannot reach VPS.org: the API token is rejected (HTTP "
        "401).* This is a configuration problem: an admin needs to set a valid `VPS_API_TOKEN` "
        "and restart the bot. Until then no command that reads or changes servers can work."
    ),
}


def notice_message(event: str) -> Message:
    return plain(NOTICES.get(event, f"vpsbot notice: {safe(event, 100)}"))
