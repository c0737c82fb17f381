"""When a schedule runs, and how many of its snapshots or backups it keeps.

The forms people type: `hourly`, `daily HH:MM`, `weekly <day> HH:MM`, `every <N>s|m|h|d` and a
five-field cron expression in quotes (`"0 3 * * *"`, also after the word `cron`). Cron forms are
read in the bot's time zone by croniter; a fixed-hour run is not repeated when the clocks go back
(`daily 03:00` runs once on that night, as cron does), which croniter alone would.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, croniter

from bot.domain.model import Kind

MIN_KEEP = 1
# One place of VPS.org's per-server limit (5 snapshots, 10 manual backups) stays free for a
# person, or for the safety snapshot taken before a restore.
MAX_KEEP: dict[Kind, int] = {Kind.SNAPSHOT: 4, Kind.BACKUP: 9}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_EVERY = 366 * 86_400  # seconds
MAX_WHEN_WORDS = 6  # `cron` and five fields
FORMS = (
    "“hourly”, “daily HH:MM”, “weekly <day> HH:MM”, “every <N>m|h|d” "
    'or a cron expression in quotes, as in "0 3 * * *"'
)

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), ("s", 1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), ("m", 60)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), ("h", 3600)),
    **dict.fromkeys(("d", "day", "days"), ("d", 86_400)),
}
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HEADS = ("hourly", "daily", "weekly", "every", "cron")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_INTERVAL = re.compile(r"([0-9]{1,9})\s*([a-z]*)")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
# A word: quoted stretches and other characters up to a space; or a quote that is never closed.
_WORD = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s"'])+|["']""")
# croniter's random (R) and hashed (H) values change from one reading to the next
_UNSTABLE = re.compile(r"(?<![A-Za-z])[RH](?![A-Za-z])")
_CRON_FIELDS = "five fields (minute hour day month weekday)"
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)  # where a cron is first tried: does it ever run?
_GAP_RUNS = 1000
_GAP_SPAN = timedelta(days=366)


class BadWhen(ValueError):
    """A schedule that cannot be read. `word` is the word at fault as typed (None when a word
    is missing) and `problem` what was expected; str() is the whole sentence."""

    def __init__(self, word: str | None, problem: str) -> None:
        super().__init__(problem if word is None else f"“{word}” {problem}")
        self.word = word
        self.problem = problem


@dataclass(frozen=True, slots=True)
class When:
    """When a schedule runs. `text` is the canonical form shown to people and stored:
    "hourly", "daily 03:00", "weekly mon 03:00", "every 6h", "cron 0 3 * * *"."""

    text: str
    cron: str | None = None  # five-field cron for hourly/daily/weekly/cron
    every: int | None = None  # seconds, for `every`

    def next_after(self, after: datetime, tz: tzinfo, anchor: datetime) -> datetime:
        """The first run strictly after `after` (aware; returned as aware UTC). Cron forms are
        read in `tz`; `every` runs at anchor + k*every for every whole k, so this is the first
        of those after `after`."""
        if after.tzinfo is None or anchor.tzinfo is None:
            raise ValueError("next_after needs aware datetimes")
        if self.every is not None:
            # in UTC: arithmetic on two times of one zone is wall-clock arithmetic
            start, step = anchor.astimezone(UTC), timedelta(seconds=self.every)
            periods = (after.astimezone(UTC) - start) // step + 1
            return start + periods * step
        return next(self._cron_runs(after, tz))

    def shortest_gap(self, tz: tzinfo, start: datetime) -> timedelta:
        """The shortest time between two consecutive runs after `start`, over the next 1000
        runs or one year, whichever ends first (and at least two runs). `every`: the interval."""
        if self.every is not None:
            return timedelta(seconds=self.every)
        end = start + _GAP_SPAN
        runs = self._cron_runs(start, tz)
        previous = next(runs)
        shortest: timedelta | None = None
        for count, run in enumerate(runs, start=1):
            gap = run - previous
            shortest = gap if shortest is None else min(shortest, gap)
            if count >= _GAP_RUNS or run > end:
                break
            previous = run
        assert shortest is not None  # _cron_runs never ends
        return shortest

    def _cron_runs(self, after: datetime, tz: tzinfo) -> Iterator[datetime]:
        """The runs of a cron form strictly after `after`, as aware UTC."""
        if self.cron is None:
            raise ValueError(f"{self.text!r} is not a cron schedule")
        if after.tzinfo is None:
            raise ValueError("a schedule's runs need an aware datetime")
        fixed_hour = not self.cron.split()[1].startswith("*")
        runs = croniter(self.cron, after.astimezone(tz))
        while True:
            run: datetime = runs.get_next(datetime)
            instant = run.astimezone(UTC)
            if fixed_hour and instant > run.replace(fold=0).astimezone(UTC):
                continue  # the second pass over a wall time when the clocks went back
            yield instant


def words(text: str) -> list[str]:
    """The words of a command, a quoted stretch (straight or Slack's smart quotes) counting as
    one word, its quotes made straight. BadWhen if a quote is not closed."""
    found = _WORD.findall(text.translate(_QUOTES))
    if any(word in ('"', "'") for word in found):
        raise BadWhen(
            None,
            "The quote is not closed: expected a cron expression between two quotes, as in "
            '"0 3 * * *".',
        )
    return found


def parse_when(text: str) -> When:
    """A schedule as typed (`daily 3:00`, `every 6 hours`, `"0 3 * * *"`); BadWhen (a
    ValueError) with a sentence for a person otherwise."""
    found = words(text)
    if not found:
        raise BadWhen(None, f"The timing is missing: expected {FORMS}.")
    head, rest = found[0], found[1:]
    lowered = head.lower()
    if head[0] in "\"'":
        _no_more(rest, "the cron expression is all between the quotes")
        return _cron(head[1:-1])
    if lowered == "cron":
        if not rest:
            raise BadWhen(
                None,
                "The cron expression is missing: expected five fields after “cron”, "
                'as in "0 3 * * *".',
            )
        if rest[0][0] in "\"'":
            _no_more(rest[1:], "the cron expression is all between the quotes")
            return _cron(rest[0][1:-1])
        return _cron(" ".join(rest))
    if lowered == "hourly":
        _no_more(
            rest,
            "“hourly” runs at minute 0 of every hour; for another minute use a cron "
            'expression, as in "30 * * * *"',
        )
        return When("hourly", cron="0 * * * *")
    if lowered == "daily":
        hour, minute = _time(rest[0] if rest else None, "“daily”")
        _no_more(rest[1:], "“daily” takes only a time (HH:MM)")
        return When(f"daily {hour:02}:{minute:02}", cron=f"{minute} {hour} * * *")
    if lowered == "weekly":
        day = _day(rest[0] if rest else None)
        hour, minute = _time(rest[1] if len(rest) > 1 else None, "the day")
        _no_more(rest[2:], "“weekly” takes only a day and a time (HH:MM)")
        weekday = (DAYS.index(day) + 1) % 7  # cron counts from Sunday, 0
        return When(f"weekly {day} {hour:02}:{minute:02}", cron=f"{minute} {hour} * * {weekday}")
    if lowered == "every":
        return _every(rest)
    raise BadWhen(head, _unknown_head(head))


def from_text(text: str) -> When:
    """The When whose canonical `text` this is (as stored); ValueError for any other text."""
    when = parse_when(text)
    if when.text != text:
        raise ValueError(f"{text!r} is not a schedule's canonical text ({when.text!r} is)")
    return when


def check_keep(kind: Kind, keep: int) -> None:
    """ValueError, with a sentence naming the range, unless a schedule of `kind` may keep
    `keep` snapshots or backups."""
    most = MAX_KEEP[kind]
    if MIN_KEEP <= keep <= most:
        return
    if kind is Kind.SNAPSHOT:
        why = f"VPS.org holds {most + 1} per server, and one stays free for a person or a "
        raise ValueError(
            f"A snapshot schedule keeps {MIN_KEEP} to {most} snapshots: {why}safety snapshot."
        )
    raise ValueError(
        f"A backup schedule keeps {MIN_KEEP} to {most} manual backups: VPS.org holds "
        f"{most + 1} per server, and one stays free for a person."
    )


def _no_more(rest: list[str], what: str) -> None:
    if rest:
        raise BadWhen(rest[0], f"is one word too many: {what}.")


def _time(word: str | None, after: str) -> tuple[int, int]:
    expected = f"expected HH:MM from 00:00 to 23:59 after {after}"
    if word is None:
        raise BadWhen(None, f"The time is missing: {expected}.")
    match = _TIME.fullmatch(word)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise BadWhen(word, f"is not a time: {expected}.")
    return int(match[1]), int(match[2])


def _day(word: str | None) -> str:
    expected = "expected mon, tue, wed, thu, fri, sat or sun after “weekly”"
    if word is None:
        raise BadWhen(None, f"The day is missing: {expected}.")
    lowered = word.lower()
    if lowered in DAYS:
        return lowered
    if lowered in _FULL_DAYS:
        return DAYS[_FULL_DAYS.index(lowered)]
    raise BadWhen(word, f"is not a day: {expected}.")


def _every(rest: list[str]) -> When:
    expected = "expected a number and a unit (s, m, h or d) after “every”, as in “every 6h”"
    if not rest:
        raise BadWhen(None, f"The interval is missing: {expected}.")
    # `every 6h` or `every 6 hours`: the unit may be a word of its own
    joined = rest[0] + (" " + rest[1] if len(rest) > 1 and rest[0].isdigit() else "")
    match = _INTERVAL.fullmatch(joined.lower())
    if match is None or match[2] not in _UNITS:
        shown = joined if match is not None else rest[0]
        raise BadWhen(shown, f"is not an interval: {expected}.")
    number = int(match[1])
    unit, seconds = _UNITS[match[2]]
    if number < 1:
        raise BadWhen(joined, "is not an interval: expected at least 1 after “every”.")
    if number * seconds > MAX_EVERY:
        raise BadWhen(joined, "is too long an interval: expected at most 366 days.")
    _no_more(rest[len(joined.split()) :], "“every” takes only an interval, as in “every 6h”")
    return When(f"every {number}{unit}", every=number * seconds)


def _cron(expression: str) -> When:
    fields = expression.split()
    shown = " ".join(fields)
    if len(fields) != 5:
        raise BadWhen(
            shown,
            f"is not a cron expression: expected {_CRON_FIELDS}, it has {len(fields)}.",
        )
    if _UNSTABLE.search(shown):
        raise BadWhen(
            shown,
            "is not a cron expression vpsbot takes: random (R) and hashed (H) values are not "
            "supported.",
        )
    if not croniter.is_valid(shown):
        raise BadWhen(
            shown, f'is not a cron expression: expected {_CRON_FIELDS}, as in "0 3 * * *".'
        )
    try:
        croniter(shown, _REFERENCE).get_next(datetime)
    except CroniterBadDateError:
        raise BadWhen(
            shown, "never runs: expected a cron expression for dates that exist."
        ) from None
    return When(f"cron {shown}", cron=shown)


def _unknown_head(head: str) -> str:
    if _TIME.fullmatch(head):
        return f"is not a timing: expected “daily {head}” or “weekly <day> {head}”."
    interval = _INTERVAL.fullmatch(head.lower())
    if interval is not None and interval[2] in _UNITS:
        return f"is not a timing. Did you mean “every {head}”?"
    if re.fullmatch(r"[0-9*/,-]+", head):
        return 'is not a timing: a cron expression goes in quotes, as in "0 3 * * *".'
    near = difflib.get_close_matches(head.lower(), _HEADS, n=1, cutoff=0.6)
    if near:
        shown = {
            "daily": "daily HH:MM",
            "weekly": "weekly <day> HH:MM",
            "every": "every <N>h",
            "cron": 'cron "0 3 * * *"',
        }.get(near[0], near[0])
        return f"is not a timing. Did you mean “{shown}”?"
    return f"is not a timing: expected {FORMS}."
