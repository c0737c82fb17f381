"""Property tests: whatever text people and VPS.org produce, every message the bot renders
stays inside Slack's limits, is valid Block Kit, and carries no live mrkdwn from that text.

The text strategies mix Slack's markup into what they draw (`<!channel>`, `<@U1>`, a link,
`*`, `&`, backticks…), so the markup checks meet it in nearly every example."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.errors import NotAllowed, UsageError, VpsApiError
from bot.domain.lifecycle import Status
from bot.domain.model import Action, Backup, BackupType, Kind, OperationRequest, ServerRef, Snapshot
from bot.domain.outcomes import Asked, Failure, Outcome, SafetyPlan, SafetyRemoval, SafetyStep, Why
from bot.services.listings import BackupList, SnapshotList
from bot.slack import blocks
from bot.slack.errors import describe
from tests.fakes.slack import block_kit_errors

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Markup that must never come alive from outside text: mentions of everyone, of a person, of a
# channel or a group, and a link with a label of its choosing.
LIVE = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U1>",
    "<#C1>",
    "<!subteam^S1>",
    "<https://x|y>",
)
HOSTILE = (*LIVE, "*", "_", "~", "&", "&amp;", "`", "```", "<", ">", "|", "\n", ">>> ")
# Outside text: anything, or pieces of anything and of Slack's markup run together.
text = st.text(max_size=6000) | st.lists(
    st.sampled_from(HOSTILE) | st.text(max_size=40), max_size=200
).map("".join)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ids_ = st.integers(min_value=1, max_value=9_999_999_999)
sizes = st.none() | st.integers(0, 10**9)
servers = st.builds(ServerRef, ids_, text)
snapshots = st.builds(Snapshot, ids_, servers, text, text, sizes, moments, text)
backups = st.builds(
    Backup,
    ids_,
    servers,
    st.sampled_from([*BackupType]) | text,
    text,
    sizes,
    moments,
    st.none() | moments,
    text,
)
failures = st.builds(
    Failure,
    why=st.sampled_from(Why),
    detail=text,
    http_status=st.none() | st.integers(100, 599),
    status=text,
    read_detail=text,
    count=st.integers(0, 100),
    seconds=st.integers(0, 10**6),
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
    asked=st.builds(
        Asked,
        name=text,
        description=text,
        target_created_at=st.none() | moments,
        target_size_mb=sizes,
        target_status=text,
        card_not_posted=text,
        safety=st.none() | st.sampled_from(SafetyPlan),
        server_snapshots=st.none() | st.integers(0, 100),
        undo_of=st.none() | ids_,
    ),
    outcome=st.builds(
        Outcome,
        approvers=st.lists(text, max_size=30).map(tuple),
        decided_by=st.none() | text,
        api_message=text,
        size_mb=sizes,
        took_seconds=st.none() | st.integers(0, 10**7),
        # a reason recorded as a sentence by an older version, or any failure code and its data
        failure=st.none() | text.map(lambda t: Failure(Why.LEGACY, detail=t)) | failures,
        started_at=st.none() | moments,
        safety_step=st.none() | st.sampled_from(SafetyStep),
        safety_id=st.none() | ids_,
        safety_taken_at=st.none() | moments,
        safety_keep_until=st.none() | moments,
        safety_removed=st.none() | st.sampled_from(SafetyRemoval),
        safety_removed_at=st.none() | moments,
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
    assert block_kit_errors(message.blocks) == []


def rendered(message: blocks.Message, people: tuple[str, ...] = ()) -> str:
    """Everything Slack would read, less the mentions the bot makes itself of `people` (Slack
    user ids it was given: the requester, the approvers)."""
    seen = json.dumps(message.blocks, ensure_ascii=False) + message.text
    for person in people:
        seen = seen.replace(blocks.user(person), "")
    return seen


def no_live_markup(message: blocks.Message, people: tuple[str, ...] = ()) -> None:
    """No mention of everyone, of a person or a channel, and no labelled link, from outside
    text: the bot writes none of these itself (but `people`'s mentions), so any found came
    from the text it was given with its <…> intact."""
    seen = rendered(message, people)
    alive = [fragment for fragment in LIVE if fragment in seen]
    assert alive == [], seen


def tame(value: str) -> str:
    """Outside text without its backticks (one character for one, so clipping is unchanged)."""
    return value.replace("`", "'")


def same_backticks(message: blocks.Message, tamed: blocks.Message) -> None:
    """A backtick in outside text neither opens nor closes a code span: the message has as
    many as the one rendered from the same text without backticks."""
    assert rendered(message).count("`") == rendered(tamed).count("`")


def tame_server(server: ServerRef) -> ServerRef:
    return replace(server, name=tame(server.name))


def tame_request(request: OperationRequest) -> OperationRequest:
    """The request with every text from outside tamed (the Slack ids stay as they are)."""
    failure = request.outcome.failure
    if failure is not None:
        failure = replace(
            failure,
            detail=tame(failure.detail),
            status=tame(failure.status),
            read_detail=tame(failure.read_detail),
        )
    asked = request.asked
    return replace(
        request,
        server=tame_server(request.server) if request.server else None,
        target_name=tame(request.target_name),
        reason=tame(request.reason),
        asked=replace(asked, name=tame(asked.name), description=tame(asked.description)),
        outcome=replace(
            request.outcome, api_message=tame(request.outcome.api_message), failure=failure
        ),
    )


def people_in(request: OperationRequest) -> tuple[str, ...]:
    decided = (request.outcome.decided_by,) if request.outcome.decided_by else ()
    return (request.requester_id, *request.outcome.approvers, *decided)


@settings(max_examples=150, deadline=None)
@given(st.lists(snapshots, max_size=80), st.none() | servers, st.booleans())
def test_snapshot_lists_stay_within_limits(
    items: list[Snapshot], server: Any, partial: bool
) -> None:
    message = blocks.snapshot_list(SnapshotList(server, tuple(items), partial), NOW)
    check_limits(message)
    no_live_markup(message)
    tamed_items = tuple(
        replace(s, server=tame_server(s.server), name=tame(s.name), description=tame(s.description))
        for s in items
    )
    tamed_server = tame_server(server) if server else None
    tamed = blocks.snapshot_list(SnapshotList(tamed_server, tamed_items, partial), NOW)
    same_backticks(message, tamed)


@settings(max_examples=150, deadline=None)
@given(st.lists(backups, max_size=80), st.none() | servers)
def test_backup_lists_stay_within_limits(items: list[Backup], server: Any) -> None:
    message = blocks.backup_list(BackupList(server, None, tuple(items)), NOW)
    check_limits(message)
    no_live_markup(message)
    tamed_items = tuple(
        replace(
            b,
            server=tame_server(b.server),
            status=tame(b.status),
            description=tame(b.description),
            backup_type=b.backup_type
            if isinstance(b.backup_type, BackupType)
            else tame(b.backup_type),
        )
        for b in items
    )
    tamed_server = tame_server(server) if server else None
    tamed = blocks.backup_list(BackupList(tamed_server, None, tamed_items), NOW)
    same_backticks(message, tamed)


@settings(max_examples=300, deadline=None)
@given(requests, moments, st.just("https://demo.slack.com/archives/C1/p1") | text)
def test_request_messages_stay_within_limits(
    request: OperationRequest, now: datetime, permalink: str
) -> None:
    tamed = tame_request(request)
    people = people_in(request)
    for message, tamed_message in (
        (
            blocks.outcome_message(request, now, direct=True, permalink=permalink),
            blocks.outcome_message(tamed, now, direct=True, permalink=permalink),
        ),
        (blocks.request_message(request, now), blocks.request_message(tamed, now)),
        (blocks.outcome_message(request, now), blocks.outcome_message(tamed, now)),
        (
            blocks.outcome_message(request, now, direct=True),
            blocks.outcome_message(tamed, now, direct=True),
        ),
        *(
            (blocks.note_message(request, note, now), blocks.note_message(tamed, note, now))
            for note in ("safety_deleted", "safety_gone", "safety_not_ours")
        ),
    ):
        check_limits(message)
        no_live_markup(message, people)
        same_backticks(message, tamed_message)


@settings(max_examples=150, deadline=None)
@given(requests, text, st.booleans(), st.booleans())
def test_card_not_posted_messages_stay_within_limits(
    request: OperationRequest, slack_error: str, cancelled: bool, direct: bool
) -> None:
    message = blocks.card_not_posted_message(
        request, slack_error, cancelled=cancelled, direct=direct
    )
    check_limits(message)
    no_live_markup(message, people_in(request))


@settings(max_examples=150, deadline=None)
@given(text, text)
def test_error_replies_stay_within_limits(message: str, usage: str) -> None:
    for error in (
        UsageError(message, usage[:2000]),
        NotAllowed(message),
        VpsApiError(message, status=500),
    ):
        reply = describe(error)
        check_limits(reply)
        if isinstance(error, UsageError):  # its usage is the bot's own text, not outside text
            reply = replace(reply, blocks=reply.blocks[:1])
        no_live_markup(reply)


@given(st.lists(st.sampled_from(LIVE), min_size=1).map("".join))
def test_the_markup_check_finds_live_markup(live: str) -> None:
    """The check above is not vacuous: text put in a message unescaped is caught."""
    try:
        no_live_markup(blocks.Message(live))
    except AssertionError:
        return
    raise AssertionError("live markup went unnoticed")


@given(moments, moments)
def test_an_age_is_one_unit_in_plain_words(then: datetime, now: datetime) -> None:
    """Whatever the distance: no "1 year 320 days ago", one unit, rounded ("about" when it
    is to hours, months or years), and only 'just now', 'yesterday' or 'tomorrow' without
    a number."""
    said = blocks.ago(then, now)
    words = said.removeprefix("in ").removesuffix(" ago").removeprefix("about ").split()
    if said in ("just now", "in less than a minute", "yesterday", "tomorrow"):
        return
    assert said.endswith(" ago") == (then < now), said
    assert len(words) == 2, said
    assert words[0].isdigit() or words[0] in ("a", "an"), said
    assert words[1].rstrip("s") in ("minute", "hour", "day", "month", "year"), said


def test_a_day_and_a_half_reads_well() -> None:
    assert blocks.ago(NOW - timedelta(days=1, hours=12), NOW) == "2 days ago"
    assert blocks.span(36 * 3600) == "1 day 12 h"
