"""Text helpers and the few Block Kit blocks every message is made of (slack_sdk's models).

Every string that comes from a person or from VPS.org goes through `safe()`/`escape()`, so
`<!channel>`, links and user mentions in it are shown as text and never trigger anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.domain.model import ServerRef

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_TEXT = 2000
MAX_FALLBACK = 300


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: `text` is the notification/fallback, `blocks` the rich body."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def escape(text: str) -> str:
    """Make text safe to put in mrkdwn: Slack's three control characters become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# U+02CB MODIFIER LETTER GRAVE ACCENT: reads as a backtick, but opens and closes no code span.
BACKTICK_STAND_IN = "\u02cb"


def safe(text: str, limit: int = 200) -> str:
    """Clip, then escape: user and API text ready for mrkdwn, inside a `code span` too (a
    backtick in it becomes a look-alike, so it can neither end the span nor open one)."""
    return escape(clip(text, limit)).replace("`", BACKTICK_STAND_IN)


def size(mb: int | None) -> str:
    if mb is None:
        return "size not known yet"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb} MB"


def span(seconds: float) -> str:
    """A duration in words, two units at most: '3 days 4 hours', '5 minutes'."""
    seconds = int(abs(seconds))
    units = (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
    parts: list[str] = []
    for name, length in units:
        count, seconds = divmod(seconds, length)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        if len(parts) == 2 or (parts and count == 0):
            break
    return " ".join(parts) or "less than a minute"


def ago(then: datetime, now: datetime) -> str:
    delta = (now - then).total_seconds()
    if abs(delta) < 60:
        return "just now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def when(moment: datetime) -> str:
    """A date Slack shows in the reader's own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def user(user_id: str) -> str:
    return f"<@{escape(user_id)}>"


def people(ids: tuple[str, ...]) -> str:
    return ", ".join(user(i) for i in ids) or "nobody yet"


def server_label(server: ServerRef) -> str:
    if not server.name:  # VPS.org sent no name (null): the id alone, never an empty `**`
        return f"server `{server.id}`"
    return f"*{safe(server.name, 100)}* (`{server.id}`)"


def section(text: str) -> Block:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION_TEXT))).to_dict()


def context(text: str) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, MAX_CONTEXT_TEXT))]).to_dict()


def plain(text: str) -> Message:
    """A message of one section, with its text as the fallback."""
    return Message(clip(text, MAX_FALLBACK), [section(text)])
