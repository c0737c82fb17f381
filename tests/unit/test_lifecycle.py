"""The request state machine (bot/domain/lifecycle.py) and the approval rules
(bot/domain/approvals.py): pure functions, `now` passed in."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import approvals as rules
from bot.domain.approvals import Vote
from bot.domain.errors import (
    WHERE_IT_IS,
    AlreadyHandled,
    AlreadyVoted,
    NotEligible,
    RequestExpired,
    SelfApproval,
)
from bot.domain.lifecycle import (
    FINAL,
    MOVES,
    UNDER_WAY,
    WAITING,
    Event,
    IllegalMove,
    Status,
    Transition,
    move,
    sources,
)
from bot.domain.model import Action, Kind, OperationRequest, ServerRef

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
ILLEGAL = sorted(set(itertools.product(Status, Event)) - MOVES.keys())


@pytest.mark.parametrize(("start", "event"), list(MOVES))
def test_every_move_in_the_table_reaches_its_target(start: Status, event: Event) -> None:
    transition = move(7, start, event, at=NOW, actor_id=BOB)
    assert transition == Transition(7, start, event, MOVES[start, event], NOW, BOB, {})


@pytest.mark.parametrize(("start", "event"), ILLEGAL)
def test_every_move_not_in_the_table_is_refused(start: Status, event: Event) -> None:
    with pytest.raises(IllegalMove) as refused:
        move(7, start, event, at=NOW)
    assert (refused.value.status, refused.value.event) == (start, event)
    assert str(refused.value) == f"no move from {start.value} on {event.value}"


@pytest.mark.parametrize(
    ("start", "steps", "end"),
    [
        (
            Status.PENDING_APPROVAL,
            [Event.APPROVE, Event.CLAIM, Event.ACCEPT, Event.COMPLETE],
            Status.SUCCEEDED,
        ),
        (Status.PENDING_CONFIRMATION, [Event.CONFIRM, Event.COMPLETE], Status.SUCCEEDED),
        (Status.EXECUTING, [Event.ACCEPT, Event.COMPLETE], Status.SUCCEEDED),  # a create
        # the answer arrives after the request was marked needs_attention
        (Status.EXECUTING, [Event.LOSE, Event.ACCEPT, Event.COMPLETE], Status.SUCCEEDED),
        (Status.PENDING_APPROVAL, [Event.DENY], Status.DENIED),
        (Status.PENDING_CONFIRMATION, [Event.EXPIRE], Status.EXPIRED),
        (Status.RUNNING, [Event.FAIL], Status.FAILED),
    ],
)
def test_the_documented_paths_lead_where_the_docstring_says(
    start: Status, steps: list[Event], end: Status
) -> None:
    status = start
    for event in steps:
        status = move(1, status, event, at=NOW).target
    assert status is end


def test_a_request_moves_from_its_own_id_and_status() -> None:
    request = a_request(status=Status.PENDING_CONFIRMATION, id=42)
    transition = request.move(Event.CONFIRM, at=NOW, actor_id=ALICE, target_id=9)
    assert (transition.request_id, transition.source, transition.target) == (
        42,
        Status.PENDING_CONFIRMATION,
        Status.EXECUTING,
    )
    assert transition.actor_id == ALICE
    assert transition.detail == {"target_id": 9}


def test_a_request_refuses_a_move_its_status_has_not() -> None:
    request = a_request(status=Status.SUCCEEDED)
    with pytest.raises(IllegalMove):
        request.move(Event.CANCEL, at=NOW)


def test_the_audit_detail_holds_the_move_and_its_extra_detail() -> None:
    transition = move(
        3,
        Status.APPROVED,
        Event.CLAIM,
        at=NOW,
        actor_id=CAROL,
        approvers=[BOB, CAROL],
        server_id=12345,
        seen=False,
        note=None,
    )
    assert transition.audit_detail() == {
        "from": "approved",
        "to": "executing",
        "event": "claim",
        "approvers": [BOB, CAROL],
        "server_id": 12345,
        "seen": False,
        "note": None,
    }


def test_the_audit_detail_stores_tuples_as_json_lists() -> None:
    """Outcomes keep approvers as a tuple; the audit row is JSON, so they are stored as a list."""
    detail = {"approvers": (BOB, CAROL)}
    transition = Transition(
        1,
        Status.EXECUTING,
        Event.ACCEPT,
        Status.RUNNING,
        NOW,
        detail=detail,  # type: ignore[arg-type]
    )
    assert transition.audit_detail()["approvers"] == [BOB, CAROL]


def test_an_audit_detail_without_extras_is_the_move_alone() -> None:
    detail = move(1, Status.RUNNING, Event.LOSE, at=NOW).audit_detail()
    assert detail == {"from": "running", "to": "needs_attention", "event": "lose"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (Event.APPROVE, {Status.PENDING_APPROVAL}),
        (Event.DENY, {Status.PENDING_APPROVAL}),
        (Event.CONFIRM, {Status.PENDING_CONFIRMATION}),
        (Event.CANCEL, {Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION}),
        (Event.EXPIRE, {Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION}),
        (Event.CLAIM, {Status.APPROVED}),
        (Event.ACCEPT, {Status.EXECUTING, Status.NEEDS_ATTENTION}),
        (Event.COMPLETE, {Status.EXECUTING, Status.RUNNING}),
        (Event.FAIL, {Status.EXECUTING, Status.RUNNING}),
        (Event.LOSE, {Status.EXECUTING, Status.RUNNING}),
    ],
)
def test_sources_names_every_status_an_event_moves_out_of(
    event: Event, expected: set[Status]
) -> None:
    assert sources(event) == expected


def test_waiting_under_way_and_final_split_the_statuses() -> None:
    assert {Status.PENDING_APPROVAL, Status.PENDING_CONFIRMATION} == WAITING
    assert {Status.APPROVED, Status.EXECUTING, Status.RUNNING} == UNDER_WAY
    assert {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.DENIED,
        Status.CANCELLED,
        Status.EXPIRED,
    } == FINAL  # needs_attention is neither: late evidence may still move it to running
    assert not WAITING & UNDER_WAY
    assert not WAITING & FINAL
    assert not UNDER_WAY & FINAL
    assert Status.NEEDS_ATTENTION not in WAITING | UNDER_WAY | FINAL


def test_no_move_leaves_a_final_status_and_nothing_returns_to_waiting() -> None:
    for (start, event), target in MOVES.items():
        assert start not in FINAL, f"{start} --{event}--> {target}"
        if target in WAITING:
            pytest.fail(f"{start} --{event}--> {target}: nothing moves back to waiting")


# -- approvals -------------------------------------------------------------------------------


def a_request(**changes: object) -> OperationRequest:
    request = OperationRequest(
        id=1,
        kind=Kind.SNAPSHOT,
        action=Action.RESTORE,
        status=Status.PENDING_APPROVAL,
        requester_id=ALICE,
        channel_id="C0TEST",
        server=ServerRef(12345, "web-1"),
        target_id=501,
        target_name="before-update",
        reason="bad deploy",
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        required_approvals=1,
    )
    return replace(request, **changes)  # type: ignore[arg-type]


def approve(voter: str) -> Vote:
    return Vote(voter, "approve", NOW)


@pytest.mark.parametrize(
    ("required", "votes", "reached"),
    [
        (1, [], False),
        (1, [approve(BOB)], True),
        (2, [approve(BOB)], False),
        (2, [approve(BOB), approve(CAROL)], True),
        (2, [approve(BOB), Vote(CAROL, "deny", NOW)], False),  # a deny is not an approval
        (0, [], False),  # a quorum of 0 would restore with nobody's approval: the floor is 1
        (0, [approve(BOB)], True),
    ],
)
def test_the_quorum(required: int, votes: list[Vote], reached: bool) -> None:
    assert rules.quorum_reached(a_request(required_approvals=required), votes) is reached


def test_approvals_keep_the_order_people_approved_in() -> None:
    votes = [approve(CAROL), Vote("U0DAN", "deny", NOW), approve(BOB)]
    assert rules.approvals(votes) == [CAROL, BOB]


def test_a_vote_that_may_be_cast_raises_nothing() -> None:
    rules.check_vote(a_request(), BOB, eligible=True, votes=[approve(CAROL)], now=NOW)


def test_the_requester_cannot_approve_their_own_restore() -> None:
    with pytest.raises(SelfApproval, match="a second person has to approve"):
        rules.check_vote(a_request(), ALICE, eligible=True, votes=[], now=NOW)


def test_a_voter_who_is_not_an_approver_is_refused() -> None:
    with pytest.raises(NotEligible):
        rules.check_vote(a_request(), BOB, eligible=False, votes=[], now=NOW)


def test_nobody_votes_twice() -> None:
    with pytest.raises(AlreadyVoted):
        rules.check_vote(a_request(), BOB, eligible=True, votes=[approve(BOB)], now=NOW)


@pytest.mark.parametrize("status", sorted(set(Status) - {Status.PENDING_APPROVAL}))
def test_a_request_no_longer_pending_takes_no_vote(status: Status) -> None:
    with pytest.raises(AlreadyHandled) as refused:
        rules.check_vote(a_request(status=status), BOB, eligible=True, votes=[], now=NOW)
    assert refused.value.status is status
    assert str(refused.value) == f"This request {WHERE_IT_IS[status]}."


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (Status.SUCCEEDED, "This request has already succeeded."),
        (Status.FAILED, "This request has already failed."),
        (Status.DENIED, "This request was already denied."),
        (Status.CANCELLED, "This request was already cancelled."),
        (Status.EXPIRED, "This request has already expired."),
        (Status.RUNNING, "This request is already under way at VPS.org."),
        (Status.NEEDS_ATTENTION, "This request has already ended and needs someone to check it."),
    ],
)
def test_where_a_request_is_reads_as_english(status: Status, said: str) -> None:
    assert str(AlreadyHandled(status)) == said


def test_every_status_has_words() -> None:
    assert set(WHERE_IT_IS) == set(Status)


def test_a_vote_just_before_the_expiry_counts() -> None:
    request = a_request()
    assert request.expires_at is not None
    just_before = request.expires_at - timedelta(microseconds=1)
    rules.check_vote(request, BOB, eligible=True, votes=[], now=just_before)
    assert not request.is_expired(just_before)


def test_a_vote_at_the_expiry_is_too_late() -> None:
    request = a_request()
    assert request.expires_at is not None
    with pytest.raises(RequestExpired, match="nothing was restored"):
        rules.check_vote(request, BOB, eligible=True, votes=[], now=request.expires_at)
    assert request.is_expired(request.expires_at)


def test_a_request_without_an_expiry_never_expires() -> None:
    request = a_request(expires_at=None)
    rules.check_pending(request, NOW + timedelta(days=3650))


def test_expiry_is_checked_before_who_votes() -> None:
    """Even the requester is told the request expired, not that they cannot approve."""
    request = a_request()
    assert request.expires_at is not None
    with pytest.raises(RequestExpired):
        rules.check_vote(request, ALICE, eligible=False, votes=[], now=request.expires_at)


@pytest.mark.parametrize(
    ("voter", "listed", "anyone", "eligible"),
    [
        (BOB, False, True, True),  # no approvers configured: anyone but the requester
        (ALICE, True, True, False),
        (BOB, True, False, True),  # approvers configured: the listed ones
        (BOB, False, False, False),
        (ALICE, True, False, False),  # never the requester, even when listed
    ],
)
def test_who_is_eligible(voter: str, listed: bool, anyone: bool, eligible: bool) -> None:
    assert rules.is_eligible(voter, ALICE, listed, anyone=anyone) is eligible
