"""Block Kit builders: readable, escaped, and within Slack's limits."""

import json
from datetime import UTC, datetime, timedelta

from bot.domain.model import Backup, BackupType, Kind, ServerRef, Snapshot
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
