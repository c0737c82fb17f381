"""Every message the builders in bot/slack/blocks render is valid Block Kit, block by block, as
slack_sdk's own models check it (`Block.parse(block).validate_json()`): listings, help,
errors, notices, a request's card and outcome for every (action, status) and every failure
(with a safety snapshot at each of its plans, steps and ends, and the Undo button), the notes
in a request's thread, and the note to a requester whose card could not be posted. Ordinary
values, and the longest and most hostile ones people and VPS.org can send."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.domain.errors import (
    AlreadyHandled,
    BadResponse,
    Busy,
    LimitReached,
    NotAllowed,
    NotFound,
    NothingToUndo,
    NotRequester,
    RateLimited,
    SafetySnapshotGone,
    Unauthorized,
    Unavailable,
    UsageError,
    VpsApiError,
)
from bot.domain.lifecycle import Status
from bot.domain.model import (
    Action,
    Backup,
    BackupType,
    Kind,
    OperationRequest,
    ServerRef,
    Snapshot,
)
from bot.domain.outcomes import (
    Asked,
    Failure,
    Outcome,
    SafetyPlan,
    SafetyRemoval,
    SafetyStep,
    Why,
)
from bot.services.listings import BackupList, SnapshotList
from bot.slack import blocks
from bot.slack.blocks.requests import CARD, FAILURES, NOTES
from bot.slack.errors import describe
from bot.slack.parsing import usage
from tests.fakes.slack import block_kit_errors

NOW = datetime(2025, 1, 18, 12, 0, tzinfo=UTC)
WEB = ServerRef(12345, "web-server-01")
HOSTILE = "<!channel> *bold* _it_ `code` & <@U1> <https://x|y> " * 200  # 10,000+ characters
LONG = ServerRef(9_999_999_999, HOSTILE)
UNNAMED = ServerRef(42, "")
PERMALINK = "https://demo.slack.com/archives/C0000TEST/p1700000000000001"


def assert_valid(message: blocks.Message) -> None:
    """Slack would take this message: each block valid by slack_sdk's models, at most 50 of
    them, and a fallback text for notifications."""
    assert message.text.strip()
    assert 0 < len(message.blocks) <= 50
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None, f"not a known block: {block}"
        parsed.validate_json()  # raises SlackObjectFormationError when Slack would refuse it
    assert block_kit_errors(message.blocks) == []  # the fake Slack's check agrees


# -- listings --------------------------------------------------------------------------------


def snapshot(i: int, server: ServerRef = WEB, name: str = "", description: str = "") -> Snapshot:
    return Snapshot(
        i, server, name or f"snap-{i}", "completed", 5120, NOW - timedelta(days=i), description
    )


def backup(i: int, server: ServerRef = WEB, kind: BackupType | str = BackupType.MANUAL) -> Backup:
    expires = NOW + timedelta(days=i - 3) if i % 2 else None
    return Backup(i, server, kind, "in_progress", None, NOW - timedelta(hours=i), expires, "desc")


SNAPSHOT_LISTS = {
    "empty": SnapshotList(WEB, ()),
    "empty-all-servers": SnapshotList(None, ()),
    "one": SnapshotList(WEB, (snapshot(801, description="Before major migration"),)),
    "all-servers": SnapshotList(None, tuple(snapshot(i, (WEB, UNNAMED)[i % 2]) for i in range(9))),
    "more-than-fit": SnapshotList(
        None, tuple(snapshot(i, ServerRef(i, f"s{i}")) for i in range(80)), partial=True
    ),
    "unnamed-server": SnapshotList(UNNAMED, (snapshot(1, UNNAMED, name=" "),)),
    "hostile": SnapshotList(
        None, tuple(snapshot(i, LONG, HOSTILE, HOSTILE) for i in range(45)), partial=True
    ),
}
BACKUP_LISTS = {
    "empty": BackupList(WEB, BackupType.MANUAL, ()),
    "one": BackupList(WEB, None, (backup(499),)),
    "all-servers": BackupList(
        None, None, tuple(backup(i, (WEB, UNNAMED)[i % 2]) for i in range(9))
    ),
    "more-than-fit": BackupList(
        None, BackupType.AUTOMATIC, tuple(backup(i, ServerRef(i, "s")) for i in range(80)), True
    ),
    "weird-type": BackupList(LONG, None, (backup(1, LONG, HOSTILE),)),
}


@pytest.mark.parametrize("name", list(SNAPSHOT_LISTS))
def test_snapshot_lists(name: str) -> None:
    assert_valid(blocks.snapshot_list(SNAPSHOT_LISTS[name], NOW))


@pytest.mark.parametrize("name", list(BACKUP_LISTS))
def test_backup_lists(name: str) -> None:
    assert_valid(blocks.backup_list(BACKUP_LISTS[name], NOW))


# -- help, errors, notices -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_help(kind: Kind) -> None:
    assert_valid(blocks.help_message(kind, usage(kind)))


@pytest.mark.parametrize(
    ("text", "usage_text"),
    [
        (":warning: not a server id", None),
        (":warning: not a server id", usage(Kind.SNAPSHOT, "restore")),
        (blocks.safe(HOSTILE, 300), blocks.safe(HOSTILE, 2000)),
        ("x" * 5000, "y" * 5000),  # clipped to Slack's limits
    ],
)
def test_error_messages(text: str, usage_text: str | None) -> None:
    assert_valid(blocks.error_message(text, usage_text))


@pytest.mark.parametrize("event", ["vps_unauthorized", "something-new", HOSTILE])
def test_notices(event: str) -> None:
    assert_valid(blocks.notice_message(event))


ERRORS = [
    UsageError("not a server id: <!channel>", usage(Kind.BACKUP)),
    UsageError(HOSTILE, usage(Kind.SNAPSHOT)),
    NotAllowed(HOSTILE),
    NothingToUndo("Request #7 made no safety snapshot: there is nothing to undo."),
    SafetySnapshotGone(HOSTILE),
    NotRequester("U0000TEST"),
    AlreadyHandled(Status.CANCELLED),
    Busy(),
    Unauthorized("Invalid token.", status=401),
    NotFound("Not found.", status=404),
    NotFound(HOSTILE, status=404),
    LimitReached("Snapshot limit reached", status=400),
    RateLimited("slow down", retry_after=30),
    RateLimited("slow down", retry_after=None),
    Unavailable("maintenance", status=503, method="GET"),
    Unavailable("did not answer", method="POST"),
    BadResponse("unexpected response from VPS.org", method="DELETE"),
    VpsApiError(HOSTILE, status=418),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_error_replies(error: BaseException) -> None:
    assert_valid(describe(error))


# -- a request's card, its outcome, and the note when its card could not be posted -------------


def request(
    action: Action,
    status: Status,
    kind: Kind = Kind.SNAPSHOT,
    *,
    failure: Failure | None = None,
    hostile: bool = False,
    server: ServerRef | None = WEB,
) -> OperationRequest:
    text = HOSTILE if hostile else ""
    return OperationRequest(
        id=9_999_999_999 if hostile else 7,
        kind=kind,
        action=action,
        status=status,
        requester_id=text or "U0000TEST",
        channel_id=text or "C0000TEST",
        server=LONG if hostile else server,
        target_id=None if action is Action.CREATE else 801,
        target_name=text or "pre-migration",
        reason=text or "rollback after the bad deploy",
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW,
        expires_at=NOW + timedelta(minutes=30) if status.value.startswith("pending") else None,
        message_ts="1700000000.000001",
        required_approvals=2 if action is Action.RESTORE else 0,
        asked=Asked(
            name=text or "pre-migration",
            description=text,
            target_created_at=NOW - timedelta(days=3),
            target_size_mb=5120,
        ),
        outcome=Outcome(
            approvers=(text,) * 40 if hostile else ("U0000APPR",),
            decided_by="U0000APPR",
            api_message=text or "Restore started",
            started_at=NOW - timedelta(minutes=4),
            size_mb=5120,
            took_seconds=272,
            finished_at=NOW,
            failure=failure,
        ),
    )


def failure(why: Why, hostile: bool = False) -> Failure:
    detail = HOSTILE if hostile else "boom"
    return Failure(
        why,
        detail=detail,
        http_status=502,
        status=detail if hostile else "error",
        read_detail=detail,
        count=5,
        seconds=120,
    )


def cases() -> Iterator[tuple[str, OperationRequest]]:
    """Every (action, status), both kinds; each failure where a request fails or needs a
    person; the hostile variant of each."""
    for (action, status), kind, hostile in product(product(Action, Status), Kind, (False, True)):
        name = f"{kind.value}-{action.value}-{status.value}{'-hostile' if hostile else ''}"
        yield name, request(action, status, kind, hostile=hostile)
        if status in (Status.FAILED, Status.NEEDS_ATTENTION):
            for why in Why:
                made = request(action, status, kind, failure=failure(why, hostile), hostile=hostile)
                yield f"{name}-{why.value}", made
    yield "no-server", request(Action.RESTORE, Status.PENDING_APPROVAL, server=None)
    for hostile in (False, True):
        pending = request(Action.RESTORE, Status.PENDING_APPROVAL, Kind.BACKUP, hostile=hostile)
        status = HOSTILE if hostile else "failed"
        yield (
            f"incomplete-target{'-hostile' * hostile}",
            replace(pending, asked=replace(pending.asked, target_status=status)),
        )
    yield "unnamed-server", request(Action.DELETE, Status.PENDING_CONFIRMATION, server=UNNAMED)
    yield from safety_cases()


def safety_cases() -> Iterator[tuple[str, OperationRequest]]:
    """Restores with a safety snapshot: the approval card by plan (an undo too), the executing
    card by step, the undoable ones (with their Undo button), the let-go ones, and the failures
    that stopped the snapshot; the hostile variant of each."""
    for hostile in (False, True):
        tag = "-hostile" if hostile else ""
        pending = request(Action.RESTORE, Status.PENDING_APPROVAL, hostile=hostile)
        for plan in [*SafetyPlan, None]:
            for undo_of in (None, 9_999_999_998):
                asked = replace(pending.asked, safety=plan, server_snapshots=5, undo_of=undo_of)
                yield f"safety-pending-{plan}-undo{undo_of}{tag}", replace(pending, asked=asked)
        ready = Outcome(
            approvers=pending.outcome.approvers,
            started_at=NOW - timedelta(minutes=4),
            took_seconds=272,
            safety_step=SafetyStep.READY,
            safety_id=9_999_999_997,
            safety_taken_at=NOW - timedelta(days=7),
            safety_ready_at=NOW - timedelta(days=7),
            safety_keep_until=NOW + timedelta(days=7),
        )
        planned = replace(pending.asked, safety=SafetyPlan.PLANNED, undo_of=3)
        for status in (Status.APPROVED, Status.EXECUTING):
            for step in [None, *SafetyStep]:
                outcome = ready.but(safety_step=step, safety_id=None if step is None else 903)
                made = replace(pending, status=status, asked=planned, outcome=outcome)
                yield f"safety-{status.value}-{step}{tag}", made
        for status in (Status.RUNNING, Status.SUCCEEDED, Status.NEEDS_ATTENTION, Status.FAILED):
            ended = status in (Status.NEEDS_ATTENTION, Status.FAILED)
            broken = failure(Why.UNREADABLE, hostile) if ended else None
            made = replace(pending, status=status, asked=planned, outcome=ready.but(failure=broken))
            yield f"safety-{status.value}{tag}", made
            for removal in SafetyRemoval:
                let_go = made.outcome.but(safety_removed=removal, safety_removed_at=NOW)
                yield f"safety-{status.value}-{removal.value}{tag}", replace(made, outcome=let_go)
        for why in Why:
            if why.value.startswith("safety_"):
                status = Status.NEEDS_ATTENTION if why is Why.SAFETY_UNCONFIRMED else Status.FAILED
                outcome = ready.but(failure=failure(why, hostile), safety_step=SafetyStep.FOLLOWING)
                made = replace(pending, status=status, asked=planned, outcome=outcome)
                yield f"safety-{why.value}{tag}", made


CASES = dict(cases())


def invalid(messages: dict[str, blocks.Message]) -> list[str]:
    """The names of the messages `assert_valid` refuses, with why (one test checks many: a
    test each would spend most of its time in the per-test teardown)."""
    found = []
    for name, message in messages.items():
        try:
            assert_valid(message)
        except (AssertionError, SlackObjectFormationError) as error:
            found.append(f"{name}: {error}")
    return found


def test_the_cases_cover_every_card_and_every_failure() -> None:
    assert set(CARD) <= {(r.action, r.status) for r in CASES.values()}
    assert set(FAILURES) == set(Why)


@pytest.mark.parametrize("action", list(Action))
def test_request_cards_and_outcomes(action: Action) -> None:
    messages = {}
    for name, made in CASES.items():
        if made.action is action:
            messages[f"{name} card"] = blocks.request_message(made, NOW)
            messages[f"{name} outcome"] = blocks.outcome_message(made, NOW)
            messages[f"{name} DM"] = blocks.outcome_message(made, NOW, direct=True)
            messages[f"{name} DM linked"] = blocks.outcome_message(
                made, NOW, direct=True, permalink=PERMALINK
            )
            cardless = replace(made, message_ts=None)
            messages[f"{name} DM without a card"] = blocks.outcome_message(
                cardless, NOW, direct=True
            )
    assert len(messages) > 100
    assert invalid(messages) == []


@pytest.mark.parametrize("action", list(Action))
def test_card_not_posted(action: Action) -> None:
    messages = {}
    for slack_error, cancelled, direct, status, hostile in product(
        ["not_in_channel", "is_archived", "restricted_action", HOSTILE],
        [True, False],
        [True, False],
        [Status.CANCELLED, Status.EXECUTING, Status.RUNNING, Status.SUCCEEDED],
        [False, True],
    ):
        made = request(action, status, hostile=hostile)
        name = f"{slack_error[:20]} {cancelled=} {direct=} {status.value} {hostile=}"
        messages[name] = blocks.card_not_posted_message(
            made, slack_error, cancelled=cancelled, direct=direct
        )
    assert invalid(messages) == []


def test_safety_cases_offer_undo() -> None:
    """The cases above include cards and thread replies that carry the Undo restore button."""
    undoable = [made for name, made in CASES.items() if made.undoable]
    assert undoable
    for made in undoable:
        for message in (blocks.request_message(made, NOW), blocks.outcome_message(made, NOW)):
            assert any(b["type"] == "actions" for b in message.blocks)


def test_notes() -> None:
    messages = {}
    for (name, made), note in product(
        [(n, r) for n, r in CASES.items() if n.startswith("safety-")],
        [*NOTES, "something-new", HOSTILE],
    ):
        messages[f"{name} {note[:20]}"] = blocks.note_message(made, note, NOW)
    assert invalid(messages) == []
