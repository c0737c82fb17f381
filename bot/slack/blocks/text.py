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
    public: bool = False  # an answer the whole channel sees (response_type in_channel)

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


def safe_within(text: str, limit: int) -> str:
    """Like `safe`, but `limit` bounds the escaped text (never cutting an entity in half):
    for outside words in a line whose end must survive any clipping after it."""
    escaped = safe(text, len(text))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut + "…"


def size(mb: int | None) -> str:
    if mb is None:
        return "size not known yet"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb} MB"


MINUTE, HOUR, DAY = 60, 3600, 86400
MONTH, YEAR = 30.44 * DAY, 365.25 * DAY


def _half_up(value: float) -> int:
    """Round halves up (Python's round() goes to the even number: 2.5 -> 2)."""
    return int(value + 0.5)


def plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def span(seconds: float) -> str:
    """How long something took, precise and short: '21 s', '1 min 30 s', '4 min', '2 h 5 min',
    '3 days 4 h' (to the second under 10 minutes, then the minute, past a day the hour)."""
    seconds = abs(seconds)
    if seconds < MINUTE:
        return f"{min(_half_up(seconds), 59)} s"
    if seconds < 10 * MINUTE:  # seconds still count here
        minutes, rest = divmod(_half_up(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if seconds < HOUR:
        return f"{min(_half_up(seconds / MINUTE), 59)} min"
    minutes = _half_up(seconds / MINUTE)
    if minutes < 24 * 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    hours = _half_up(seconds / HOUR)
    days, hours = divmod(hours, 24)
    return f"{plural(days, 'day')} {hours} h" if hours else plural(days, "day")


def _distance(seconds: float) -> str | None:
    """How far away a moment is, in one unit, "about" when rounded to hours, months or years;
    None for about a day (the caller says 'yesterday' or 'tomorrow')."""
    minutes = _half_up(seconds / MINUTE)
    if minutes < 60:
        return plural(max(minutes, 1), "minute")
    hours = _half_up(seconds / HOUR)
    if hours < 24:
        words = "an hour" if hours == 1 else f"{hours} hours"
        return words if abs(seconds - hours * HOUR) < MINUTE else f"about {words}"
    days = _half_up(seconds / DAY)
    if days <= 1:
        return None
    if days < 45:
        return f"{days} days"
    months = _half_up(seconds / MONTH)
    if months < 12:
        return "about a month" if months == 1 else f"about {months} months"
    years = _half_up(seconds / YEAR)
    return "about a year" if years == 1 else f"about {years} years"


def ago(then: datetime, now: datetime) -> str:
    """When `then` is, from `now`, as people say it: 'just now', '5 minutes ago', 'about 3 hours
    ago', 'yesterday', '2 days ago', 'about 2 years ago'; ahead: 'in 30 minutes', 'tomorrow'."""
    delta = (now - then).total_seconds()
    if 0 <= delta < 45:
        return "just now"
    if -60 < delta < 0:
        return "in less than a minute"
    words = _distance(abs(delta))
    if words is None:
        return "yesterday" if delta > 0 else "tomorrow"
    return f"{words} ago" if delta > 0 else f"in {words}"


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
