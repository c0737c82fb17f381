"""Block Kit builders: readable, escaped, and within Slack's limits."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Backup, BackupType, Kind, OperationRequest, ServerRef, Snapshot
from bot.domain.outcomes import Asked, Failure, Outcome, Why
from bot.services.listings import BackupList, SnapshotList
from bot.slack import blocks
from bot.slack.blocks.requests import EMOJI, REPLY
from bot.slack.parsing import usage

NOW = datetime(2025, 1, 18, 12, 0, tzinfo=UTC)
WEB = ServerRef(12345, "web-server-01")


def snapshot(i: int, server: ServerRef = WEB, **kw: object) -> Snapshot:
    values: dict[str, object] = {
        "id": i,
        "server": server,
        "name": f"snap-{i}",
        "status": "completed",
        "size_mb": 5120,
        "created_at": NOW - timedelta(days=3, hours=4),
        "description": "",
    }
    values.update(kw)
    return Snapshot(**values)  # type: ignore[arg-type]


def all_text(message: blocks.Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) + message.text


def test_escape_neutralises_slack_control_sequences() -> None:
    assert blocks.escape("<!channel> & <@U1> <script>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;script&gt;"
    )


def test_sizes_read_like_a_person_wrote_them() -> None:
    assert blocks.size(5120) == "5.0 GB"
    assert blocks.size(512) == "512 MB"
    assert blocks.size(None) == "size not known yet"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0 s"),
        (21, "21 s"),
        (21.4, "21 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (89, "1 min 29 s"),
        (90, "1 min 30 s"),
        (263, "4 min 23 s"),
        (300, "5 min"),
        (600, "10 min"),
        (754, "13 min"),
        (89 * 60, "1 h 29 min"),
        (90 * 60, "1 h 30 min"),
        (2 * 3600 + 5 * 60, "2 h 5 min"),
        (3 * 3600, "3 h"),
        (86400, "1 day"),
        (3 * 86400 + 4 * 3600 + 59, "3 days 4 h"),
        (2 * 86400, "2 days"),
    ],
)
def test_durations_are_precise_and_short(seconds: float, said: str) -> None:
    assert blocks.span(seconds) == said


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(seconds=70), "1 minute ago"),
        (timedelta(minutes=5, seconds=10), "5 minutes ago"),
        (timedelta(hours=1), "an hour ago"),
        (timedelta(hours=3), "3 hours ago"),
        (timedelta(hours=3, minutes=10), "about 3 hours ago"),
        (timedelta(hours=21, minutes=36), "about 22 hours ago"),
        (timedelta(hours=23), "23 hours ago"),
        (timedelta(hours=30), "yesterday"),
        (timedelta(days=1, hours=12), "2 days ago"),
        (timedelta(days=3, hours=4), "3 days ago"),
        (timedelta(days=29), "29 days ago"),
        (timedelta(days=60), "about 2 months ago"),
        (timedelta(days=365), "about a year ago"),
        (timedelta(days=365 + 320), "about 2 years ago"),  # not "1 year 320 days ago"
        (-timedelta(seconds=30), "in less than a minute"),
        (-timedelta(minutes=30), "in 30 minutes"),
        (-timedelta(hours=5, minutes=20), "in about 5 hours"),
        (-timedelta(hours=24), "tomorrow"),
        (-timedelta(days=2), "in 2 days"),
    ],
)
def test_ages_read_naturally(before: timedelta, said: str) -> None:
    assert blocks.ago(NOW - before, NOW) == said


def test_snapshot_list_shows_name_id_status_size_and_age() -> None:
    listing = SnapshotList(WEB, (snapshot(801, description="Before major migration"),))
    message = blocks.snapshot_list(listing, NOW)
    text = all_text(message)
    assert "*web-server-01* (`12345`)" in text
    assert "*snap-801* · id `801` · :white_check_mark: completed" in text
    assert "5.0 GB · taken 3 days ago, <!date^" in text
    assert "_Before major migration_" in text
    assert message.text == "Snapshots of web-server-01 (12345): 1 item"


def test_unknown_status_is_shown_verbatim_and_escaped() -> None:
    message = blocks.snapshot_list(SnapshotList(WEB, (snapshot(1, status="<failed>"),)), NOW)
    assert ":x: status: &lt;failed&gt;" in all_text(message)


def test_backup_list_shows_type_and_expiry() -> None:
    manual = Backup(499, WEB, BackupType.MANUAL, "completed", 4456, NOW - timedelta(days=4), None)
    auto = Backup(
        501,
        WEB,
        BackupType.AUTOMATIC,
        "completed",
        4523,
        NOW - timedelta(days=2),
        NOW + timedelta(days=29),
    )
    text = all_text(blocks.backup_list(BackupList(WEB, None, (auto, manual)), NOW))
    assert "*manual backup* · id `499`" in text
    assert "never expires" in text
    assert "expires in 29 days" in text


def test_text_from_users_and_the_api_is_never_live_mrkdwn() -> None:
    evil = ServerRef(7, "<!channel> <https://evil.example|click>")
    listing = SnapshotList(
        None, (snapshot(1, evil, description="<script>alert(1)</script> <!here>"),)
    )
    text = all_text(blocks.snapshot_list(listing, NOW))
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "<script>" not in text
    assert "<https://evil.example" not in text
    assert "&lt;!channel&gt;" in text


def test_a_huge_listing_stays_within_slack_limits() -> None:
    servers = [ServerRef(i, f"server-{i}" * 20) for i in range(1, 30)]
    items = tuple(
        snapshot(i * 10 + j, servers[i], description="d" * 5000)
        for i in range(len(servers))
        for j in range(5)
    )
    message = blocks.snapshot_list(SnapshotList(None, items, partial=True), NOW)
    assert len(message.blocks) <= 50
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    text = all_text(message)
    assert f"Showing 40 of {len(items)}" in text
    assert "may be incomplete" in text


def test_empty_listing_says_so() -> None:
    text = all_text(blocks.snapshot_list(SnapshotList(WEB, ()), NOW))
    assert "0 items" in text
    assert "No snapshots." in text


def test_help_lists_every_subcommand() -> None:
    message = blocks.help_message(Kind.BACKUP, usage(Kind.BACKUP))
    text = all_text(message)
    for subcommand in ("list", "create", "restore", "delete", "help"):
        assert f"`/backup {subcommand}" in text
    assert "second person's approval" in text


def test_a_snapshot_without_a_name_is_shown_as_unnamed() -> None:
    listing = SnapshotList(WEB, (snapshot(5, name=""), snapshot(6, name="  ")))
    text = all_text(blocks.snapshot_list(listing, NOW))
    assert "_unnamed_ · id `5` · :white_check_mark: completed" in text
    assert "_unnamed_ · id `6`" in text
    assert "**" not in text


def test_backticks_in_names_and_descriptions_cannot_open_or_close_code_spans() -> None:
    b = "\u02cb"  # a look-alike that opens and closes no code span
    odd = ServerRef(7, "web`01")
    listing = SnapshotList(None, (snapshot(1, odd, name="a`b", description="x` `<!here>`"),))
    texts = [s["text"]["text"] for s in blocks.snapshot_list(listing, NOW).blocks[1:]]
    assert texts[0] == f":desktop_computer: *web{b}01* (`7`)"
    assert texts[1].startswith(f"*a{b}b* · id `1` · ")
    assert texts[1].endswith(f"_x{b} {b}&lt;!here&gt;{b}_")
    assert [t.count("`") for t in texts] == [2, 2]  # only the ids' own code spans

    backup = Backup(9, WEB, "we`ird", "completed", 10, NOW, None, "pre`deploy")
    [line] = blocks.backup_list(BackupList(WEB, None, (backup,)), NOW).blocks[1:]
    assert line["text"]["text"].startswith(f"*we{b}ird backup* · id `9`")
    assert line["text"]["text"].count("`") == 2

    # a name VPS.org gave a snapshot, shown in a code span on the delete confirmation
    request = OperationRequest(
        id=3,
        kind=Kind.SNAPSHOT,
        action=Action.DELETE,
        status=Status.PENDING_CONFIRMATION,
        requester_id="U1",
        channel_id="C1",
        server=WEB,
        target_id=801,
        target_name="pre` *gotcha* `mig",
        reason="",
        created_at=NOW,
        updated_at=NOW,
    )
    text = blocks.request_message(request, NOW).blocks[0]["text"]["text"]
    assert f"snapshot `pre{b} *gotcha* {b}mig` (id `801`)" in text


def test_a_server_without_a_name_is_named_by_its_id() -> None:
    from bot.domain.model import ServerRef
    from bot.slack.blocks.text import server_label

    assert server_label(ServerRef(12345, "")) == "server `12345`"
    assert server_label(ServerRef(12345, "web")) == "*web* (`12345`)"


# -- a request's end, said once per place; what a create understood; restore caveats --------


def asked(**values: Any) -> Asked:
    return Asked(**values)


LINK = "https://demo.slack.com/archives/C1/p1700000000000001"


def made(action: Action, status: Status, kind: Kind = Kind.SNAPSHOT, **kw: Any) -> OperationRequest:
    values: dict[str, Any] = {
        "id": 7,
        "kind": kind,
        "action": action,
        "status": status,
        "requester_id": "U1",
        "channel_id": "C1",
        "server": WEB,
        "target_id": 803,
        "target_name": "before-update",
        "reason": "",
        "created_at": NOW,
        "updated_at": NOW,
        "message_ts": "1700000000.000001",
        "asked": Asked(name="before-update", description="Snapshot before update"),
        "outcome": Outcome(size_mb=2048, took_seconds=21),
    }
    values.update(kw)
    return OperationRequest(**values)


def card_of(request: OperationRequest) -> str:
    return all_text(blocks.request_message(request, NOW))


def test_every_status_has_its_short_line() -> None:
    assert set(EMOJI) == set(REPLY) == set(Status)


def test_a_create_card_echoes_the_name_and_description_it_understood() -> None:
    running = made(Action.CREATE, Status.RUNNING, target_id=None)
    assert "*Name:* `before-update` · *Description:* “Snapshot before update”" in card_of(running)
    bare = made(Action.CREATE, Status.RUNNING, asked=Asked(name="x"), target_name="x")
    assert "*Name:* `x` · *Description:* _none_" in card_of(bare)
    backup = made(
        Action.CREATE, Status.RUNNING, Kind.BACKUP, target_name="a <!here>",
        asked=Asked(description="a <!here>"),
    )  # fmt: skip
    assert "*Description:* “a &lt;!here&gt;”" in card_of(backup)
    assert "*Name:*" not in card_of(backup)


def test_a_create_shows_the_commands_for_its_new_object_once_its_id_is_known() -> None:
    assert "restore" not in card_of(made(Action.CREATE, Status.EXECUTING, target_id=None))
    running = card_of(made(Action.CREATE, Status.RUNNING, Kind.BACKUP, target_id=4242))
    assert (
        "Backup id `4242` · `/backup restore 4242` (once it is complete) · `/backup delete 4242`"
    ) in running
    done = card_of(made(Action.CREATE, Status.SUCCEEDED, target_id=803))
    assert "Snapshot id `803` · `/snapshot restore 803` · `/snapshot delete 803`" in done
    assert "took 21 s" in done
    broken = made(
        Action.CREATE,
        Status.FAILED,
        outcome=Outcome(failure=Failure(Why.OBJECT_FAILED, status="failed")),
    )
    assert "Snapshot id `803` · `/snapshot delete 803`" in card_of(broken)
    assert "/snapshot restore" not in card_of(broken)
    gone = made(Action.CREATE, Status.FAILED, outcome=Outcome(failure=Failure(Why.NOT_LISTED)))
    assert "/snapshot" not in card_of(gone)


@pytest.mark.parametrize(
    ("request_", "reply"),
    [
        (made(Action.CREATE, Status.SUCCEEDED), ":white_check_mark: done in 21 s"),
        (
            made(Action.RESTORE, Status.SUCCEEDED, outcome=Outcome(took_seconds=263)),
            ":white_check_mark: done in 4 min 23 s",
        ),
        (
            made(Action.CREATE, Status.FAILED, outcome=Outcome(failure=Failure(Why.NOT_LISTED))),
            ":x: failed: no longer listed by VPS.org",
        ),
        (
            made(
                Action.RESTORE,
                Status.NEEDS_ATTENTION,
                outcome=Outcome(failure=Failure(Why.NEVER_SEEN_RESTORING, status="running")),
            ),
            ":warning: needs attention: VPS.org accepted the restore, but the server was never "
            "seen restoring (it is running)",
        ),
        (
            made(Action.RESTORE, Status.DENIED, outcome=Outcome(decided_by="U2")),
            ":no_entry: denied by <@U2>",
        ),
        (
            made(Action.RESTORE, Status.CANCELLED, outcome=Outcome(decided_by="U1")),
            ":leftwards_arrow_with_hook: cancelled by <@U1>",
        ),
        (
            made(
                Action.RESTORE,
                Status.CANCELLED,
                outcome=Outcome(failure=Failure(Why.CARD_NOT_POSTED, detail="not_in_channel")),
            ),
            ":leftwards_arrow_with_hook: cancelled: Slack refused its card (not_in_channel)",
        ),
    ],
)
def test_the_thread_reply_is_one_short_line(request_: OperationRequest, reply: str) -> None:
    message = blocks.outcome_message(request_, NOW)
    assert message.text == reply
    assert [b["text"]["text"] for b in message.blocks] == [reply]


def test_the_dm_is_one_line_with_a_link_to_the_card() -> None:
    done = made(Action.CREATE, Status.SUCCEEDED)
    message = blocks.outcome_message(done, NOW, direct=True, permalink=LINK)
    assert message.text == (
        ":white_check_mark: Your snapshot `before-update` (id `803`) of *web-server-01* "
        f"(`12345`) is ready (took 21 s) · <{LINK}|see the request>"
    )
    assert [b["text"]["text"] for b in message.blocks] == [message.text]
    unlinked = blocks.outcome_message(done, NOW, direct=True)
    assert unlinked.text.endswith("is ready (took 21 s) · in <#C1>")
    denied = made(
        Action.RESTORE, Status.DENIED, target_id=801, target_name="pre-migration",
        outcome=Outcome(decided_by="U2"),
    )  # fmt: skip
    assert blocks.outcome_message(denied, NOW, direct=True, permalink=LINK).text == (
        ":no_entry: The restore of *web-server-01* (`12345`) from snapshot `pre-migration` "
        f"(id `801`) was denied by <@U2> · <{LINK}|see the request>"
    )


@pytest.mark.parametrize(
    "odd",
    ["", "http://demo.slack.com/x", "https://x|<!channel>", "https://x> <!here", "https://a b"],
)
def test_a_link_that_is_not_a_plain_https_url_is_left_out(odd: str) -> None:
    text = blocks.outcome_message(
        made(Action.CREATE, Status.SUCCEEDED), NOW, direct=True, permalink=odd
    ).text
    assert text.endswith(" · in <#C1>")
    assert "see the request" not in text


def test_without_a_card_the_dm_says_it_all() -> None:
    cardless = made(Action.CREATE, Status.SUCCEEDED, message_ts=None)
    text = all_text(blocks.outcome_message(cardless, NOW, direct=True, permalink=LINK))
    assert "is *complete*: 2.0 GB, took 21 s. (in <#C1>)" in text
    assert "`/snapshot restore 803` · `/snapshot delete 803`" in text
    assert "see the request" not in text


def restore_from(kind: Kind, **values: Any) -> OperationRequest:
    return made(
        Action.RESTORE,
        Status.PENDING_APPROVAL,
        kind,
        target_id=501,
        target_name="nightly",
        expires_at=NOW + timedelta(minutes=30),
        required_approvals=1,
        asked=asked(target_created_at=NOW - timedelta(days=34), target_size_mb=4523, **values),
    )


def test_a_restore_card_says_plainly_when_its_backup_expired_or_is_not_complete() -> None:
    expired = card_of(
        restore_from(
            Kind.BACKUP, target_status="completed", target_expires_at=NOW - timedelta(days=3)
        )
    )
    assert ":warning: *This backup expired 3 days ago* (<!date^" in expired
    assert "VPS.org may already have removed it." in expired
    incomplete = card_of(restore_from(Kind.BACKUP, target_status="failed"))
    assert ":warning: *This backup is not complete* (status: `failed`)" in incomplete
    sound = card_of(
        restore_from(
            Kind.BACKUP, target_status="completed", target_expires_at=NOW + timedelta(days=3)
        )
    )
    assert ":warning:" not in sound
    assert ":warning:" not in card_of(restore_from(Kind.SNAPSHOT))  # nothing recorded: no caveat
    decided = replace(restore_from(Kind.BACKUP, target_status="failed"), status=Status.DENIED)
    assert "not complete" not in card_of(decided)  # said on the card people decide on


def test_an_expired_automatic_backup_is_not_a_green_completed() -> None:
    expired = Backup(
        501,
        WEB,
        BackupType.AUTOMATIC,
        "completed",
        4523,
        NOW - timedelta(days=34),
        NOW - timedelta(days=3),
    )
    failed = replace(expired, id=502, status="failed")
    text = all_text(blocks.backup_list(BackupList(WEB, None, (expired, failed)), NOW))
    assert "*automatic backup* · id `501` · :hourglass: expired\\n" in text
    assert "taken 34 days ago, <!date^" in text
    assert "· expired 3 days ago" in text
    assert "id `502` · :x: status: failed" in text  # a failed one stays failed
    assert ":white_check_mark:" not in text
