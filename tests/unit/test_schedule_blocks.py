"""Schedules and backup health on Slack: the channel's note when a schedule is added or removed,
`/snapshot schedules`, a scheduled run's card through its life, `/backup status` for one server,
twenty and two hundred, and the alert for each change of state. Every message is valid Block
Kit within Slack's limits, and outside words (names, VPS.org's errors) are escaped."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import (
    Action,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    Schedule,
    ServerRef,
    Snapshot,
)
from bot.domain.outcomes import Asked, Failure, Outcome, Why
from bot.services.health import Report, ServerHealth, alert_payload, judge
from bot.services.schedules import Listed
from bot.slack import blocks
from tests.unit.test_block_kit import assert_valid

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
TALLINN = ZoneInfo("Europe/Tallinn")  # UTC+2 in December
WEB = ServerRef(123, "web-01")
HOSTILE = "<!channel> *bold* `code` _it_ & <@U1> <https://x|y>"
EVIL = ServerRef(666, HOSTILE)
DAY = timedelta(days=1)
STALE_AFTER = timedelta(hours=24)
HEAD = ":calendar: Scheduled snapshot of *web-01* (`123`) — schedule #3 (daily 03:00, keeps 3)"


def valid(message: blocks.Message) -> blocks.Message:
    """Slack takes it (slack_sdk's models, the fake Slack's check) and it keeps to Slack's
    limits: 50 blocks, 3,000 characters a section, 10 elements a context."""
    assert_valid(message)
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    assert len(message.text) <= 3000
    return message


def everything(message: blocks.Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


def texts(message: blocks.Message) -> list[str]:
    """Each block's text: a section's, or a context's first element's."""
    found = []
    for block in message.blocks:
        if block["type"] == "section":
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found.append(block["elements"][0]["text"])
    return found


def escaped(message: blocks.Message, tamed: blocks.Message) -> None:
    """The hostile name is shown as text: no live mention or link, no bold or code span it
    opened (as many backticks as with the name without its backticks)."""
    seen = everything(message)
    for live in ("<!channel>", "<https://x|y>", "<@U1> <"):
        assert live not in seen
    assert "&lt;!channel&gt;" in seen
    assert seen.count("`") == everything(tamed).count("`")


def schedule(**changes: Any) -> Schedule:
    base = Schedule(
        id=3,
        kind=Kind.SNAPSHOT,
        server=WEB,
        channel_id="C1",
        created_by="U1",
        when="daily 03:00",
        keep=3,
        created_at=NOW,
        next_run_at=datetime(2026, 12, 5, 1, 0, tzinfo=UTC),  # 03:00 in Tallinn
    )
    return replace(base, **changes)


BASE_RUN = OperationRequest(
    id=50,
    kind=Kind.SNAPSHOT,
    action=Action.CREATE,
    status=Status.EXECUTING,
    requester_id="U1",
    channel_id="C1",
    server=WEB,
    target_id=None,
    target_name="auto-3-20261205-0300",
    reason="",
    created_at=NOW - timedelta(hours=2),
    updated_at=NOW,
    message_ts="1700000000.000001",
    asked=Asked(
        name="auto-3-20261205-0300",
        description="Scheduled snapshot by vpsbot, schedule #3, run 20261205-0300",
        known_ids=(700, 701),
        schedule_id=3,
        schedule_when="daily 03:00",
        schedule_keep=3,
    ),
)


def run(status: Status, target_id: int | None = 901, **outcome: Any) -> OperationRequest:
    return replace(BASE_RUN, status=status, target_id=target_id, outcome=Outcome(**outcome))


def skipped(**failure: Any) -> OperationRequest:
    values: dict[str, Any] = {"detail": "before-upgrade", "count": 5, **failure}
    return run(Status.FAILED, None, failure=Failure(Why.SCHEDULE_SKIPPED, **values))


def card(request: OperationRequest) -> str:
    return texts(valid(blocks.request_message(request, NOW)))[0]


# -- a schedule added, removed ------------------------------------------------------------------


def test_an_added_schedule_tells_the_channel_everything_about_it() -> None:
    message = valid(blocks.schedule_added(schedule(), schedule().next_run_at, TALLINN))
    assert message.public
    assert texts(message) == [
        ":calendar: <@U1> scheduled snapshots of *web-01* (`123`): daily 03:00 Europe/Tallinn "
        "— schedule *#3*.\n"
        "*Next run:* Sat 2026-12-05 03:00 Europe/Tallinn (in 3 hours).\n"
        "It keeps its newest 3 snapshots; older ones it made are deleted; it never deletes "
        "anything it did not make. Each snapshot it takes is named `auto-3-YYYYMMDD-HHMM` (UTC).\n"
        "Stop it with `/snapshot unschedule 3` (what it made is kept).",
        "`/snapshot schedules` lists the snapshot schedules · times in Europe/Tallinn",
    ]
    assert message.text == (
        ":calendar: <@U1> scheduled snapshots of *web-01* (`123`): daily 03:00 Europe/Tallinn "
        "— schedule *#3*."
    )


def test_an_added_backup_schedule_with_a_cron_keeps_its_stars_in_a_code_span() -> None:
    backups = schedule(kind=Kind.BACKUP, when="cron 0 3 * * *", keep=1, id=4)
    text = texts(valid(blocks.schedule_added(backups, backups.next_run_at, UTC)))[0]
    assert text.startswith(
        ":calendar: <@U1> scheduled manual backups of *web-01* (`123`): `cron 0 3 * * *` UTC — "
        "schedule *#4*.\n*Next run:* Sat 2026-12-05 01:00 UTC (in 3 hours).\n"
        "It keeps its newest manual backup; older ones it made are deleted; it never deletes "
        "anything it did not make. Each manual backup it takes is described “Scheduled backup "
        "by vpsbot, schedule #4, run YYYYMMDD-HHMM” (UTC)."
    )
    assert text.endswith("Stop it with `/backup unschedule 4` (what it made is kept).")


@pytest.mark.parametrize(
    ("kind", "kept", "said"),
    [
        (
            Kind.SNAPSHOT,
            3,
            "the 3 snapshots it made are kept (delete them with "
            "`/snapshot delete &lt;snapshot_id&gt;`).",
        ),
        (
            Kind.SNAPSHOT,
            1,
            "the snapshot it made is kept (delete it with `/snapshot delete &lt;snapshot_id&gt;`).",
        ),
        (Kind.SNAPSHOT, 0, "none of the snapshots it made is left to keep."),
        (
            Kind.BACKUP,
            2,
            "the 2 manual backups it made are kept (delete them with "
            "`/backup delete &lt;backup_id&gt;`).",
        ),
    ],
)
def test_an_unscheduled_schedule_says_what_it_made_is_kept(
    kind: Kind, kept: int, said: str
) -> None:
    message = valid(blocks.schedule_removed(schedule(kind=kind), "U2", kept))
    assert message.public
    noun = "snapshots" if kind is Kind.SNAPSHOT else "manual backups"
    assert texts(message)[0] == (
        f":stop_button: Schedule *#3* ({noun} of *web-01* (`123`), daily 03:00) was unscheduled "
        f"by <@U2>; {said}"
    )
    manual = " manual" if kind is Kind.BACKUP else ""
    assert texts(message)[1] == f"`/{kind.value} list 123{manual}` lists what the server holds"


def test_a_hostile_server_name_is_escaped_when_a_schedule_is_added_or_removed() -> None:
    evil, tame = (
        schedule(server=EVIL),
        schedule(server=replace(EVIL, name=HOSTILE.replace("`", "'"))),
    )
    escaped(
        valid(blocks.schedule_added(evil, evil.next_run_at, TALLINN)),
        blocks.schedule_added(tame, tame.next_run_at, TALLINN),
    )
    escaped(valid(blocks.schedule_removed(evil, "U2", 2)), blocks.schedule_removed(tame, "U2", 2))


# -- /snapshot schedules --------------------------------------------------------------------------


def test_the_list_shows_each_schedule_with_its_next_and_last_run() -> None:
    listed = [
        Listed(schedule(), run(Status.SUCCEEDED, size_mb=512)),
        Listed(schedule(id=4, when="every 6h", keep=2), skipped()),
        Listed(
            schedule(id=5, created_by="U5"),
            run(Status.FAILED, None, failure=Failure(Why.API_REFUSED, "Quota exceeded")),
        ),
        Listed(schedule(id=6, next_run_at=NOW - timedelta(minutes=1)), run(Status.RUNNING)),
        Listed(schedule(id=7, server=ServerRef(9, "")), None),
    ]
    message = valid(blocks.schedules_list(Kind.SNAPSHOT, listed, NOW, TALLINN, None))
    assert not message.public
    assert message.text == "Snapshot schedules, all servers: 5"
    assert texts(message) == [
        ":calendar: *Snapshot schedules*, all servers: 5",
        "*#3* · *web-01* (`123`) · daily 03:00 · keeps 3\n"
        "Next run: Sat 2026-12-05 03:00 (in 3 hours) · last run: :white_check_mark: 2 "
        "hours ago, `auto-3-20261205-0300` · by <@U1>",
        "*#4* · *web-01* (`123`) · every 6h · keeps 2\n"
        "Next run: Sat 2026-12-05 03:00 (in 3 hours) · last run: :fast_forward: 2 hours "
        "ago, skipped: web-01 already has 5 snapshots (VPS.org allows 5) and the oldest, "
        "“before-upgrade”, is not this schedule's to delete · by <@U1>",
        "*#5* · *web-01* (`123`) · daily 03:00 · keeps 3\n"
        "Next run: Sat 2026-12-05 03:00 (in 3 hours) · last run: :x: 2 hours ago, "
        "failed: Quota exceeded · by <@U5>",
        "*#6* · *web-01* (`123`) · daily 03:00 · keeps 3\n"
        "Next run: Fri 2026-12-04 23:59 (due now) · last run: :hourglass_flowing_sand: 2 "
        "hours ago, in progress, `auto-3-20261205-0300` · by <@U1>",
        "*#7* · server `9` · daily 03:00 · keeps 3\n"
        "Next run: Sat 2026-12-05 03:00 (in 3 hours) · last run: none yet · by <@U1>",
        "Times in Europe/Tallinn · `/snapshot unschedule &lt;id&gt;` stops one; what it made is "
        "kept",
    ]


def test_the_list_of_one_server_names_it_and_an_empty_one_says_how_to_add_one() -> None:
    one = valid(
        blocks.schedules_list(
            Kind.BACKUP, [Listed(schedule(kind=Kind.BACKUP), None)], NOW, UTC, 123
        )
    )
    assert texts(one)[0] == ":calendar: *Backup schedules* of *web-01* (`123`): 1"
    assert one.text == "Backup schedules of server 123: 1"
    empty = valid(blocks.schedules_list(Kind.BACKUP, [], NOW, UTC, 123))
    assert texts(empty) == [
        "No backup schedules of server `123`. Add one with "
        "`/backup schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;`, e.g. "
        "`/backup schedule 123 daily 03:00 keep 3` (times in UTC)."
    ]
    everywhere = texts(valid(blocks.schedules_list(Kind.SNAPSHOT, [], NOW, TALLINN, None)))[0]
    assert everywhere.startswith("No snapshot schedules, all servers. Add one with")


def test_a_long_list_is_cut_within_fifty_blocks() -> None:
    listed = [
        Listed(schedule(id=i, server=EVIL), skipped(detail=HOSTILE * 20)) for i in range(1, 61)
    ]
    message = valid(blocks.schedules_list(Kind.SNAPSHOT, listed, NOW, TALLINN, None))
    assert len(message.blocks) == 48
    assert texts(message)[-2].startswith("…and 15 more: #46, #47, #48,")
    assert texts(message)[-2].endswith("#60")
    tame = replace(EVIL, name=HOSTILE.replace("`", "'"))
    tamed = [
        Listed(
            replace(item.schedule, server=tame), skipped(detail=(HOSTILE * 20).replace("`", "'"))
        )
        for item in listed
    ]
    escaped(message, blocks.schedules_list(Kind.SNAPSHOT, tamed, NOW, TALLINN, None))


# -- a scheduled run's card -----------------------------------------------------------------------


def test_a_scheduled_run_is_one_card_from_start_to_end_without_buttons() -> None:
    assert card(run(Status.EXECUTING, None)) == (
        f"{HEAD}\n:hourglass_flowing_sand: Creating `auto-3-20261205-0300`…"
    )
    assert card(run(Status.RUNNING)) == (
        f"{HEAD}\n:hourglass_flowing_sand: Creating `auto-3-20261205-0300` (id `901`): "
        "*in progress*."
    )
    done = run(Status.SUCCEEDED, size_mb=5120, took_seconds=272)
    assert card(done) == (
        f"{HEAD}\n:white_check_mark: `auto-3-20261205-0300` (id `901`) is *complete*: 5.0 GB, "
        "took 4 min 32 s."
    )
    message = blocks.request_message(done, NOW)
    assert texts(message)[1:] == [
        "Snapshot id `901` · `/snapshot restore 901` · `/snapshot delete 901`",
        "request #50 · `/snapshot schedules` lists the schedules · `/snapshot unschedule 3` "
        "stops this one",
    ]
    for status in Status:
        for made in (run(status), skipped()):
            shown = valid(blocks.request_message(replace(made, status=status), NOW))
            assert all(b["type"] != "actions" for b in shown.blocks)
            assert texts(shown)[0].startswith(HEAD)


def test_retention_is_told_on_the_card() -> None:
    pruned = run(
        Status.SUCCEEDED,
        size_mb=5120,
        took_seconds=272,
        pruned_ids=(700, 701),
        pruned_names=("auto-3-20261201-0300", "auto-3-20261202-0300"),
        kept=3,
    )
    assert card(pruned).endswith(
        "\n:recycle: Retention: pruned `auto-3-20261201-0300`, `auto-3-20261202-0300`; the "
        "schedule keeps 3 of its own."
    )
    kept_only = run(Status.SUCCEEDED, kept=2)
    assert card(kept_only).endswith("\n:recycle: Retention: the schedule keeps 2 of its own.")
    refused = run(Status.SUCCEEDED, prune_failed="Snapshot <b>locked</b>")
    assert card(refused).endswith(
        "\n:warning: Retention could not delete an older snapshot the schedule made: "
        "“Snapshot &lt;b&gt;locked&lt;/b&gt;”; it tries again later."
    )
    many = run(Status.SUCCEEDED, pruned_names=tuple(f"auto-3-{i}" for i in range(14)))
    assert card(many).endswith("`auto-3-9` and 4 more.")
    backup = replace(
        run(Status.SUCCEEDED, pruned_ids=(70, 71), pruned_names=("Scheduled…", "Scheduled…")),
        kind=Kind.BACKUP,
    )
    assert card(backup).endswith("\n:recycle: Retention: pruned manual backups `70`, `71`.")


def test_a_skipped_run_says_why_and_what_to_do() -> None:
    assert card(skipped()) == (
        f"{HEAD}\n:fast_forward: *skipped*: *web-01* already has 5 snapshots (VPS.org allows 5) "
        "and the oldest, `before-upgrade`, is not this schedule's to delete. Nothing was "
        "created: delete one of its snapshots (`/snapshot list 123`) to make room for the next "
        "run."
    )
    ours = replace(
        skipped(status="ours"),
        outcome=skipped(status="ours").outcome.but(prune_failed="Snapshot is locked"),
    )
    assert card(ours) == (
        f"{HEAD}\n:fast_forward: *skipped*: *web-01* already has 5 snapshots (VPS.org allows 5) "
        "and the oldest, `before-upgrade`, is this schedule's own but could not be deleted. "
        "Nothing was created; the next run tries again.\n"
        ":warning: Retention could not delete an older snapshot the schedule made: “Snapshot "
        "is locked”; it tries again later."
    )
    backups = replace(skipped(count=10, detail="Pre-deploy"), kind=Kind.BACKUP)
    backups = replace(backups, asked=replace(backups.asked, name=""))
    assert "*web-01* already has 10 manual backups (VPS.org allows 10) and the oldest, " in card(
        backups
    )
    assert "delete one of its manual backups (`/backup list 123 manual`)" in card(backups)
    assert blocks.outcome_message(skipped(), NOW).text == (
        ":fast_forward: skipped: web-01 already has 5 snapshots (VPS.org allows 5) and the "
        "oldest, “before-upgrade”, is not this schedule's to delete"
    )


def test_a_hostile_name_in_a_skipped_run_is_escaped() -> None:
    hostile = replace(skipped(detail=HOSTILE), server=EVIL)
    tame = replace(
        skipped(detail=HOSTILE.replace("`", "'")),
        server=replace(EVIL, name=HOSTILE.replace("`", "'")),
    )
    escaped(valid(blocks.request_message(hostile, NOW)), blocks.request_message(tame, NOW))
    escaped(valid(blocks.outcome_message(hostile, NOW)), blocks.outcome_message(tame, NOW))
    escaped(
        valid(blocks.outcome_message(hostile, NOW, direct=True)),
        blocks.outcome_message(tame, NOW, direct=True),
    )


def test_other_failures_read_as_the_create_card_says_them() -> None:
    refused = run(Status.FAILED, None, failure=Failure(Why.API_REFUSED, "Quota <!here>"))
    assert card(refused) == f"{HEAD}\n:x: `auto-3-20261205-0300` *failed*: Quota &lt;!here&gt;."
    unread = run(Status.FAILED, None, failure=Failure(Why.CHECK_FAILED, "HTTP 502"))
    assert card(unread) == (
        f"{HEAD}\n:x: `auto-3-20261205-0300` *failed*: could not read the server's snapshots "
        "before the run (HTTP 502); nothing was created, the next run tries again."
    )
    unknown = run(Status.NEEDS_ATTENTION, None, failure=Failure(Why.API_UNCONFIRMED, "timeout"))
    assert card(unknown) == (
        f"{HEAD}\n:warning: `auto-3-20261205-0300`: *outcome unknown* (timeout). Check with "
        "`/snapshot list 123`."
    )


def test_a_scheduled_backup_card_names_the_schedule_and_its_description() -> None:
    backup = replace(
        run(Status.EXECUTING, None),
        kind=Kind.BACKUP,
        target_name=BASE_RUN.asked.description,
        asked=replace(BASE_RUN.asked, name="", schedule_when="cron 0 3 * * *", schedule_keep=9),
    )
    message = valid(blocks.request_message(backup, NOW))
    assert texts(message)[:2] == [
        ":calendar: Scheduled manual backup of *web-01* (`123`) — schedule #3 (`cron 0 3 * * *`, "
        "keeps 9)\n:hourglass_flowing_sand: Creating the manual backup…",
        "*Description:* “Scheduled snapshot by vpsbot, schedule #3, run 20261205-0300”",
    ]


def test_what_is_said_of_a_scheduled_run_outside_its_card_is_sensible() -> None:
    done = run(Status.SUCCEEDED, took_seconds=21)
    assert valid(blocks.outcome_message(done, NOW)).text == ":white_check_mark: done in 21 s"
    assert valid(blocks.outcome_message(done, NOW, direct=True)).text == (
        ":white_check_mark: The scheduled snapshot `auto-3-20261205-0300` (id `901`) of *web-01* "
        "(`123`) (schedule #3) is ready (took 21 s) · in <#C1>"
    )
    cardless = valid(blocks.outcome_message(replace(done, message_ts=None), NOW, direct=True))
    assert texts(cardless)[0].startswith(HEAD)
    assert valid(blocks.outcome_message(skipped(), NOW, direct=True)).text.startswith(
        ":fast_forward: The scheduled snapshot `auto-3-20261205-0300` of *web-01* (`123`) "
        "(schedule #3) was skipped: web-01 already has 5 snapshots"
    )


def test_the_skip_reads_plainly_on_a_request_that_is_not_a_scheduled_run() -> None:
    """The failure table covers the code wherever it turns up (an old card, a history)."""
    plain = replace(skipped(), asked=Asked(name="x"))
    assert card(plain) == (
        ":x: <@U1>'s snapshot `auto-3-20261205-0300` of *web-01* (`123`) *failed*: web-01 "
        "already has 5 snapshots (VPS.org allows 5) and the oldest, “before-upgrade”, is not "
        "this schedule's to delete."
    )


# -- /backup status -------------------------------------------------------------------------------


def backup(i: int, server: ServerRef, age: timedelta, **changes: Any) -> Backup:
    values: dict[str, Any] = {
        "id": i,
        "server": server,
        "backup_type": BackupType.AUTOMATIC,
        "status": "completed",
        "size_mb": 1024,
        "created_at": NOW - age,
        "expires_at": None,
        **changes,
    }
    return Backup(**values)


def health(
    server: ServerRef,
    state: str,
    schedules: tuple[Schedule, ...] = (),
    runs: tuple[OperationRequest, ...] = (),
) -> ServerHealth:
    """A server judged ok (backup 3 h old), stale (2 days) or failed (a snapshot failed 1 h ago)."""
    age = timedelta(days=2) if state == "stale" else timedelta(hours=3)
    backups = [backup(server.id * 10, server, age)]
    snapshots = []
    if state == "failed":
        snapshots.append(
            Snapshot(server.id * 10 + 1, server, "nightly", "error", None, NOW - timedelta(hours=1))
        )
    made = judge(server, snapshots, backups, NOW, STALE_AFTER, schedules, runs)
    assert made.state.value == state
    return made


def report(servers: list[ServerHealth], partial: bool = False) -> Report:
    order = {"failed": 0, "stale": 1, "ok": 2}
    ordered = sorted(servers, key=lambda h: (order[h.state.value], h.server.name))
    return Report(tuple(ordered), NOW, STALE_AFTER, partial)


def twenty() -> list[ServerHealth]:
    states = ["failed", "stale", "stale", "stale", *["ok"] * 16]
    return [health(ServerRef(100 + i, f"srv-{i:02}"), state) for i, state in enumerate(states)]


def test_twenty_servers_fit_one_screen_with_the_healthy_ones_in_one_line() -> None:
    message = valid(blocks.status_message(report(twenty()), UTC))
    assert not message.public
    shown = texts(message)
    assert len(message.blocks) == 7
    assert shown[0] == (
        "*Backup health*, 20 servers: :x: 1 failed · :warning: 3 stale · :white_check_mark: 16 ok"
    )
    assert shown[1] == (
        ":x: *srv-00* (`100`) · *failed*\nnewest backup #1000 (automatic), 3 hours ago · "
        "1 failure in 7 days (latest: snapshot #1001 `error`, an hour ago) · snapshots "
        "1/5 · manual backups 0/10"
    )
    assert shown[2] == (
        ":warning: *srv-01* (`101`) · *stale*\nnewest backup #1010 (automatic), 2 days ago · "
        "snapshots 0/5 · manual backups 0/10"
    )
    assert shown[5] == ":white_check_mark: 16 healthy: " + ", ".join(
        f"srv-{i:02}" for i in range(4, 20)
    )
    assert shown[6] == (
        "*Stale*: the newest completed backup is older than 1 day (or there is none). *Failed*: "
        "a backup or snapshot failed within the last 7 days and no backup completed since. "
        "Checked Fri 2026-12-04 22:00 UTC. `/backup status &lt;server_id&gt;` shows one server "
        "in detail."
    )
    assert message.text == "Backup health, 20 servers: 1 failed, 3 stale"


def test_a_failing_schedule_shows_on_its_server() -> None:
    runs = (replace(skipped(), asked=replace(skipped().asked, schedule_id=3)),)
    stale = health(WEB, "stale", (schedule(),), runs)
    shown = texts(valid(blocks.status_message(report([stale]), UTC)))
    assert shown[1].endswith("\nLast runs: schedule #3 skipped")


def test_two_hundred_servers_stay_within_slack_limits() -> None:
    servers = [
        health(ServerRef(1000 + i, f"{HOSTILE} {i}"), ("failed", "stale", "ok", "ok")[i % 4])
        for i in range(200)
    ]
    message = valid(blocks.status_message(report(servers, partial=True), TALLINN))
    shown = texts(message)
    assert len(message.blocks) <= 50
    assert shown[1].startswith(":warning: VPS.org returned partial lists:")
    assert sum(1 for t in shown if t.startswith((":x: *", ":warning: *"))) == 40
    assert shown[-3].startswith("…and 60 more servers stale or failed: `")
    assert shown[-2].startswith(":white_check_mark: 100 healthy: ")
    assert shown[-2].endswith(" more")
    assert "<!channel>" not in everything(message)


def test_one_server_in_detail() -> None:
    snapshots = [
        Snapshot(801, WEB, "before-upgrade", "completed", 5120, NOW - 2 * DAY),
        Snapshot(77, WEB, "nightly", "failed", None, NOW - timedelta(hours=3)),
    ]
    backups = [
        backup(501, WEB, timedelta(days=2)),
        backup(502, WEB, timedelta(days=3), backup_type=BackupType.MANUAL),
    ]
    schedules = (schedule(), schedule(id=4, kind=Kind.BACKUP, when="weekly mon 03:00", keep=2))
    judged = judge(WEB, snapshots, backups, NOW, STALE_AFTER, schedules, (skipped(),))
    message = valid(blocks.status_message(report([judged]), TALLINN, 123))
    assert texts(message) == [
        ":x: *web-01* (`123`) is *failed*: snapshot #77 `failed`, 3 hours ago, and no "
        "backup completed since.",
        "*Newest automatic backup:* #501, 2 days ago · Thu 2026-12-03 00:00 Europe/Tallinn\n"
        "*Newest manual backup:* #502, 3 days ago · Wed 2026-12-02 00:00 Europe/Tallinn\n"
        "*Newest snapshot:* `before-upgrade` #801, 2 days ago · Thu 2026-12-03 00:00 "
        "Europe/Tallinn\n"
        "*Held:* snapshots 2/5 · manual backups 1/10",
        "*Failed within 7 days* (1):\n• snapshot #77 `failed`, 3 hours ago",
        "*Schedules* (2):\n"
        "• *#3* snapshots · daily 03:00 · keeps 3 · last run: :fast_forward: 2 hours ago, "
        "skipped: web-01 already has 5 snapshots (VPS.org allows 5) and the oldest, "
        "“before-upgrade”, is not this schedule's to delete\n"
        "• *#4* manual backups · weekly mon 03:00 · keeps 2 · last run: none yet",
        "*Stale*: the newest completed backup is older than 1 day (or there is none). *Failed*: "
        "a backup or snapshot failed within the last 7 days and no backup completed since. "
        "Checked Sat 2026-12-05 00:00 Europe/Tallinn.",
    ]


def test_a_server_with_nothing_is_stale_and_the_empty_report_says_what_to_do() -> None:
    bare = judge(WEB, [], [], NOW, STALE_AFTER)
    detail = texts(valid(blocks.status_message(report([bare]), UTC, 123)))
    assert detail[0] == ":warning: *web-01* (`123`) is *stale*: it has no completed backup."
    assert detail[-2] == (
        "*Schedules:* none. `/backup schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;` "
        "adds one."
    )
    empty = valid(blocks.status_message(report([], partial=True), UTC))
    assert texts(empty) == [
        ":information_source: Nothing to report: VPS.org lists no backups or snapshots, and "
        "no schedule is set. Schedule backups with "
        "`/backup schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;`.",
        ":warning: VPS.org returned partial lists: some backups or snapshots may be missing "
        "here, so a server may show as stale or without failures when it is not.",
    ]


def test_a_hostile_server_in_the_status_is_escaped() -> None:
    tame = replace(EVIL, name=HOSTILE.replace("`", "'"))
    for server_id in (None, 666):
        message = valid(blocks.status_message(report([health(EVIL, "stale")]), UTC, server_id))
        escaped(message, blocks.status_message(report([health(tame, "stale")]), UTC, server_id))


# -- alerts ---------------------------------------------------------------------------------------


def alert(judged: ServerHealth, previous: str | None) -> str:
    message = valid(blocks.alert_message(alert_payload("C9", judged, previous), NOW))
    return message.text


def test_an_alert_for_each_change() -> None:
    assert alert(health(WEB, "stale"), "ok") == (
        ":warning: *web-01* (`123`) is stale: its newest completed backup is #1230 (automatic), "
        "2 days ago."
    )
    assert alert(judge(WEB, [], [], NOW, STALE_AFTER), None) == (
        ":warning: *web-01* (`123`) is stale: it has no completed backup."
    )
    assert alert(health(WEB, "failed"), "stale") == (
        ":x: *web-01* (`123`): a snapshot (#1231) is `error` (an hour ago), and no backup "
        "completed after it. Its newest completed backup is #1230 (automatic), 3 hours ago."
    )
    assert alert(health(WEB, "ok"), "failed") == (
        ":white_check_mark: *web-01* (`123`) has recovered: newest backup #1230 (automatic), "
        "3 hours ago."
    )
    message = blocks.alert_message(alert_payload("C9", health(WEB, "ok"), "stale"), NOW)
    assert texts(message)[1] == "was stale · `/backup status 123` for details"


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        ({}, ":grey_question: a server: its backup health is now `unknown`."),
        (
            {"state": "stale", "server_id": 5},
            ":warning: server `5` is stale: it has no completed backup.",
        ),
        (
            {"state": "failed", "server_name": "web-01"},
            ":x: *web-01*: a backup or snapshot failed, and no backup completed after it. It has "
            "no completed backup.",
        ),
        (
            {
                "state": "failed",
                "server_id": "<!channel>",
                "server_name": 42,
                "newest_backup": "yesterday",
                "failure": {"id": None, "kind": "<!here>", "created_at": "not a date"},
            },
            ":x: server `&lt;!channel&gt;`: a backup or snapshot is `failed`, and no backup "
            "completed after it. It has no completed backup.",
        ),
        (
            {
                "state": "ok",
                "previous": "stale",
                "server_name": "web-01",
                "newest_backup": {"id": 502, "created_at": "2026-12-04T21:55:00"},
            },
            ":white_check_mark: *web-01* has recovered: newest backup #502, 5 minutes ago.",
        ),
        (
            {"state": "<!channel>", "server_name": HOSTILE},
            ":grey_question: *&lt;!channel&gt; *bold* ˋcodeˋ _it_ &amp; &lt;@U1&gt; "
            "&lt;https://x|y&gt;*: its backup health is now `&lt;!channel&gt;`.",
        ),
    ],
)
def test_a_malformed_alert_is_still_a_sensible_message(payload: dict[str, Any], said: str) -> None:
    message = valid(blocks.alert_message(payload, NOW))
    assert message.text == said
    assert "<!channel>" not in everything(message)
