"""Property tests: whatever text people and VPS.org produce, every message the bot renders
stays inside Slack's limits and carries no live mrkdwn from that text."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.errors import NotAllowed, UsageError, VpsApiError
from bot.domain.model import (
    Action,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    ServerRef,
    Snapshot,
    Status,
)
from bot.services.listings import BackupList, SnapshotList
from bot.slack import blocks
from bot.slack.errors import describe

NOW = datetime(2026, 1, 1, tzinfo=UTC)
text = st.text(max_size=6000)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ids_ = st.integers(min_value=1, max_value=9_999_999_999)
servers = st.builds(ServerRef, ids_, text)
snapshots = st.builds(
    Snapshot, ids_, servers, text, text, st.none() | st.integers(0, 10**9), moments, text
)
backups = st.builds(
    Backup,
    ids_,
    servers,
    st.sampled_from([*BackupType, "weird"]),
    text,
    st.none() | st.integers(0, 10**9),
    moments,
    st.none() | moments,
    text,
)
requests = st.builds(
    OperationRequest,
    id=ids_,
    kind=st.sampled_from(Kind),
    action=st.sampled_from(Action),
    status=st.sampled_from(Status),
    requester_id=text,
    channel_id=text,
    server=st.none() | servers,
    target_id=st.none() | ids_,
    target_name=text,
    reason=text,
    created_at=moments,
    updated_at=moments,
    expires_at=st.none() | moments,
    message_ts=st.none() | text,
    required_approvals=st.integers(0, 10),
    params=st.fixed_dictionaries(
        {
            "target_created_at": moments.map(datetime.isoformat),
            "target_size_mb": st.integers(0, 10**9),
        }
    ),
    result=st.fixed_dictionaries(
        {"approvers": st.lists(text, max_size=30), "reason": text, "api_message": text}
    ),
)


def check_limits(message: blocks.Message) -> None:
    assert len(message.blocks) <= 50
    assert len(message.text) <= 3000
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
                assert len(element["action_id"]) <= 255
                confirm = element.get("confirm")
                if confirm:
                    assert len(confirm["title"]["text"]) <= 100
                    assert len(confirm["text"]["text"]) <= 300
            elif element.get("type") == "mrkdwn":
                assert len(element["text"]) <= 3000


def no_live_markup(message: blocks.Message, *sources: str) -> None:
    """Text that came from outside never shows up with its <…> intact."""
    rendered = str(message.blocks) + message.text
    for source in sources:
        for fragment in ("<!channel>", "<!here>", "<!everyone>"):
            if fragment in source:
                assert fragment not in rendered


@settings(max_examples=150, deadline=None)
@given(st.lists(snapshots, max_size=80), st.none() | servers, st.booleans())
def test_snapshot_lists_stay_within_limits(
    items: list[Snapshot], server: Any, partial: bool
) -> None:
    message = blocks.snapshot_list(SnapshotList(server, tuple(items), partial), NOW)
    check_limits(message)
    no_live_markup(message, *(s.name + s.description + s.server.name for s in items))


@settings(max_examples=150, deadline=None)
@given(st.lists(backups, max_size=80), st.none() | servers)
def test_backup_lists_stay_within_limits(items: list[Backup], server: Any) -> None:
    message = blocks.backup_list(BackupList(server, None, tuple(items)), NOW)
    check_limits(message)
    no_live_markup(message, *(b.description + b.server.name for b in items))


@settings(max_examples=300, deadline=None)
@given(requests, moments)
def test_request_messages_stay_within_limits(request: OperationRequest, now: datetime) -> None:
    for message in (
        blocks.request_message(request, now),
        blocks.outcome_message(request, now),
        blocks.outcome_message(request, now, direct=True),
    ):
        check_limits(message)
        no_live_markup(message, request.target_name, request.reason, request.requester_id)


@given(text, text)
def test_error_replies_stay_within_limits(message: str, usage: str) -> None:
    for error in (
        UsageError(message, usage[:2000]),
        NotAllowed(message),
        VpsApiError(message, status=500),
    ):
        reply = describe(error)
        check_limits(reply)
        no_live_markup(reply, message)


def test_a_day_and_a_half_reads_well() -> None:
    assert blocks.ago(NOW - timedelta(days=1, hours=12), NOW) == "1 day 12 hours ago"
