"""Block Kit builders: readable, escaped, and within Slack's limits."""

import json
from datetime import UTC, datetime, timedelta

from bot.domain.lifecycle import Status
from bot.domain.model import Action, Backup, BackupType, Kind, OperationRequest, ServerRef, Snapshot
from bot.services.listings import BackupList, SnapshotList
from bot.slack import blocks
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


def test_sizes_and_durations_read_like_a_person_wrote_them() -> None:
    assert blocks.size(5120) == "5.0 GB"
    assert blocks.size(512) == "512 MB"
    assert blocks.size(None) == "size not known yet"
    assert blocks.span(3 * 86400 + 4 * 3600 + 59) == "3 days 4 hours"
    assert blocks.span(300) == "5 minutes"
    assert blocks.span(20) == "less than a minute"
    assert blocks.ago(NOW - timedelta(hours=1), NOW) == "1 hour ago"
    assert blocks.ago(NOW + timedelta(days=2), NOW) == "in 2 days"


def test_snapshot_list_shows_name_id_status_size_and_age() -> None:
    listing = SnapshotList(WEB, (snapshot(801, description="Before major migration"),))
    message = blocks.snapshot_list(listing, NOW)
    text = all_text(message)
    assert "*web-server-01* (`12345`)" in text
    assert "*snap-801* · id `801` · :white_check_mark: completed" in text
    assert "5.0 GB · taken 3 days 4 hours ago" in text
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
