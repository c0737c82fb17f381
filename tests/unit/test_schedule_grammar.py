"""The schedule commands: `schedule`, `schedules`, `unschedule` and `/backup status`."""

import pytest

from bot.domain.errors import UsageError
from bot.domain.model import Kind
from bot.domain.operations import AddSchedule, Intent, ListSchedules, RemoveSchedule, ShowStatus
from bot.domain.schedules import When
from bot.slack.parsing import GRAMMAR, parse, summary, usage

S, B = Kind.SNAPSHOT, Kind.BACKUP
DAILY = When("daily 03:00", cron="0 3 * * *")
CRON = When("cron 0 3 * * *", cron="0 3 * * *")


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (S, "schedule 12 hourly keep 3", AddSchedule(S, 12, When("hourly", cron="0 * * * *"), 3)),
        (S, "schedule 12 daily 03:00 keep 4", AddSchedule(S, 12, DAILY, 4)),
        (B, "SCHEDULE 12   Daily 3:00   KEEP 9", AddSchedule(B, 12, DAILY, 9)),
        (
            B,
            "schedule 12 weekly fri 23:30 keep 1",
            AddSchedule(B, 12, When("weekly fri 23:30", cron="30 23 * * 5"), 1),
        ),
        (S, "schedule 12 every 6h keep 2", AddSchedule(S, 12, When("every 6h", every=21_600), 2)),
        (S, "schedule 12 every 90m keep 2", AddSchedule(S, 12, When("every 90m", every=5400), 2)),
        (
            S,
            "schedule 12 every 6 hours keep 2",
            AddSchedule(S, 12, When("every 6h", every=21_600), 2),
        ),
        (S, 'schedule 12 "0 3 * * *" keep 2', AddSchedule(S, 12, CRON, 2)),
        (S, "schedule 12 “0 3 * * *” keep 2", AddSchedule(S, 12, CRON, 2)),  # Slack's smart quotes
        (S, "schedule 12 ‘0 3 * * *’ keep 2", AddSchedule(S, 12, CRON, 2)),
        (S, "schedule 12 '0 3 * * *' keep 2", AddSchedule(S, 12, CRON, 2)),
        (S, 'schedule 12 cron "0 3 * * *" keep 2', AddSchedule(S, 12, CRON, 2)),
        (
            S,
            "schedule 12 cron 0 3 * * * keep 2",
            AddSchedule(S, 12, CRON, 2),
        ),  # as `schedules` shows
        (S, "schedules", ListSchedules(S, None)),
        (B, "schedules 12", ListSchedules(B, 12)),
        (S, "unschedule 3", RemoveSchedule(S, 3)),
        (B, "unschedule #3", RemoveSchedule(B, 3)),
        (B, "status", ShowStatus(None)),
        (B, "Status 12", ShowStatus(12)),
    ],
)
def test_schedule_texts_become_intents(kind: Kind, text: str, expected: Intent) -> None:
    assert parse(kind, text) == expected


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            S,
            "schedule",
            "The server id is missing: expected a server id (a number) after “schedule”.",
        ),
        (
            S,
            "schedule daily 03:00 keep 3",
            "“daily” is not a server id: expected a server id (a number) after “schedule”.",
        ),
        (S, "schedule 12", "The timing is missing after the server id: expected “hourly”, "),
        (S, "schedule 12 keep 3", "The timing is missing after the server id"),
        (
            S,
            "schedule 12 daily 03:00",
            "The number to keep is missing: expected “keep <N>” at the end, N from 1 to 4.",
        ),
        (
            B,
            "schedule 12 daily 03:00 3",
            "“3” is not “keep”: expected “keep <N>” at the end, N from 1 to 9 "
            "(after “daily 03:00”).",
        ),
        (S, "schedule 12 every 6h kep 3", "“kep” is not “keep”: expected “keep <N>” at the end"),
        (
            S,
            "schedule 12 daily 03:00 keep",
            "The number to keep is missing: expected a whole number from 1 to 4 after “keep”.",
        ),
        (
            S,
            "schedule 12 daily 03:00 keep 5",
            "“5” is out of range for “keep”. A snapshot schedule keeps 1 to 4 snapshots: "
            "VPS.org holds 5 per server, and one stays free for a person or a safety snapshot.",
        ),
        (S, "schedule 12 daily 03:00 keep 0", "“0” is out of range for “keep”. A snapshot"),
        (
            B,
            "schedule 12 daily 03:00 keep 10",
            "“10” is out of range for “keep”. A backup schedule keeps 1 to 9 manual backups: "
            "VPS.org holds 10 per server, and one stays free for a person.",
        ),
        (
            S,
            "schedule 12 daily 03:00 keep x",
            "“x” is not a number to keep: expected a whole number from 1 to 4 after “keep”.",
        ),
        (
            S,
            "schedule 12 daily 03:00 keep 3 please",
            "“please” is one word too many: expected nothing after “keep 3”.",
        ),
        (
            S,
            "schedule 12 nightly keep 3",
            "“nightly” is not a timing: expected “hourly”, “daily HH:MM”, “weekly <day> HH:MM”, "
            '“every <N>m|h|d” or a cron expression in quotes, as in "0 3 * * *".',
        ),
        (
            S,
            "schedule 12 dayly 03:00 keep 3",
            "“dayly” is not a timing. Did you mean “daily HH:MM”?",
        ),
        (S, "schedule 12 6h keep 3", "“6h” is not a timing. Did you mean “every 6h”?"),
        (
            S,
            "schedule 12 03:00 keep 3",
            "“03:00” is not a timing: expected “daily 03:00” or “weekly <day> 03:00”.",
        ),
        (
            S,
            "schedule 12 0 3 * * * keep 3",
            '“0” is not a timing: a cron expression goes in quotes, as in "0 3 * * *".',
        ),
        (
            S,
            "schedule 12 daily 25:00 keep 3",
            "“25:00” is not a time: expected HH:MM from 00:00 to 23:59 after “daily”.",
        ),
        (S, "schedule 12 daily 25:00", "“25:00” is not a time"),  # the timing first, then keep
        (
            S,
            "schedule 12 weekly funday 03:00 keep 3",
            "“funday” is not a day: expected mon, tue, wed, thu, fri, sat or sun after “weekly”.",
        ),
        (
            S,
            "schedule 12 weekly mon keep 3",
            "The time is missing: expected HH:MM from 00:00 to 23:59 after the day.",
        ),
        (
            S,
            "schedule 12 hourly 03:00 keep 3",
            "“03:00” is one word too many: “hourly” runs at minute 0 of every hour",
        ),
        (
            S,
            "schedule 12 every 0h keep 3",
            "“0h” is not an interval: expected at least 1 after “every”.",
        ),
        (
            S,
            "schedule 12 every 400d keep 3",
            "“400d” is too long an interval: expected at most 366 days.",
        ),
        (
            S,
            'schedule 12 "0 3 * * * keep 3',
            "The quote is not closed: expected a cron expression between two quotes, "
            'as in "0 3 * * *".',
        ),
        (
            S,
            "schedule 12 “0 3 * * * keep 3",
            "The quote is not closed",
        ),
        (
            S,
            'schedule 12 "0 0 3 * * *" keep 3',
            "“0 0 3 * * *” is not a cron expression: expected five fields "
            "(minute hour day month weekday), it has 6.",
        ),
        (S, 'schedule 12 "@reboot" keep 3', "“@reboot” is not a cron expression"),
        (S, 'schedule 12 "0 0 31 2 *" keep 3', "“0 0 31 2 *” never runs"),
        (
            S,
            'schedule 12 "0 3 * * *" daily keep 3',
            "“daily” is one word too many: the cron expression is all between the quotes.",
        ),
        (
            S,
            "schedules x",
            "“x” is not a server id: expected a server id (a number), or nothing for every server.",
        ),
        (B, "schedules 1 2", "“2” is one word too many: “schedules” takes only a server id."),
        (
            S,
            "unschedule",
            "The schedule id is missing: expected a schedule id (a number, as in “#3”) "
            "after “unschedule”.",
        ),
        (
            B,
            "unschedule #x",
            "“#x” is not a schedule id: expected a schedule id (a number, as in “#3”) "
            "after “unschedule”.",
        ),
        (B, "unschedule #0", "“#0” is not a schedule id: ids are 1 to 9999999999."),
        (
            B,
            "unschedule 3 4",
            "“4” is one word too many: “unschedule” takes only the schedule id.",
        ),
        (B, "status abc", "“abc” is not a server id: expected a server id (a number)"),
        (B, "status 1 2", "“2” is one word too many: “status” takes only a server id."),
    ],
)
def test_a_schedule_usage_error_names_the_word_and_shows_one_usage(
    kind: Kind, text: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, text)
    assert message in caught.value.message
    assert caught.value.usage == usage(kind, text.split()[0])
    assert caught.value.usage.count(f"`/{kind.value} ") == 1


@pytest.mark.parametrize("keep", [1, 2, 3, 4])
def test_a_snapshot_schedule_keeps_one_to_four(keep: int) -> None:
    assert parse(S, f"schedule 1 hourly keep {keep}") == AddSchedule(
        S, 1, When("hourly", cron="0 * * * *"), keep
    )


def test_a_backup_schedule_keeps_up_to_nine_and_not_ten() -> None:
    assert parse(B, "schedule 1 hourly keep 9").keep == 9  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="1 to 9"):
        parse(B, "schedule 1 hourly keep 10")
    with pytest.raises(UsageError, match="1 to 4"):
        parse(S, "schedule 1 hourly keep 5")


@pytest.mark.parametrize("word", ["status", "STATUS", "health"])
def test_snapshot_status_points_to_backup_status(word: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(S, f"{word} 12")
    assert caught.value.message == (
        f"“{word}” is not a /snapshot subcommand: the health of scheduled snapshots and backups "
        "is “/backup status”."
    )
    assert caught.value.usage == summary(S)


@pytest.mark.parametrize(
    ("kind", "word", "meant"),
    [
        (S, "cron", "schedule"),
        (B, "schedul", "schedule"),
        (S, "crons", "schedules"),
        (B, "unsched", "unschedule"),
        (S, "stop", "unschedule"),
        (B, "health", "status"),
        (B, "stauts", "status"),
    ],
)
def test_schedule_words_are_suggested(kind: Kind, word: str, meant: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, f"{word} 12")
    assert caught.value.message == (
        f"“{word}” is not a /{kind.value} subcommand. Did you mean “{meant}”?"
    )
    assert caught.value.usage == usage(kind, meant)


def test_help_lists_the_schedule_subcommands() -> None:
    forms = {kind: [line.split("`")[1] for line in usage(kind).splitlines()] for kind in Kind}
    assert forms[S] == [
        "/snapshot list [server_id]",
        "/snapshot create &lt;server_id&gt; &lt;name&gt; [description…]",
        "/snapshot restore &lt;snapshot_id&gt; [reason…]",
        "/snapshot delete &lt;snapshot_id&gt;",
        "/snapshot schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;",
        "/snapshot schedules [server_id]",
        "/snapshot unschedule &lt;schedule_id&gt;",
        "/snapshot help",
    ]
    assert forms[B][4:] == [
        "/backup schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;",
        "/backup schedules [server_id]",
        "/backup unschedule &lt;schedule_id&gt;",
        "/backup status [server_id]",
        "/backup help",
    ]
    assert usage(S, "schedule") == (
        "`/snapshot schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;`: take snapshots on a "
        "schedule, keeping the newest N it took, 1-4 (one of VPS.org's 5 places stays free); "
        "when: `hourly`, `daily 03:00`, `weekly mon 03:00`, `every 6h`, or a cron expression in "
        'quotes as in `"0 3 * * *"`; times in the bot\'s time zone'
    )
    assert "keeping the newest N it took, 1-9 (one of VPS.org's 10 places" in usage(B, "schedule")
    assert "status" not in GRAMMAR[S]
