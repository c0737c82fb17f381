"""Safety snapshots and Undo, as use cases against the in-memory fakes: what VPS.org receives
(and in what order), what the store holds, what is queued for Slack. The same at the wire,
and with processes killed: tests/slack/test_safety_snapshots.py, tests/test_restore_crash.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.domain.errors import (
    BadRequest,
    NothingToUndo,
    SafetySnapshotGone,
    Unavailable,
    UnknownRequest,
)
from bot.domain.lifecycle import Status
from bot.domain.model import COMPLETED, IN_PROGRESS, Kind, OperationRequest, Snapshot
from bot.domain.operations import RequestRestore
from bot.domain.outcomes import SafetyPlan, SafetyRemoval, SafetyStep, Why
from bot.services import restores, safety, tracking
from bot.services.lifecycle import Lifecycle, Policy
from tests.fakes.memory import FakeVps, MemoryStore, factory
from tests.unit.test_use_cases import AS_ALICE, AS_BOB, BOB, CHANNEL, NOBODY, NOW, SERVER, Clock

OWNER = "vpsbot"


@pytest.fixture
def life(store: MemoryStore, clock: Clock) -> Lifecycle:
    return Lifecycle(uow=factory(store), clock=clock, policy=Policy(), owner=OWNER)


async def ask(vps: FakeVps, life: Lifecycle, others: int = 0) -> tuple[OperationRequest, str]:
    """Alice asks to restore a completed snapshot of a server that has `others` more."""
    target = vps.add_snapshot(SERVER, "before-update")
    for n in range(others):
        vps.add_snapshot(SERVER, f"other-{n}")
    request = await restores.request_restore(
        vps, life, AS_ALICE, RequestRestore(Kind.SNAPSHOT, target.id, "bad deploy")
    )
    return request, f"/snapshots/{target.id}/restore/"


def mutations(vps: FakeVps) -> list[tuple[str, str]]:
    return [(method, path) for method, path in vps.calls if method != "GET"]


def safety_snapshot(vps: FakeVps, request: OperationRequest) -> Snapshot:
    [made] = [s for s in vps.snapshots.values() if s.name == f"pre-restore-{request.id}"]
    return made


def complete(vps: FakeVps, snapshot: Snapshot, status: str = COMPLETED) -> None:
    vps.snapshots[snapshot.id] = replace(snapshot, status=status, size_mb=2048)


async def tick(vps: FakeVps, life: Lifecycle, clock: Clock, seconds: float = 15) -> None:
    """The tracker at the next tick of the poll grid."""
    clock.now += timedelta(seconds=seconds)
    await tracking.reconcile_stale(vps, life, OWNER)
    await tracking.check_in_flight(vps, life, OWNER)
    await safety.clean_up(vps, life, OWNER)


def steps(store: MemoryStore, request_id: int) -> list[str]:
    return [row.detail["step"] for row in store.audit_rows("safety_snapshot", request_id)]


# -- the plan the card shows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("others", "enabled", "plan", "count"),
    [
        (0, True, SafetyPlan.PLANNED, 1),
        (3, True, SafetyPlan.PLANNED, 4),
        (4, True, SafetyPlan.AT_LIMIT, 5),
        (0, False, SafetyPlan.OFF, None),
    ],
)
async def test_the_request_records_the_plan_its_card_shows(
    vps: FakeVps,
    store: MemoryStore,
    clock: Clock,
    others: int,
    enabled: bool,
    plan: SafetyPlan,
    count: int | None,
) -> None:
    life = Lifecycle(factory(store), clock, Policy(safety_snapshot=enabled))
    request, _ = await ask(vps, life, others)
    assert (request.asked.safety, request.asked.server_snapshots) == (plan, count)
    assert store.audit_rows("request")[0].detail["safety_snapshot"] == plan.value
    assert mutations(vps) == []


# -- the order of calls -------------------------------------------------------------------------


async def test_the_restore_is_sent_once_the_safety_snapshot_is_seen_completed(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, restore = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)

    # one POST of the snapshot, named after the request; no restore yet
    assert mutations(vps) == [("POST", "/snapshots/")]
    made = safety_snapshot(vps, request)
    assert "request #" in made.description
    assert made.server.id == SERVER
    waiting = store.request(request.id)
    assert waiting.status is Status.EXECUTING
    assert waiting.outcome.safety_step is SafetyStep.FOLLOWING
    assert waiting.outcome.safety_id == made.id
    row = store.requests[request.id]
    assert row.lease_owner is None  # handed to the tracker
    assert row.safety_delete_at == NOW + timedelta(days=7)

    await tick(vps, life, clock)  # still in progress: no restore
    assert mutations(vps) == [("POST", "/snapshots/")]
    assert store.request(request.id).status is Status.EXECUTING

    complete(vps, made)
    await tick(vps, life, clock)
    assert mutations(vps) == [("POST", "/snapshots/"), ("POST", restore)]
    restored = store.request(request.id)
    assert restored.status is Status.RUNNING
    assert restored.outcome.safety_step is SafetyStep.READY
    assert steps(store, request.id) == ["posting", "following", "ready"]

    for _ in range(3):  # nothing is sent again
        await tick(vps, life, clock)
    assert mutations(vps) == [("POST", "/snapshots/"), ("POST", restore)]


async def test_an_approval_ttl_shorter_than_the_snapshot_does_not_cut_the_restore_short(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    life = Lifecycle(factory(store), clock, Policy(approval_ttl=timedelta(minutes=1)), OWNER)
    request, restore = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    for _ in range(40):  # ten minutes of ticks while VPS.org makes the snapshot
        await tick(vps, life, clock)
    complete(vps, safety_snapshot(vps, request))
    await tick(vps, life, clock)
    assert ("POST", restore) in mutations(vps)
    assert store.request(request.id).status is Status.RUNNING


async def test_at_the_limit_the_restore_goes_ahead_without_a_snapshot_as_approved(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, restore = await ask(vps, life, others=4)
    assert request.asked.safety is SafetyPlan.AT_LIMIT
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert mutations(vps) == [("POST", restore)]
    assert store.request(request.id).status is Status.RUNNING


# -- the approval is bound to the plan: no snapshot, no restore --------------------------------


async def test_the_limit_reached_since_the_card_means_no_restore(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, _ = await ask(vps, life, others=3)
    vps.add_snapshot(SERVER, "made-meanwhile")  # the fifth
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert mutations(vps) == []
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert (failed.outcome.failure.why, failed.outcome.failure.count) == (Why.SAFETY_LIMIT, 5)
    assert {kind for kind, _, _ in store.queued(request.id)} >= {"update", "reply", "dm"}


async def test_a_refused_snapshot_post_means_no_restore(
    vps: FakeVps, life: Lifecycle, store: MemoryStore
) -> None:
    request, _ = await ask(vps, life)
    vps.fail_next("create_snapshot", BadRequest("Server is busy", status=400))
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert mutations(vps) == [("POST", "/snapshots/")]
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.SAFETY_REFUSED
    assert failed.outcome.failure.detail == "Server is busy"


@pytest.mark.parametrize(("status", "why"), [("error", Why.SAFETY_FAILED), (None, Why.SAFETY_GONE)])
async def test_a_snapshot_that_fails_or_disappears_means_no_restore(
    vps: FakeVps,
    life: Lifecycle,
    store: MemoryStore,
    clock: Clock,
    status: str | None,
    why: Why,
) -> None:
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    made = safety_snapshot(vps, request)
    if status is None:
        del vps.snapshots[made.id]
    else:
        complete(vps, made, status)
    await tick(vps, life, clock)
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is why
    assert mutations(vps) == [("POST", "/snapshots/")]


async def test_a_snapshot_that_never_completes_means_no_restore(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    life = Lifecycle(factory(store), clock, Policy(follow_for=timedelta(minutes=5)), OWNER)
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    for _ in range(25):
        await tick(vps, life, clock)
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.SAFETY_TIMEOUT
    assert failed.outcome.failure.status == IN_PROGRESS
    assert mutations(vps) == [("POST", "/snapshots/")]


@pytest.mark.parametrize("reached", [True, False])
async def test_a_snapshot_post_with_no_answer_is_read_back_by_name_never_sent_again(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock, reached: bool
) -> None:
    request, restore = await ask(vps, life)
    vps.fail_next("create_snapshot", Unavailable("timed out", status=None), after=reached)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    assert mutations(vps) == [("POST", "/snapshots/")]
    after = store.request(request.id)
    if reached:  # found by name: followed, and restored once complete
        assert after.outcome.safety_step is SafetyStep.FOLLOWING
        complete(vps, safety_snapshot(vps, request))
        await tick(vps, life, clock)
        assert mutations(vps) == [("POST", "/snapshots/"), ("POST", restore)]
    else:  # not listed: a person must look; nothing was restored
        assert after.status is Status.NEEDS_ATTENTION
        assert after.outcome.failure is not None
        assert after.outcome.failure.why is Why.SAFETY_UNCONFIRMED
        await tick(vps, life, clock)
        assert mutations(vps) == [("POST", "/snapshots/")]


# -- a crash at each step ------------------------------------------------------------------------


def crash(store: MemoryStore, request_id: int, clock: Clock, **outcome: object) -> None:
    """The instance executing the request died: its lease lapsed, at the recorded step."""
    row = store.requests[request_id]
    row.request = replace(row.request, outcome=row.request.outcome.but(**outcome))
    row.lease_owner, row.lease_until = "dead", clock.now - timedelta(seconds=1)
    row.next_check_at = None


async def claimed(vps: FakeVps, life: Lifecycle, store: MemoryStore) -> OperationRequest:
    """A restore approved and claimed (executing), with nothing sent: as the approving
    transaction commits it, before `execute`."""
    request, _ = await ask(vps, life)
    # approve with the execution cut off: the claim is committed, nothing is sent
    original = restores.execute

    async def killed(*_: object) -> None:
        return None

    restores.execute = killed  # type: ignore[assignment]
    try:
        await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    finally:
        restores.execute = original  # type: ignore[assignment]
    assert store.request(request.id).status is Status.EXECUTING
    return store.request(request.id)


async def test_killed_before_the_snapshot_post_the_tracker_goes_on(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request = await claimed(vps, life, store)
    crash(store, request.id, clock)
    await tick(vps, life, clock)
    assert mutations(vps) == [("POST", "/snapshots/")]
    assert store.request(request.id).outcome.safety_step is SafetyStep.FOLLOWING


@pytest.mark.parametrize("reached", [True, False])
async def test_killed_while_the_snapshot_post_was_in_flight(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock, reached: bool
) -> None:
    request = await claimed(vps, life, store)
    if reached:  # VPS.org made it; the bot died before recording the answer
        vps.add_snapshot(SERVER, f"pre-restore-{request.id}", status=IN_PROGRESS)
    crash(store, request.id, clock, safety_step=SafetyStep.POSTING)
    await tick(vps, life, clock)
    assert mutations(vps) == []  # never a second POST
    after = store.request(request.id)
    if reached:
        assert after.outcome.safety_step is SafetyStep.FOLLOWING
        assert after.outcome.safety_id == safety_snapshot(vps, request).id
    else:
        assert after.status is Status.NEEDS_ATTENTION
        assert after.outcome.failure is not None
        assert after.outcome.failure.why is Why.SAFETY_UNCONFIRMED


async def test_killed_just_before_the_restore_call_it_is_never_sent(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request = await claimed(vps, life, store)
    made = vps.add_snapshot(SERVER, f"pre-restore-{request.id}")
    crash(store, request.id, clock, safety_step=SafetyStep.READY, safety_id=made.id)
    await tick(vps, life, clock)
    assert mutations(vps) == []
    after = store.request(request.id)
    assert after.status is Status.NEEDS_ATTENTION
    assert after.outcome.failure is not None
    assert after.outcome.failure.why is Why.BOT_STOPPED


# -- Undo ------------------------------------------------------------------------------------------


async def restored(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> OperationRequest:
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    complete(vps, safety_snapshot(vps, request))
    await tick(vps, life, clock)
    vps.servers[SERVER] = replace(vps.servers[SERVER], status="running")
    await tick(vps, life, clock)
    done = store.request(request.id)
    assert done.status is Status.SUCCEEDED
    assert done.undoable
    return done


async def test_undo_files_a_restore_from_the_safety_snapshot_that_needs_approval(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    sent = len(mutations(vps))
    undo = await restores.undo(vps, life, AS_BOB, done.id)
    assert undo.status is Status.PENDING_APPROVAL
    assert (undo.kind, undo.target_id) == (Kind.SNAPSHOT, done.outcome.safety_id)
    assert undo.reason == f"undo of request #{done.id}"
    assert undo.asked.undo_of == done.id
    assert undo.requester_id == BOB
    assert len(mutations(vps)) == sent  # nothing sent before its approval


async def test_undo_of_a_restore_that_took_no_snapshot_is_refused(
    vps: FakeVps, store: MemoryStore, clock: Clock
) -> None:
    life = Lifecycle(factory(store), clock, Policy(safety_snapshot=False), OWNER)
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    with pytest.raises(NothingToUndo, match="took no safety snapshot"):
        await restores.undo(vps, life, AS_BOB, request.id)
    with pytest.raises(UnknownRequest):  # from another channel
        await restores.undo(vps, life, replace(AS_BOB, channel_id="C0OTHER"), request.id)


async def test_undo_once_the_snapshot_is_deleted_at_vps_org_says_it_is_gone(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    assert done.outcome.safety_id is not None
    del vps.snapshots[done.outcome.safety_id]
    with pytest.raises(SafetySnapshotGone, match="no longer listed"):
        await restores.undo(vps, life, AS_BOB, done.id)


# -- clean-up --------------------------------------------------------------------------------------


async def test_the_bot_deletes_its_safety_snapshot_after_the_keep_period_only(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    snapshot_id = done.outcome.safety_id
    await tick(vps, life, clock, seconds=6 * 24 * 3600)  # six days: kept
    assert ("DELETE", f"/snapshots/{snapshot_id}/") not in mutations(vps)

    await tick(vps, life, clock, seconds=24 * 3600)
    assert mutations(vps).count(("DELETE", f"/snapshots/{snapshot_id}/")) == 1
    gone = store.request(done.id)
    assert gone.outcome.safety_removed is SafetyRemoval.DELETED
    assert not gone.undoable
    assert ("note", {"note": "safety_deleted"}, done.id) in store.queued(done.id)
    assert steps(store, done.id)[-1] == "deleted"

    await tick(vps, life, clock, seconds=3600)  # once only
    assert mutations(vps).count(("DELETE", f"/snapshots/{snapshot_id}/")) == 1
    with pytest.raises(SafetySnapshotGone, match="deleted it"):
        await restores.undo(vps, life, AS_BOB, done.id)


async def test_the_clean_up_never_deletes_a_snapshot_the_bot_did_not_make(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    assert done.outcome.safety_id is not None
    made = vps.snapshots[done.outcome.safety_id]
    vps.snapshots[made.id] = replace(made, name="someone-elses")  # the id names another one
    await tick(vps, life, clock, seconds=8 * 24 * 3600)
    assert not [call for call in mutations(vps) if call[0] == "DELETE"]
    assert store.request(done.id).outcome.safety_removed is SafetyRemoval.NOT_OURS


async def test_the_clean_up_waits_for_an_undo_that_is_waiting_for_approval(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    await restores.undo(vps, life, AS_BOB, done.id)
    clock.now += timedelta(days=8)
    await safety.clean_up(vps, life, OWNER)
    assert not [call for call in mutations(vps) if call[0] == "DELETE"]
    assert store.request(done.id).undoable


# -- found by the review: overtaken instances, names in use, late resumes, failed restores ----


@pytest.mark.parametrize("snapshot_status", ["in_progress", "error"])
async def test_an_instance_overtaken_while_following_writes_nothing(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock, snapshot_status: str
) -> None:
    """A paused between its claim and its write while B took the request over (its lease
    lapsed): A's look at the snapshot changes nothing, whatever it saw; B decides."""
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    made = safety_snapshot(vps, request)
    complete(vps, made, snapshot_status)
    clock.now += timedelta(seconds=15)
    following = store.request(request.id)
    row = store.requests[request.id]
    row.lease_owner, row.lease_until = "B", clock.now + timedelta(seconds=10)  # B holds it now
    queued = len(store.queued(request.id))

    assert await safety.follow(vps, life, following) is None  # A, late
    after = store.requests[request.id]
    assert after.request.status is Status.EXECUTING
    assert after.request.outcome == following.outcome
    assert after.lease_owner == "B"
    assert len(store.queued(request.id)) == queued  # nobody told anything
    assert mutations(vps) == [("POST", "/snapshots/")]


async def test_a_snapshot_already_named_after_the_request_is_never_taken_for_its_own(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask(vps, life)
    vps.add_snapshot(SERVER, f"pre-restore-{request.id}")  # another installation's
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.SAFETY_NAME_TAKEN
    assert mutations(vps) == []
    await tick(vps, life, clock, seconds=8 * 24 * 3600)
    assert mutations(vps) == []  # and never deleted


async def test_a_read_back_ignores_a_snapshot_made_long_before_the_post(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request = await claimed(vps, life, store)
    vps.add_snapshot(SERVER, f"pre-restore-{request.id}")  # a month old by the time of the POST
    clock.now += timedelta(days=30)
    crash(store, request.id, clock, safety_step=SafetyStep.POSTING, safety_asked_at=clock.now)
    await tick(vps, life, clock)
    after = store.request(request.id)
    assert after.status is Status.NEEDS_ATTENTION
    assert after.outcome.failure is not None
    assert after.outcome.failure.why is Why.SAFETY_UNCONFIRMED
    assert after.outcome.safety_id is None
    assert mutations(vps) == []


async def test_a_restore_is_not_sent_when_the_bot_comes_back_days_later(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    complete(vps, safety_snapshot(vps, request))
    await tick(vps, life, clock, seconds=3 * 24 * 3600)  # the bot was down for three days
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.RESUMED_LATE
    assert failed.outcome.failure.seconds >= 3 * 24 * 3600
    assert mutations(vps) == [("POST", "/snapshots/")]  # no restore
    assert store.requests[request.id].safety_delete_at is not None  # still cleaned up later


async def test_a_restore_claimed_before_a_long_outage_is_not_started_late(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request = await claimed(vps, life, store)
    clock.now += timedelta(days=1)
    crash(store, request.id, clock)
    await tick(vps, life, clock)
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.outcome.failure is not None
    assert failed.outcome.failure.why is Why.RESUMED_LATE
    assert mutations(vps) == []


async def test_a_restore_that_reached_vps_org_and_failed_can_be_undone(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    request, _ = await ask(vps, life)
    await restores.approve(vps, life, NOBODY, BOB, request.id, CHANNEL)
    complete(vps, safety_snapshot(vps, request))
    await tick(vps, life, clock)
    vps.servers[SERVER] = replace(vps.servers[SERVER], status="error")
    await tick(vps, life, clock)
    failed = store.request(request.id)
    assert failed.status is Status.FAILED
    assert failed.undoable
    undo = await restores.undo(vps, life, AS_BOB, request.id)
    assert undo.target_id == failed.outcome.safety_id


async def test_an_undo_that_needs_attention_does_not_keep_the_snapshot_for_ever(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    undo = await restores.undo(vps, life, AS_BOB, done.id)
    row = store.requests[undo.id]
    row.request = replace(row.request, status=Status.NEEDS_ATTENTION)
    await tick(vps, life, clock, seconds=8 * 24 * 3600)
    assert ("DELETE", f"/snapshots/{done.outcome.safety_id}/") in mutations(vps)


async def test_a_delete_whose_answer_is_lost_is_recorded_as_deleted_when_it_is_gone(
    vps: FakeVps, life: Lifecycle, store: MemoryStore, clock: Clock
) -> None:
    done = await restored(vps, life, store, clock)
    vps.fail_next("delete_snapshot", Unavailable("timed out", status=None), after=True)
    await tick(vps, life, clock, seconds=8 * 24 * 3600)
    gone = store.request(done.id)
    assert gone.outcome.safety_removed is SafetyRemoval.DELETED
    assert ("note", {"note": "safety_deleted"}, done.id) in store.queued(done.id)
    assert [call for call in mutations(vps) if call[0] == "DELETE"] == [
        ("DELETE", f"/snapshots/{done.outcome.safety_id}/")
    ]
