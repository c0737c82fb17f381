"""When a schedule runs: the next run of each form, through the clock changes; the shortest gap."""

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from bot.domain.model import Kind
from bot.domain.schedules import BadWhen, When, check_keep, from_text, parse_when, words

TALLINN = ZoneInfo("Europe/Tallinn")  # clocks go 03:00 -> 04:00 and 04:00 -> 03:00
NEW_YORK = ZoneInfo("America/New_York")  # clocks go 02:00 -> 03:00 and 02:00 -> 01:00
ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def runs(when: When, after: datetime, tz: tzinfo = UTC, count: int = 3) -> list[str]:
    """The next `count` runs, in UTC."""
    found = []
    for _ in range(count):
        after = when.next_after(after, tz, ANCHOR)
        found.append(f"{after:%m-%d %H:%M}")
    return found


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("hourly", utc(2025, 1, 15, 10, 20), ["01-15 11:00", "01-15 12:00", "01-15 13:00"]),
        ("hourly", utc(2025, 1, 15, 11), ["01-15 12:00", "01-15 13:00", "01-15 14:00"]),
        ("daily 3:00", utc(2025, 1, 15, 2, 59), ["01-15 03:00", "01-16 03:00", "01-17 03:00"]),
        ("daily 23:59", utc(2025, 1, 15, 23, 59), ["01-16 23:59", "01-17 23:59", "01-18 23:59"]),
        # Wednesday the 15th; Monday the 20th
        ("weekly mon 03:00", utc(2025, 1, 15), ["01-20 03:00", "01-27 03:00", "02-03 03:00"]),
        (
            "weekly sunday 00:00",
            utc(2025, 1, 18, 12),
            ["01-19 00:00", "01-26 00:00", "02-02 00:00"],
        ),
        ('"*/15 9-17 * * 1-5"', utc(2025, 1, 17, 17, 50), ["01-20 09:00", "01-20 09:15"]),
        ("cron 0 3 1 * *", utc(2025, 1, 1, 3), ["02-01 03:00", "03-01 03:00", "04-01 03:00"]),
    ],
)
def test_the_next_runs_of_each_form_in_utc(text: str, after: datetime, expected: list[str]) -> None:
    assert runs(parse_when(text), after, count=len(expected)) == expected


def test_every_runs_on_the_anchors_lattice_strictly_after() -> None:
    every = parse_when("every 6h")
    assert every.next_after(ANCHOR, UTC, ANCHOR) == utc(2025, 1, 1, 6)
    assert every.next_after(utc(2025, 1, 1, 5, 59, 59), UTC, ANCHOR) == utc(2025, 1, 1, 6)
    assert every.next_after(utc(2025, 1, 3, 13), UTC, ANCHOR) == utc(2025, 1, 3, 18)
    # before the anchor the lattice goes on backwards: the anchor itself comes next
    assert every.next_after(utc(2024, 12, 31, 23), UTC, ANCHOR) == ANCHOR
    # elapsed time, whatever the zone: 90 minutes stay 90 minutes over the clock change
    ninety = parse_when("every 90m")
    start = datetime(2025, 3, 30, 2, 30, tzinfo=TALLINN)  # 00:30 UTC, half an hour before
    assert ninety.next_after(start, TALLINN, start) == utc(2025, 3, 30, 2)
    assert ninety.next_after(start, TALLINN, start).tzinfo is UTC
    assert ninety.next_after(utc(2025, 3, 30, 2), TALLINN, start) == utc(2025, 3, 30, 3, 30)


def test_a_daily_run_at_a_time_the_spring_change_skips_comes_when_the_clock_jumps() -> None:
    # Tallinn, 30 March 2025: 03:00 EET does not exist, it is 04:00 EEST (01:00 UTC)
    daily = parse_when("daily 03:00")
    assert runs(daily, utc(2025, 3, 28, 12), TALLINN, 4) == [
        "03-29 01:00",  # 03:00 EET
        "03-30 01:00",  # 04:00 EEST, when the clock jumps
        "03-31 00:00",  # 03:00 EEST
        "04-01 00:00",
    ]


def test_a_daily_run_in_the_hour_the_autumn_change_repeats_runs_once() -> None:
    # Tallinn, 26 October 2025: 03:00-04:00 is lived twice; croniter alone would run twice
    daily = parse_when("daily 03:00")
    assert runs(daily, utc(2025, 10, 24, 12), TALLINN, 3) == [
        "10-25 00:00",  # 03:00 EEST
        "10-26 00:00",  # 03:00 EEST, the first pass
        "10-27 01:00",  # 03:00 EET: no second run at 01:00 UTC on the 26th
    ]
    between = daily.next_after(utc(2025, 10, 26, 0, 30), TALLINN, ANCHOR)
    assert between == utc(2025, 10, 27, 1)


def test_an_hourly_schedule_runs_every_hour_through_both_changes() -> None:
    hourly = parse_when("hourly")
    assert runs(hourly, utc(2025, 10, 25, 23, 30), TALLINN, 4) == [
        "10-26 00:00",  # 03:00 EEST
        "10-26 01:00",  # 03:00 EET, the hour again: an hour later all the same
        "10-26 02:00",
        "10-26 03:00",
    ]
    assert runs(hourly, utc(2025, 3, 29, 23, 30), TALLINN, 3) == [
        "03-30 00:00",  # 02:00 EET
        "03-30 01:00",  # 04:00 EEST
        "03-30 02:00",
    ]


def test_new_york_local_times_follow_its_offset() -> None:
    daily = parse_when("daily 03:00")
    # 9 March 2025: EST (UTC-5) to EDT (UTC-4)
    assert runs(daily, utc(2025, 3, 7, 12), NEW_YORK, 3) == [
        "03-08 08:00",
        "03-09 07:00",
        "03-10 07:00",
    ]
    # 02:30 does not exist on the 9th: it runs at 03:00 EDT
    half_past_two = parse_when("daily 02:30")
    assert runs(half_past_two, utc(2025, 3, 8, 12), NEW_YORK, 2) == ["03-09 07:00", "03-10 06:30"]
    # 2 November 2025: 01:00-02:00 is lived twice
    one = parse_when("daily 01:30")
    assert runs(one, utc(2025, 11, 1, 12), NEW_YORK, 2) == ["11-02 05:30", "11-03 06:30"]


def test_next_after_wants_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_when("hourly").next_after(datetime(2025, 1, 1), UTC, ANCHOR)


@pytest.mark.parametrize(
    ("text", "gap"),
    [
        ("hourly", timedelta(hours=1)),
        ("every 90m", timedelta(minutes=90)),
        ("every 2d", timedelta(days=2)),
        ('"*/5 * * * *"', timedelta(minutes=5)),
        ('"0 3 * * *"', timedelta(days=1)),
        ('"0 3,4 * * *"', timedelta(hours=1)),
        ('"0 3 * * 1,2"', timedelta(days=1)),
        ("weekly mon 03:00", timedelta(days=7)),
        ('"0 0 1 1 *"', timedelta(days=365)),  # one run a year: two runs all the same
    ],
)
def test_the_shortest_gap_between_two_runs(text: str, gap: timedelta) -> None:
    assert parse_when(text).shortest_gap(UTC, ANCHOR) == gap


def test_the_shortest_gap_of_a_daily_run_is_the_spring_night_not_a_repeated_hour() -> None:
    daily = parse_when("daily 03:00")
    assert daily.shortest_gap(TALLINN, ANCHOR) == timedelta(hours=23)
    assert daily.shortest_gap(NEW_YORK, ANCHOR) == timedelta(hours=23)
    assert parse_when("daily 03:00").shortest_gap(TALLINN, utc(2025, 4, 1)) == timedelta(hours=23)


@pytest.mark.parametrize(
    ("typed", "text"),
    [
        ("hourly", "hourly"),
        ("HOURLY", "hourly"),
        ("daily 3:00", "daily 03:00"),
        ("Daily 23:59", "daily 23:59"),
        ("weekly Monday 7:05", "weekly mon 07:05"),
        ("weekly sun 00:00", "weekly sun 00:00"),
        ("every 6h", "every 6h"),
        ("every 6 hours", "every 6h"),
        ("every 090 min", "every 90m"),
        ("every 1d", "every 1d"),
        ("every 366 days", "every 366d"),
        ("every 30s", "every 30s"),
        ('"0 3 * * *"', "cron 0 3 * * *"),
        ("“0  3 * * 1-5”", "cron 0 3 * * 1-5"),
        ("‘*/10 * * * *’", "cron */10 * * * *"),
        ("'0 3 * * mon'", "cron 0 3 * * mon"),
        ('cron "0 3 L * *"', "cron 0 3 L * *"),
        ("cron 0 3 * * 5#2", "cron 0 3 * * 5#2"),
    ],
)
def test_the_canonical_text_and_back(typed: str, text: str) -> None:
    when = parse_when(typed)
    assert when.text == text
    assert from_text(when.text) == when


def test_the_stored_forms_of_each_kind() -> None:
    assert from_text("hourly") == When("hourly", cron="0 * * * *")
    assert from_text("daily 03:00") == When("daily 03:00", cron="0 3 * * *")
    assert from_text("weekly mon 03:30") == When("weekly mon 03:30", cron="30 3 * * 1")
    assert from_text("weekly sun 03:30") == When("weekly sun 03:30", cron="30 3 * * 0")
    assert from_text("every 6h") == When("every 6h", every=21_600)
    assert from_text("cron 0 3 * * *") == When("cron 0 3 * * *", cron="0 3 * * *")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("daily 3:00", "'daily 3:00' is not a schedule's canonical text ('daily 03:00' is)"),
        ("every 6 hours", "('every 6h' is)"),
        ('"0 3 * * *"', "('cron 0 3 * * *' is)"),
        ("nightly", "“nightly” is not a timing"),
    ],
)
def test_from_text_takes_only_canonical_texts(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked below
        from_text(text)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("text", "word", "problem"),
    [
        (
            "daily 24:00",
            "24:00",
            "is not a time: expected HH:MM from 00:00 to 23:59 after “daily”.",
        ),
        ("daily 3:60", "3:60", "is not a time"),
        ("daily 3", "3", "is not a time"),
        ("daily", None, "The time is missing: expected HH:MM from 00:00 to 23:59 after “daily”."),
        ("weekly mo 03:00", "mo", "is not a day: expected mon, tue, wed, thu, fri, sat or sun"),
        ("every 0m", "0m", "is not an interval: expected at least 1 after “every”."),
        ("every 367d", "367d", "is too long an interval: expected at most 366 days."),
        ("every 1.5h", "1.5h", "is not an interval: expected a number and a unit (s, m, h or d)"),
        ('"0 3 * * * *"', "0 3 * * * *", "is not a cron expression: expected five fields"),
        ('"0 3 * *"', "0 3 * *", "it has 4."),
        ('"@reboot"', "@reboot", "it has 1."),
        ('"0 24 * * *"', "0 24 * * *", 'as in "0 3 * * *".'),
        ('"R 3 * * *"', "R 3 * * *", "random (R) and hashed (H) values are not supported."),
        ('"0 0 30 2 *"', "0 0 30 2 *", "never runs"),
        ("daily 03:00 now", "now", "is one word too many: “daily” takes only a time (HH:MM)."),
        ("sometimes", "sometimes", "is not a timing: expected “hourly”, “daily HH:MM”"),
        ("weakly", "weakly", "is not a timing. Did you mean “weekly <day> HH:MM”?"),
    ],
)
def test_what_parse_when_refuses(text: str, word: str | None, problem: str) -> None:
    with pytest.raises(BadWhen) as caught:
        parse_when(text)
    assert caught.value.word == word
    assert problem in caught.value.problem
    assert str(caught.value).endswith(caught.value.problem)


def test_words_keep_a_quoted_stretch_whole_and_straighten_its_quotes() -> None:
    assert words("12 “0 3 * * *”  keep 3") == ["12", '"0 3 * * *"', "keep", "3"]
    assert words("‘*/5 * * * *’ x") == ["'*/5 * * * *'", "x"]
    with pytest.raises(BadWhen, match="The quote is not closed"):
        words('12 "0 3 * * * keep 3')


def test_keep_leaves_one_place_free() -> None:
    check_keep(Kind.SNAPSHOT, 1)
    check_keep(Kind.SNAPSHOT, 4)
    check_keep(Kind.BACKUP, 9)
    with pytest.raises(ValueError, match="A snapshot schedule keeps 1 to 4 snapshots"):
        check_keep(Kind.SNAPSHOT, 5)
    with pytest.raises(ValueError, match="A backup schedule keeps 1 to 9 manual backups"):
        check_keep(Kind.BACKUP, 10)
    with pytest.raises(ValueError, match="1 to 4"):
        check_keep(Kind.SNAPSHOT, 0)
